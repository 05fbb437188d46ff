import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { digestOfBytes, type Digest } from '@trivy-airgap/format';
import {
  makeTestCa,
  startRegistry,
  trivyArtifact,
  type FixtureArtifact,
  type TestCa,
  type TestRegistry,
} from '@trivy-airgap/test-utils';
import {
  OciError,
  OciLayout,
  RegistryClient,
  parseImageManifest,
  pullToLayout,
  pushFromLayout,
  type CredentialOptions,
  type Descriptor,
  type OciEvent,
  type RegistryClientOptions,
} from '../src/index.js';

const work = await mkdtemp(join(tmpdir(), 'airgap-oci-registry-'));
let ca: TestCa;
const registries: Partial<Record<TestRegistry['mode'], TestRegistry>> = {};
const clients: RegistryClient[] = [];

before(async () => {
  ca = await makeTestCa(await mkdtemp(join(work, 'ca-')));
  const [plain, tls, token] = await Promise.all([
    startRegistry({ mode: 'plain' }),
    startRegistry({ mode: 'htpasswd-tls', ca }),
    startRegistry({ mode: 'token', ca }),
  ]);
  registries.plain = plain;
  registries['htpasswd-tls'] = tls;
  registries.token = token;
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(Object.values(registries).map((r) => r.stop()));
  await rm(work, { recursive: true, force: true });
});

function registry(mode: TestRegistry['mode']): TestRegistry {
  const found = registries[mode];
  assert.ok(found, `registry ${mode} not started`);
  return found;
}

function client(
  reg: TestRegistry,
  options: {
    anonymous?: boolean;
    credentials?: CredentialOptions;
    events?: OciEvent[];
  } & Partial<RegistryClientOptions> = {},
): RegistryClient {
  const [username, password] = Object.entries(reg.users)[0]!;
  const credentials: CredentialOptions =
    options.credentials ??
    (options.anonymous === true
      ? { useDockerConfig: false, env: {} }
      : { useDockerConfig: false, env: {}, username, password });
  const created = new RegistryClient({
    transport: {
      userAgent: 'trivy-airgap-test/0.0.0',
      plainHttp: reg.mode !== 'htpasswd-tls',
      caCertPem: reg.mode === 'htpasswd-tls' ? ca.caCertPem : undefined,
      env: {},
      retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 20 },
    },
    credentials,
    onEvent: (event) => options.events?.push(event),
    monolithicUploadLimit: options.monolithicUploadLimit,
    uploadChunkSize: options.uploadChunkSize,
  });
  clients.push(created);
  return created;
}

function descriptors(artifact: FixtureArtifact): { config: Descriptor; layer: Descriptor } {
  const manifest = parseImageManifest(artifact.manifest);
  return { config: manifest.config, layer: manifest.layers[0]! };
}

async function pushArtifact(c: RegistryClient, ref: string, artifact: FixtureArtifact): Promise<void> {
  const { config, layer } = descriptors(artifact);
  await c.pushBlob(ref, config, () => Readable.from([artifact.config]));
  await c.pushBlob(ref, layer, () => Readable.from([artifact.layer]));
  await c.pushManifest(ref, artifact.manifest, 'application/vnd.oci.image.manifest.v1+json');
}

async function assertOciError(promise: Promise<unknown>, code: OciError['code']): Promise<OciError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OciError, `expected OciError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected OciError ${code}, but it succeeded`);
}

