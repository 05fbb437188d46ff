import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { AirgapError, TarReadError } from './errors.js';
import { TarFramingAudit, storedGzipMember } from './tar-framing.js';

/**
 * The one reader of gzip-compressed tar streams (bundles, OCI layers, VEX archives). It exists,
 * instead of node-tar's Parser used directly, for three reasons:
 *
 *  - backpressure: it is pull-style — `next()` yields entries one at a time and `chunks(entry)`
 *    their bytes — so a caller that awaits its writes slows the source down; nothing piles up in
 *    memory however slow the disk is, and an entry is never handed out before the previous one was
 *    read (node-tar's 'entry' events do not wait for anyone);
 *  - strictness: node-tar's strict Parser, plus what it lets pass: entries it would skip unseen
 *    (unknown types, oversized meta headers) are refused, the bytes no digest covers are audited
 *    (tar-framing.ts) for bundles and layers, and nothing may follow the last gzip member;
 *  - limits: inflated bytes are counted against the caller's `limit()` before the parser sees
 *    them, so a gzip bomb stops after at most a chunk beyond what the caller declared possible.
 *
 * Failures are TarReadErrors, which each caller translates into its own codes (`mapError`); an
 * error the caller passes to `fail()` is thrown as it is.
 */
export interface TarReaderOptions {
  /**
   * How the bytes around the entries are held:
   *  - `'bundle'`: exactly one stored gzip member with the bundle header and nothing after it, and
   *    strict tar framing (see tar-framing.ts);
   *  - `'layer'`: gzip members with nothing after the last, and the tar framing every upstream
   *    writer produces (upstream bytes, pinned by digest);
   *  - `'plain'`: what zlib and node-tar's strict Parser accept (archives fetched from a source
   *    the user named, checked by the caller's own rules).
   */
  readonly framing: 'bundle' | 'layer' | 'plain';
  /** Upper bound on the inflated tar bytes; read again for every chunk, so it may grow. */
  readonly limit: () => number;
  /** What to call the stream in errors ("bundle", "db layer"). */
  readonly label: string;
  /** Why `limit` is what it is, for the error message. */
  readonly limitReason?: string;
  /** Compressed (source) bytes read so far, for progress. */
  readonly onSourceBytes?: (total: number) => void;
  /** Turns the reader's own errors into the caller's (its codes, hints); identity by default. */
  readonly mapError?: (error: TarReadError) => Error;
}

/** A tar entry as the caller sees it: its full path and type as written, never normalized. */
export interface TarEntry {
  readonly path: string;
  readonly type: string;
  readonly size: number;
}

