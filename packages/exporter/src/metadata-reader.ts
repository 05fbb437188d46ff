/**
 * Reads metadata.json out of a DB layer FILE that may still be growing: the work dir's partial
 * download, read behind the downloader (`advance` after each completed write, `finish` with the
 * final size). The metadata of a DB sits after the database in the tar (trivy-db archives
 * metadata.json last), so the whole layer is inflated.
 *
 * Why from the file, and why on the main thread (measured on the benchmark's Trivy-shaped data,
 * 600 MiB DB + 300 MiB Java DB at gzip -6, export from a loopback registry, 3 runs each):
 * - Before, download chunks were copied to a worker thread in 1 MiB batches and the main thread
 *   blocked (Atomics.wait) whenever that worker fell 2 MiB behind; a second DB layer inflated on
 *   the main thread with tar's synchronous inflater. 3.0-3.1 s CPU, peak RSS 172-197 MiB.
 * - Reading the file instead means the download never waits for the inflater (the file in the
 *   page cache is the buffer) and no chunk is copied for another thread.
 * - Inflating with node:zlib's asynchronous API runs on libuv's pool, so both layers inflate in
 *   parallel on two cores whatever thread drives them. A worker to drive them cost ~22 MiB of RSS
 *   (its own copy of the modules) and message passing: 3.2-3.7 s CPU, 205-221 MiB. Driven from the
 *   main thread: 2.2-2.7 s CPU, 163-170 MiB. It also works the same in the single-file CLI.
 */
import { read } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { createGunzip, type Gunzip } from 'node:zlib';
import { DbMetadataExtractor, TrivyError, type DbKind, type DbLayerMetadata } from '@trivy-airgap/trivy';

const readAt = promisify(read);

/** Read size; also the inflater's output chunk (1 MiB output chunks measured fastest, see git log). */
const TAIL_CHUNK = 1024 * 1024;

/**
 * How far a growing file may be read: `advance` after each completed write, `finish` with the
 * final size. The reader awaits `until(position)`.
 */
class GrowingFile {
  private available = 0;
  private size: number | undefined;
  private aborted: Error | undefined;
  private wake: (() => void) | undefined;

  advance(bytes: number): void {
    if (bytes > this.available) this.available = bytes;
    this.notify();
  }

  finish(size: number): void {
    this.size = size;
    this.available = size;
    this.notify();
  }

  abort(reason: Error): void {
    this.aborted = reason;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Resolves with the readable end once it is past `position`, or the file is complete. */
  async until(position: number): Promise<{ end: number; complete: boolean }> {
    for (;;) {
      if (this.aborted !== undefined) throw this.aborted;
      if (this.available > position || this.size !== undefined) {
        return { end: this.available, complete: this.size !== undefined };
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}

function layerInvalid(kind: DbKind, detail: string, cause?: unknown): TrivyError {
  return new TrivyError('LAYER_INVALID', `${kind} layer is not a readable gzip tar: ${detail}`, {
    cause,
    context: { kind },
  });
}

/**
 * Inflates the layer in `fd` as `file` grows and feeds packages/trivy's DbMetadataExtractor.
 * A layer starting with the gzip magic is inflated with node:zlib (on the libuv pool, 1 MiB output
 * chunks); anything else goes to the extractor as it is (its parser takes a plain tar too).
 */
async function readGrowingLayerMetadata(
  kind: DbKind,
  fd: number,
  file: GrowingFile,
): Promise<DbLayerMetadata> {
  const extractor = new DbMetadataExtractor(kind);
  let gunzip: Gunzip | null | undefined;
  let inflateError: Error | undefined;
  let inflated: Promise<void> = Promise.resolve();
  const startInflater = (): Gunzip => {
    const stream = createGunzip({ chunkSize: TAIL_CHUNK });
    stream.on('data', (chunk: Buffer) => {
      if (inflateError === undefined) extractor.write(chunk);
    });
    inflated = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('error', (error) => {
        inflateError ??= error;
        resolve();
      });
    });
    return stream;
  };
  // Two buffers: the inflater may still hold one while the next read fills the other.
  const buffers = [Buffer.allocUnsafe(TAIL_CHUNK), Buffer.allocUnsafe(TAIL_CHUNK)];
  let position = 0;
  /** Per buffer: resolves once the inflater has consumed what was last read into it. */
  const consumed: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  let head: Buffer | undefined;
  for (let turn = 0; ; turn++) {
    const { end, complete } = await file.until(position);
    if (position >= end) break; // complete, everything read
    const buffer = buffers[turn % 2] as Buffer;
    await consumed[turn % 2];
    const { bytesRead } = await readAt(fd, buffer, 0, Math.min(TAIL_CHUNK, end - position), position);
    if (bytesRead === 0) {
      throw layerInvalid(kind, `the file ended at byte ${position} of ${complete ? end : 'more'}`);
    }
    position += bytesRead;
    let chunk = buffer.subarray(0, bytesRead);
    if (gunzip === undefined) {
      chunk = head === undefined ? chunk : Buffer.concat([head, chunk]);
      if (chunk.length < 2 && !(complete && position >= end)) {
        head = Buffer.from(chunk); // the magic needs two bytes
        continue;
      }
      head = undefined;
      gunzip = chunk[0] === 0x1f && chunk[1] === 0x8b ? startInflater() : null;
    }
    if (gunzip === null) {
      extractor.write(Buffer.from(chunk)); // the parser may keep a view of it; the buffer is reused
      continue;
    }
    if (inflateError !== undefined) break;
    const inflater = gunzip;
    // A write the inflater fails on never calls back: the failure (`inflated`) ends the wait too.
    const written = new Promise<void>((resolve) => inflater.write(chunk, () => resolve()));
    consumed[turn % 2] = Promise.race([written, inflated]);
  }
  if (head !== undefined) extractor.write(head);
  if (gunzip !== undefined && gunzip !== null) {
    await Promise.all(consumed);
    gunzip.end();
    await inflated;
    if (inflateError !== undefined) throw layerInvalid(kind, String(inflateError), inflateError);
  }
  return extractor.finish();
}

/** Reads metadata.json from a DB layer file while it is being written (see the top of this file). */
export interface LayerMetadataReader {
  /** The file now holds at least `bytes` bytes of the layer. */
  advance(bytes: number): void;
  /** The file is complete at `size` bytes: the metadata, or a TrivyError. */
  finish(size: number): Promise<DbLayerMetadata>;
  /** Stops reading (after a failed download); safe after finish. */
  close(): Promise<void>;
}

/** Starts reading `file` (kept open by the caller until the reader is finished or closed). */
export function createLayerMetadataReader(kind: DbKind, file: FileHandle): LayerMetadataReader {
  const growing = new GrowingFile();
  const result = readGrowingLayerMetadata(kind, file.fd, growing);
  result.catch(() => undefined); // awaited by finish; a closed reader's failure is moot
  return {
    advance: (bytes) => growing.advance(bytes),
    finish: (size) => {
      growing.finish(size);
      return result;
    },
    close: async () => {
      growing.abort(new Error('the layer reader was closed'));
      await result.catch(() => undefined);
    },
  };
}
