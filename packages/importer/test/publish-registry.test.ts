import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ImporterError } from '../src/errors.js';
import {
  PublishError,
  publishBundle,
  type PublishBundleResult,
  type PushedArtifact,
  type ToRegistryOptions,
} from '../src/index.js';
import { parseRegistryTarget, trivyRegistrySettings } from '../src/publish/target.js';
import {
  flipTarByte,
  makeTestCa,
  startRegistry,
  type BuiltBundle,
  type TestCa,
  type TestRegistry,
} from '@trivy-airgap/test-utils';
import { bundleFile, trustFile, writeBytes } from './helpers.js';

// `import --to-registry` against Debian's docker-registry (distribution 2.8) with htpasswd + TLS
// and with token auth; pushed tags are read back with skopeo (an independent client).

const run = promisify(execFile);
const work = await mkdtemp(join(tmpdir(), 'airgap-publish-registry-'));
let ca: TestCa;
let tls: TestRegistry;
let token: TestRegistry;
let trust: string;
let bundlePath: string;
let bundle: BuiltBundle;

before(async () => {
  ca = await makeTestCa(await mkdtemp(join(work, 'ca-')));
  [tls, token] = await Promise.all([
    startRegistry({ mode: 'htpasswd-tls', ca }),
    startRegistry({ mode: 'token', ca }),
  ]);
  trust = trustFile(work);
  ({ path: bundlePath, bundle } = bundleFile(work, {
    components: [
      { kind: 'db', options: { dbContents: 300_000 } },
      { kind: 'java-db', options: { dbContents: 100_000 } },
      { kind: 'checks', options: { checksVersion: '2.3.1' } },
      { kind: 'vex' },
    ],
  }));
  await writeFile(join(work, 'ca.crt'), ca.caCertPem);
});

after(async () => {
  await Promise.all([tls.stop(), token.stop()]);
  await rm(work, { recursive: true, force: true });
});

const KINDS = ['db', 'java-db', 'checks'] as const;

function tagOf(kind: (typeof KINDS)[number]): string {
  return kind === 'db' ? '2' : kind === 'java-db' ? '1' : '2';
}

function repositoryOf(kind: (typeof KINDS)[number]): string {
  return kind === 'db' ? 'trivy-db' : kind === 'java-db' ? 'trivy-java-db' : 'trivy-checks';
}

function registryOptions(
  reg: TestRegistry,
  password = Object.values(reg.users)[0]!,
): ToRegistryOptions['client'] {
  const username = Object.keys(reg.users)[0]!;
  return {
    transport: {
      userAgent: 'trivy-airgap-test/0.0.0',
      plainHttp: reg.mode !== 'htpasswd-tls',
      caCertPem: reg.mode === 'htpasswd-tls' ? ca.caCertPem : undefined,
      env: {},
      retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 20 },
    },
    credentials: { useDockerConfig: false, env: {}, username, password },
  };
}

async function publish(
  reg: TestRegistry,
  target: string,
  options: { password?: string; bundle?: string } = {},
): Promise<PublishBundleResult> {
  return publishBundle({
    bundle: options.bundle ?? bundlePath,
    trustFiles: [trust],
    workDir: work,
    toRegistry: { target, client: registryOptions(reg, options.password) },
  });
}

/** `skopeo inspect --raw` of a tag: the exact manifest bytes the registry serves. */
async function skopeoRaw(reg: TestRegistry, reference: string): Promise<Buffer> {
  const [user, password] = Object.entries(reg.users)[0]!;
  const transport = reg.mode === 'htpasswd-tls' ? ['--cert-dir', work] : ['--tls-verify=false'];
  const { stdout } = await run(
    'skopeo',
    ['inspect', '--raw', ...transport, '--creds', `${user}:${password}`, `docker://${reference}`],
    { encoding: 'buffer' },
  );
  return stdout;
}

async function skopeoFails(reg: TestRegistry, reference: string): Promise<string> {
  try {
    await skopeoRaw(reg, reference);
  } catch (error) {
    return String((error as { stderr?: Buffer }).stderr ?? error);
  }
  assert.fail(`${reference} exists, but should not`);
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function assertPublishError(
  promise: Promise<unknown>,
  code: PublishError['code'],
): Promise<PublishError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof PublishError, `expected PublishError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected PublishError ${code}, but it succeeded`);
}

