import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { digestOfBytes } from '@trivy-airgap/format';
import {
  inSequence,
  neverAnswer,
  redirectTo,
  registryError,
  respond,
  serveBlob,
  startRouteServer,
  type Route,
  type SimpleRouteHandler,
  type RouteServer,
} from '@trivy-airgap/test-utils';
import { OciError, RegistryClient, type Descriptor, type OciEvent, type RetryOptions } from '../src/index.js';

/**
 * What a real registry will not do on demand, from a loopback server that fails the test on any
 * request it does not expect.
 */

const work = await mkdtemp(join(tmpdir(), 'airgap-oci-faults-'));
const servers: RouteServer[] = [];
const clients: RegistryClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  // close() fails when a server saw a request no route expected.
  await Promise.all(servers.map((s) => s.close()));
  await rm(work, { recursive: true, force: true });
});

const BLOB = Buffer.alloc(300_000);
for (let i = 0; i < BLOB.length; i++) BLOB[i] = (i * 31 + (i >> 8)) & 0xff;
const BLOB_DESCRIPTOR: Descriptor = {
  mediaType: 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip',
  digest: digestOfBytes(BLOB),
  size: BLOB.length,
};
const BLOB_PATH = `/v2/aquasec/trivy-db/blobs/${BLOB_DESCRIPTOR.digest}`;
const MANIFEST_PATH = '/v2/aquasec/trivy-db/manifests/2';

async function server(routes: Route[]): Promise<RouteServer> {
  const started = await startRouteServer(routes);
  servers.push(started);
  return started;
}

function client(
  host: RouteServer,
  options: { events?: OciEvent[]; retry?: RetryOptions; idleTimeoutMs?: number; username?: string } = {},
): RegistryClient {
  const created = new RegistryClient({
    transport: {
      userAgent: 'trivy-airgap-test/0.0.0',
      plainHttp: true,
      env: {},
      idleTimeoutMs: options.idleTimeoutMs,
      retry: options.retry ?? { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 50 },
    },
    credentials: { useDockerConfig: false, env: {}, username: options.username, password: 'secret-password' },
    onEvent: (event) => options.events?.push(event),
  });
  clients.push(created);
  return created;
}

const ref = (s: RouteServer): string => `${s.host}/aquasec/trivy-db:2`;
let fileCounter = 0;
const destination = (): string => join(work, `blob-${++fileCounter}`);

async function expectOciError(promise: Promise<unknown>, code: OciError['code']): Promise<OciError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OciError, `expected OciError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected OciError ${code}, but it succeeded`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('blob integrity while streaming', () => {
  it('a body that ends early is SIZE_MISMATCH with expected/found, and the partial file is removed', async () => {
    const s = await server([
      { name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB, { truncateAt: 1000 }) },
    ]);
    const dest = destination();
    const error = await expectOciError(
      client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest),
      'SIZE_MISMATCH',
    );
    assert.equal(error.expected, `${BLOB.length} bytes`);
    assert.equal(error.found, '1000 bytes');
    assert.equal(error.side, 'source');
    assert.equal(await exists(dest), false);
  });

  it('right size, wrong bytes is DIGEST_MISMATCH naming both digests', async () => {
    const corrupt = (bytes: Buffer): Buffer => {
      const copy = Buffer.from(bytes);
      copy[1234] = copy[1234]! ^ 0xff;
      return copy;
    };
    const s = await server([{ name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB, { corrupt }) }]);
    const dest = destination();
    const error = await expectOciError(
      client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest),
      'DIGEST_MISMATCH',
    );
    assert.equal(error.expected, BLOB_DESCRIPTOR.digest);
    assert.equal(error.found, digestOfBytes(corrupt(BLOB)));
    assert.equal(await exists(dest), false);
  });

  it('a Content-Length larger than the blob is refused before reading; a smaller one is a short read', async () => {
    const s = await server([
      {
        name: 'blob',
        path: BLOB_PATH,
        handle: inSequence(
          serveBlob(BLOB, { contentLength: BLOB.length + 10 }),
          serveBlob(BLOB, { contentLength: BLOB.length - 10 }),
        ),
      },
    ]);
    await expectOciError(client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, destination()), 'SIZE_MISMATCH');
    await expectOciError(client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, destination()), 'SIZE_MISMATCH');
  });

  it('trailing bytes after the declared size are an error, not ignored', async () => {
    const longer = Buffer.concat([BLOB, Buffer.from('trailing')]);
    const s = await server([
      {
        name: 'blob',
        path: BLOB_PATH,
        // Chunked (no Content-Length), so only counting the bytes can catch it.
        handle: (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(longer);
        },
      },
    ]);
    const error = await expectOciError(
      client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, destination()),
      'SIZE_MISMATCH',
    );
    assert.match(error.found ?? '', /^at least/);
  });

  it('openBlob fails the stream instead of ending it when the bytes are wrong', async () => {
    const s = await server([
      { name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB, { truncateAt: 5000 }) },
    ]);
    const stream = await client(s).openBlob(ref(s), BLOB_DESCRIPTOR);
    await expectOciError(
      (async () => {
        stream.resume();
        await new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject));
      })(),
      'SIZE_MISMATCH',
    );
  });
});

