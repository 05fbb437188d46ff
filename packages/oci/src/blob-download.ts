import { open as openFile, stat, truncate, unlink } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { writeBuffers } from '@trivy-airgap/durable';
import { DigestHasher, type Digest } from '@trivy-airgap/format';
import { OciError, redactUrl } from './errors.js';
import type { OciEventListener } from './events.js';
import type { Descriptor } from './manifest.js';
import {
  abandonBody,
  backoff,
  networkError,
  retryDelayMs,
  type HttpResponse,
  type RetryOptions,
} from './transport.js';
import { digestMismatch, sizeMismatch, VerifyingStream } from './verify.js';

/** Where a blob's bytes come from (oras-go's Fetcher, with a start offset for resuming). */
export interface BlobFetcher {
  /**
   * One GET of the blob addressed by `target`: 200 with the whole blob, or 206 from `offset` when
   * the server honours the range. Any other answer is thrown as an OciError.
   */
  fetchBlob(target: Descriptor, offset: number, signal: AbortSignal | undefined): Promise<HttpResponse>;
}

export interface DownloadBlobOptions {
  /**
   * Called with every byte of the blob in order, including bytes already on disk when resuming.
   * A returned promise is awaited before the next chunk (backpressure for a consumer that streams
   * the bytes on, e.g. into a bundle). The digest is checked after the last chunk: a consumer
   * must not trust the bytes until the download resolved.
   */
  readonly onData?: ((chunk: Buffer) => unknown) | undefined;
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Continue from the bytes already in `destPath` (default true); false starts over. */
  readonly resume?: boolean | undefined;
  /**
   * fsync the file before resolving (default true). A cache whose every later use re-checks the
   * digest (the exporter's work dir) can skip it: a torn copy is found by that check, removed and
   * fetched again by the next run.
   */
  readonly sync?: boolean | undefined;
}

export interface DownloadBlobResult {
  readonly digest: Digest;
  readonly size: number;
  /** Bytes that were already on disk and not downloaded again. */
  readonly resumedFrom: number;
}

export interface BlobDownloadContext {
  /** Names the blob in messages, e.g. `blob sha256:… of registry/repository`. */
  readonly name: string;
  /** How often a broken body is asked for again without progress; the transport's setting. */
  readonly retry?: RetryOptions | undefined;
  readonly onEvent?: OciEventListener | undefined;
}

const READ_CHUNK = 1024 * 1024;
/**
 * Network chunks (16-64 KiB) are written to the file in batches of this size (one writev): one
 * write per chunk cost a thread-pool round trip each, which under load slowed a streamed export
 * below the link's pace.
 */
const WRITE_BATCH = 1024 * 1024;

/**
 * Downloads a blob to `destPath`, continuing from what is already there (Range request), and
 * verifies size and sha256 while it streams. A body that breaks off is asked for again from where
 * it stopped. On an integrity failure the file is removed, so a retry starts clean. The file is
 * fsynced; renaming it into place is the caller's job (see OciLayout.partialBlobPath / commitBlob).
 */
