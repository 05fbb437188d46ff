/**
 * Worker side of the off-thread metadata.json reader (see metadata-reader.ts): feeds layer chunks
 * to packages/trivy's DbMetadataExtractor and counts processed bytes in shared memory, which the
 * main thread waits on for backpressure.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DbMetadataExtractor, TrivyError, type DbKind } from '@trivy-airgap/trivy';

interface WorkerInput {
  readonly kind: DbKind;
  readonly processed: BigInt64Array;
}

const input = workerData as WorkerInput;
const extractor = new DbMetadataExtractor(input.kind);
const port = parentPort;

port?.on('message', (message: Uint8Array | 'end') => {
  if (message !== 'end') {
    extractor.write(message);
    Atomics.add(input.processed, 0, BigInt(message.byteLength));
    Atomics.notify(input.processed, 0);
    return;
  }
  extractor.finish().then(
    (found) =>
      port.postMessage({
        ok: true,
        metadata: found.metadata,
        bytes: found.bytes,
        databaseFilePresent: found.databaseFilePresent,
      }),
    (error: unknown) =>
      port.postMessage({
        ok: false,
        code: error instanceof TrivyError ? error.code : 'LAYER_INVALID',
        message: error instanceof Error ? error.message : String(error),
        context: error instanceof TrivyError ? error.context : {},
      }),
  );
});
