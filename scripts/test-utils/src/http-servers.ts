import { createHash } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A loopback HTTP(S) server built from small route handlers, for what a real registry will not do
 * on demand (truncate, lie about lengths, rate-limit, reset, redirect, hang). Every request is
 * recorded; a request no route expects is answered 500 and makes `close()` (and
 * `assertNoUnexpected()`) fail the test.
 */
export interface RecordedRequest {
  readonly method: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** Name of the route that handled it; undefined when unexpected. */
  readonly route: string | undefined;
  readonly body: Buffer;
}

export interface RouteContext {
  /** 1 for the first request this route handles, 2 for the second… */
  readonly hit: number;
  readonly body: Buffer;
  readonly url: URL;
}

/** A handler that answers synchronously (the building blocks below), so another handler can call it. */
export type SimpleRouteHandler = (req: IncomingMessage, res: ServerResponse, context: RouteContext) => void;

export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  context: RouteContext,
) => void | Promise<void>;

export interface Route {
  readonly name: string;
  readonly method?: string;
  /** Exact path (without query) or a pattern tested against the path. */
  readonly path: string | RegExp;
  readonly handle: RouteHandler;
  /** Most requests this route may take; more are unexpected. */
  readonly maxHits?: number;
}

export interface RouteServer {
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  readonly unexpected: RecordedRequest[];
  /** How many requests a route handled. */
  hits(routeName: string): number;
  /** Requests a route handled, in order. */
  requestsFor(routeName: string): RecordedRequest[];
  addRoute(route: Route): void;
  assertNoUnexpected(): void;
  /** Stops the server (dropping hung connections) and fails if any request was unexpected. */
  close(): Promise<void>;
}

export interface RouteServerOptions {
  /** Serve HTTPS with this key and certificate (PEM). */
  readonly tls?: { readonly key: string; readonly cert: string };
}

const MAX_REQUEST_BODY = 64 * 1024 * 1024;

export async function startRouteServer(
  routes: readonly Route[],
  options: RouteServerOptions = {},
): Promise<RouteServer> {
  const table = [...routes];
  const requests: RecordedRequest[] = [];
  const unexpected: RecordedRequest[] = [];
  const hitCounts = new Map<string, number>();
  const sockets = new Set<Socket>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > MAX_REQUEST_BODY) {
        req.socket.destroy();
        return;
      }
      chunks.push(chunk);
    }
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const route = table.find(
      (r) =>
        (r.method === undefined || r.method === method) &&
        (typeof r.path === 'string' ? r.path === url.pathname : r.path.test(url.pathname)) &&
        (r.maxHits === undefined || (hitCounts.get(r.name) ?? 0) < r.maxHits),
    );
    const record: RecordedRequest = {
      method,
      url: req.url ?? '/',
      headers: req.headers,
      route: route?.name,
      body,
    };
    requests.push(record);
    if (route === undefined) {
      unexpected.push(record);
      res
        .writeHead(500, { 'content-type': 'text/plain' })
        .end(`unexpected request ${method} ${url.pathname}`);
      return;
    }
    const hit = (hitCounts.get(route.name) ?? 0) + 1;
    hitCounts.set(route.name, hit);
    await route.handle(req, res, { hit, body, url });
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
      else res.destroy();
    });
  };
  const server: Server =
    options.tls === undefined
      ? createHttpServer(listener)
      : createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, listener);
  server.on(options.tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const scheme = options.tls === undefined ? 'http' : 'https';
  const assertNoUnexpected = (): void => {
    if (unexpected.length > 0) {
      throw new Error(`unexpected requests: ${unexpected.map((r) => `${r.method} ${r.url}`).join(', ')}`);
    }
  };
  return {
    origin: `${scheme}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    unexpected,
    hits: (name) => hitCounts.get(name) ?? 0,
    requestsFor: (name) => requests.filter((r) => r.route === name),
    addRoute: (route) => table.push(route),
    assertNoUnexpected,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      assertNoUnexpected();
    },
  };
}

// ---- handlers for what real registries will not do on demand ----

export function sha256Of(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface BlobRouteOptions {
  /** Answer Range requests with 206 (default) or ignore them and send everything with 200. */
  readonly honourRange?: boolean;
  /** Send only this many bytes of the (ranged) body, then end the response cleanly. */
  readonly truncateAt?: number;
  /** Send this many bytes, then reset the TCP connection (RST). */
  readonly resetAfter?: number;
  /** Content-Length to announce instead of the real one. */
  readonly contentLength?: number;
  /** Replace the bytes sent (e.g. one flipped byte: a wrong digest with the right size). */
  readonly corrupt?: (bytes: Buffer) => Buffer;
}

/** Serves `blob` like a registry's blob endpoint, with optional misbehaviour. */
export function serveBlob(blob: Buffer, options: BlobRouteOptions = {}): SimpleRouteHandler {
  return (req, res) => {
    let body = options.corrupt === undefined ? blob : options.corrupt(blob);
    let status = 200;
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'docker-content-digest': sha256Of(blob),
    };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range !== null && options.honourRange !== false) {
      const start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      body = body.subarray(start);
      status = 206;
    }
    headers['content-length'] = String(options.contentLength ?? body.length);
    if (req.method === 'HEAD') {
      res.writeHead(status, headers).end();
      return;
    }
    if (options.resetAfter !== undefined) {
      res.writeHead(status, headers);
      res.write(body.subarray(0, options.resetAfter), () => {
        // Give the bytes a moment to leave before the RST, so the client really sees a partial body.
        setTimeout(() => req.socket.resetAndDestroy(), 50);
      });
      return;
    }
    if (options.truncateAt !== undefined) {
      // Chunked, no length: the response ends cleanly but early (a short read, not a network error).
      delete headers['content-length'];
      res.writeHead(status, headers).end(body.subarray(0, options.truncateAt));
      return;
    }
    if (options.contentLength !== undefined && options.contentLength > body.length) {
      res.writeHead(status, headers);
      res.end(body);
      return;
    }
    res
      .writeHead(status, headers)
      .end(options.contentLength === undefined ? body : body.subarray(0, options.contentLength));
  };
}

/** Answers with a status, headers and an optional (JSON) body. */
export function respond(
  status: number,
  headers: Record<string, string> = {},
  body?: unknown,
): SimpleRouteHandler {
  return (_req, res) => {
    const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-length': String(Buffer.byteLength(text)), ...headers }).end(text);
  };
}

/** A registry-style JSON error (`{"errors":[{code,message}]}`). */
export function registryError(
  status: number,
  code: string,
  message = code.toLowerCase(),
  headers: Record<string, string> = {},
): SimpleRouteHandler {
  return respond(status, { 'content-type': 'application/json', ...headers }, { errors: [{ code, message }] });
}

/** A 30x to `location` (absolute, typically another origin). */
export function redirectTo(location: string | (() => string), status = 307): SimpleRouteHandler {
  return respond(status, { location: typeof location === 'string' ? location : location() });
}

/** Never answers: the connection stays open until the client gives up (or the server closes). */
export function neverAnswer(): SimpleRouteHandler {
  return () => undefined;
}

/** The first hit uses `handlers[0]`, the second `handlers[1]`…; the last one repeats. */
export function inSequence(...handlers: RouteHandler[]): RouteHandler {
  return (req, res, context) => handlers[Math.min(context.hit, handlers.length) - 1]!(req, res, context);
}