describe('round trip of a Trivy-shaped artifact through a real registry', () => {
  for (const mode of ['plain', 'htpasswd-tls', 'token'] as const) {
    it(`${mode}: push, pull back byte-identical, digests preserved`, async () => {
      const reg = registry(mode);
      const artifact = trivyArtifact('db', { dbContents: 200_000 });
      const { layer } = descriptors(artifact);
      assert.equal(layer.mediaType, 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip');
      assert.equal(layer.annotations?.['org.opencontainers.image.title'], 'db.tar.gz');
      const ref = `${reg.host}/aquasecurity/trivy-db:2`;
      await pushArtifact(client(reg), ref, artifact);

      // Pull as an anonymous reader where the registry allows it (token mode), else with the user.
      const reader = client(reg, { anonymous: mode !== 'htpasswd-tls' });
      const manifest = await reader.getManifest(ref);
      assert.equal(manifest.digest, artifact.manifestDigest);
      assert.deepEqual(manifest.bytes, artifact.manifest);
      assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');

      const byDigest = await reader.getManifest(
        `${reg.host}/aquasecurity/trivy-db@${artifact.manifestDigest}`,
      );
      assert.deepEqual(byDigest.bytes, artifact.manifest);

      const seen: Buffer[] = [];
      const dest = join(work, `${mode}-layer`);
      const result = await reader.downloadBlob(ref, layer, dest, { onData: (chunk) => seen.push(chunk) });
      assert.equal(result.digest, artifact.layerDigest);
      assert.deepEqual(await readFile(dest), artifact.layer);
      assert.deepEqual(Buffer.concat(seen), artifact.layer);

      const opened = await reader.openBlob(ref, descriptors(artifact).config);
      const configBytes: Buffer[] = [];
      for await (const chunk of opened as AsyncIterable<Buffer>) configBytes.push(chunk);
      assert.equal(Buffer.concat(configBytes).toString(), '{}');
    });
  }

  it('pushing the same artifact twice uploads nothing the second time', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('java-db', { dbContents: 50_000 });
    const ref = `${reg.host}/aquasecurity/trivy-java-db:1`;
    await pushArtifact(client(reg), ref, artifact);
    const events: OciEvent[] = [];
    await pushArtifact(client(reg, { events }), ref, artifact);
    const types = events.map((e) => e.type).filter((t) => t.startsWith('blob-') || t.startsWith('manifest-'));
    assert.deepEqual(types, ['blob-exists', 'blob-exists', 'manifest-exists']);
  });

  it('uploads large blobs in PATCH chunks (distribution ignores one-request POST uploads)', async () => {
    const reg = registry('plain');
    const artifact = trivyArtifact('db', { dbContents: 300_000 });
    const ref = `${reg.host}/chunked/trivy-db:2`;
    const c = client(reg, { monolithicUploadLimit: 1000, uploadChunkSize: 64 * 1024 });
    await pushArtifact(c, ref, artifact);
    const { layer } = descriptors(artifact);
    const dest = join(work, 'chunked-layer');
    await client(reg).downloadBlob(ref, layer, dest);
    assert.deepEqual(await readFile(dest), artifact.layer);
  });

  it('mounts a blob from another repository instead of uploading it', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('checks');
    await pushArtifact(client(reg), `${reg.host}/source/trivy-checks:2`, artifact);
    const events: OciEvent[] = [];
    const c = client(reg, { events });
    const { layer } = descriptors(artifact);
    const result = await c.pushBlob(`${reg.host}/copy/trivy-checks:2`, layer, () => Readable.from([]), {
      mountFrom: ['source/trivy-checks'],
    });
    assert.equal(result, 'mounted');
    assert.ok(await c.blobExists(`${reg.host}/copy/trivy-checks`, layer.digest));
  });

  it('tags an existing manifest', async () => {
    const reg = registry('plain');
    const artifact = trivyArtifact('db', { dbContents: 1000 });
    await pushArtifact(client(reg), `${reg.host}/tagging/trivy-db:2`, artifact);
    const c = client(reg);
    const tagged = await c.tagManifest(
      `${reg.host}/tagging/trivy-db:latest`,
      artifact.manifestDigest as Digest,
    );
    assert.equal(tagged.digest, artifact.manifestDigest);
    assert.equal(
      (await c.getManifest(`${reg.host}/tagging/trivy-db:latest`)).digest,
      artifact.manifestDigest,
    );
  });

  it('copies registry → layout → another repository with digests kept (pullToLayout / pushFromLayout)', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('db', { dbContents: 100_000 });
    await pushArtifact(client(reg), `${reg.host}/upstream/trivy-db:2`, artifact);
    const layout = await OciLayout.open(join(work, 'copy-layout'), { create: true });
    const layerBytes: Buffer[] = [];
    const pulled = await pullToLayout(
      client(reg, { anonymous: true }),
      `${reg.host}/upstream/trivy-db:2`,
      layout,
      {
        refName: 'trivy-db:2',
        onLayerData: (_layer, chunk) => layerBytes.push(chunk),
      },
    );
    assert.equal(pulled.manifest.digest, artifact.manifestDigest);
    assert.deepEqual(Buffer.concat(layerBytes), artifact.layer);
    assert.equal((await layout.resolve('trivy-db:2')).digest, artifact.manifestDigest);
    const pushed = await pushFromLayout(
      client(reg),
      layout,
      'trivy-db:2',
      `${reg.host}/internal/trivy-db:2`,
      {
        mountFrom: ['upstream/trivy-db'],
      },
    );
    assert.equal(pushed.digest, artifact.manifestDigest);
    assert.equal(
      (await client(reg).getManifest(`${reg.host}/internal/trivy-db:2`)).digest,
      artifact.manifestDigest,
    );
  });
});

