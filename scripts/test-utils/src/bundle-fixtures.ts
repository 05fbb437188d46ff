import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import {
  BUNDLE_GZIP_HEADER,
  MANIFEST_MEDIA_TYPE,
  MANIFEST_PATH,
  SIGNATURE_PATH,
  generateKeyPair,
  loadSigningKey,
  signBytes,
  type SigningKey,
} from '@trivy-airgap/format';
import { makeTar, type ArchiveEntry } from './archives.js';
import {
  OCI_MANIFEST_MEDIA_TYPE,
  sha256Digest,
  trivyArtifact,
  upstreamMetadata,
  vexRepositoryArchive,
  vexRepositoryManifest,
  type ArtifactOptions,
  type FixtureArtifact,
  type FixtureKind,
  type VexRepositoryFixture,
} from './trivy-fixtures.js';

/**
 * Real, signed v1 transfer bundles (docs/bundle-format.md) built in code from the Trivy-shaped
 * fixture artifacts, plus the hooks hostile tests need: edit the manifest before it is signed,
 * or edit the tar entries after (extra, duplicate, reordered, `../`, links, lying sizes, …).
 */

export interface TestKey {
  readonly signingKey: SigningKey;
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
  readonly keyId: string;
}

/** A fresh key pair (ECDSA P-256 unless asked otherwise). */
export function makeTestKey(type: 'ecdsa-p256' | 'ed25519' = 'ecdsa-p256'): TestKey {
  const pair = generateKeyPair(type);
  return {
    signingKey: loadSigningKey(pair.privateKeyPem),
    privateKeyPem: pair.privateKeyPem,
    publicKeyPem: pair.publicKeyPem,
    keyId: pair.keyId,
  };
}

let sharedKey: TestKey | undefined;
/** One key per test process, so tests that do not care about keys share it. */
export function defaultTestKey(): TestKey {
  sharedKey ??= makeTestKey();
  return sharedKey;
}

export const DEFAULT_SOURCES: Record<FixtureKind, { source: string; tag: string }> = {
  db: { source: 'mirror.gcr.io/aquasec/trivy-db:2', tag: '2' },
  'java-db': { source: 'mirror.gcr.io/aquasec/trivy-java-db:1', tag: '1' },
  checks: { source: 'mirror.gcr.io/aquasec/trivy-checks:2', tag: '2' },
};

export interface OciComponentSpec {
  readonly kind: FixtureKind;
  /** Options for trivyArtifact (updatedAt, dbContents, checksVersion, …). */
  readonly options?: ArtifactOptions;
  /** Use this artifact as is. */
  readonly artifact?: FixtureArtifact;
  /**
   * The upstream metadata.json fields the manifest claims, as earlier exporters recorded them:
   * given fields, or `'from-layer'` for those of the layer. Default: none, as the exporter writes
   * manifests now (the importer reads metadata.json from the layer).
   */
  readonly metadata?: Record<string, unknown> | 'from-layer';
  readonly source?: string;
  readonly servedBy?: string;
}

export interface VexComponentSpec {
  readonly kind: 'vex';
  readonly name?: string;
  readonly url?: string;
  readonly type?: 'tar.gz' | 'zip';
  /** The repository fixture (default: a VEX Hub-like tarball with a `vexhub-main/` top folder). */
  readonly repository?: VexRepositoryFixture;
  readonly updatedAt?: string;
  readonly etag?: string;
}

export type BundleComponentSpec = OciComponentSpec | VexComponentSpec;

export interface BuildBundleOptions {
  readonly components: readonly BundleComponentSpec[];
  /** Signing key; `null` builds an unsigned bundle (signer null, no manifest.json.sig). */
  readonly key?: TestKey | null;
  readonly created?: Date;
  readonly expires?: Date;
  readonly bundleId?: string;
  /** Edit the manifest object before it is serialized and signed. */
  readonly editManifest?: (manifest: Record<string, unknown>) => void;
  /** Edit the tar entries after signing (hostile variants); return the new list. */
  readonly editEntries?: (entries: ArchiveEntry[]) => ArchiveEntry[];
  /** Replace the signature bytes (e.g. a signature by another key). */
  readonly signature?: Buffer;
  readonly gzipLevel?: number;
}

export interface EntryOffsets {
  /** Offset of the entry's (ustar) header in the uncompressed tar. */
  readonly header: number;
  /** Offset of the first body byte. */
  readonly body: number;
  readonly size: number;
}