describe('resume', () => {
  it('a download cut by a connection reset resumes with a Range request and still verifies', async () => {
    const s = await server([
      {
        name: 'blob',
        path: BLOB_PATH,
        // Cut every full request; only a Range request gets the rest. (A reset can discard bytes the
        // client had not read yet, so the first resumed offset is not fixed.)
        handle: (req, res, context) =>
          req.headers.range === undefined
            ? serveBlob(BLOB, { resetAfter: 100_000 })(req, res, context)
            : serveBlob(BLOB)(req, res, context),
      },
    ]);
    const events: OciEvent[] = [];
    const seen: Buffer[] = [];
    const dest = destination();
    const retry = { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 50 };
    const result = await client(s, { events, retry }).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest, {
      onData: (chunk) => seen.push(chunk),
    });
    assert.equal(result.digest, BLOB_DESCRIPTOR.digest);
    assert.deepEqual(await readFile(dest), BLOB);
    assert.deepEqual(Buffer.concat(seen), BLOB, 'onData saw every byte exactly once, in order');
    const requests = s.requestsFor('blob');
    assert.equal(requests[0]!.headers.range, undefined);
    assert.match(requests.at(-1)!.headers.range ?? '', /^bytes=[1-9]\d*-$/, 'the server saw a Range request');
    assert.ok(events.some((e) => e.type === 'retry'));
  });

  it('continues from a partial file left by an earlier run, replaying its bytes to onData', async () => {
    const s = await server([{ name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB) }]);
    const dest = destination();
    await writeFile(dest, BLOB.subarray(0, 123_456));
    const seen: Buffer[] = [];
    const result = await client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest, {
      onData: (c) => seen.push(c),
    });
    assert.equal(result.resumedFrom, 123_456);
    assert.deepEqual(Buffer.concat(seen), BLOB);
    assert.deepEqual(await readFile(dest), BLOB);
    assert.equal(s.requestsFor('blob')[0]!.headers.range, 'bytes=123456-');
  });

  it('a server that ignores Range is handled by skipping what is already on disk', async () => {
    const s = await server([
      { name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB, { honourRange: false }) },
    ]);
    const dest = destination();
    await writeFile(dest, BLOB.subarray(0, 70_000));
    const events: OciEvent[] = [];
    const seen: Buffer[] = [];
    await client(s, { events }).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest, { onData: (c) => seen.push(c) });
    assert.deepEqual(await readFile(dest), BLOB);
    assert.deepEqual(Buffer.concat(seen), BLOB);
    assert.ok(events.some((e) => e.type === 'range-ignored'));
  });

  it("an error thrown by onData (the caller's parser) is passed through, not retried as a network error", async () => {
    const s = await server([{ name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB) }]);
    const failure = new Error('parser says no');
    await assert.rejects(
      client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, destination(), {
        onData: () => {
          throw failure;
        },
      }),
      (error: unknown) => error === failure,
    );
    assert.equal(s.hits('blob'), 1);
  });

  it('a corrupt partial file fails verification and is removed, so the next run starts clean', async () => {
    const s = await server([{ name: 'blob', path: BLOB_PATH, handle: serveBlob(BLOB) }]);
    const dest = destination();
    await writeFile(dest, Buffer.alloc(1000, 7));
    await expectOciError(client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest), 'DIGEST_MISMATCH');
    assert.equal(await exists(dest), false);
    await client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest);
    assert.deepEqual(await readFile(dest), BLOB);
  });
});