interface SeenRequest {
  readonly method: string;
  readonly path: string;
}

interface CountingProxy {
  readonly host: string;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A reverse proxy in front of a registry that records every request (and may answer some
 * itself). The Host header is passed on, so the registry's upload locations point back here.
 */
async function startCountingProxy(
  reg: TestRegistry,
  intercept?: (req: IncomingMessage, body: Buffer, res: ServerResponse) => boolean,
): Promise<CountingProxy> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const secure = reg.mode === 'htpasswd-tls';
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0]! });
      if (intercept?.(req, body, res) === true) return;
      const send = secure ? httpsRequest : httpRequest;
      const upstream = send(
        {
          host: '127.0.0.1',
          port: reg.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          ...(secure ? { ca: ca.caCertPem } : {}),
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  };
  const server = secure
    ? createHttpsServer(
        { key: await readFile(ca.serverKeyPath), cert: await readFile(ca.serverCertPath) },
        listener,
      )
    : createHttpServer(listener);
  server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function uploads(requests: readonly SeenRequest[]): SeenRequest[] {
  return requests.filter((r) => r.method !== 'HEAD' && r.method !== 'GET');
}

describe('publish to a registry', () => {
  for (const mode of ['htpasswd-tls', 'token'] as const) {
    it(`${mode}: every tag has the bundle's manifest digest (skopeo), a second push uploads no blob`, async () => {
      const reg = mode === 'token' ? token : tls;
      const proxy = await startCountingProxy(reg);
      try {
        const first = await publish(reg, `${proxy.host}/mirror/aquasec`);
        const pushed = first.registry;
        assert.ok(pushed);
        assert.equal(pushed.target, `${proxy.host}/mirror/aquasec`);
        for (const kind of KINDS) {
          const artifact = bundle.artifacts.get(kind)!;
          const reference = `${reg.host}/mirror/aquasec/${repositoryOf(kind)}:${tagOf(kind)}`;
          const raw = await skopeoRaw(reg, reference);
          assert.equal(sha256(raw), artifact.manifestDigest, `${kind}: digest of ${reference}`);
          assert.deepEqual(raw, artifact.manifest);
          const result: PushedArtifact | undefined = pushed.artifacts.find((a) => a.kind === kind);
          assert.ok(result, kind);
          assert.equal(result.digest, artifact.manifestDigest);
          assert.equal(result.reference, `${proxy.host}/mirror/aquasec/${repositoryOf(kind)}:${tagOf(kind)}`);
          assert.ok(result.tagMoved);
        }
        // The shared empty config went up once and was mounted into the other repositories.
        const results = pushed.artifacts.flatMap((a) => a.blobs.map((b) => b.result));
        assert.equal(results.filter((r) => r === 'uploaded').length, 4, results.join(','));
        assert.equal(results.filter((r) => r === 'mounted').length, 2, results.join(','));
        assert.ok(uploads(proxy.requests).length > 0);
        assert.deepEqual(pushed.trivy.flags, [
          '--db-repository',
          `${proxy.host}/mirror/aquasec/trivy-db:2`,
          '--java-db-repository',
          `${proxy.host}/mirror/aquasec/trivy-java-db:1`,
          '--checks-bundle-repository',
          `${proxy.host}/mirror/aquasec/trivy-checks:2`,
          ...(mode === 'token' ? ['--insecure'] : []),
        ]);
        assert.ok(!pushed.trivy.flags.some((flag) => flag.startsWith('--skip')));
        assert.match(
          pushed.trivy.trivyYaml,
          /^db:\n {2}repository: \S+\/trivy-db:2\n {2}java-repository: \S+\/trivy-java-db:1$/m,
        );
        assert.match(
          pushed.trivy.trivyYaml,
          /^misconfiguration:\n {2}checks-bundle-repository: \S+\/trivy-checks:2$/m,
        );

        proxy.requests.length = 0;
        const second = await publish(reg, `${proxy.host}/mirror/aquasec`);
        assert.deepEqual(uploads(proxy.requests), [], 'the second push sent nothing but HEAD/GET');
        assert.ok(proxy.requests.every((r) => r.method === 'HEAD' || r.path === '/v2/'));
        for (const artifact of second.registry?.artifacts ?? []) {
          assert.ok(artifact.blobs.every((b) => b.result === 'exists'));
          assert.equal(artifact.tagMoved, false);
        }
      } finally {
        await proxy.close();
      }
    });

    it(`${mode}: wrong credentials fail with REGISTRY_UNAUTHORIZED and no tag exists afterwards`, async () => {
      const reg = mode === 'token' ? token : tls;
      const error = await assertPublishError(
        publish(reg, `${reg.host}/wrong-${mode}`, { password: 'not-the-password' }),
        'REGISTRY_UNAUTHORIZED',
      );
      assert.ok(!error.message.includes('not-the-password'));
      for (const kind of KINDS) {
        await skopeoFails(reg, `${reg.host}/wrong-${mode}/${repositoryOf(kind)}:${tagOf(kind)}`);
      }
    });
  }

  it('a registry that refuses a media type: MEDIA_TYPE_REJECTED names it and the answer; no tag moves', async () => {
    const refused = 'application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip';
    const proxy = await startCountingProxy(token, (req, body, res) => {
      if (req.method !== 'PUT' || !(req.url ?? '').includes('/manifests/')) return false;
      if (!body.toString('utf8').includes(refused)) return false;
      const text = JSON.stringify({
        errors: [
          { code: 'MANIFEST_INVALID', message: `manifest invalid: layer media type ${refused} not allowed` },
        ],
      });
      res.writeHead(400, { 'content-type': 'application/json', 'content-length': String(text.length) });
      res.end(text);
      return true;
    });
    try {
      const error = await assertPublishError(publish(token, `${proxy.host}/picky`), 'MEDIA_TYPE_REJECTED');
      assert.ok(error.mediaTypes.includes(refused), error.mediaTypes.join(','));
      assert.ok(error.message.includes(refused));
      assert.ok(error.message.includes('not allowed'), error.message);
      assert.equal(error.status, 400);
      // Manifests go up by digest before any tag moves: the DB was accepted, yet is not tagged.
      for (const kind of KINDS) {
        await skopeoFails(token, `${token.host}/picky/${repositoryOf(kind)}:${tagOf(kind)}`);
      }
    } finally {
      await proxy.close();
    }
  });

  it('valid credentials without push permission: REGISTRY_DENIED, no tag', async () => {
    const proxy = await startCountingProxy(token, (req, _body, res) => {
      if (req.method !== 'POST') return false;
      const text = JSON.stringify({
        errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }],
      });
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': String(text.length) });
      res.end(text);
      return true;
    });
    try {
      const error = await assertPublishError(publish(token, `${proxy.host}/readonly`), 'REGISTRY_DENIED');
      assert.equal(error.status, 403);
      assert.match(error.registryAnswer ?? '', /DENIED/);
      await skopeoFails(token, `${token.host}/readonly/trivy-db:2`);
    } finally {
      await proxy.close();
    }
  });

  it('a bundle that fails verification pushes nothing at all', async () => {
    // The shared config blob: a digest failure no layer inspection could report first.
    const config = bundle.offsets.get(
      `oci/blobs/sha256/${bundle.artifacts.get('db')!.configDigest.slice(7)}`,
    )!;
    const tampered = writeBytes(work, flipTarByte(bundle, config.body));
    const proxy = await startCountingProxy(token);
    try {
      await assert.rejects(
        publish(token, `${proxy.host}/tampered`, { bundle: tampered }),
        (error: unknown) => error instanceof ImporterError && error.code === 'BUNDLE_DIGEST_MISMATCH',
      );
      assert.deepEqual(proxy.requests, []);
    } finally {
      await proxy.close();
    }
  });

  it('anti-rollback: a tag never moves to older content unless allowDowngrade (nothing sent before)', async () => {
    const newer = bundleFile(work, {
      components: [
        { kind: 'db', options: { created: '2026-11-25T06:20:00Z' } },
        { kind: 'checks', options: { checksVersion: '2.3.0', created: '2026-11-20T00:00:00Z' } },
      ],
    });
    const older = bundleFile(work, {
      components: [
        { kind: 'db', options: { created: '2026-11-24T06:20:00Z', dbContents: 10 } },
        { kind: 'checks', options: { checksVersion: '2.2.0', created: '2026-11-25T00:00:00Z' } },
      ],
    });
    await publish(token, `${token.host}/rollback`, { bundle: newer.path });
    const proxy = await startCountingProxy(token);
    try {
      const error = await assertPublishError(
        publish(token, `${proxy.host}/rollback`, { bundle: older.path }),
        'DOWNGRADE_REFUSED',
      );
      assert.match(error.message, /trivy-db:2/);
      assert.deepEqual(uploads(proxy.requests), []);
      for (const kind of ['db', 'checks'] as const) {
        const raw = await skopeoRaw(token, `${token.host}/rollback/${repositoryOf(kind)}:${tagOf(kind)}`);
        assert.equal(sha256(raw), newer.bundle.artifacts.get(kind)!.manifestDigest, kind);
      }
      const forced = await publishBundle({
        bundle: older.path,
        trustFiles: [trust],
        workDir: work,
        allowDowngrade: true,
        toRegistry: { target: `${token.host}/rollback`, client: registryOptions(token) },
      });
      assert.ok(forced.registry?.artifacts.every((artifact) => artifact.tagMoved));
      const raw = await skopeoRaw(token, `${token.host}/rollback/trivy-checks:2`);
      assert.equal(sha256(raw), older.bundle.artifacts.get('checks')!.manifestDigest);
    } finally {
      await proxy.close();
    }
  });

  it('a signed bundle that lacks a blob its manifest names: BUNDLE_CONTENT_INVALID, nothing sent', async () => {
    const config = `oci/blobs/sha256/${bundle.artifacts.get('db')!.configDigest.slice(7)}`;
    const { path } = bundleFile(work, {
      components: [{ kind: 'db' }],
      editManifest: (manifest) => {
        manifest.files = (manifest.files as { path: string }[]).filter((file) => file.path !== config);
      },
      editEntries: (entries) => entries.filter((entry) => entry.name !== config),
    });
    const proxy = await startCountingProxy(token);
    try {
      await assert.rejects(
        publish(token, `${proxy.host}/incomplete`, { bundle: path }),
        (error: unknown) => error instanceof ImporterError && error.code === 'BUNDLE_CONTENT_INVALID',
      );
      assert.deepEqual(proxy.requests, []);
    } finally {
      await proxy.close();
    }
  });

  it('a bundle without OCI artifacts: NOTHING_TO_PUBLISH', async () => {
    const { path } = bundleFile(work, { components: [{ kind: 'vex' }] });
    await assertPublishError(publish(token, `${token.host}/none`, { bundle: path }), 'NOTHING_TO_PUBLISH');
  });
});