export interface BuiltBundle {
  /** The .tgz bytes. */
  readonly bytes: Buffer;
  /** The uncompressed tar. */
  readonly tar: Buffer;
  readonly manifest: Record<string, unknown>;
  readonly manifestBytes: Buffer;
  readonly signature: Buffer | undefined;
  readonly entries: readonly ArchiveEntry[];
  /** Where each entry lies in `tar`, by path (last one wins for duplicates). */
  readonly offsets: ReadonlyMap<string, EntryOffsets>;
  readonly artifacts: ReadonlyMap<FixtureKind, FixtureArtifact>;
  readonly vex: ReadonlyMap<
    string,
    { repository: VexRepositoryFixture; manifestBytes: Buffer; location: string }
  >;
  readonly bundleId: string;
}

const DAY = 86_400_000;

/** Seconds-precision RFC 3339 in UTC, as the exporter writes it. */
function rfc3339(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** Assembles a signed v1 bundle exactly per docs/bundle-format.md. */
export function buildBundle(options: BuildBundleOptions): BuiltBundle {
  const created = options.created ?? new Date(Date.now() - 60_000);
  const expires = options.expires ?? new Date(created.getTime() + 30 * DAY);
  const key = options.key === undefined ? defaultTestKey() : options.key;
  const bundleId = options.bundleId ?? randomUUID();
  const files = new Map<string, Buffer>();
  const components: Record<string, unknown>[] = [];
  const artifacts = new Map<FixtureKind, FixtureArtifact>();
  const vex = new Map<
    string,
    { repository: VexRepositoryFixture; manifestBytes: Buffer; location: string }
  >();
  const indexManifests: Record<string, unknown>[] = [];

  for (const spec of options.components) {
    if (spec.kind === 'vex') {
      const name = spec.name ?? 'default';
      const type = spec.type ?? 'tar.gz';
      const repository =
        spec.repository ??
        vexRepositoryArchive({
          type,
          ...(spec.updatedAt === undefined ? {} : { updatedAt: spec.updatedAt }),
        });
      const url = spec.url ?? 'https://github.com/aquasecurity/vexhub';
      const archiveUrl = `https://github.com/aquasecurity/vexhub/archive/refs/heads/main.${type === 'zip' ? 'zip' : 'tar.gz'}`;
      const location = repository.subdir === '' ? archiveUrl : `${archiveUrl}//${repository.subdir}`;
      const manifestBytes = vexRepositoryManifest(location);
      const manifestPath = `vex/${name}/vex-repository.json`;
      const archivePath = `vex/${name}/archive.${type === 'zip' ? 'zip' : 'tar.gz'}`;
      files.set(manifestPath, manifestBytes);
      files.set(archivePath, repository.archive);
      vex.set(name, { repository, manifestBytes, location });
      const index = repository.files.get('index.json');
      const updatedAt =
        spec.updatedAt ??
        (index === undefined
          ? undefined
          : (JSON.parse(index.toString()) as { updated_at?: string }).updated_at);
      components.push({
        kind: 'vex',
        name,
        url,
        manifestPath,
        repositoryManifest: JSON.parse(manifestBytes.toString()) as unknown,
        specVersion: '0.1',
        location,
        servedBy: `https://codeload.github.com/aquasecurity/vexhub/${type}/refs/heads/main`,
        archivePath,
        archiveType: type,
        subdir: repository.subdir,
        ...(spec.etag === undefined ? {} : { etag: spec.etag }),
        ...(updatedAt === undefined ? {} : { updatedAt }),
      });
      continue;
    }
    const artifact = spec.artifact ?? trivyArtifact(spec.kind, spec.options ?? {});
    artifacts.set(spec.kind, artifact);
    for (const [digest, bytes] of [
      [artifact.manifestDigest, artifact.manifest],
      [artifact.configDigest, artifact.config],
      [artifact.layerDigest, artifact.layer],
    ] as const) {
      files.set(`oci/blobs/sha256/${digest.slice(7)}`, bytes);
    }
    const ociManifest = JSON.parse(artifact.manifest.toString()) as { annotations?: Record<string, string> };
    const annotations = ociManifest.annotations ?? {};
    const defaults = DEFAULT_SOURCES[spec.kind];
    const source = spec.source ?? defaults.source;
    const layoutRef = spec.kind;
    indexManifests.push({
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      digest: artifact.manifestDigest,
      size: artifact.manifest.length,
      annotations: { 'org.opencontainers.image.ref.name': layoutRef },
    });
    const metadata =
      spec.kind === 'checks' || spec.metadata === undefined
        ? undefined
        : spec.metadata === 'from-layer'
          ? (JSON.parse(upstreamMetadata(spec.kind, spec.options ?? {}).toString()) as Record<
              string,
              unknown
            >)
          : spec.metadata;
    const version = annotations['org.opencontainers.image.version'];
    components.push({
      kind: spec.kind,
      source,
      servedBy: spec.servedBy ?? source,
      tag: defaults.tag,
      layoutRef,
      manifest: {
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: artifact.manifestDigest,
        size: artifact.manifest.length,
      },
      layer: {
        mediaType: artifact.layerMediaType,
        digest: artifact.layerDigest,
        size: artifact.layer.length,
        title: artifact.title,
      },
      annotations,
      ...(metadata === undefined ? {} : { metadata }),
      ...(spec.kind === 'checks' && version !== undefined ? { version } : {}),
    });
  }
  if (artifacts.size > 0) {
    files.set('oci/oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    files.set(
      'oci/index.json',
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: indexManifests,
        }),
      ),
    );
  }

  const sorted = [...files.entries()].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const manifest: Record<string, unknown> = {
    mediaType: MANIFEST_MEDIA_TYPE,
    bundleId,
    created: rfc3339(created),
    expires: rfc3339(expires),
    tool: { name: 'trivy-airgap', version: '0.1.0' },
    signer: key === null ? null : { keyId: key.keyId, algorithm: key.signingKey.algorithm },
    trivyVersions: '>=0.69.0',
    components,
    files: sorted.map(([path, bytes]) => ({ path, size: bytes.length, digest: sha256Digest(bytes) })),
  };
  options.editManifest?.(manifest);
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  const signature =
    options.signature ?? (key === null ? undefined : signBytes(manifestBytes, key.signingKey));

  const mtime = Math.floor(created.getTime() / 1000);
  let entries: ArchiveEntry[] = [
    { name: MANIFEST_PATH, body: manifestBytes, mtime },
    ...(signature === undefined ? [] : [{ name: SIGNATURE_PATH, body: signature, mtime }]),
    ...sorted.map(([name, body]) => ({ name, body, mtime })),
  ];
  if (options.editEntries !== undefined) entries = options.editEntries(entries);
  const tar = makeTar(entries);
  return {
    bytes: gzipBundle(tar, options.gzipLevel ?? 0),
    tar,
    manifest,
    manifestBytes,
    signature,
    entries,
    offsets: tarOffsets(tar),
    artifacts,
    vex,
    bundleId,
  };
}