describe('retries and classification', () => {
  it('429 with Retry-After is retried after the time the server asked for', async () => {
    const s = await server([
      {
        name: 'manifest',
        path: MANIFEST_PATH,
        handle: inSequence(
          registryError(429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '1' }),
          manifestHandler(),
        ),
      },
    ]);
    const events: OciEvent[] = [];
    const started = Date.now();
    await client(s, { events, retry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 5000 } }).getManifest(
      ref(s),
    );
    assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
    assert.equal(s.hits('manifest'), 2);
    const retry = events.find((e) => e.type === 'retry');
    assert.equal(retry?.type === 'retry' ? retry.delayMs : undefined, 1000);
  });

  it('a Retry-After beyond the budget is not waited for: TOO_MANY_REQUESTS with status and code reported', async () => {
    const s = await server([
      {
        name: 'manifest',
        path: MANIFEST_PATH,
        handle: registryError(429, 'TOOMANYREQUESTS', 'x', { 'retry-after': '3600' }),
      },
    ]);
    const error = await expectOciError(client(s).getManifest(ref(s)), 'TOO_MANY_REQUESTS');
    assert.equal(error.status, 429);
    assert.deepEqual(error.registryCodes, ['TOOMANYREQUESTS']);
    assert.equal(s.hits('manifest'), 1);
  });

  it('503 then success is retried transparently', async () => {
    const s = await server([
      {
        name: 'manifest',
        path: MANIFEST_PATH,
        handle: inSequence(registryError(503, 'UNAVAILABLE'), manifestHandler()),
      },
    ]);
    await client(s).getManifest(ref(s));
    assert.equal(s.hits('manifest'), 2);
  });

  it('a registry that stays 503 gives up after maxAttempts with UNAVAILABLE, status and code reported', async () => {
    const s = await server([
      { name: 'manifest', path: MANIFEST_PATH, handle: registryError(503, 'UNAVAILABLE') },
    ]);
    const error = await expectOciError(
      client(s, { retry: { maxAttempts: 3, baseDelayMs: 1 } }).getManifest(ref(s)),
      'UNAVAILABLE',
    );
    assert.equal(error.status, 503);
    assert.deepEqual(error.registryCodes, ['UNAVAILABLE']);
    assert.equal(s.hits('manifest'), 3);
  });

  it("reports what the registry said: status and every code of the error body (the fallback policy is @trivy-airgap/trivy's)", async () => {
    const s = await server([
      {
        name: 'manifest',
        path: MANIFEST_PATH,
        handle: inSequence(
          registryError(404, 'MANIFEST_UNKNOWN'),
          respond(
            401,
            { 'content-type': 'application/json' },
            { errors: [{ code: 'UNAUTHORIZED', message: 'no' }] },
          ),
          registryError(400, 'UNKNOWN', 'something odd'),
        ),
      },
    ]);
    const c = client(s, { retry: { maxAttempts: 1 } });
    const notFound = await expectOciError(c.getManifest(ref(s)), 'MANIFEST_UNKNOWN');
    assert.deepEqual([notFound.status, notFound.registryCodes], [404, ['MANIFEST_UNKNOWN']]);
    const unauthorized = await expectOciError(c.getManifest(ref(s)), 'UNAUTHORIZED');
    assert.deepEqual([unauthorized.status, unauthorized.registryCodes], [401, ['UNAUTHORIZED']]);
    const odd = await expectOciError(c.getManifest(ref(s)), 'UNEXPECTED_STATUS');
    assert.deepEqual([odd.status, odd.registryCodes], [400, ['UNKNOWN']]);
  });

  it('a server that never answers times out (bounded), retried maxAttempts times', async () => {
    const s = await server([{ name: 'manifest', path: MANIFEST_PATH, handle: neverAnswer() }]);
    const started = Date.now();
    await expectOciError(
      client(s, { idleTimeoutMs: 150, retry: { maxAttempts: 2, baseDelayMs: 1 } }).getManifest(ref(s)),
      'TIMEOUT',
    );
    assert.equal(s.hits('manifest'), 2);
    assert.ok(Date.now() - started < 5000);
  });

  it('a closed port is a CONNECTION_REFUSED error (named as such, not a generic NETWORK error)', async () => {
    const s = await server([]);
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const c = client(s, { retry: { maxAttempts: 2, baseDelayMs: 1 } });
    const error = await expectOciError(c.getManifest(ref(s)), 'CONNECTION_REFUSED');
    assert.deepEqual([error.status, error.registryCodes], [undefined, []]);
  });
});