describe('auth against real registries', () => {
  it('token registry: anonymous push is refused with UNAUTHORIZED (pull still works)', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('db', { dbContents: 1000 });
    const anonymous = client(reg, { anonymous: true });
    const error = await assertOciError(
      anonymous.pushBlob(`${reg.host}/anon/trivy-db:2`, descriptors(artifact).layer, () =>
        Readable.from([artifact.layer]),
      ),
      'UNAUTHORIZED',
    );
    assert.equal(error.status, 401);
    assert.ok(error.hint !== undefined, 'the error tells the user how to authenticate');
  });

  it('htpasswd registry: anonymous pull and a wrong password are UNAUTHORIZED, and the password is not in the error', async () => {
    const reg = registry('htpasswd-tls');
    await assertOciError(
      client(reg, { anonymous: true }).getManifest(`${reg.host}/any/thing:1`),
      'UNAUTHORIZED',
    );
    const wrong = client(reg, {
      credentials: { useDockerConfig: false, env: {}, username: 'pusher', password: 'not-the-secret-xyz' },
    });
    const error = await assertOciError(wrong.getManifest(`${reg.host}/any/thing:1`), 'UNAUTHORIZED');
    assert.ok(
      !JSON.stringify({ m: error.message, h: error.hint, u: error.url }).includes('not-the-secret-xyz'),
    );
  });

  it('token registry: a wrong password is refused by the token server', async () => {
    const reg = registry('token');
    const wrong = client(reg, {
      credentials: { useDockerConfig: false, env: {}, username: 'pusher', password: 'wrong-password-123' },
    });
    const error = await assertOciError(wrong.getManifest(`${reg.host}/x/y:1`), 'UNAUTHORIZED');
    assert.ok(!error.message.includes('wrong-password-123'));
  });

  it('reuses a token per scope instead of asking the token server for every request', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('db', { dbContents: 1000 });
    await pushArtifact(client(reg), `${reg.host}/cache/trivy-db:2`, artifact);
    const before = reg.tokenServer!.requests.length;
    const reader = client(reg, { anonymous: true });
    for (let i = 0; i < 3; i++) await reader.getManifest(`${reg.host}/cache/trivy-db:2`);
    assert.equal(reg.tokenServer!.requests.length - before, 1);
  });

  it('concurrent pulls that need the same token share one token request', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('db', { dbContents: 1000 });
    const ref = `${reg.host}/cache/trivy-java-db:1`;
    await pushArtifact(client(reg), ref, artifact);
    const tokens = reg.tokenServer!;
    const before = tokens.requests.length;
    // A slow token server: every pull meets its 401 while the first token is still on its way.
    tokens.setAnswerDelay(150);
    const reader = client(reg, { anonymous: true });
    const pulls = 6;
    try {
      const pulled = await Promise.all(
        Array.from({ length: pulls }, async (_, i) => {
          const layout = await OciLayout.open(join(work, `concurrent-${i}`), { create: true });
          return pullToLayout(reader, ref, layout, { refName: '1' });
        }),
      );
      for (const { manifest } of pulled) assert.equal(manifest.digest, artifact.manifestDigest);
    } finally {
      tokens.setAnswerDelay(0);
    }
    assert.equal(tokens.requests.length - before, 1, `${pulls} concurrent pulls, one token request`);
  });

  it('a pull cancelled while it waits for a shared token leaves the other pull its token', async () => {
    const reg = registry('token');
    const artifact = trivyArtifact('db', { dbContents: 1000 });
    const ref = `${reg.host}/cache/trivy-checks:1`;
    await pushArtifact(client(reg), ref, artifact);
    const tokens = reg.tokenServer!;
    const reader = client(reg, { anonymous: true });
    // The client learns the registry's challenge here, so the two pulls below need no 401 first:
    // both ask for the token of their scope at once, before any of them waits on the network.
    const warm = `${reg.host}/cache/warm-up:1`;
    await pushArtifact(client(reg), warm, artifact);
    await reader.getManifest(warm);
    const before = tokens.requests.length;
    tokens.setAnswerDelay(300);
    const cancel = new AbortController();
    try {
      const cancelled = reader.getManifest(ref, { signal: cancel.signal });
      const kept = reader.getManifest(ref);
      // The token server has the (one) request and holds its answer: cancel one of the two waiters.
      while (tokens.requests.length === before) await new Promise((resolve) => setTimeout(resolve, 5));
      cancel.abort();
      await assertOciError(cancelled, 'ABORTED');
      assert.equal((await kept).digest, artifact.manifestDigest);
    } finally {
      tokens.setAnswerDelay(0);
    }
    assert.equal(tokens.requests.length - before, 1);
  });

  it('TLS registry without the CA is a TLS error, not a retry loop', async () => {
    const reg = registry('htpasswd-tls');
    const c = new RegistryClient({
      transport: { userAgent: 'test', env: {}, retry: { maxAttempts: 3, baseDelayMs: 1 } },
      credentials: { useDockerConfig: false, env: {} },
    });
    clients.push(c);
    await assertOciError(c.getManifest(`${reg.host}/x/y:1`), 'TLS');
  });

  it('--insecure skips verification of the TLS registry', async () => {
    const reg = registry('htpasswd-tls');
    const [username, password] = Object.entries(reg.users)[0]!;
    const c = new RegistryClient({
      transport: { userAgent: 'test', env: {}, insecure: true },
      credentials: { useDockerConfig: false, env: {}, username, password },
    });
    clients.push(c);
    await assertOciError(c.getManifest(`${reg.host}/never/pushed:1`), 'MANIFEST_UNKNOWN');
  });

  it("reads credentials from Docker's config.json (auths) and from a credential helper", async () => {
    const reg = registry('htpasswd-tls');
    const [username, password] = Object.entries(reg.users)[0]!;
    const artifact = trivyArtifact('db', { dbContents: 500 });
    await pushArtifact(client(reg), `${reg.host}/dockercfg/trivy-db:2`, artifact);

    const configDir = await mkdtemp(join(work, 'docker-'));
    await writeFile(
      join(configDir, 'config.json'),
      JSON.stringify({
        auths: { [reg.host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } },
      }),
    );
    const fromAuths = client(reg, { credentials: { env: { DOCKER_CONFIG: configDir } } });
    assert.equal(
      (await fromAuths.getManifest(`${reg.host}/dockercfg/trivy-db:2`)).digest,
      artifact.manifestDigest,
    );

    const binDir = await mkdtemp(join(work, 'bin-'));
    const helper = join(binDir, 'docker-credential-airgaptest');
    await writeFile(
      helper,
      `#!/bin/sh\nread server\nif [ "$server" = "${reg.host}" ]; then\n  printf '{"ServerURL":"%s","Username":"${username}","Secret":"${password}"}' "$server"\nelse\n  echo "credentials not found in native keychain"; exit 1\nfi\n`,
    );
    await chmod(helper, 0o755);
    const helperConfig = await mkdtemp(join(work, 'docker-'));
    await writeFile(
      join(helperConfig, 'config.json'),
      JSON.stringify({ credHelpers: { [reg.host]: 'airgaptest' } }),
    );
    const events: OciEvent[] = [];
    const fromHelper = client(reg, {
      events,
      credentials: { env: { DOCKER_CONFIG: helperConfig, PATH: `${binDir}:${process.env.PATH ?? ''}` } },
    });
    assert.equal(
      (await fromHelper.getManifest(`${reg.host}/dockercfg/trivy-db:2`)).digest,
      artifact.manifestDigest,
    );
    assert.ok(events.some((e) => e.type === 'credentials' && e.source === 'credential-helper'));
  });
});

