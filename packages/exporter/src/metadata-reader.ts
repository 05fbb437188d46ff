import { existsSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  TrivyError,
  type DbKind,
  type DbLayerMetadata,
  type DbMetadataFields,
  type TrivyErrorCode,
} from '@trivy-airgap/trivy';
import { GrowingFile, readGrowingLayerMetadata } from './metadata-tail.js';
import type { WorkerRequest, WorkerResult } from './metadata-worker.js';

/**
 * Reads metadata.json out of a DB layer file while it is being downloaded into it: `advance`
 * after each completed write, `finish` once the file is complete. The metadata of a DB sits after
 * the database in the tar (trivy-db archives metadata.json last), so the whole layer is inflated.
 */
export interface LayerMetadataReader {
  /** The file now holds at least `bytes` bytes of the layer. */
  advance(bytes: number): void;
  /** The file is complete at `size` bytes: the metadata, or a TrivyError. */
  finish(size: number): Promise<DbLayerMetadata>;
  /** Stops reading (after a failed download); safe after finish. */
  close(): Promise<void>;
}

const WORKER_URL = new URL('./metadata-worker.js', import.meta.url);

/** Progress messages to the worker no more often than this (one per network chunk cost time). */
const ADVANCE_STEP = 1024 * 1024;

/**
 * The export's layer inflater: one worker thread for all DB layers of a run (they inflate in
 * parallel on libuv's pool; the main thread downloads, hashes and packs), started on first use.
 * Inline on the main thread when the compiled worker file is absent (the single-file CLI) or
 * when asked to.
 */
export class LayerInflater {
  private worker: Worker | undefined;
  private readonly pending = new Map<
    number,
    { resolve: (r: WorkerResult) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private readonly inline: boolean;

  constructor(options: { inline?: boolean } = {}) {
    this.inline =
      options.inline === true || WORKER_URL.protocol !== 'file:' || !existsSync(fileURLToPath(WORKER_URL));
  }

  /** Starts reading `file` (kept open by the caller until the reader is finished or closed). */
  read(kind: DbKind, file: FileHandle): LayerMetadataReader {
    return this.inline ? inlineReader(kind, file) : this.workerReader(kind, file);
  }

  private startWorker(): Worker {
    const worker = new Worker(WORKER_URL, {
      // Its heap holds little (reads go through two 1 MiB buffers, inflating is native): keep it small.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    worker.on('message', (result: WorkerResult) => {
      const waiting = this.pending.get(result.id);
      this.pending.delete(result.id);
      waiting?.resolve(result);
    });
    const failAll = (error: Error) => {
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
      this.worker = undefined;
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`the metadata worker exited with code ${code}`)));
    return worker;
  }

  private workerReader(kind: DbKind, file: FileHandle): LayerMetadataReader {
    this.worker ??= this.startWorker();
    const worker = this.worker;
    const id = this.nextId++;
    const result = new Promise<WorkerResult>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    result.catch(() => undefined);
    const send = (message: WorkerRequest) => worker.postMessage(message);
    send({ type: 'start', id, kind, fd: file.fd });
    let told = 0;
    let done = false;
    return {
      advance: (bytes) => {
        if (bytes - told < ADVANCE_STEP) return;
        told = bytes;
        send({ type: 'advance', id, bytes });
      },
      finish: async (size) => {
        send({ type: 'finish', id, size });
        const outcome = await result;
        done = true;
        if (!outcome.ok) {
          throw new TrivyError(outcome.code as TrivyErrorCode, outcome.message, { context: outcome.context });
        }
        return {
          metadata: outcome.metadata as DbMetadataFields,
          bytes: Buffer.from(outcome.bytes),
          databaseFilePresent: outcome.databaseFilePresent,
        };
      },
      close: async () => {
        if (done) return;
        done = true;
        if (this.pending.has(id)) {
          send({ type: 'abort', id });
          await result.catch(() => undefined);
        }
      },
    };
  }

  /** Ends the worker (after the fetches are done or failed). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    worker.removeAllListeners('exit');
    await worker.terminate();
  }
}

function inlineReader(kind: DbKind, file: FileHandle): LayerMetadataReader {
  const growing = new GrowingFile();
  const result = readGrowingLayerMetadata(kind, file.fd, growing);
  result.catch(() => undefined);
  return {
    advance: (bytes) => growing.advance(bytes),
    finish: (size) => {
      growing.finish(size);
      return result;
    },
    close: async () => {
      growing.abort(new Error('aborted'));
      await result.catch(() => undefined);
    },
  };
}
