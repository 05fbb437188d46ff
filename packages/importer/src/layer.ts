import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TarReader, bundlePathProblem, resolveInside } from '@trivy-airgap/format';
import { collisionKey, type UnpackLimits } from '@trivy-airgap/trivy';
import { ImporterError, TAMPERED_HINT, fromTarReadError } from './errors.js';
import type { EntrySink } from './reader.js';

/**
 * A layer inflates to at most this many times its compressed size. DB-like data reaches ~21×;
 * deflate itself cannot exceed ~1032×, so the bound must sit well below that to stop a bomb.
 */
const MAX_LAYER_RATIO = 250;
/** …but small layers may always inflate to this much. */
const MIN_LAYER_LIMIT = 16 * 1024 * 1024;
const MAX_METADATA_BYTES = 1024 * 1024;

export interface UnpackedLayer {
  /** Regular files, relative to the layer root, in archive order. */
  readonly files: readonly string[];
  readonly bytes: number;
  /** The kept file (`metadata.json` at the layer root), if any (DB layers). */
  readonly metadataJson: Buffer | undefined;
}

type PathKind = 'file' | 'directory';

/**
 * An entry sink that inflates an OCI layer (tar+gzip) while the bundle streams by, checking every
 * inner entry (regular files and directories only, safe relative paths, no collisions, within the
 * layer's limits) and, when `destDir` is given, writing the files there (mode 0644). Every check
 * is a string check made before any file-system call, so verify (no `destDir`) and import refuse
 * alike. The importer syncs its staging tree once; a large file's flush to disk is only started
 * here, as soon as it is written, so that it overlaps the next layer (`result()` waits for it).
 * The compressed bytes are hashed by the reader at the same time, so the layer is read once.
 */
export class LayerUnpacker implements EntrySink {
  private readonly input = new ChunkQueue(1 << 20);
  private readonly tar: TarReader;
  private readonly task: Promise<UnpackedLayer>;
  /** The unpacked layer once its files are on disk too (flushes started in `unpack`). */
  private readonly flushed: Promise<UnpackedLayer>;
  private readonly flushes: Promise<void>[] = [];
  private failure: Error | undefined;
  /** What each collision key is, for the string-level collision rules. */
  private readonly kinds = new Map<string, PathKind>();

  constructor(
    private readonly label: string,
    compressedSize: number,
    private readonly destDir: string | undefined,
    /** The kind's limits (the component table's). */
    private readonly limits: UnpackLimits,
    /** A file at the layer root to keep in memory too (DB layers: the table's metadataFile). */
    private readonly keepFile?: string,
  ) {
    const limit = Math.max(MIN_LAYER_LIMIT, compressedSize * MAX_LAYER_RATIO);
    this.tar = new TarReader(this.input, {
      framing: 'layer',
      label,
      mapError: fromTarReadError,
      limit: () => limit,
      limitReason: `${MAX_LAYER_RATIO}× its compressed size`,
    });
    this.task = this.unpack();
    this.task.catch((error: unknown) => {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.failure = failure;
      this.tar.close();
      this.input.destroy(failure);
    });
    this.flushed = this.task.then(async (layer) => {
      await Promise.all(this.flushes);
      return layer;
    });
    // Read through result(); a failure is reported there (or was already, through write/end).
    this.flushed.catch(() => undefined);
  }

  private refuse(
    code: 'BUNDLE_ENTRY_UNSAFE' | 'BUNDLE_ENTRY_DUPLICATE' | 'BUNDLE_CONTENT_INVALID',
    path: string,
    problem: string,
  ): ImporterError {
    return new ImporterError(code, `${this.label}: entry ${JSON.stringify(path.slice(0, 200))} ${problem}`, {
      path,
      hint: TAMPERED_HINT,
    });
  }