describe('registry errors', () => {
  it("a missing tag is MANIFEST_UNKNOWN with the registry's status and code", async () => {
    const reg = registry('plain');
    const error = await assertOciError(
      client(reg).getManifest(`${reg.host}/nothing/here:2`),
      'MANIFEST_UNKNOWN',
    );
    assert.equal(error.status, 404);
    assert.deepEqual(error.registryCodes, ['MANIFEST_UNKNOWN']);
  });

  it("a missing blob is BLOB_UNKNOWN with the registry's code", async () => {
    const reg = registry('plain');
    const missing = { mediaType: 'application/octet-stream', digest: digestOfBytes('missing'), size: 7 };
    const error = await assertOciError(
      client(reg).downloadBlob(`${reg.host}/nothing/here`, missing, join(work, 'missing')),
      'BLOB_UNKNOWN',
    );
    assert.equal(error.status, 404);
    assert.deepEqual(error.registryCodes, ['BLOB_UNKNOWN']);
  });

  it('a push whose source bytes do not match the descriptor fails as DIGEST_MISMATCH and stores nothing', async () => {
    const reg = registry('plain');
    const artifact = trivyArtifact('db', { dbContents: 4000 });
    const { layer } = descriptors(artifact);
    const wrong = Buffer.from(artifact.layer);
    wrong[100] = wrong[100]! ^ 1;
    const c = client(reg);
    const ref = `${reg.host}/corrupt/trivy-db:2`;
    const error = await assertOciError(
      c.pushBlob(ref, layer, () => Readable.from([wrong])),
      'DIGEST_MISMATCH',
    );
    assert.equal(error.side, 'source');
    assert.equal(await c.blobExists(ref, layer.digest), false);
    await assertOciError(
      c.pushBlob(ref, layer, () => Readable.from([artifact.layer, Buffer.from('x')])),
      'SIZE_MISMATCH',
    );
  });

  it('a push whose source cannot be read fails with the read error, without retrying the upload', async () => {
    const reg = registry('plain');
    const blob = { mediaType: 'application/octet-stream', digest: digestOfBytes('never written'), size: 13 };
    const events: OciEvent[] = [];
    await assert.rejects(
      client(reg, { events }).pushBlob(`${reg.host}/unreadable/x:1`, blob, () =>
        createReadStream(join(work, 'does-not-exist')),
      ),
      (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT',
    );
    assert.equal(events.filter((e) => e.type === 'retry').length, 0);
  });

  it('a manifest referencing a blob the registry lacks is refused', async () => {
    const reg = registry('plain');
    const artifact = trivyArtifact('db', { dbContents: 321 });
    await assertOciError(
      client(reg).pushManifest(`${reg.host}/no-blobs/trivy-db:2`, artifact.manifest),
      'MANIFEST_INVALID',
    );
  });
});
