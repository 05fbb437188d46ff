import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { OciComponent } from '@trivy-airgap/format';
import { ARTIFACTS, dbSchemaProblem, parseDbMetadata, type DbMetadataFields } from '@trivy-airgap/trivy';
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
 * with the schema Version the targeted Trivy reads; when the manifest records `metadata` (bundles
 * of earlier exporters), every recorded field equals the layer's exactly. A checks layer is not
 * empty. Returns the upstream metadata as published (DB layers), unknown fields included.
 */
export function checkLayerContent(
  component: OciComponent,
  layer: UnpackedLayer,
): DbMetadataFields | undefined {
  const facts = ARTIFACTS[component.kind];
  if (facts.metadataFormat === 'policy') {
    if (layer.files.length === 0)
      throw invalid(component, 'the checks bundle is empty (Trivy would then run no checks)');
    return undefined;
  }
  const dbFile = facts.databaseFile ?? '';
  if (!layer.files.includes(dbFile)) throw invalid(component, `${dbFile} is missing at the layer root`);
  if (layer.metadataJson === undefined)
    throw invalid(component, 'metadata.json is missing at the layer root');
  let metadata: DbMetadataFields;
  try {
    metadata = parseDbMetadata(layer.metadataJson, `${component.kind} metadata.json`);
  } catch (error) {
    throw invalid(component, error instanceof Error ? error.message : String(error), error);
  }
  // Installing a schema Trivy refuses would replace a working DB with one no scan can use.
  const schemaProblem = dbSchemaProblem(component.kind, metadata);
  if (schemaProblem !== undefined) throw invalid(component, schemaProblem);
  const claimed = component.metadata;
  if (claimed !== undefined) {
    // Signed claims are compared as written: the exporter copied them from this very file.
    for (const key of ['Version', 'NextUpdate', 'UpdatedAt', 'DownloadedAt'] as const) {
      if (metadata[key] !== claimed[key]) {
        throw invalid(
          component,
          `metadata.json ${key} is ${JSON.stringify(metadata[key])} but the signed manifest says ${JSON.stringify(claimed[key])}`,
        );
      }
    }
  }
  return metadata;
}

/**
 * An entry sink that writes the entry to a new file, e.g. a VEX archive in staging. Not fsynced
 * here: an import syncs its staging tree once, and other copies are scratch.
 */
export class FileSink implements EntrySink {
  private handle: FileHandle | undefined;

  constructor(private readonly path: string) {}

  private async opened(): Promise<FileHandle> {
    if (this.handle === undefined) {
      await mkdir(dirname(this.path), { recursive: true });
      this.handle = await open(this.path, 'wx', 0o644);
    }
    return this.handle;
  }

  async write(chunk: Buffer): Promise<void> {
    await (await this.opened()).write(chunk);
  }

  async end(): Promise<void> {
    await (await this.opened()).close();
    this.handle = undefined;
  }

  async abort(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}
