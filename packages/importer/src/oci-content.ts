import { blobPath, type BundleManifest, type OciComponent } from '@trivy-airgap/format';
import { checkArtifactManifest } from '@trivy-airgap/trivy';
import { ImporterError } from './errors.js';
import type { VerificationCheck } from './policy.js';

/**
 * The OCI content check: once the streaming pass verified every small file's digest, the OCI
 * layout (index.json, each artifact manifest) must say what the signed bundle manifest claims
 * about each component, and each artifact must be one Trivy accepts. VEX manifests must parse.
 */

function invalid(path: string, message: string): ImporterError {
  return new ImporterError('BUNDLE_CONTENT_INVALID', `${path}: ${message}`, {
    path,
    hint: 'the bundle was made by a broken exporter or edited; export it again',
  });
}

function parseJson(path: string, bytes: Buffer | undefined): unknown {
  if (bytes === undefined) throw invalid(path, 'is missing');
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw invalid(path, 'is not JSON');
  }
}

interface OciManifestShape {
  layers?: { mediaType?: unknown; digest?: unknown; size?: unknown; annotations?: Record<string, unknown> }[];
}

/** Cross-checks the verified small files against what the manifest claims about components. */
export function checkBundleContent(
  manifest: BundleManifest,
  smallFiles: ReadonlyMap<string, Buffer>,
  checks: VerificationCheck[],
): void {
  const ociComponents = manifest.components.filter((c): c is OciComponent => c.kind !== 'vex');
  if (ociComponents.length > 0) {
    const index = parseJson('oci/index.json', smallFiles.get('oci/index.json')) as {
      manifests?: { digest?: unknown; annotations?: Record<string, unknown> }[];
    };
    for (const component of ociComponents) {
      const path = blobPath(component.manifest.digest);
      const oci = parseJson(path, smallFiles.get(path)) as OciManifestShape;
      try {
        checkArtifactManifest(component.kind, smallFiles.get(path) ?? '');
      } catch (error) {
        throw invalid(path, error instanceof Error ? error.message : String(error));
      }
      const layers = Array.isArray(oci.layers) ? oci.layers : [];
      const layer = layers[0];
      if (layers.length !== 1 || layer === undefined)
        throw invalid(path, `the ${component.kind} artifact must have exactly one layer`);
      if (layer.digest !== component.layer.digest || layer.size !== component.layer.size) {
        throw invalid(path, `its layer is not the ${component.kind} layer the manifest lists`);
      }
      if (layer.mediaType !== component.layer.mediaType)
        throw invalid(path, 'its layer media type differs from the manifest');
      if (layer.annotations?.['org.opencontainers.image.title'] !== component.layer.title) {
        throw invalid(path, 'its layer title annotation differs from the manifest');
      }
      const listed = (index.manifests ?? []).find(
        (entry) =>
          entry.digest === component.manifest.digest &&
          entry.annotations?.['org.opencontainers.image.ref.name'] === component.layoutRef,
      );
      if (listed === undefined)
        throw invalid(
          'oci/index.json',
          `does not list ${component.layoutRef} → ${component.manifest.digest}`,
        );
      checks.push({
        check: 'oci-artifact',
        subject: component.kind,
        ok: true,
        detail: `one layer ${component.layer.digest} (${component.layer.title}), indexed as ${component.layoutRef}`,
      });
    }
  }
  for (const component of manifest.components) {
    if (component.kind !== 'vex') continue;
    parseJson(component.manifestPath, smallFiles.get(component.manifestPath));
    checks.push({
      check: 'vex-repository',
      subject: component.name,
      ok: true,
      detail: `manifest and ${component.archiveType} archive present`,
    });
  }
}
