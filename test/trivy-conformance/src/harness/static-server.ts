import { createReadStream, realpathSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, sep } from 'node:path';

export interface StaticServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Request paths, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * A plain static web server on loopback for a directory, the way nginx or Apache serve
 * `--vex-serve-dir`: symbolic links followed, GET/HEAD only, an ETag, 404 for anything else.
 */
export async function startStaticServer(root: string): Promise<StaticServer> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
    requests.push(path);
    let file: string;
    try {
      const base = realpathSync(root);
      file = realpathSync(join(root, path));
      if (!file.startsWith(base + sep) || !statSync(file).isFile()) throw new Error('not served');
    } catch {
      response.writeHead(404).end();
      return;
    }
    const stat = statSync(file);
    response.writeHead(200, {
      'content-length': String(stat.size),
      etag: `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`,
    });
    if (request.method === 'HEAD') response.end();
    else createReadStream(file).pipe(response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