export class TarReader {
  private readonly queue: TarEntry[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly failureListeners = new Set<(error: Error) => void>();
  /** node-tar's entry behind each entry handed out (callers never touch it). */
  private readonly readEntries = new WeakMap<TarEntry, ReadEntry>();
  private ended = false;
  private failure: Error | undefined;
  /** The entry handed out last: destroyed on failure so that a pending read ends at once. */
  private current: TarEntry | undefined;
  private readonly controller = new AbortController();
  private readonly parser: Parser;
  private readonly mapError: (error: TarReadError) => Error;
  private inflated = 0;
  private compressed = 0;

  constructor(source: Readable | AsyncIterable<Buffer>, options: TarReaderOptions) {
    this.mapError = options.mapError ?? ((error) => error);
    this.parser = new Parser({ strict: true });
    this.parser.on('entry', (readEntry: ReadEntry) => {
      readEntry.pause();
      // The full path (a pax `path` record overrides the 100-byte ustar name), not normalized.
      const entry: TarEntry = { path: readEntry.path, type: readEntry.type, size: readEntry.size };
      this.readEntries.set(entry, readEntry);
      this.queue.push(entry);
      this.wake();
    });
    this.parser.on('ignoredEntry', (entry: ReadEntry) => {
      // Unknown entry types and oversized meta headers: node-tar skips them; we refuse them.
      this.fail(
        new TarReadError(
          'TAR_ENTRY_TYPE',
          `${options.label}: entry ${JSON.stringify(entry.path)} has a type that is not allowed (${entry.type})`,
          { path: entry.path },
        ),
      );
    });
    this.parser.on('error', (error: Error) => {
      this.fail(
        new TarReadError('TAR_INVALID', `${options.label} is not a valid tar stream: ${error.message}`, {
          cause: error,
        }),
      );
    });
    this.parser.on('end', () => {
      this.ended = true;
      this.wake();
    });
    void this.pump(source, options).catch((error: unknown) => this.fail(unreadable(error, options.label)));
  }

  /** Inflated tar bytes handed to the parser so far. */
  get bytes(): number {
    return this.inflated;
  }

  /** Compressed bytes read from the source so far. */
  get sourceBytes(): number {
    return this.compressed;
  }

  private async pump(source: Readable | AsyncIterable<Buffer>, options: TarReaderOptions): Promise<void> {
    const audit =
      options.framing === 'plain' ? undefined : new TarFramingAudit(options.label, options.framing);
    const feed = async (chunks: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of chunks) {
        this.inflated += chunk.length;
        if (this.inflated > options.limit()) {
          throw new TarReadError(
            'TAR_TOO_LARGE',
            `${options.label} inflates to more than ${options.limit()} bytes, ${options.limitReason ?? 'what its manifest allows'} (a gzip bomb or trailing data); stopped`,
            { expected: options.limit(), found: this.inflated },
          );
        }
        // After the end marker nothing is an entry; node-tar would only pile it up in memory.
        const archive = audit === undefined ? chunk.length : audit.write(chunk);
        if (archive === 0) continue;
        if (!this.parser.write(archive === chunk.length ? chunk : chunk.subarray(0, archive))) {
          await once(this.parser, 'drain', { signal: this.controller.signal });
        }
        if (this.failure !== undefined) return;
      }
    };
    const countSource = async function* (this: TarReader, chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        this.compressed += chunk.length;
        options.onSourceBytes?.(this.compressed);
        yield chunk;
      }
    }.bind(this);
    if (options.framing === 'bundle') {
      // Stored blocks add 5 bytes per block (zlib's are 16-64 KiB): 1 % is a generous bound.
      const maxCompressed = (): number => Math.ceil(options.limit() * 1.01) + (1 << 20);
      await pipeline(source, countSource, storedGzipMember(options.label, maxCompressed), feed, {
        signal: this.controller.signal,
      });
    } else {
      await this.inflate(source, countSource, feed, options);
    }
    // The archive ends only once every source byte was read and checked (nothing after the last
    // gzip member, the end marker there): a reader told "end" earlier could accept a bad layer.
    if (this.failure !== undefined) return;
    audit?.end();
    this.parser.end();
  }

  /**
   * gunzip (members one after another, each CRC-checked by zlib). For a layer nothing may follow
   * the last member: zlib stops at NUL-led bytes there without a word, so every compressed byte
   * must have been consumed by it (`bytesWritten`).
   */
  private async inflate(
    source: Readable | AsyncIterable<Buffer>,
    countSource: (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>,
    feed: (chunks: AsyncIterable<Buffer>) => Promise<void>,
    options: TarReaderOptions,
  ): Promise<void> {
    const gunzip = createGunzip({ chunkSize: 1 << 20 });
    let inflatedAll = false;
    const trailing = (): TarReadError | undefined =>
      options.framing === 'layer' && inflatedAll && gunzip.bytesWritten < this.compressed
        ? new TarReadError(
            'TAR_INVALID',
            `${options.label}: ${this.compressed - gunzip.bytesWritten} bytes after the end of the gzip stream (nothing may follow its last member)`,
            { expected: gunzip.bytesWritten, found: this.compressed },
          )
        : undefined;
    try {
      await pipeline(
        source,
        countSource,
        gunzip,
        async (chunks: AsyncIterable<Buffer>) => {
          await feed(chunks);
          inflatedAll = this.failure === undefined;
        },
        { signal: this.controller.signal },
      );
    } catch (error) {
      // More input after zlib ended its output fails the pipeline ("premature close"): say why.
      throw trailing() ?? invalidGzip(error, options.label);
    }
    const extra = trailing();
    if (extra !== undefined) throw extra;
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /**
   * Stops reading: the source is destroyed and pending reads reject with `error` (a TarReadError
   * translated by `mapError`, any other error as it is).
   */
  fail(error: Error): void {
    if (this.failure !== undefined) return;
    const failure = error instanceof TarReadError ? this.mapError(error) : error;
    this.failure = failure;
    if (this.current !== undefined) this.readEntries.get(this.current)?.destroy();
    this.controller.abort();
    this.wake();
    for (const listener of this.failureListeners) listener(failure);
    this.failureListeners.clear();
  }

  /** Stops reading without a failure of its own (the caller is done or gave up). */
  close(): void {
    this.fail(new Error('the tar reader was closed'));
  }

  /**
   * `promise`, or the stream's failure if that comes first. Each pending read registers its own
   * short-lived listener (a long-lived promise raced against every read would keep every chunk
   * alive until it settles). A destroyed entry is not enough: a read that starts after the
   * destroy waits for an event that never comes, and the whole read would hang unsettled.
   */
  private untilFailure<T>(promise: Promise<T>): Promise<T> {
    const failed = this.failure;
    if (failed !== undefined) {
      promise.catch(() => undefined);
      return Promise.reject(failed);
    }
    return new Promise<T>((resolve, reject) => {
      const onFailure = (error: Error): void => reject(error);
      this.failureListeners.add(onFailure);
      promise.then(
        (value) => {
          this.failureListeners.delete(onFailure);
          resolve(value);
        },
        (error: unknown) => {
          this.failureListeners.delete(onFailure);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  /** The next entry, or undefined at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const entry = this.queue.shift();
      if (entry !== undefined) {
        this.current = entry;
        return entry;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The failure, read through a call: it changes while we await. */
  private failedWith(): Error | undefined {
    return this.failure;
  }

  /** The bytes of an entry, as they arrive; throws the stream's failure instead of ending short. */
  async *chunks(entry: TarEntry): AsyncGenerator<Buffer> {
    const readEntry = this.readEntries.get(entry);
    if (readEntry === undefined) throw new Error('chunks() of an entry this reader did not hand out');
    const iterator = (readEntry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const before = this.failedWith();
        if (before !== undefined) throw before;
        let result: IteratorResult<Buffer>;
        try {
          result = await this.untilFailure(iterator.next());
        } catch (error) {
          // A destroyed entry rejects with "stream destroyed": report why it was destroyed.
          throw this.failedWith() ?? error;
        }
        if (result.done === true) break;
        yield result.value;
      }
    } finally {
      void iterator.return?.();
    }
    const after = this.failedWith();
    if (after !== undefined) throw after;
  }

  /** Reads a whole (small) entry; `max` guards memory before any byte is read. */
  async readAll(entry: TarEntry, max: number): Promise<Buffer> {
    if (entry.size > max) {
      throw this.mapError(
        new TarReadError('TAR_TOO_LARGE', `${entry.path} is ${entry.size} bytes, more than ${max} allowed`, {
          path: entry.path,
          expected: max,
          found: entry.size,
        }),
      );
    }
    const parts: Buffer[] = [];
    for await (const chunk of this.chunks(entry)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** Skips the rest of an entry. */
  async drain(entry: TarEntry): Promise<void> {
    const iterator = this.chunks(entry);
    while ((await iterator.next()).done !== true) {
      // discard
    }
  }
}

/** zlib's failures (bad header, CRC, truncation) are the archive's; the caller's own pass through. */
function invalidGzip(error: unknown, label: string): unknown {
  if (error instanceof AirgapError || !isZlibError(error)) return error;
  return new TarReadError('TAR_INVALID', `${label} is not a valid gzip stream: ${error.message}`, {
    cause: error,
  });
}

function isZlibError(error: unknown): error is Error & { code: string } {
  const code = (error as { code?: unknown } | undefined)?.code;
  return error instanceof Error && typeof code === 'string' && code.startsWith('Z_');
}

function unreadable(error: unknown, label: string): Error {
  if (error instanceof AirgapError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new TarReadError('TAR_UNREADABLE', `${label} could not be read: ${message}`, { cause: error });
}
