import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { startReadingAhead } from '../src/blob-download.js';

const MiB = 1024 * 1024;

describe('reading a blob body ahead of its consumer', () => {
  it('stops pulling from the network at the read-ahead bound (8 MiB), whatever the blob size', async () => {
    let produced = 0;
    const body = new Readable({
      read() {
        if (produced >= 64 * MiB) {
          this.push(null);
          return;
        }
        produced += MiB;
        this.push(Buffer.alloc(MiB));
      },
    });
    startReadingAhead(body);
    // Let the body flow for as long as it wants to: nobody consumes.
    for (let i = 0; i < 200; i++) await nextTurn();
    assert.ok(produced >= 8 * MiB, `read ahead only ${produced / MiB} MiB`);
    // The bound, plus what the stream buffers once paused (its high-water mark: one chunk here).
    assert.ok(produced <= 10 * MiB, `read ${produced / MiB} MiB of a 64 MiB body with no consumer`);
    assert.equal(body.isPaused(), true);
    body.destroy();
  });
});
