import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
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
 * alike. Nothing is fsynced here: the importer syncs its staging tree once. The compressed bytes
 * are hashed by the reader at the same time, so the layer is read exactly once.
 */
export class LayerUnpacker implements EntrySink {
  private readonly input = new PassThrough({ highWaterMark: 1 << 20 });
  private readonly tar: TarReader;
  private readonly task: Promise<UnpackedLayer>;
  private failure: Error | undefined;
  private readonly failureListeners = new Set<(error: Error) => void>();
  /** What each collision key is, for the string-level collision rules. */
  private readonly kinds = new Map<string, PathKind>();

  constructor(
    private readonly label: string,
    compressedSize: number,
    private readonly destDir: string | undefined,
    /** The kind's limits (the component table's). */
    private readonly limits: UnpackLimits,
    /** The file at the layer root to keep in memory too (the table's metadataFile: DB layers). */
    private readonly keepFile: string,
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
      for (const listener of this.failureListeners) listener(failure);
      this.input.destroy();
    });
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
      const handle = this.destDir === undefined ? undefined : await this.create(this.destDir, path);
      try {
        for await (const chunk of this.tar.chunks(entry)) {
          bytes += chunk.length;
          if (keep) kept.push(chunk);
          if (handle !== undefined) await handle.write(chunk);
        }
      } finally {
        await handle?.close();
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
    this.tar.close();
    this.input.destroy();
    await this.task.catch(() => undefined);
  }
}
