import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  inSequence,
  redirectTo,
  registryError,
  respond,
  startRouteServer,
  type Route,
  type RouteServer,
} from '@trivy-airgap/test-utils';
import { OciError, createHttpClient, type HttpClient, type OciEvent } from '../src/index.js';

/** The transport the exporter reuses for plain HTTPS downloads (VEX repositories). */

const servers: RouteServer[] = [];
const clients: HttpClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

async function server(routes: Route[]): Promise<RouteServer> {
  const started = await startRouteServer(routes);
  servers.push(started);
  return started;
}

function client(events: OciEvent[] = []): HttpClient {
  const created = createHttpClient({
    userAgent: 'trivy-airgap-test/0.0.0',
    env: {},
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 10 },
    onEvent: (e) => events.push(e),
  });
  clients.push(created);
  return created;
}

describe('createHttpClient', () => {
  it('retries 503, then returns the response; HTTP errors are returned, not thrown', async () => {
    const s = await server([
      {
        name: 'archive',
        path: '/main.tar.gz',
        handle: inSequence(registryError(503, 'UNAVAILABLE'), respond(200, {}, 'tgz')),
      },
      { name: 'missing', path: '/missing', handle: respond(404, {}, 'nope') },
    ]);
    const events: OciEvent[] = [];
    const http = client(events);
    const ok = await http.request(`${s.origin}/main.tar.gz`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(100), 'tgz');
    assert.equal(s.hits('archive'), 2);
    assert.equal(events.filter((e) => e.type === 'retry').length, 1);
    const missing = await http.request(`${s.origin}/missing`);
    assert.equal(missing.status, 404);
    await missing.discard();
  });

  it('follows a redirect to another host (github.com → codeload) without the Authorization header', async () => {
    const codeload = await server([
      { name: 'archive', path: '/archive.tar.gz', handle: respond(200, {}, 'archive') },
    ]);
    const github = await server([
      {
        name: 'redirect',
        path: '/vexhub/archive/refs/heads/main.tar.gz',
        handle: redirectTo(`${codeload.origin}/archive.tar.gz`, 302),
      },
    ]);
    const response = await client().request(`${github.origin}/vexhub/archive/refs/heads/main.tar.gz`, {
      headers: { authorization: 'Bearer github-token' },
    });
    assert.equal(response.status, 200);
    assert.equal(response.url, `${codeload.origin}/archive.tar.gz`);
    assert.equal(await response.text(100), 'archive');
    assert.equal(github.requestsFor('redirect')[0]!.headers.authorization, 'Bearer github-token');
    assert.equal(codeload.requestsFor('archive')[0]!.headers.authorization, undefined);
  });

  it('bounds reads and redirects', async () => {
    const s = await server([
      { name: 'big', path: '/big', handle: respond(200, {}, 'x'.repeat(1000)) },
      { name: 'loop', path: '/loop', handle: redirectTo('/loop') },
    ]);
    const http = client();
    const big = await http.request(`${s.origin}/big`);
    await assert.rejects(big.bytes(10), (e: unknown) => e instanceof OciError && e.code === 'SIZE_MISMATCH');
    await assert.rejects(
      http.request(`${s.origin}/loop`, { maxRedirects: 3 }),
      (e: unknown) => e instanceof OciError && e.code === 'REDIRECT',
    );
    assert.equal(s.hits('loop'), 4);
  });
});