/** Walks a tar built by makeTar and reports where each entry's header and body are. */
export function tarOffsets(tar: Buffer): Map<string, EntryOffsets> {
  const offsets = new Map<string, EntryOffsets>();
  let position = 0;
  let paxPath: string | undefined;
  while (position + 512 <= tar.length) {
    const block = tar.subarray(position, position + 512);
    if (block.every((byte) => byte === 0)) break;
    const rawName = block.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(block.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(block[156] ?? 48);
    const body = position + 512;
    const next = body + (type === '0' || type === 'x' ? Math.ceil(size / 512) * 512 : 0);
    if (type === 'x') {
      const record = tar.subarray(body, body + size).toString('utf8');
      paxPath = /\d+ path=([^\n]*)\n/.exec(record)?.[1];
    } else {
      offsets.set(paxPath ?? rawName, { header: position, body, size: type === '0' ? size : 0 });
      paxPath = undefined;
    }
    position = next;
  }
  return offsets;
}

/** The .tgz with one byte of the uncompressed tar flipped at `position`. */
export function flipTarByte(bundle: BuiltBundle, position: number): Buffer {
  const tar = Buffer.from(bundle.tar);
  tar[position] = (tar[position] ?? 0) ^ 0x01;
  return gzipBundle(tar);
}

/** A gzip stream that inflates to `size` bytes of zeros: a bomb if appended or substituted. */
export function gzipBomb(prefix: Buffer, size: number): Buffer {
  return gzipBundle(Buffer.concat([prefix, Buffer.alloc(size)]), 9);
}

/**
 * A tar gzip-compressed as the exporter does it: one member, deflate level 0 (stored blocks),
 * with the bundle's fixed header (BUNDLE_GZIP_HEADER; zlib's XFL byte depends on the level, its
 * OS byte on the platform). Other levels build bundles a reader must refuse.
 */
export function gzipBundle(tar: Buffer, level = 0): Buffer {
  const bytes = gzipSync(tar, { level });
  BUNDLE_GZIP_HEADER.copy(bytes, 0);
  return bytes;
}

/**
 * Where byte `tarOffset` of the uncompressed tar lies in a bundle's gzip stream (stored deflate
 * blocks, as gzipBundle and the exporter write them): for flips aimed at one region of the tar.
 */
export function compressedOffset(bytes: Buffer, tarOffset: number): number {
  let at = BUNDLE_GZIP_HEADER.length;
  let tar = 0;
  for (;;) {
    const last = bytes[at] === 1;
    const length = bytes.readUInt16LE(at + 1);
    if (tarOffset < tar + length) return at + 5 + (tarOffset - tar);
    tar += length;
    at += 5 + length;
    if (last) throw new Error(`tar offset ${tarOffset} is beyond the stream (${tar} bytes)`);
  }
}
