import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { OciComponent } from '@trivy-airgap/format';
import { ARTIFACTS, parseDbMetadata, type DbMetadataFields } from '@trivy-airgap/trivy';
import { ImporterError } from './errors.js';
import type { UnpackedLayer } from './layer.js';
import type { EntrySink } from './reader.js';

function invalid(component: OciComponent, message: string, cause?: unknown): ImporterError {
  return new ImporterError('BUNDLE_CONTENT_INVALID', `${component.kind} layer: ${message}`, {
    cause,
    hint: 'the bundle was made from a broken artifact; export it again',
  });
}

/**
 * Checks an unpacked layer against what Trivy needs (trivy-facts.md, "The three OCI artifacts")
 * and what the signed manifest claims: a DB layer has its database file and a valid metadata.json
 * whose Version, UpdatedAt and NextUpdate equal the manifest's `metadata`; a checks layer is not
 * empty. Returns the upstream metadata as published (DB layers), unknown fields included.
 */
export function checkLayerContent(
  component: OciComponent,
  layer: UnpackedLayer,
): DbMetadataFields | undefined {
  if (component.kind === 'checks') {
    if (layer.files.length === 0)
      throw invalid(component, 'the checks bundle is empty (Trivy would then run no checks)');
    return undefined;
  }
  const dbFile = ARTIFACTS[component.kind].databaseFile ?? '';
  if (!layer.files.includes(dbFile)) throw invalid(component, `${dbFile} is missing at the layer root`);
  if (layer.metadataJson === undefined)
    throw invalid(component, 'metadata.json is missing at the layer root');
  let metadata: DbMetadataFields;
  try {
    metadata = parseDbMetadata(layer.metadataJson, `${component.kind} metadata.json`);
  } catch (error) {
    throw invalid(component, error instanceof Error ? error.message : String(error), error);
  }
  const claimed = component.metadata;
  if (claimed === undefined) throw invalid(component, 'the manifest has no metadata for it');
  const same = (a: unknown, b: unknown): boolean =>
    typeof a === 'string' && typeof b === 'string' ? Date.parse(a) === Date.parse(b) : (a ?? 0) === (b ?? 0);
  for (const key of ['Version', 'UpdatedAt', 'NextUpdate'] as const) {
    if (!same(metadata[key], claimed[key])) {
      throw invalid(
        component,
        `metadata.json ${key} is ${JSON.stringify(metadata[key])} but the signed manifest says ${JSON.stringify(claimed[key])}`,
      );
    }
  }
  return metadata;
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
