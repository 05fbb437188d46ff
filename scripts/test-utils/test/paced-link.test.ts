import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { startPacedLink } from '../src/index.js';

/** The bench's paced link must relay every byte unchanged, and no faster than its rate. Loopback only. */

/** A TCP server that answers every connection with `payload` and then ends it. */
async function startSender(payload: Buffer): Promise<{ host: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.end(payload);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function receive(host: string): Promise<Buffer> {
  const [address = '', port = ''] = host.split(':');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), address);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('paced link', () => {
  it('relays the bytes unchanged and ends the connection after the last paced byte', async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const sender = await startSender(payload);
    const link = await startPacedLink({ target: sender.host, mibPerSecond: 1000 });
    try {
      const got = await receive(link.host);
      assert.equal(got.length, payload.length);
      assert.equal(sha(got), sha(payload));
      assert.equal(link.relayed().down, payload.length);
    } finally {
      await link.close();
      await sender.close();
    }
  });

  it('shares one rate between connections: 1 MiB over two at 2 MiB/s takes at least ~0.4 s', async () => {
    const payload = randomBytes(512 * 1024);
    const sender = await startSender(payload);
    const link = await startPacedLink({ target: sender.host, mibPerSecond: 2 });
    try {
      const started = performance.now();
      const [a, b] = await Promise.all([receive(link.host), receive(link.host)]);
      const elapsed = performance.now() - started;
      assert.equal(sha(a), sha(payload));
      assert.equal(sha(b), sha(payload));
      // 1 MiB at 2 MiB/s is 500 ms; the burst allowance (256 KiB) saves up to 125 ms of it.
      // Only a lower bound: a busy machine can make it slower, never faster.
      assert.ok(elapsed >= 360, `took ${elapsed.toFixed(0)} ms`);
    } finally {
      await link.close();
      await sender.close();
    }
  });

  it('refuses a target off loopback', async () => {
    await assert.rejects(startPacedLink({ target: '10.0.0.1:80', mibPerSecond: 1 }), Error);
  });
});