  /**
   * Records a path and its parents; refuses a file twice, a file and a directory of one name,
   * anything below a file, and names equal but for case or Unicode form (one file on macOS).
   */
  private claim(path: string, kind: PathKind): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (this.kinds.get(collisionKey(parent)) === 'file') {
        throw this.refuse(
          'BUNDLE_CONTENT_INVALID',
          path,
          `lies below ${JSON.stringify(parent)}, which is a file`,
        );
      }
      this.kinds.set(collisionKey(parent), 'directory');
    }
    const key = collisionKey(path);
    const existing = this.kinds.get(key);
    if (existing === 'file' && kind === 'file') {
      throw this.refuse(
        'BUNDLE_ENTRY_DUPLICATE',
        path,
        'appears twice (or differs from another file only by case)',
      );
    }
    if (existing !== undefined && existing !== kind) {
      throw this.refuse('BUNDLE_CONTENT_INVALID', path, `is a ${kind} with the name of a ${existing}`);
    }
    this.kinds.set(key, kind);
  }

  private async unpack(): Promise<UnpackedLayer> {
    const files: string[] = [];
    let entries = 0;
    let bytes = 0;
    let metadataJson: Buffer | undefined;
    if (this.destDir !== undefined) await mkdir(this.destDir, { recursive: true });
    for (let entry = await this.tar.next(); entry !== undefined; entry = await this.tar.next()) {
      const path = entry.path.replace(/^(\.\/)+/, '').replace(/\/$/, '');
      if (path === '' || path === '.') {
        await this.tar.drain(entry);
        continue;
      }
      entries += 1;
      if (entries > this.limits.maxEntries) {
        throw this.refuse(
          'BUNDLE_CONTENT_INVALID',
          path,
          `is one entry more than the ${this.limits.maxEntries} this kind of layer may hold`,
        );
      }
      const problem = bundlePathProblem(path);
      if (problem !== undefined) throw this.refuse('BUNDLE_ENTRY_UNSAFE', entry.path, problem);
      if (entry.type === 'Directory') {
        this.claim(path, 'directory');
        if (this.destDir !== undefined) {
          await mkdir(resolveInside(this.destDir, path, 'layer entry'), { recursive: true, mode: 0o755 });
        }
        await this.tar.drain(entry);
        continue;
      }
      if (entry.type !== 'File' && entry.type !== 'OldFile') {
        throw this.refuse(
          'BUNDLE_ENTRY_UNSAFE',
          entry.path,
          `is a ${entry.type}; only files and directories are unpacked`,
        );
      }
      this.claim(path, 'file');
      // Refused from the header, before the body is read.
      if (bytes + entry.size > this.limits.maxBytes) {
        throw this.refuse(
          'BUNDLE_CONTENT_INVALID',
          path,
          `would unpack the layer beyond the ${this.limits.maxBytes} bytes this kind of layer may hold`,
        );
      }
      files.push(path);
      const keep = path === this.keepFile;
      if (keep && entry.size > MAX_METADATA_BYTES) {
        throw new ImporterError('BUNDLE_CONTENT_INVALID', `${this.label}: ${path} is too large`, {
          path,
        });
      }
      const kept: Buffer[] = [];
      const file =
        this.destDir === undefined ? undefined : new FileWriter(await this.create(this.destDir, path));
      let written = false;
      try {
        for await (const chunk of this.tar.chunks(entry)) {
          bytes += chunk.length;
          if (keep) kept.push(chunk);
          if (file !== undefined) await file.write(chunk);
        }
        written = true;
      } finally {
        if (file !== undefined) {
          const flush = written && entry.size >= FLUSH_EARLY_BYTES;
          const closed = file.finish(flush);
          if (flush) {
            // Awaited by result() and abort(); a failure is theirs to report, never unhandled.
            closed.catch(() => undefined);
            this.flushes.push(closed);
          } else if (written) await closed;
          else await closed.catch(() => undefined);
        }
      }
      if (keep) metadataJson = Buffer.concat(kept);
    }
    return { files, bytes, metadataJson };
  }

  /** A new file for `path` (collisions were refused by name before; 'wx' never follows a link). */
  private async create(destDir: string, path: string): Promise<FileHandle> {
    const target = resolveInside(destDir, path, 'layer entry');
    await mkdir(dirname(target), { recursive: true });
    return open(target, 'wx', 0o644);
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    try {
      await this.input.push(chunk);
    } catch (error) {
      // The queue stops because the unpacking stopped (its reader failed): report why, typed.
      const failure = await this.task.then(
        () => undefined,
        (reason: unknown) => reason,
      );
      throw failure ?? error;
    }
  }

  async end(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.input.end();
    await this.task;
  }

  /** The unpacked result, its files flushed to disk; only after `end()` resolved. */
  result(): Promise<UnpackedLayer> {
    return this.flushed;
  }

  async abort(): Promise<void> {
    this.tar.close();
    this.input.destroy(new Error('aborted'));
    await this.task.catch(() => undefined);
    // Never leave a file being written or flushed behind a caller that removes the staging tree.
    await Promise.allSettled(this.flushes);
  }
}

