import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { RegistryClient, parseImageManifest } from '@trivy-airgap/oci';
import type { FixtureArtifact, TestRegistry } from '@trivy-airgap/test-utils';

/** Pushes a fixture artifact into a test registry (plain HTTP side) with its first user's credentials. */
export async function pushArtifact(
  registry: TestRegistry,
  ref: string,
  artifact: FixtureArtifact,
): Promise<void> {
  const [username, password] = Object.entries(registry.users)[0] ?? [];
  const client = new RegistryClient({
    transport: {
      userAgent: 'trivy-airgap-test/0.0.0',
      plainHttp: registry.mode !== 'htpasswd-tls',
      caCertPem: registry.ca?.caCertPem,
      env: {},
      retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 20 },
    },
    credentials:
      registry.mode === 'plain'
        ? { useDockerConfig: false, env: {} }
        : { useDockerConfig: false, env: {}, username, password },
  });
  try {
    const manifest = parseImageManifest(artifact.manifest);
    await client.pushBlob(ref, manifest.config, () => Readable.from([artifact.config]));
    for (const layer of new Map(manifest.layers.map((l) => [l.digest, l])).values()) {
      await client.pushBlob(ref, layer, () => Readable.from([artifact.layer]));
    }
    await client.pushManifest(ref, artifact.manifest, 'application/vnd.oci.image.manifest.v1+json');
  } finally {
    await client.close();
  }
}

export interface Frontend {
  /** `https://127.0.0.1:PORT` or `http://…` */
  readonly origin: string;
  readonly host: string;
  readonly port: number;
  /** Body bytes of blob GET responses forwarded so far. */
  blobBytes(): number;
  /** Range headers of blob requests seen, in order ('' for none). */
  readonly ranges: string[];
  close(): Promise<void>;
}

export interface FrontendOptions {
  /** Serve HTTPS with this key and certificate. */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** Stop forwarding a blob's bytes after this many of it (that response hangs), and call `onStall` once. */
  readonly stallBlobAfter?: number;
  readonly onStall?: () => void;
}

/**
 * A reverse proxy in front of a registry: terminates TLS (the harness's token-mode registry speaks
 * plain HTTP), counts the blob bytes it forwards, and can stall mid-blob so a test can kill the
 * client at a known point.
 */
export async function startFrontend(target: string, options: FrontendOptions = {}): Promise<Frontend> {
  const targetUrl = new URL(target);
  let blobBytes = 0;
  let stalled = false;
  const ranges: string[] = [];
  const sockets = new Set<Socket>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob) ranges.push(req.headers.range ?? '');
    const upstream = httpRequest(
      {
        host: targetUrl.hostname,
        port: targetUrl.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: targetUrl.host },
      },
      (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        if (!isBlob) {
          response.pipe(res);
          return;
        }
        // Counted per response: the blob that reaches the limit hangs, other requests (the
        // config, asked for at the same time) are still answered.
        let forwarded = 0;
        let hanging = false;
        response.on('data', (chunk: Buffer) => {
          if (hanging) return;
          let piece = chunk;
          const limit = options.stallBlobAfter;
          if (limit !== undefined && forwarded + piece.length >= limit) {
            piece = piece.subarray(0, limit - forwarded);
            hanging = true;
          }
          forwarded += piece.length;
          blobBytes += piece.length;
          if (piece.length > 0) res.write(piece);
          if (hanging) {
            response.pause();
            if (!stalled) options.onStall?.();
            stalled = true;
          }
        });
        response.on('end', () => {
          if (!hanging) res.end();
        });
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const server =
    options.tls === undefined
      ? createServer(handler)
      : createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler);
  server.on(options.tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    blobBytes: () => blobBytes,
    ranges,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