describe('manifests', () => {
  it('sends the OCI + Docker Accept set and our User-Agent', async () => {
    const s = await server([{ name: 'manifest', path: MANIFEST_PATH, handle: manifestHandler() }]);
    await client(s).getManifest(ref(s));
    const request = s.requestsFor('manifest')[0]!;
    for (const type of [
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.docker.distribution.manifest.list.v2+json',
    ]) {
      assert.ok(request.headers.accept?.includes(type), type);
    }
    assert.equal(request.headers['user-agent'], 'trivy-airgap-test/0.0.0');
  });

  it('refuses a manifest over 4 MiB, announced or not', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    const s = await server([
      {
        name: 'manifest',
        path: MANIFEST_PATH,
        handle: inSequence(
          (_req, res) => {
            res.writeHead(200, { 'content-length': String(big.length) }).end(big);
          },
          (_req, res) => {
            res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
            res.end(big);
          },
        ),
      },
    ]);
    await expectOciError(client(s).getManifest(ref(s)), 'MANIFEST_TOO_LARGE');
    await expectOciError(client(s).getManifest(ref(s)), 'MANIFEST_TOO_LARGE');
  });

  it('verifies the digest of a manifest pulled by digest', async () => {
    const wanted = digestOfBytes('the manifest we asked for');
    const s = await server([
      { name: 'manifest', path: `/v2/aquasec/trivy-db/manifests/${wanted}`, handle: manifestHandler() },
    ]);
    const error = await expectOciError(
      client(s).getManifest(`${s.host}/aquasec/trivy-db@${wanted}`),
      'DIGEST_MISMATCH',
    );
    assert.equal(error.expected, wanted);
  });

  it('follows an index to its single image manifest only when asked', async () => {
    const manifest = Buffer.from(MANIFEST_JSON);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: digestOfBytes(manifest),
            size: manifest.length,
            platform: { os: 'linux', architecture: 'amd64' },
          },
        ],
      }),
    );
    const s = await server([
      {
        name: 'index',
        path: MANIFEST_PATH,
        handle: respond(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }, index.toString()),
      },
      {
        name: 'child',
        path: `/v2/aquasec/trivy-db/manifests/${digestOfBytes(manifest)}`,
        handle: manifestHandler(),
      },
    ]);
    const c = client(s);
    assert.equal((await c.getManifest(ref(s))).mediaType, 'application/vnd.oci.image.index.v1+json');
    const followed = await c.getManifest(ref(s), { followIndex: true });
    assert.equal(followed.digest, digestOfBytes(manifest));
    const byPlatform = await c.getManifest(ref(s), { followIndex: { os: 'linux', architecture: 'amd64' } });
    assert.equal(byPlatform.digest, digestOfBytes(manifest));
    await expectOciError(
      c.getManifest(ref(s), { followIndex: { os: 'linux', architecture: 'arm64' } }),
      'NO_MATCHING_MANIFEST',
    );
  });
});