/** Files at least this large start their flush to disk as soon as they are written. */
const FLUSH_EARLY_BYTES = 8 * 1024 * 1024;
/** Writes of one file under way at once: the copy into the page cache overlaps inflating. */
const WRITES_IN_FLIGHT = 2;

/**
 * A new file written from a stream of chunks: positional writes, a few under way at once, so the
 * unpacker goes on inflating and parsing while the kernel copies (each chunk stays untouched until
 * its write is done: the chunks are the inflater's, never reused).
 */
class FileWriter {
  private position = 0;
  private readonly pending: Promise<void>[] = [];

  constructor(private readonly handle: FileHandle) {}

  async write(chunk: Buffer): Promise<void> {
    const at = this.position;
    this.position += chunk.length;
    const done = writeFully(this.handle, chunk, at);
    // Awaited below or in finish(); never an unhandled rejection in between.
    done.catch(() => undefined);
    this.pending.push(done);
    if (this.pending.length >= WRITES_IN_FLIGHT) await this.pending.shift();
  }

  /**
   * Waits for every write, then closes the file: at once, or (`flush`) after fdatasync, which
   * runs in the background while the caller goes on. The promise rejects with the first failure
   * (a write or the flush); the file is closed in every case.
   */
  finish(flush: boolean): Promise<void> {
    const written = Promise.all(this.pending);
    return written
      .then(() => (flush ? this.handle.datasync() : undefined))
      .finally(() => this.handle.close());
  }
}

/** Writes all of `chunk` at `position` (a regular file writes all at once; loop for safety). */
async function writeFully(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position + done);
    if (bytesWritten === 0) throw new Error('write returned 0 bytes');
    done += bytesWritten;
  }
}

/**
 * Compressed chunks on their way from the bundle pass to the layer's tar reader: a queue bounded
 * in bytes (its `push` waits for room: backpressure to the bundle), handing the chunks over as
 * they came. A PassThrough in its place joined whatever it had buffered into a new buffer on each
 * read: a copy of every compressed byte.
 */
class ChunkQueue implements AsyncIterable<Buffer> {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private waitingReader: { resolve: () => void } | undefined;
  private readonly waitingWriters: (() => void)[] = [];

  constructor(private readonly maxBytes: number) {}

  /** Queues a chunk; resolves once the queue is within its bound again. */
  async push(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.wakeReader();
    while (this.bytes > this.maxBytes && this.failedWith() === undefined) {
      await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    }
    const failure = this.failedWith();
    if (failure !== undefined) throw failure;
  }

  /** The failure, read through a call: it changes while we await. */
  private failedWith(): Error | undefined {
    return this.failure;
  }

  end(): void {
    this.ended = true;
    this.wakeReader();
  }

  /** Drops what is queued; waiting and later pushes reject with `error`, the reader stops. */
  destroy(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.chunks.length = 0;
    this.bytes = 0;
    this.wakeReader();
    for (const wake of this.waitingWriters.splice(0)) wake();
  }

  private wakeReader(): void {
    const reader = this.waitingReader;
    this.waitingReader = undefined;
    reader?.resolve();
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const next = async (): Promise<IteratorResult<Buffer>> => {
      for (;;) {
        const chunk = this.chunks.shift();
        if (chunk !== undefined) {
          this.bytes -= chunk.length;
          if (this.bytes <= this.maxBytes) for (const wake of this.waitingWriters.splice(0)) wake();
          return { done: false, value: chunk };
        }
        if (this.failure !== undefined || this.ended) return { done: true, value: undefined };
        await new Promise<void>((resolve) => (this.waitingReader = { resolve }));
      }
    };
    // The reader stopping early (its pipeline failed) ends the queue; a waiting next() then ends too.
    const stop = (): Promise<IteratorResult<Buffer>> => {
      this.destroy(new Error('the layer reader stopped'));
      return Promise.resolve({ done: true, value: undefined });
    };
    return { next, return: stop };
  }
}
