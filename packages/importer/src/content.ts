import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { OciComponent, UpstreamDbMetadata } from '@trivy-airgap/format';
import { ImporterError } from './errors.js';
import type { UnpackedLayer } from './layer.js';
import type { EntrySink } from './reader.js';

/** The file a DB layer must hold besides metadata.json (trivy-facts.md, "The three OCI artifacts"). */
export const DB_FILE: Record<'db' | 'java-db', string> = { db: 'trivy.db', 'java-db': 'trivy-java.db' };

function invalid(component: OciComponent, message: string): ImporterError {
  return new ImporterError('BUNDLE_CONTENT_INVALID', `${component.kind} layer: ${message}`, {
    hint: 'the bundle was made from a broken artifact; export it again',
  });
}

/**
 * Checks an unpacked layer against what Trivy needs and what the signed manifest claims:
 * a DB layer has its database file and a metadata.json whose fields equal the manifest's
 * `metadata`; a checks layer is not empty. Returns the upstream metadata (DB layers).
 */
export function checkLayerContent(
  component: OciComponent,
  layer: UnpackedLayer,
): UpstreamDbMetadata | undefined {
  if (component.kind === 'checks') {
    if (layer.files.length === 0)
      throw invalid(component, 'the checks bundle is empty (Trivy would then run no checks)');
    return undefined;
  }
  const dbFile = DB_FILE[component.kind];
  if (!layer.files.includes(dbFile)) throw invalid(component, `${dbFile} is missing at the layer root`);
  if (layer.metadataJson === undefined)
    throw invalid(component, 'metadata.json is missing at the layer root');
  let parsed: unknown;
  try {
    parsed = JSON.parse(layer.metadataJson.toString('utf8'));
  } catch {
    throw invalid(component, 'metadata.json is not JSON');
  }
  const metadata = parsed as Record<string, unknown>;
  const claimed = component.metadata;
  if (claimed === undefined) throw invalid(component, 'the manifest has no metadata for it');
  for (const key of ['Version', 'UpdatedAt', 'NextUpdate'] as const) {
    const inLayer = metadata[key] ?? (key === 'Version' ? 0 : undefined);
    const inManifest = claimed[key] ?? (key === 'Version' ? 0 : undefined);
    const same =
      key === 'Version'
        ? inLayer === inManifest
        : typeof inLayer === 'string' &&
          typeof inManifest === 'string' &&
          Date.parse(inLayer) === Date.parse(inManifest);
    if (!same) {
      throw invalid(
        component,
        `metadata.json ${key} is ${JSON.stringify(inLayer)} but the signed manifest says ${JSON.stringify(inManifest)}`,
      );
    }
  }
  return parsed as UpstreamDbMetadata;
}

/** An entry sink that writes the entry to a new file (fsynced), e.g. a VEX archive in staging. */
export class FileSink implements EntrySink {
  private handle: FileHandle | undefined;

  constructor(private readonly path: string) {}

  async write(chunk: Buffer): Promise<void> {
    this.handle ??= await open(this.path, 'wx', 0o644);
    await this.handle.write(chunk);
  }

  async end(): Promise<void> {
    this.handle ??= await open(this.path, 'wx', 0o644);
    await this.handle.sync();
    await this.handle.close();
    this.handle = undefined;
  }

  async abort(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}
