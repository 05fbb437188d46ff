import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, isIP, type AddressInfo, type Socket } from 'node:net';

/**
 * A tiny forward proxy on loopback (CONNECT tunnels and absolute-URI plain HTTP) that counts what
 * it forwards. Names in `hostMap` (e.g. `registry.test`) resolve only here, so a request that
 * reaches its target proves it went through the proxy. Targets other than loopback are refused:
 * tests never send traffic off the machine.
 */
export interface ProxyOptions {
  /** name → loopback IP; default { 'registry.test': '127.0.0.1' } */
  readonly hostMap?: Readonly<Record<string, string>>;
}

export interface ForwardedRequest {
  readonly kind: 'connect' | 'http';
  /** `host:port` asked for, before mapping. */
  readonly target: string;
  /** For plain HTTP: method and path. */
  readonly method?: string;
  readonly path?: string;
}

export interface TestProxy {
  /** `http://127.0.0.1:PORT`, for HTTP_PROXY / HTTPS_PROXY. */
  readonly url: string;
  readonly forwarded: ForwardedRequest[];
  readonly refused: string[];
  close(): Promise<void>;
}

function resolveTarget(host: string, hostMap: Readonly<Record<string, string>>): string | undefined {
  const name = host.replace(/^\[|\]$/g, '').toLowerCase();
  const address = hostMap[name] ?? name;
  if (address === 'localhost') return '127.0.0.1';
  if (isIP(address) === 4 && address.startsWith('127.')) return address;
  if (address === '::1') return address;
  return undefined;
}

export async function startProxy(options: ProxyOptions = {}): Promise<TestProxy> {
  const hostMap = options.hostMap ?? { 'registry.test': '127.0.0.1' };
  const forwarded: ForwardedRequest[] = [];
  const refused: string[] = [];
  const sockets = new Set<Socket>();

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute URI required');
      return;
    }
    const address = resolveTarget(target.hostname, hostMap);
    const port = Number(target.port || 80);
    if (address === undefined || target.protocol !== 'http:') {
      refused.push(target.host);
      res.writeHead(403).end('the test proxy only forwards to loopback');
      return;
    }
    forwarded.push({
      kind: 'http',
      target: `${target.hostname}:${port}`,
      method: req.method ?? 'GET',
      path: target.pathname,
    });
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = httpRequest(
      { host: address, port, method: req.method, path: `${target.pathname}${target.search}`, headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  });

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    // A client told 403 may reset the connection: that is its business, not an uncaught error here.
    client.on('error', () => client.destroy());
    const [host = '', portText = '443'] = (req.url ?? '').split(/:(?=\d+$)/);
    const address = resolveTarget(host, hostMap);
    if (address === undefined) {
      refused.push(req.url ?? '');
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    forwarded.push({ kind: 'connect', target: `${host}:${portText}` });
    const upstream = connect(Number(portText), address, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  server.on('clientError', (_error: Error, socket: Socket) => socket.destroy());
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    forwarded,
    refused,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
