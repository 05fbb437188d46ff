import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  makeTestCa,
  respond,
  startProxy,
  startRegistry,
  startRouteServer,
  trivyArtifact,
  type RouteServer,
  type TestCa,
  type TestProxy,
  type TestRegistry,
} from '@trivy-airgap/test-utils';
import { RegistryClient, createHttpClient, parseImageManifest } from '../src/index.js';
import { proxyFor } from '../src/transport.js';

/**
 * Proxies: the client must send its traffic through HTTP(S)_PROXY because Node's fetch will not.
 * Targets are named `registry.test`, a name only the test proxy resolves (to 127.0.0.1), so a
 * request that arrives proves it went through the proxy; loopback addresses are never proxied.
 */

const work = await mkdtemp(join(tmpdir(), 'airgap-oci-proxy-'));
let ca: TestCa;
let plain: TestRegistry;
let tls: TestRegistry;
let proxy: TestProxy;
let files: RouteServer;

before(async () => {
  ca = await makeTestCa(await mkdtemp(join(work, 'ca-')));
  [plain, tls, proxy, files] = await Promise.all([
    startRegistry({ mode: 'plain' }),
    startRegistry({ mode: 'htpasswd-tls', ca }),
    startProxy(),
    startRouteServer([
      { name: 'vex', path: '/vex-repository.json', handle: respond(200, {}, '{"name":"VEX"}') },
    ]),
  ]);
});
after(async () => {
  await Promise.all([plain.stop(), tls.stop(), proxy.close(), files.close()]);
  await rm(work, { recursive: true, force: true });
});

async function roundTrip(c: RegistryClient, ref: string): Promise<void> {
  const artifact = trivyArtifact('db', { dbContents: 20_000 });
  const manifest = parseImageManifest(artifact.manifest);
  await c.pushBlob(ref, manifest.config, () => Readable.from([artifact.config]));
  await c.pushBlob(ref, manifest.layers[0]!, () => Readable.from([artifact.layer]));
  await c.pushManifest(ref, artifact.manifest);
  assert.equal((await c.getManifest(ref)).digest, artifact.manifestDigest);
  const dest = join(work, `layer-${Date.now()}`);
  await c.downloadBlob(ref, manifest.layers[0]!, dest);
  assert.deepEqual(await readFile(dest), artifact.layer);
}

describe('proxies', () => {
  it('HTTP_PROXY carries plain-HTTP registry traffic (absolute-URI requests)', async () => {
    const before = proxy.forwarded.length;
    const c = new RegistryClient({
      transport: { userAgent: 'test', plainHttp: true, env: { HTTP_PROXY: proxy.url } },
      credentials: { useDockerConfig: false, env: {} },
    });
    try {
      await roundTrip(c, `registry.test:${plain.port}/proxied/trivy-db:2`);
    } finally {
      await c.close();
    }
    const seen = proxy.forwarded.slice(before);
    assert.ok(seen.length >= 5, `proxy saw ${seen.length} requests`);
    assert.ok(seen.every((f) => f.kind === 'http' && f.target === `registry.test:${plain.port}`));
  });

  it('HTTPS_PROXY tunnels TLS registry traffic with CONNECT, and the CA and credentials still apply', async () => {
    const before = proxy.forwarded.length;
    const [username, password] = Object.entries(tls.users)[0]!;
    const c = new RegistryClient({
      transport: { userAgent: 'test', caCertPem: ca.caCertPem, env: { https_proxy: proxy.url } },
      credentials: { useDockerConfig: false, env: {}, username, password },
    });
    try {
      await roundTrip(c, `registry.test:${tls.port}/proxied/trivy-db:2`);
    } finally {
      await c.close();
    }
    const seen = proxy.forwarded.slice(before);
    assert.ok(seen.length >= 1);
    assert.ok(seen.every((f) => f.kind === 'connect' && f.target === `registry.test:${tls.port}`));
  });

  it('createHttpClient (plain downloads, e.g. VEX repositories) uses the proxy too', async () => {
    const before = proxy.forwarded.length;
    const http = createHttpClient({ userAgent: 'test', env: { HTTP_PROXY: proxy.url } });
    try {
      const response = await http.request(`http://registry.test:${files.port}/vex-repository.json`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(1024), '{"name":"VEX"}');
    } finally {
      await http.close();
    }
    assert.equal(proxy.forwarded.length - before, 1);
    assert.equal(files.requestsFor('vex')[0]!.headers['user-agent'], 'test');
  });

  it('follows Go/Trivy rules for which URLs use which proxy', () => {
    const env = {
      HTTPS_PROXY: 'http://proxy:3128',
      HTTP_PROXY: 'proxy:8080',
      NO_PROXY: 'internal.example,.corp,registry.local:5000',
    };
    const to = (url: string): string | undefined => proxyFor(new URL(url), env);
    assert.equal(to('https://ghcr.io/v2/'), 'http://proxy:3128');
    assert.equal(to('http://mirror.example/v2/'), 'http://proxy:8080');
    assert.equal(to('https://internal.example/v2/'), undefined);
    assert.equal(to('https://a.internal.example/v2/'), undefined);
    assert.equal(to('https://git.corp/x'), undefined);
    assert.equal(to('https://registry.local:5000/v2/'), undefined);
    assert.equal(to('https://registry.local/v2/'), 'http://proxy:3128');
    assert.equal(to('https://127.0.0.1:5000/v2/'), undefined);
    assert.equal(to('http://localhost/v2/'), undefined);
    assert.equal(to('https://[::1]:5000/v2/'), undefined);
    assert.equal(
      proxyFor(new URL('https://ghcr.io'), { HTTP_PROXY: 'http://p:1' }),
      undefined,
      'HTTP_PROXY is not used for https',
    );
    assert.equal(proxyFor(new URL('https://ghcr.io'), { ...env, NO_PROXY: '*' }), undefined);
  });
});