describe('redirects', () => {
  it('follows a blob redirect to another origin without forwarding Authorization', async () => {
    const storage = await server([{ name: 'storage-blob', path: '/storage/blob', handle: serveBlob(BLOB) }]);
    const registry = await server([
      {
        name: 'ping-401',
        path: BLOB_PATH,
        maxHits: 1,
        handle: respond(401, { 'www-authenticate': 'Basic realm="test"' }),
      },
      {
        name: 'blob-redirect',
        path: BLOB_PATH,
        handle: (req, res, context) => {
          if (req.headers.authorization === undefined) {
            res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
            return;
          }
          redirectTo(`${storage.origin}/storage/blob?X-Amz-Signature=secret-signature`)(req, res, context);
        },
      },
    ]);
    const events: OciEvent[] = [];
    const dest = destination();
    await client(registry, { events, username: 'reader' }).downloadBlob(ref(registry), BLOB_DESCRIPTOR, dest);
    assert.deepEqual(await readFile(dest), BLOB);
    assert.match(registry.requestsFor('blob-redirect')[0]!.headers.authorization ?? '', /^Basic /);
    const atStorage = storage.requestsFor('storage-blob');
    assert.equal(atStorage.length, 1);
    assert.equal(atStorage[0]!.headers.authorization, undefined);
    const redirect = events.find((e) => e.type === 'redirect');
    assert.ok(
      redirect !== undefined && !JSON.stringify(redirect).includes('secret-signature'),
      'events carry no query',
    );
  });
});

describe('upload locations on another host', () => {
  it('sends the upload to the Location host without the registry credentials', async () => {
    const storage = await server([
      {
        name: 'put',
        method: 'PUT',
        path: '/upload/1',
        handle: respond(201, { 'docker-content-digest': BLOB_DESCRIPTOR.digest }),
      },
    ]);
    const withBasic =
      (inner: SimpleRouteHandler): SimpleRouteHandler =>
      (req, res, context) => {
        if (req.headers.authorization === undefined) {
          respond(401, { 'www-authenticate': 'Basic realm="r"' })(req, res, context);
          return;
        }
        inner(req, res, context);
      };
    const registry = await server([
      { name: 'head', method: 'HEAD', path: BLOB_PATH, handle: withBasic(respond(404)) },
      {
        name: 'post',
        method: 'POST',
        path: '/v2/aquasec/trivy-db/blobs/uploads/',
        handle: withBasic((req, res, context) =>
          respond(202, { location: `${storage.origin}/upload/1?state=abc` })(req, res, context),
        ),
      },
    ]);
    const result = await client(registry, { username: 'pusher' }).pushBlob(
      ref(registry),
      BLOB_DESCRIPTOR,
      () => Readable.from([BLOB]),
    );
    assert.equal(result, 'uploaded');
    const put = storage.requestsFor('put')[0]!;
    assert.equal(put.headers.authorization, undefined);
    assert.equal(new URL(put.url, 'http://x').searchParams.get('digest'), BLOB_DESCRIPTOR.digest);
    assert.equal(new URL(put.url, 'http://x').searchParams.get('state'), 'abc');
    assert.deepEqual(put.body, BLOB);
  });

  it('HTTPS to a plain-HTTP registry is a TLS error that suggests --plain-http', async () => {
    const s = await server([]);
    const c = new RegistryClient({
      transport: { userAgent: 'test', env: {}, retry: { maxAttempts: 1 } },
      credentials: { useDockerConfig: false, env: {} },
    });
    clients.push(c);
    const error = await expectOciError(c.getManifest(ref(s)), 'TLS');
    assert.ok(error.hint !== undefined, 'the error carries a hint');
  });
});

