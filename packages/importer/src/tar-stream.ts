import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { TarFramingAudit, storedGzipMember } from './bundle-framing.js';
import { ImporterError, TAMPERED_HINT } from './errors.js';

/**
 * A pull-style reader over node-tar's strict Parser: `next()` yields entries one at a time and
 * `chunks(entry)` their bytes, so the caller can await writes (backpressure reaches the source).
 * Optionally gunzips first, counting inflated bytes against `limit()` so that a gzip bomb stops
 * after at most a chunk beyond what the caller declared possible.
 */
export interface TarStreamOptions {
  readonly gunzip: boolean;
  /**
   * A bundle: exactly one gzip member with the bundle header and nothing after it, and strict tar
   * framing (zero padding, the end-of-archive marker, at most a record of zeros after it). See
   * bundle-framing.ts. Layers (upstream bytes, pinned by digest) are read without it.
   */
  readonly strict?: boolean;
  /** Upper bound on the (inflated) tar bytes; read again for every chunk, so it may grow. */
  readonly limit: () => number;
  /** What to call the stream in errors ("bundle", "db layer"). */
  readonly label: string;
  /** Why `limit` is what it is, for the error message. */
  readonly limitReason?: string;
  /** Compressed (source) bytes read so far, for progress. */
  readonly onSourceBytes?: (total: number) => void;
}

/** A tar entry as the caller sees it: its full path and type as written, never normalized. */
export interface TarEntry {
  readonly path: string;
  readonly type: string;
  readonly size: number;
  readonly readEntry: ReadEntry;
}

export class TarStream {
  private readonly queue: TarEntry[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly failureListeners = new Set<(error: Error) => void>();
  private ended = false;
  private failure: Error | undefined;
  /** The entry handed out last: destroyed on failure so that a pending read ends at once. */
  private current: TarEntry | undefined;
  private readonly controller = new AbortController();
  private readonly parser: Parser;
  /** Inflated tar bytes handed to the parser so far. */
  bytes = 0;
  sourceBytes = 0;

  constructor(source: Readable | AsyncIterable<Buffer>, options: TarStreamOptions) {
    this.parser = new Parser({ strict: true });
    this.parser.on('entry', (entry: ReadEntry) => {
      entry.pause();
      this.push({
        // The full path (a pax `path` record overrides the 100-byte ustar name), not normalized.
        path: entry.path,
        type: entry.type,
        size: entry.size,
        readEntry: entry,
      });
    });
    this.parser.on('ignoredEntry', (entry: ReadEntry) => {
      // Unknown entry types and oversized meta headers: node-tar skips them; we refuse them.
      this.fail(
        new ImporterError(
          'BUNDLE_ENTRY_UNSAFE',
          `${options.label}: entry ${JSON.stringify(entry.path)} has a type that is not allowed (${entry.type})`,
          { path: entry.path, hint: TAMPERED_HINT },
        ),
      );
    });
    this.parser.on('error', (error: Error) => {
      this.fail(
        new ImporterError('BUNDLE_CORRUPT', `${options.label} is not a valid tar stream: ${error.message}`, {
          cause: error,
          hint: TAMPERED_HINT,
        }),
      );
    });
    this.parser.on('end', () => {
      this.ended = true;
      this.wake();
    });
    void this.pump(source, options).catch((error: unknown) => this.fail(asCorrupt(error, options.label)));
  }

  private async pump(source: Readable | AsyncIterable<Buffer>, options: TarStreamOptions): Promise<void> {
    const audit = new TarFramingAudit(options.label, options.strict === true ? 'bundle' : 'layer');
    const feed = async (chunks: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of chunks) {
        this.bytes += chunk.length;
        if (this.bytes > options.limit()) {
          throw new ImporterError(
            'BUNDLE_CORRUPT',
            `${options.label} inflates to more than ${options.limit()} bytes, ${options.limitReason ?? 'what its manifest allows'} (a gzip bomb or trailing data); stopped`,
            { hint: TAMPERED_HINT, expected: options.limit(), found: this.bytes },
          );
        }
        // After the end marker nothing is an entry; node-tar would only pile it up in memory.
        const archive = audit.write(chunk);
        if (archive === 0) continue;
        if (!this.parser.write(archive === chunk.length ? chunk : chunk.subarray(0, archive))) {
          await once(this.parser, 'drain', { signal: this.controller.signal });
        }
        if (this.failure !== undefined) return;
      }
    };
    const countSource = async function* (this: TarStream, chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        this.sourceBytes += chunk.length;
        options.onSourceBytes?.(this.sourceBytes);
        yield chunk;
      }
    }.bind(this);
    if (options.gunzip && options.strict === true) {
      // Stored blocks add 5 bytes per block (zlib's are 16-64 KiB): 1 % is a generous bound.
      const maxCompressed = (): number => Math.ceil(options.limit() * 1.01) + (1 << 20);
      await pipeline(source, countSource, storedGzipMember(options.label, maxCompressed), feed, {
        signal: this.controller.signal,
      });
    } else if (options.gunzip) {
      await this.inflate(source, countSource, feed, options.label);
    } else {
      await pipeline(source, countSource, feed, { signal: this.controller.signal });
    }
    // The archive ends only once every source byte was read and checked (nothing after the last
    // gzip member, the end marker there): a reader told "end" earlier could accept a bad layer.
    if (this.failure !== undefined) return;
    audit.end();
    this.parser.end();
  }

  /**
   * gunzip (members one after another, each CRC-checked by zlib) with nothing after the last
   * member: zlib stops at NUL-led bytes there without a word, so every compressed byte must have
   * been consumed by it (`bytesWritten`).
   */
  private async inflate(
    source: Readable | AsyncIterable<Buffer>,
    countSource: (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>,
    feed: (chunks: AsyncIterable<Buffer>) => Promise<void>,
    label: string,
  ): Promise<void> {
    const gunzip = createGunzip({ chunkSize: 1 << 18 });
    let inflatedAll = false;
    const trailing = (): ImporterError | undefined =>
      inflatedAll && gunzip.bytesWritten < this.sourceBytes
        ? new ImporterError(
            'BUNDLE_CORRUPT',
            `${label}: ${this.sourceBytes - gunzip.bytesWritten} bytes after the end of the gzip stream (nothing may follow its last member)`,
            { hint: TAMPERED_HINT, expected: gunzip.bytesWritten, found: this.sourceBytes },
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
      throw trailing() ?? error;
    }
    const extra = trailing();
    if (extra !== undefined) throw extra;
  }

  private push(entry: TarEntry): void {
    this.queue.push(entry);
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Stops reading: the source is destroyed and pending reads reject with `error`. */
  fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.current?.readEntry.destroy();
    this.controller.abort();
    this.wake();
    for (const listener of this.failureListeners) listener(error);
    this.failureListeners.clear();
  }

  /**
   * `promise`, or the stream's failure if that comes first. Each pending read registers its own
   * short-lived listener (a long-lived promise raced against every read would keep every chunk
   * alive until it settles). A destroyed entry is not enough: a read that starts after the
   * destroy waits for an event that never comes, and the whole import would hang unsettled.
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
    const iterator = (entry.readEntry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
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
      throw new ImporterError(
        'BUNDLE_CORRUPT',
        `${entry.path} is ${entry.size} bytes, more than ${max} allowed`,
        {
          path: entry.path,
          hint: TAMPERED_HINT,
        },
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

function asCorrupt(error: unknown, label: string): Error {
  if (error instanceof ImporterError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ImporterError('BUNDLE_CORRUPT', `${label} could not be read: ${message}`, {
    cause: error,
    hint: TAMPERED_HINT,
  });
}
