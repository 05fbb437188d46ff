import { Writable } from 'node:stream';
import { isRfc3339 } from '@trivy-airgap/format';
import { Parser, type ReadEntry } from 'tar';
import { ARTIFACTS, type ArtifactKind } from './components.js';
import { TrivyError } from './errors.js';
import type { DbMetadataFields } from './render.js';

/** metadata.json is ~150 bytes upstream; anything near this cap is not Trivy's. */
export const MAX_METADATA_BYTES = 64 * 1024;

export type DbKind = 'db' | 'java-db';

/** What the streaming extractor found in a DB layer. */
export interface DbLayerMetadata {
  /** The parsed, validated metadata.json (unknown upstream fields kept). */
  readonly metadata: DbMetadataFields;
  /** The exact bytes of metadata.json as published. */
  readonly bytes: Buffer;
  /** Whether `trivy.db` / `trivy-java.db` was seen at the archive root before the stream ended. */
  readonly databaseFilePresent: boolean;
}

function isGoInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/**
 * Parses and validates metadata.json bytes (trivy-facts.md: Version int, RFC 3339 NextUpdate,
 * UpdatedAt, DownloadedAt). `what` names the file in errors.
 */
export function parseDbMetadata(bytes: Uint8Array, what = 'metadata.json'): DbMetadataFields {
  if (bytes.byteLength > MAX_METADATA_BYTES) {
    throw new TrivyError('METADATA_TOO_LARGE', `${what} is larger than ${MAX_METADATA_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new TrivyError('METADATA_INVALID', `${what} is not valid JSON`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TrivyError('METADATA_INVALID', `${what} is not a JSON object`);
  }
  const object = value as Record<string, unknown>;
  const problems: string[] = [];
  if (object.Version !== undefined && !isGoInt(object.Version)) problems.push('Version must be an integer');
  for (const key of ['NextUpdate', 'UpdatedAt', 'DownloadedAt'] as const) {
    if (!isRfc3339(object[key])) problems.push(`${key} must be an RFC 3339 timestamp`);
  }
  if (problems.length > 0) {
    throw new TrivyError('METADATA_INVALID', `${what}: ${problems.join('; ')}`);
  }
  return object as unknown as DbMetadataFields;
}

/**
 * Why a DB's schema Version is not the one Trivy reads (trivy-facts.md: DB schema 2, Java DB
 * schema 1; a higher one fails "the version of DB schema doesn't match", a lower one "the old DB
 * schema"), or undefined when it is. The one rule the exporter and the importer both apply.
 */
export function dbSchemaProblem(
  kind: ArtifactKind,
  metadata: { readonly Version?: number },
): string | undefined {
  const expected = ARTIFACTS[kind].schemaVersion;
  const found = metadata.Version ?? 0; // Trivy omits Version when it is 0
  if (found === expected) return undefined;
  return `metadata.json has schema Version ${found}, Trivy reads exactly ${expected}`;
}

function rootName(path: string): string | undefined {
  const name = path.startsWith('./') ? path.slice(2) : path;
  return name.includes('/') || name === '' ? undefined : name;
}

/**
 * Reads `metadata.json` out of a DB layer (gzip tar) fed chunk by chunk, e.g. from a download's
 * onData callback, so the upstream metadata is known without a second pass over the blob.
 * Decompression is synchronous inside `write` (tar's parser uses minizlib), so memory stays flat
 * however fast the chunks arrive. `write` never throws; problems surface from `finish()`.
 */
export class DbMetadataExtractor {
  readonly kind: DbKind;
  private readonly parser: Parser;
  private readonly maxMetadataBytes: number;
  private readonly ended: Promise<void>;
  private error: TrivyError | undefined;
  private metadataBytes: Buffer | undefined;
  private metadataChunks: Buffer[] = [];
  private databaseSeen = false;
  private finished = false;

  constructor(kind: DbKind, options: { maxMetadataBytes?: number } = {}) {
    this.kind = kind;
    this.maxMetadataBytes = options.maxMetadataBytes ?? MAX_METADATA_BYTES;
    // The layer digest is verified by the caller; a DB compresses very well, so no ratio cap here.
    this.parser = new Parser({ strict: true, maxDecompressionRatio: Number.POSITIVE_INFINITY });
    this.parser.on('entry', (entry: ReadEntry) => this.onEntry(entry));
    this.ended = new Promise<void>((resolve) => {
      this.parser.on('end', () => resolve());
      this.parser.on('error', (error: unknown) => {
        this.fail(
          new TrivyError('LAYER_INVALID', `${kind} layer is not a readable gzip tar: ${String(error)}`, {
            cause: error,
            context: { kind },
          }),
        );
        resolve();
      });
    });
  }

  /** True once metadata.json has been read completely (feeding more is then optional). */
  get found(): boolean {
    return this.metadataBytes !== undefined;
  }

  private fail(error: TrivyError): void {
    this.error ??= error;
  }

  private get complete(): boolean {
    return this.metadataBytes !== undefined && this.databaseSeen;
  }

  private get failed(): boolean {
    return this.error !== undefined;
  }

  private onEntry(entry: ReadEntry): void {
    const name = rootName(entry.path);
    const isFile = entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'ContiguousFile';
    if (isFile && name === ARTIFACTS[this.kind].databaseFile) this.databaseSeen = true;
    if (!isFile || name !== ARTIFACTS[this.kind].metadataFile || this.metadataBytes !== undefined) {
      entry.resume();
      return;
    }
    if (entry.size > this.maxMetadataBytes) {
      this.fail(
        new TrivyError(
          'METADATA_TOO_LARGE',
          `${this.kind} layer: metadata.json is ${entry.size} bytes, more than the ${this.maxMetadataBytes} allowed`,
          { context: { kind: this.kind, found: entry.size, expected: this.maxMetadataBytes } },
        ),
      );
      entry.resume();
      return;
    }
    entry.on('data', (chunk: Buffer) => this.metadataChunks.push(chunk));
    entry.on('end', () => {
      this.metadataBytes = Buffer.concat(this.metadataChunks);
      this.metadataChunks = [];
    });
  }

  /** Feeds the next chunk of the raw (gzip) layer bytes. */
  write(chunk: Uint8Array): void {
    if (this.finished || this.error !== undefined) return;
    // Both root files seen: the rest of the layer need not be decompressed.
    if (this.complete) return;
    try {
      this.parser.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (error) {
      this.fail(
        new TrivyError('LAYER_INVALID', `${this.kind} layer is not a readable gzip tar: ${String(error)}`, {
          cause: error,
          context: { kind: this.kind },
        }),
      );
    }
  }

  /** Call after the last chunk: resolves with the metadata or rejects with a TrivyError. */
  async finish(): Promise<DbLayerMetadata> {
    if (!this.finished) {
      this.finished = true;
      // After an early stop the parser saw only part of the stream: ending it would report truncation.
      if (this.error === undefined && !this.complete) {
        try {
          this.parser.end();
        } catch (error) {
          this.fail(
            new TrivyError('LAYER_INVALID', `${this.kind} layer ended early: ${String(error)}`, {
              cause: error,
              context: { kind: this.kind },
            }),
          );
        }
        if (!this.failed) await this.ended;
      }
    }
    if (this.error !== undefined) throw this.error;
    if (this.metadataBytes === undefined) {
      throw new TrivyError(
        'METADATA_MISSING',
        `${this.kind} layer has no metadata.json at its root (Trivy needs it next to ${ARTIFACTS[this.kind].databaseFile ?? 'the database'})`,
        { context: { kind: this.kind } },
      );
    }
    return {
      metadata: parseDbMetadata(this.metadataBytes, `${this.kind} metadata.json`),
      bytes: this.metadataBytes,
      databaseFilePresent: this.databaseSeen,
    };
  }

  /** The extractor as a Writable, for `pipeline(source, extractor.writable())`. */
  writable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.write(chunk);
        callback();
      },
    });
  }
}

/** Convenience: reads a whole layer stream (file, blob store) and returns its metadata. */
export async function readDbLayerMetadata(
  kind: DbKind,
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: { maxMetadataBytes?: number } = {},
): Promise<DbLayerMetadata> {
  const extractor = new DbMetadataExtractor(kind, options);
  for await (const chunk of source) extractor.write(chunk);
  return extractor.finish();
}