describe('bearer token flow (the ghcr.io / Docker Hub shape)', () => {
  async function tokenRegistry(expiresIn: number): Promise<{ registry: RouteServer; auth: RouteServer }> {
    const auth = await server([
      {
        name: 'token',
        path: '/token',
        // Docker Hub answers `access_token`; our token server answers `token`: both must work.
        handle: (req, res, context) =>
          respond(
            200,
            { 'content-type': 'application/json' },
            { access_token: `tok-${context.hit}`, expires_in: expiresIn },
          )(req, res, context),
      },
    ]);
    const registry = await server([
      {
        name: 'manifest',
        path: MANIFEST_PATH,
        handle: (req, res, context) => {
          if (!/^Bearer tok-\d+$/.test(req.headers.authorization ?? '')) {
            respond(401, {
              'www-authenticate': `Bearer realm="${auth.origin}/token",service="fake.registry",scope="repository:aquasec/trivy-db:pull"`,
            })(req, res, context);
            return;
          }
          manifestHandler()(req, res, context);
        },
      },
    ]);
    return { registry, auth };
  }

  it('gets a token from the realm with service and scope, sending Basic credentials only to the realm', async () => {
    const { registry, auth } = await tokenRegistry(300);
    const c = client(registry, { username: 'reader' });
    for (let i = 0; i < 3; i++) await c.getManifest(ref(registry));
    assert.equal(auth.hits('token'), 1, 'the token is cached per scope');
    const tokenRequest = auth.requestsFor('token')[0]!;
    const query = new URL(tokenRequest.url, 'http://x').searchParams;
    assert.equal(query.get('service'), 'fake.registry');
    assert.deepEqual(query.getAll('scope'), ['repository:aquasec/trivy-db:pull']);
    assert.equal(
      tokenRequest.headers.authorization,
      `Basic ${Buffer.from('reader:secret-password').toString('base64')}`,
    );
    const atRegistry = registry.requestsFor('manifest').map((r) => r.headers.authorization);
    assert.deepEqual(atRegistry, [undefined, 'Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);
  });

  it('asks for a new token once the cached one expires', async () => {
    const { registry, auth } = await tokenRegistry(1);
    const c = client(registry);
    await c.getManifest(ref(registry));
    await c.getManifest(ref(registry));
    assert.equal(auth.hits('token'), 2);
    assert.equal(
      auth.requestsFor('token')[0]!.headers.authorization,
      undefined,
      'anonymous: no credentials sent',
    );
  });
});

describe('abort', () => {
  it('an aborted download is ABORTED and keeps the partial file for a later resume', async () => {
    const s = await server([
      {
        name: 'blob',
        path: BLOB_PATH,
        handle: (_req, res) => {
          res.writeHead(200, { 'content-length': String(BLOB.length) });
          res.write(BLOB.subarray(0, 50_000));
        },
      },
    ]);
    const controller = new AbortController();
    const dest = destination();
    let received = 0;
    await expectOciError(
      client(s).downloadBlob(ref(s), BLOB_DESCRIPTOR, dest, {
        signal: controller.signal,
        onData: (chunk) => {
          received += chunk.byteLength;
          if (received >= 50_000) controller.abort();
        },
      }),
      'ABORTED',
    );
    assert.equal((await stat(dest)).size, 50_000);
  });
});

const MANIFEST_JSON = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOfBytes('{}'), size: 2 },
  layers: [BLOB_DESCRIPTOR],
});

function manifestHandler(): SimpleRouteHandler {
  return respond(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, MANIFEST_JSON);
}
