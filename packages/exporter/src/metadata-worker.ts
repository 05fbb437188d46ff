/**
 * Worker side of the off-thread metadata.json reader (see metadata-reader.ts). One worker serves
 * every DB layer of an export at once: each layer is a job that reads its (growing) work-dir file
 * through metadata-tail.ts. The inflating itself runs on libuv's pool, so two layers inflate on
 * two cores while this thread only parses tar headers; one worker instead of one per layer keeps
 * the export's peak RSS down (each worker costs ~30 MiB).
 */
import { parentPort } from 'node:worker_threads';
import { TrivyError, type DbKind } from '@trivy-airgap/trivy';
import { GrowingFile, readGrowingLayerMetadata } from './metadata-tail.js';

export type WorkerRequest =
  | { readonly type: 'start'; readonly id: number; readonly kind: DbKind; readonly fd: number }
  | { readonly type: 'advance'; readonly id: number; readonly bytes: number }
  | { readonly type: 'finish'; readonly id: number; readonly size: number }
  | { readonly type: 'abort'; readonly id: number };

export type WorkerResult =
  | {
      readonly id: number;
      readonly ok: true;
      readonly metadata: unknown;
      readonly bytes: Uint8Array;
      readonly databaseFilePresent: boolean;
    }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly context: Record<string, string | number>;
    };

const port = parentPort;
const jobs = new Map<number, GrowingFile>();

function start(id: number, kind: DbKind, fd: number): void {
  const file = new GrowingFile();
  jobs.set(id, file);
  void readGrowingLayerMetadata(kind, fd, file)
    .then(
      (found): WorkerResult => ({
        id,
        ok: true,
        metadata: found.metadata,
        bytes: found.bytes,
        databaseFilePresent: found.databaseFilePresent,
      }),
      (error: unknown): WorkerResult => ({
        id,
        ok: false,
        code: error instanceof TrivyError ? error.code : 'LAYER_INVALID',
        message: error instanceof Error ? error.message : String(error),
        context: error instanceof TrivyError ? error.context : {},
      }),
    )
    .then((result) => {
      jobs.delete(id);
      port?.postMessage(result);
    });
}

port?.on('message', (message: WorkerRequest) => {
  switch (message.type) {
    case 'start':
      start(message.id, message.kind, message.fd);
      break;
    case 'advance':
      jobs.get(message.id)?.advance(message.bytes);
      break;
    case 'finish':
      jobs.get(message.id)?.finish(message.size);
      break;
    case 'abort':
      jobs.get(message.id)?.abort(new Error('aborted'));
      break;
  }
});