describe('registry target and client settings', () => {
  it('parses HOST[:PORT][/PREFIX]', () => {
    assert.deepEqual(parseRegistryTarget('registry.example.com'), {
      registry: 'registry.example.com',
      prefix: '',
    });
    assert.deepEqual(parseRegistryTarget('127.0.0.1:5000/mirror/aquasec/'), {
      registry: '127.0.0.1:5000',
      prefix: 'mirror/aquasec',
    });
    assert.deepEqual(parseRegistryTarget('localhost/trivy'), { registry: 'localhost', prefix: 'trivy' });
  });

  for (const bad of [
    '',
    'https://registry.example.com',
    'registry/trivy', // Docker Hub namespace, not a host
    'registry.example.com/Upper',
    'registry.example.com/trivy:2',
    'registry.example.com/a@b',
  ]) {
    it(`refuses ${JSON.stringify(bad)} with TARGET_INVALID`, () => {
      assert.throws(
        () => parseRegistryTarget(bad),
        (error: unknown) => error instanceof PublishError && error.code === 'TARGET_INVALID',
      );
    });
  }

  it('client settings: flags and trivy.yaml for what was pushed, no skip flags', () => {
    const settings = trivyRegistrySettings({
      db: 'r.example/trivy-db:2',
      checks: 'r.example/trivy-checks:1',
    });
    assert.deepEqual(settings.flags, [
      '--db-repository',
      'r.example/trivy-db:2',
      '--checks-bundle-repository',
      'r.example/trivy-checks:1',
    ]);
    assert.equal(
      settings.trivyYaml,
      [
        '# Written by trivy-airgap: pull Trivy content from the site registry.',
        'db:',
        '  repository: r.example/trivy-db:2',
        'misconfiguration:',
        '  checks-bundle-repository: r.example/trivy-checks:1',
        '',
      ].join('\n'),
    );
  });
});
