import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { writeBuffers } from '@trivy-airgap/durable';
import { DigestHasher, type Digest } from '@trivy-airgap/format';

const EARLY_SYNC_BYTES = 64 * 1024 * 1024;

/** One file written by the sink: the bundle itself, or one part of a split bundle. */
export interface WrittenFile {
  /** Final path (after `commit`). */
  readonly path: string;
  readonly size: number;
  readonly digest: Digest;
}

interface OpenPart {
  readonly finalPath: string;
  readonly tempPath: string;
  readonly handle: FileHandle;
  /** Per-part hash; absent for an unsplit bundle, whose one file hashes to the whole stream. */
  readonly hasher: DigestHasher | undefined;
  size: number;
}

/** `<bundle>.part-000`, `<bundle>.part-001`, … (three digits; more when there are more parts). */
export function partPath(bundlePath: string, index: number): string {
  return `${bundlePath}.part-${String(index).padStart(3, '0')}`;
}

/** Bytes gathered (as the Buffers they came in, not copied) before they go to the file in one writev. */
const WRITE_BATCH = 1024 * 1024;

/**
 * The end of the bundle pipeline: writes the byte stream to a temp file next to the output
 * (or to numbered temp parts of at most `splitSize` bytes each), hashing the whole stream and
 * every part as the bytes pass. Nothing appears under a final name until `commit()`, which
 * follows `finish()` (fsync); `discard()` removes the temp files (after an error).
 */
export class OutputSink {
  private readonly whole = new DigestHasher();
  private readonly done: OpenPart[] = [];
  private readonly finished: WrittenFile[] = [];
  private current: OpenPart | undefined;
  private currentSize = 0;
  private readonly tempSuffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  /** Hashed, not yet written: the pieces of the current part waiting for one writev. */
  private batch: Buffer[] = [];
  private batchBytes = 0;

  constructor(
    private readonly bundlePath: string,
    private readonly splitSize: number | undefined,
  ) {}

  private wholeResult: { size: number; digest: Digest } | undefined;

  /** sha256 and size of the whole stream (what `cat` of the parts gives back); after finish. */
  get total(): { size: number; digest: Digest } {
    this.wholeResult ??= { size: this.whole.size, digest: this.whole.digest() };
    return this.wholeResult;
  }

  /** The written files (after finish): the bundle, or its parts in order. */
  get files(): readonly WrittenFile[] {
    return this.finished;
  }

  /**
   * Takes the next bytes of the stream. The Buffers are kept until written: callers must not
   * change them. Resolves once they are hashed and queued (at most one write in flight).
   */
  async write(pieces: readonly Buffer[]): Promise<void> {
    await this.track(this.writePieces(pieces));
  }

  /** Writes what is queued, fsyncs and closes the last part; an empty stream still makes one file. */
  async finish(): Promise<void> {
    await this.track(
      (async () => {
        if (this.current === undefined && this.done.length === 0) await this.openPart();
        await this.closePart();
      })(),
    );
  }

  /** The file operation in flight: a failed write may still be opening or writing a part. */
  private pending: Promise<void> = Promise.resolve();

  private track(operation: Promise<void>): Promise<void> {
    this.pending = operation.catch(() => undefined);
    return operation;
  }

  private async writePieces(pieces: readonly Buffer[]): Promise<void> {
    for (const chunk of pieces) {
      this.whole.update(chunk);
      let offset = 0;
      while (offset < chunk.length) {
        if (this.current === undefined) await this.openPart();
        const part = this.current as OpenPart;
        const room = this.splitSize === undefined ? chunk.length - offset : this.splitSize - this.currentSize;
        const take = Math.min(room, chunk.length - offset);
        const piece = offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take);
        part.hasher?.update(piece);
        part.size += piece.length;
        this.batch.push(piece);
        this.batchBytes += piece.length;
        this.currentSize += piece.length;
        offset += take;
        if (this.batchBytes >= WRITE_BATCH) await this.flush(part);
        if (this.splitSize !== undefined && this.currentSize >= this.splitSize) await this.closePart();
      }
    }
  }

  /**
   * Starts writing the queued pieces once the previous write is done, and returns: hashing the
   * next bytes and writing these overlap instead of taking turns.
   */
  private async flush(part: OpenPart): Promise<void> {
    if (this.batchBytes === 0) return;
    const pieces = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    await this.writing;
    this.writing = writeBuffers(part.handle, pieces);
    this.writing.catch(() => undefined); // awaited by the next flush, closePart or discard
    this.startEarlySync(part);
  }

  /**
   * A background fdatasync every EARLY_SYNC_BYTES: the disk writes the bundle while it is being
   * packed, so the final fsync in closePart has little left to do (it still runs, as before).
   */
  private earlySync: Promise<void> = Promise.resolve();
  private syncing = false;

  private startEarlySync(part: OpenPart): void {
    if (this.syncing || part.size - this.synced < EARLY_SYNC_BYTES) return;
    this.syncing = true;
    const upTo = part.size;
    this.earlySync = this.writing
      .then(() => part.handle.datasync())
      .then(() => {
        this.synced = upTo;
      })
      .finally(() => {
        this.syncing = false;
      });
    // Rethrown by closePart: Linux reports a writeback error to one fsync caller only, so the
    // final fsync would not see an error this one saw.
    this.earlySync.catch(() => undefined);
  }

  private synced = 0;

  /** The file write started by the last flush (not awaited there). */
  private writing: Promise<void> = Promise.resolve();

  private async openPart(): Promise<void> {
    const finalPath =
      this.splitSize === undefined ? this.bundlePath : partPath(this.bundlePath, this.done.length);
    const tempPath = `${finalPath}${this.tempSuffix}`;
    const handle = await open(tempPath, 'wx', 0o644);
    // sha256 runs at ~1 GB/s on the main thread: hash each byte once, not once more per part.
    const hasher = this.splitSize === undefined ? undefined : new DigestHasher();
    this.current = { finalPath, tempPath, handle, hasher, size: 0 };
    this.currentSize = 0;
  }

  private async closePart(): Promise<void> {
    const part = this.current;
    if (part === undefined) return;
    await this.flush(part);
    await this.writing;
    await this.earlySync;
    this.synced = 0;
    this.current = undefined;
    await part.handle.sync();
    await part.handle.close();
    this.done.push(part);
    this.finished.push({
      path: part.finalPath,
      size: part.size,
      digest: part.hasher === undefined ? this.total.digest : part.hasher.digest(),
    });
  }

  /** Renames every temp file to its final name (after finish). */
  async commit(): Promise<void> {
    for (const part of this.done) await rename(part.tempPath, part.finalPath);
    this.done.length = 0;
  }

  /** Removes whatever temp files exist; safe to call at any time, errors are ignored. */
  async discard(): Promise<void> {
    await this.pending; // else a part opened after this ran would be left behind
    this.batch = [];
    await this.writing.catch(() => undefined); // a write still going would hold the file open
    await this.earlySync.catch(() => undefined);
    const open = this.current;
    this.current = undefined;
    if (open !== undefined) {
      await open.handle.close().catch(() => undefined);
      await rm(open.tempPath, { force: true });
    }
    for (const part of this.done) await rm(part.tempPath, { force: true });
    this.done.length = 0;
  }
}
