import { MANIFEST_MEDIA_TYPE, blobPath, digestOfBytes, type BundleManifest } from '../src/index.js';

/** A valid manifest with a DB and a VEX component, for tests that edit one field at a time. */
export const manifestBlob = digestOfBytes('manifest');
export const layerBlob = digestOfBytes('layer');
export const vexManifest = digestOfBytes('vex manifest');
export const vexArchive = digestOfBytes('vex archive');

export function sampleManifest(): BundleManifest {
  return {
    mediaType: MANIFEST_MEDIA_TYPE,
    bundleId: '0b6f6e0e-7f0a-4c55-9f0a-1d0e5b1f3c11',
    created: '2026-11-25T10:00:00Z',
    expires: '2026-12-25T10:00:00Z',
    tool: { name: 'trivy-airgap', version: '0.1.0' },
    signer: { keyId: 'a'.repeat(64), algorithm: 'ecdsa-p256-sha256' },
    trivyVersions: '>=0.69.0',
    components: [
      {
        kind: 'db',
        source: 'mirror.gcr.io/aquasec/trivy-db:2',
        servedBy: 'mirror.gcr.io/aquasec/trivy-db:2',
        tag: '2',
        layoutRef: 'db',
        manifest: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestBlob, size: 8 },
        layer: {
          mediaType: 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip',
          digest: layerBlob,
          size: 5,
          title: 'db.tar.gz',
        },
        annotations: { 'org.opencontainers.image.created': '2026-11-25T06:00:00Z' },
        metadata: {
          Version: 2,
          NextUpdate: '2026-11-26T06:00:00Z',
          UpdatedAt: '2026-11-25T06:00:00Z',
          DownloadedAt: '0001-01-01T00:00:00Z',
        },
      },
      {
        kind: 'vex',
        name: 'default',
        url: 'https://github.com/aquasecurity/vexhub',
        manifestPath: 'vex/default/vex-repository.json',
        repositoryManifest: { name: 'VEX Hub', versions: [] },
        specVersion: '0.1',
        location: 'https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main',
        servedBy: 'https://codeload.github.com/aquasecurity/vexhub/tar.gz/refs/heads/main',
        archivePath: 'vex/default/archive.tar.gz',
        archiveType: 'tar.gz',
        subdir: 'vexhub-main',
      },
    ],
    files: [
      { path: blobPath(layerBlob), size: 5, digest: layerBlob },
      { path: blobPath(manifestBlob), size: 8, digest: manifestBlob },
      { path: 'vex/default/archive.tar.gz', size: 11, digest: vexArchive },
      { path: 'vex/default/vex-repository.json', size: 12, digest: vexManifest },
    ],
  };
}
