import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { bundlePathProblem } from '@trivy-airgap/format';
import { ImporterError, TAMPERED_HINT } from './errors.js';
import type { EntrySink } from './reader.js';
import { TarStream } from './tar-stream.js';

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
  /** `metadata.json` at the layer root, if any (DB layers). */
  readonly metadataJson: Buffer | undefined;
}

/**
 * An entry sink that inflates an OCI layer (tar+gzip) while the bundle streams by, checking every
 * inner entry (regular files and directories only, safe relative paths, no duplicates) and, when
 * `destDir` is given, writing the files there (mode 0644, fsynced). The compressed bytes are hashed
 * by the reader at the same time, so the layer is read exactly once.
 */
export class LayerUnpacker implements EntrySink {
  private readonly input = new PassThrough({ highWaterMark: 1 << 20 });
  private readonly tar: TarStream;
  private readonly task: Promise<UnpackedLayer>;
  private failure: Error | undefined;
  private readonly failureListeners = new Set<(error: Error) => void>();

  constructor(
    private readonly label: string,
    compressedSize: number,
    private readonly destDir: string | undefined,
  ) {
    const limit = Math.max(MIN_LAYER_LIMIT, compressedSize * MAX_LAYER_RATIO);
    this.tar = new TarStream(this.input, {
      gunzip: true,
      label,
      limit: () => limit,
      limitReason: `${MAX_LAYER_RATIO}× its compressed size`,
    });
    this.task = this.unpack();
    this.task.catch((error: unknown) => {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.failure = failure;
      for (const listener of this.failureListeners) listener(failure);
      this.input.destroy();
    });
  }

  private async unpack(): Promise<UnpackedLayer> {
    const files: string[] = [];
    const seen = new Set<string>();
    let bytes = 0;
    let metadataJson: Buffer | undefined;
    if (this.destDir !== undefined) await mkdir(this.destDir, { recursive: true });
    for (let entry = await this.tar.next(); entry !== undefined; entry = await this.tar.next()) {
      const path = entry.path.replace(/^(\.\/)+/, '').replace(/\/$/, '');
      if (path === '' || path === '.') {
        await this.tar.drain(entry);
        continue;
      }
      const problem = bundlePathProblem(path);
      if (problem !== undefined) {
        throw new ImporterError(
          'BUNDLE_ENTRY_UNSAFE',
          `${this.label}: entry ${JSON.stringify(entry.path)} ${problem}`,
          {
            path: entry.path,
            hint: TAMPERED_HINT,
          },
        );
      }
      if (entry.type === 'Directory') {
        if (this.destDir !== undefined)
          await mkdir(join(this.destDir, path), { recursive: true, mode: 0o755 });
        await this.tar.drain(entry);
        continue;
      }
      if (entry.type !== 'File' && entry.type !== 'OldFile') {
        throw new ImporterError(
          'BUNDLE_ENTRY_UNSAFE',
          `${this.label}: entry ${JSON.stringify(entry.path)} is a ${entry.type}; only files and directories are unpacked`,
          { path: entry.path, hint: TAMPERED_HINT },
        );
      }
      if (seen.has(path)) {
        throw new ImporterError(
          'BUNDLE_ENTRY_DUPLICATE',
          `${this.label}: entry ${JSON.stringify(path)} appears twice`,
          {
            path,
            hint: TAMPERED_HINT,
          },
        );
      }
      seen.add(path);
      files.push(path);
      const keep = path === 'metadata.json';
      if (keep && entry.size > MAX_METADATA_BYTES) {
        throw new ImporterError('BUNDLE_CONTENT_INVALID', `${this.label}: metadata.json is too large`, {
          path,
        });
      }
      const kept: Buffer[] = [];
      const handle = this.destDir === undefined ? undefined : await this.create(this.destDir, path);
      try {
        for await (const chunk of this.tar.chunks(entry)) {
          bytes += chunk.length;
          if (keep) kept.push(chunk);
          if (handle !== undefined) await handle.write(chunk);
        }
        await handle?.sync();
      } finally {
        await handle?.close();
      }
      if (keep) metadataJson = Buffer.concat(kept);
    }
    return { files, bytes, metadataJson };
  }

  /** A new file for `path`; a layer whose paths collide (a file over a directory …) is refused. */
  private async create(destDir: string, path: string) {
    try {
      await mkdir(dirname(join(destDir, path)), { recursive: true });
      return await open(join(destDir, path), 'wx', 0o644);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
        throw new ImporterError(
          'BUNDLE_CONTENT_INVALID',
          `${this.label}: entry ${JSON.stringify(path)} collides with another entry`,
          {
            cause: error,
            path,
            hint: TAMPERED_HINT,
          },
        );
      }
      throw error;
    }
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (!this.input.write(chunk)) await this.drained();
  }

  /** Waits for 'drain', or rejects when unpacking failed (short-lived listeners only). */
  private drained(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.failureListeners.delete(onFailure);
        resolve();
      };
      const onFailure = (error: Error): void => {
        this.input.off('drain', onDrain);
        reject(error);
      };
      this.input.once('drain', onDrain);
      this.failureListeners.add(onFailure);
    });
  }

  async end(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.input.end();
    await this.task;
  }

  /** The unpacked result; only after `end()` resolved. */
  result(): Promise<UnpackedLayer> {
    return this.task;
  }

  async abort(): Promise<void> {
    this.tar.fail(new Error('aborted'));
    this.input.destroy();
    await this.task.catch(() => undefined);
  }
}
