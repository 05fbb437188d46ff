import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * A bandwidth-limited "link" in front of a loopback server: a TCP relay on 127.0.0.1 that forwards
 * every connection to `target` and paces the bytes to `mibPerSecond` in each direction. All
 * connections share one budget per direction, like a real uplink, so a client that opens several
 * connections is no faster than one that opens a single one. Being a plain TCP relay it is
 * transparent to HTTP: point any client (skopeo, trivy-airgap) at `host` instead of the server.
 */
export interface PacedLinkOptions {
  /** `127.0.0.1:PORT` of the server behind the link (loopback only). */
  readonly target: string;
  /** Bandwidth of each direction, MiB/s. */
  readonly mibPerSecond: number;
}

export interface PacedLink {
  /** `127.0.0.1:PORT`: use in place of the target. */
  readonly host: string;
  readonly port: number;
  /** Bytes relayed so far: server → client, client → server. */
  readonly relayed: () => { down: number; up: number };
  close(): Promise<void>;
}

/** Bytes a direction may send ahead of its schedule (absorbs timer jitter, like a NIC queue). */
const BURST_BYTES = 256 * 1024;
/** A chunk larger than this is cut, so one big read cannot jump the queue of another connection. */
const SLICE_BYTES = 64 * 1024;

/**
 * One direction of the link: a virtual clock of when the line has sent everything booked so far.
 * Sending n bytes moves it n / rate further; a sender may run at most BURST_BYTES ahead of it.
 */
class Pacer {
  private freeAt = 0;
  bytes = 0;

  constructor(private readonly bytesPerMs: number) {}

  /** Milliseconds to wait before sending `size` bytes (the line is booked for them at once). */
  book(size: number): number {
    const now = performance.now();
    this.freeAt = Math.max(this.freeAt, now) + size / this.bytesPerMs;
    this.bytes += size;
    return Math.max(0, this.freeAt - now - BURST_BYTES / this.bytesPerMs);
  }
}

/** Copies `from` → `to` through `pacer`, honouring the receiver's backpressure; relays the end. */
function relay(from: Socket, to: Socket, pacer: Pacer): void {
  const queue: Buffer[] = [];
  let sending = false;
  let ended = false;
  const pump = (): void => {
    if (sending) return;
    const chunk = queue.shift();
    if (chunk === undefined) {
      if (ended) to.end();
      else if (from.isPaused()) from.resume();
      return;
    }
    sending = true;
    const send = (): void => {
      sending = false;
      if (to.destroyed) return;
      if (to.write(chunk)) pump();
      else to.once('drain', pump);
    };
    const wait = pacer.book(chunk.length);
    if (wait < 1) send();
    else setTimeout(send, wait);
  };
  from.on('data', (data: Buffer) => {
    for (let offset = 0; offset < data.length; offset += SLICE_BYTES) {
      queue.push(data.subarray(offset, offset + SLICE_BYTES));
    }
    from.pause(); // resumed once the queue is empty
    pump();
  });
  from.on('end', () => {
    ended = true;
    pump();
  });
}

export async function startPacedLink(options: PacedLinkOptions): Promise<PacedLink> {
  const [targetHost = '', targetPort = ''] = options.target.split(/:(?=\d+$)/);
  if (!/^127\.\d+\.\d+\.\d+$/.test(targetHost) && targetHost !== 'localhost') {
    throw new Error(`the paced link only relays to loopback, not ${options.target}`);
  }
  if (!(options.mibPerSecond > 0)) throw new Error('mibPerSecond must be positive');
  const bytesPerMs = (options.mibPerSecond * 1024 * 1024) / 1000;
  const down = new Pacer(bytesPerMs);
  const up = new Pacer(bytesPerMs);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  // Half-open sockets: an end in one direction is relayed (after the paced queue) as an end,
  // never as a reset that would drop bytes still waiting for their turn.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    const upstream = connect({ port: Number(targetPort), host: targetHost, allowHalfOpen: true });
    track(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    relay(client, upstream, up);
    relay(upstream, client, down);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    port,
    relayed: () => ({ down: down.bytes, up: up.bytes }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