export async function downloadBlob(
  fetcher: BlobFetcher,
  target: Descriptor,
  destPath: string,
  context: BlobDownloadContext,
  options: DownloadBlobOptions = {},
): Promise<DownloadBlobResult> {
  const { digest: expectedDigest, size } = target;
  const what = context.name;
  const hasher = new DigestHasher();
  let offset = 0;
  const existing = options.resume === false ? undefined : await stat(destPath).catch(() => undefined);
  if (existing !== undefined && existing.size > size) await truncate(destPath, 0);
  else if (existing !== undefined && existing.size > 0) {
    // The caller sees every byte in order, so replay what is on disk before asking for the rest.
    for await (const chunk of createReadStream(destPath, {
      highWaterMark: READ_CHUNK,
    }) as AsyncIterable<Buffer>) {
      hasher.update(chunk);
      await options.onData?.(chunk);
    }
    offset = hasher.size;
    context.onEvent?.({ type: 'resume', digest: expectedDigest, offset });
  }
  const resumedFrom = offset;
  const file = await openFile(destPath, offset === 0 ? 'w' : 'a');
  let integrityFailed = false;
  // Bytes received and checked so far but not yet in the file, kept as the chunks they came in.
  // They go out in batches, one write in flight while the next batch arrives; every write has
  // finished before a retry, a close or the end, so the file holds exactly `offset` bytes then.
  let unwritten: Buffer[] = [];
  let unwrittenBytes = 0;
  let writing: Promise<void> = Promise.resolve();
  const startWrite = async (): Promise<void> => {
    if (unwrittenBytes === 0) return;
    const batch = unwritten;
    unwritten = [];
    unwrittenBytes = 0;
    await writing; // a failed write (e.g. ENOSPC) is thrown here
    writing = writeBuffers(file, batch);
    writing.catch(() => undefined); // awaited by the next startWrite or writeHeld
  };
  const writeHeld = async (): Promise<void> => {
    await startWrite();
    await writing;
  };
  try {
    const maxFailures = Math.max(1, context.retry?.maxAttempts ?? 5);
    let failures = 0;
    while (offset < size) {
      const response = await fetcher.fetchBlob(target, offset, options.signal);
      let skip = 0;
      if (response.status === 206 && offset > 0) {
        const start = /^bytes (\d+)-/.exec(response.headers['content-range'] ?? '')?.[1];
        if (start === undefined || Number(start) !== offset) {
          await response.discard();
          throw new OciError(
            'UNEXPECTED_STATUS',
            `${what}: the server answered a different range than asked`,
            {
              status: 206,
              url: redactUrl(response.url),
            },
          );
        }
      } else if (response.status === 200) {
        if (offset > 0) context.onEvent?.({ type: 'range-ignored', digest: expectedDigest, offset });
        skip = offset;
      } else {
        await response.discard();
        throw new OciError('UNEXPECTED_STATUS', `${what}: HTTP ${response.status} to a blob request`, {
          status: response.status,
          url: redactUrl(response.url),
        });
      }
      const declared = response.headers['content-length'];
      const remaining = size - offset + skip;
      if (declared !== undefined && Number(declared) > remaining) {
        await response.discard();
        integrityFailed = true;
        throw sizeMismatch(what, size, Number(declared) - skip + offset, 'source', false);
      }
      const before = offset;
      // Only reading the body may fail as "network"; errors from onData or the disk propagate as they are.
      let networkFailure: unknown;
      const chunks = bodyChunks(response.body);
      try {
        for (;;) {
          let next: IteratorResult<Buffer>;
          try {
            next = await chunks.next();
          } catch (cause) {
            networkFailure = cause;
            break;
          }
          if (next.done === true) break;
          let chunk = next.value;
          if (skip > 0) {
            const dropped = Math.min(skip, chunk.byteLength);
            skip -= dropped;
            chunk = chunk.subarray(dropped);
            if (chunk.byteLength === 0) continue;
          }
          if (offset + chunk.byteLength > size) {
            integrityFailed = true;
            throw sizeMismatch(what, size, offset + chunk.byteLength, 'source', true);
          }
          hasher.update(chunk);
          await options.onData?.(chunk);
          unwritten.push(chunk);
          unwrittenBytes += chunk.byteLength;
          if (unwrittenBytes >= WRITE_BATCH) await startWrite();
          offset += chunk.byteLength;
          options.onProgress?.(offset, size);
        }
      } finally {
        if (!response.body.readableEnded) abandonBody(response.body);
      }
      await writeHeld();
      if (networkFailure !== undefined) {
        const error = networkError(networkFailure, response.url);
        if (error.code === 'ABORTED' || options.signal?.aborted === true) throw error;
        failures = offset > before ? 1 : failures + 1;
        if (failures >= maxFailures) throw error;
        const delay = retryDelayMs(failures, context.retry);
        context.onEvent?.({
          type: 'retry',
          url: redactUrl(response.url),
          attempt: failures,
          delayMs: delay,
          reason: error.code,
        });
        await backoff(delay, response.url, options.signal);
        continue;
      }
      if (offset < size) {
        integrityFailed = true;
        throw sizeMismatch(what, size, offset, 'source', false);
      }
    }
    const found = hasher.digest();
    if (found !== expectedDigest) {
      integrityFailed = true;
      throw digestMismatch(what, expectedDigest, found, 'source');
    }
    if (options.sync !== false) await file.sync();
    return { digest: found, size, resumedFrom };
  } finally {
    // What arrived before a failure stays for the next run to resume from (unless it was wrong).
    if (!integrityFailed) await writeHeld().catch(() => undefined);
    await writing.catch(() => undefined);
    await file.close();
    if (integrityFailed) await unlink(destPath).catch(() => undefined);
  }
}

/**
 * How far a blob body is read ahead of its consumer: the link keeps carrying bytes while the
 * exporter signs and opens the bundle after every layer request was answered (a held response
 * that nobody reads stops the sender once the socket buffers, ~128 KiB, are full). Bounded per
 * body, so memory does not grow with the blob.
 */
const READ_AHEAD_BYTES = 8 * 1024 * 1024;

/** The chunk reader of each body being read (started early by `startReadingAhead`). */
const readers = new WeakMap<Readable, BodyChunks>();

/** Starts reading `body` into memory now (up to READ_AHEAD_BYTES), before its consumer asks. */
export function startReadingAhead(body: Readable): void {
  bodyChunks(body);
}

/** The body's reader: the one started ahead, or a new one. */
function bodyChunks(body: Readable): BodyChunks {
  let reader = readers.get(body);
  if (reader === undefined) {
    reader = new BodyChunks(body, READ_AHEAD_BYTES);
    readers.set(body, reader);
  }
  return reader;
}

/**
 * The chunks of a response body, in order, each as it arrived: the stream's own async iterator
 * joins whatever is buffered into one new Buffer per read (a copy of every byte, ~80 ms per
 * 135 MB on the main thread). Reads ahead up to `limit` bytes, then pauses the body until the
 * consumer catches up. `next()` throws the body's error, or a premature-close error when it
 * closes before its end.
 */
class BodyChunks implements AsyncIterator<Buffer> {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly body: Readable,
    private readonly limit: number,
  ) {
    body.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued >= this.limit) body.pause();
      this.notify();
    });
    body.once('end', () => {
      this.ended = true;
      this.notify();
    });
    body.once('error', (error: unknown) => {
      this.failure ??= { error };
      this.notify();
    });
    body.once('close', () => {
      if (!this.ended) {
        this.failure ??= {
          error: Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }),
        };
      }
      this.notify();
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.queued -= chunk.length;
        if (this.queued < this.limit && this.body.isPaused() && !this.body.destroyed) this.body.resume();
        return { value: chunk, done: false };
      }
      if (this.ended) return { value: undefined, done: true };
      if (this.failure !== undefined) throw this.failure.error;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** A stream of the blob's bytes that fails instead of ending if the size or digest is wrong. */
export async function openVerifiedBlob(
  fetcher: BlobFetcher,
  target: Descriptor,
  name: string,
  signal: AbortSignal | undefined,
): Promise<Readable> {
  const response = await fetcher.fetchBlob(target, 0, signal);
  const verifier = new VerifyingStream(target, 'source', name);
  response.body.on('error', (cause: unknown) => verifier.destroy(networkError(cause, response.url)));
  return response.body.pipe(verifier);
}
