import assert from 'node:assert/strict';
import { X509Certificate, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  makeTestCa,
  respond,
  startProxy,
  startRegistry,
  startRouteServer,
  startTokenServer,
  type TestCa,
} from '../src/index.js';

/** The harness must be trustworthy, or tests built on it prove nothing. Every request here goes to 127.0.0.1. */

const work = await mkdtemp(join(tmpdir(), 'airgap-harness-'));
let ca: TestCa;
before(async () => {
  ca = await makeTestCa(work);
});
after(() => rm(work, { recursive: true, force: true }));

/** GET on loopback; `path` may be an absolute URI (a proxy request). */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    })
      .on('error', reject)
      .end();
  });
}

describe('route server', () => {
  it('counts hits, honours maxHits and fails close() on any unexpected request', async () => {
    const server = await startRouteServer([
      { name: 'once', path: '/x', maxHits: 1, handle: respond(200, {}, 'ok') },
    ]);
    assert.equal((await get(server.port, '/x')).status, 200);
    assert.equal((await get(server.port, '/x')).status, 500);
    assert.equal((await get(server.port, '/other')).status, 500);
    assert.equal(server.hits('once'), 1);
    assert.deepEqual(
      server.unexpected.map((r) => r.url),
      ['/x', '/other'],
    );
    await assert.rejects(server.close());
  });
});

describe('proxy', () => {
  it('refuses targets off loopback (CONNECT and absolute URI) without connecting to them', async () => {
    const proxy = await startProxy();
    const port = Number(new URL(proxy.url).port);
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
        });
        let data = '';
        socket.on('data', (c: Buffer) => (data += c.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.1 403/);
      assert.equal((await get(port, 'http://example.com/')).status, 403);
    } finally {
      await proxy.close();
    }
    assert.deepEqual(proxy.forwarded, []);
    assert.equal(proxy.refused.length, 2);
  });
});

describe('token server', () => {
  it('issues ES256 JWTs in the shape distribution 2.8 accepts, with pull for anonymous and push for users', async () => {
    const server = await startTokenServer({
      issuer: 'iss',
      service: 'svc',
      signingKeyPem: ca.tokenKeyPem,
      signingCertPem: ca.tokenCertPem,
      users: { alice: 'pw' },
    });
    const port = Number(new URL(server.realm).port);
    try {
      const scope = encodeURIComponent('repository:a/b:pull,push');
      const anonymous = JSON.parse((await get(port, `/token?service=svc&scope=${scope}`)).body) as {
        token: string;
      };
      const user = JSON.parse(
        (
          await get(port, `/token?service=svc&scope=${scope}`, {
            authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}`,
          })
        ).body,
      ) as { token: string };
      const wrong = await get(port, `/token?scope=${scope}`, {
        authorization: `Basic ${Buffer.from('alice:no').toString('base64')}`,
      });
      assert.equal(wrong.status, 401);

      const decode = (
        token: string,
      ): { header: Record<string, unknown>; claims: Record<string, unknown>; ok: boolean } => {
        const [h, c, sig] = token.split('.') as [string, string, string];
        const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
        const cert = new X509Certificate(Buffer.from((header.x5c as string[])[0]!, 'base64'));
        const ok = verify(
          'sha256',
          Buffer.from(`${h}.${c}`),
          { key: cert.publicKey, dsaEncoding: 'ieee-p1363' },
          Buffer.from(sig, 'base64url'),
        );
        return {
          header,
          claims: JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, unknown>,
          ok,
        };
      };
      const a = decode(anonymous.token);
      assert.equal(a.ok, true, 'raw r‖s signature verifies with the x5c certificate');
      assert.equal(a.header.alg, 'ES256');
      assert.equal(a.claims.aud, 'svc');
      assert.equal(a.claims.iss, 'iss');
      assert.ok(Number.isInteger(a.claims.exp));
      assert.deepEqual(a.claims.access, [{ type: 'repository', name: 'a/b', actions: ['pull'] }]);
      assert.deepEqual(decode(user.token).claims.access, [
        { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
      ]);
    } finally {
      await server.close();
    }
  });
});

describe('docker-registry', () => {
  it('starts on a random loopback port and is gone after stop()', async () => {
    const registry = await startRegistry({ mode: 'plain' });
    const ping = await get(registry.port, '/v2/');
    assert.equal(ping.status, 200);
    await registry.stop();
    await assert.rejects(
      get(registry.port, '/v2/'),
      (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
    );
  });
});
