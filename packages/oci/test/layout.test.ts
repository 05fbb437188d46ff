import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { digestOfBytes, type Digest } from '@trivy-airgap/format';
import { startRegistry, trivyArtifact, writeOciLayout, type TestRegistry } from '@trivy-airgap/test-utils';
import {
  OciError,
  OciLayout,
  RegistryClient,
  parseImageManifest,
  pullToLayout,
  type Descriptor,
} from '../src/index.js';
import { MEDIA_TYPES } from '../src/manifest.js';

const run = promisify(execFile);
const work = await mkdtemp(join(tmpdir(), 'airgap-oci-layout-'));
let registry: TestRegistry;
let client: RegistryClient;

before(async () => {
  registry = await startRegistry({ mode: 'plain' });
  client = new RegistryClient({
    transport: {
      userAgent: 'trivy-airgap-test/0.0.0',
      plainHttp: true,
      env: {},
      retry: { maxAttempts: 2, baseDelayMs: 5 },
    },
    credentials: { useDockerConfig: false, env: {} },
  });
});
after(async () => {
  await client.close();
  await registry.stop();
  await rm(work, { recursive: true, force: true });
});

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

/** skopeo with no host policy or credentials involved; plain HTTP registries need tls-verify=false. */
async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', ['--insecure-policy', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** Writes a Trivy-shaped artifact into a layout with our own OciLayout. */
async function writeArtifact(
  layout: OciLayout,
  refName: string,
  artifact: ReturnType<typeof trivyArtifact>,
): Promise<Descriptor> {
  const manifest = parseImageManifest(artifact.manifest);
  await layout.writeBlobBytes(artifact.config, manifest.config.mediaType);
  await layout.writeBlob(
    manifest.layers[0]!,
    Readable.from([artifact.layer.subarray(0, 1000), artifact.layer.subarray(1000)]),
  );
  return layout.addManifest(artifact.manifest, refName);
}

describe('OCI image layout store', () => {
  it('creates oci-layout and an empty index.json, and refuses a directory that is not a layout', async () => {
    const dir = join(work, 'new');
    await expectOciError(OciLayout.open(dir), 'LAYOUT_INVALID');
    await OciLayout.open(dir, { create: true });
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), {
      imageLayoutVersion: '1.0.0',
    });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
      schemaVersion: number;
      manifests: unknown[];
    };
    assert.equal(index.schemaVersion, 2);
    assert.deepEqual(index.manifests, []);
    await OciLayout.open(dir);
  });

  it('validates a digest before it becomes a path', async () => {
    const layout = await OciLayout.open(join(work, 'paths'), { create: true });
    for (const bad of [
      '../../etc/passwd',
      'sha256:../../x',
      `sha256:${'A'.repeat(64)}`,
      `sha512:${'a'.repeat(128)}`,
      '',
    ]) {
      assert.throws(
        () => layout.blobPath(bad),
        (e: unknown) => e instanceof OciError && e.code === 'LAYOUT_INVALID',
        bad,
      );
    }
    const good = digestOfBytes('x');
    assert.equal(layout.blobPath(good), join(work, 'paths', 'blobs', 'sha256', good.slice(7)));
  });

  it('writeBlob verifies digest and size before the blob appears, and leaves no temp file behind', async () => {
    const dir = join(work, 'verify');
    const layout = await OciLayout.open(dir, { create: true });
    const bytes = Buffer.from('layer bytes');
    const descriptor: Descriptor = {
      mediaType: 'application/octet-stream',
      digest: digestOfBytes(bytes),
      size: bytes.length,
    };
    await expectOciError(layout.writeBlob(descriptor, [Buffer.from('layer bytez')]), 'DIGEST_MISMATCH');
    await expectOciError(layout.writeBlob(descriptor, [bytes, Buffer.from('!')]), 'SIZE_MISMATCH');
    await expectOciError(layout.writeBlob(descriptor, [bytes.subarray(0, 5)]), 'SIZE_MISMATCH');
    assert.equal(await layout.hasBlob(descriptor), false);
    assert.deepEqual(await readdir(join(dir, 'blobs', 'sha256')), []);
    const seen: Buffer[] = [];
    await layout.writeBlob(descriptor, [bytes], { onData: (c) => seen.push(c) });
    assert.ok(await layout.hasBlob(descriptor));
    assert.deepEqual(Buffer.concat(seen), bytes);
    assert.deepEqual(await readdir(join(dir, 'blobs', 'sha256')), [descriptor.digest.slice(7)]);
  });

  it('a blob changed on disk is caught when it is read back', async () => {
    const layout = await OciLayout.open(join(work, 'tamper'), { create: true });
    const descriptor = await layout.writeBlobBytes(Buffer.from('{"a":1}'), 'application/json');
    await writeFile(layout.blobPath(descriptor.digest), '{"a":2}');
    const error = await expectOciError(layout.readBlob(descriptor), 'DIGEST_MISMATCH');
    assert.equal(error.side, 'destination');
    const stream = layout.openBlob(descriptor);
    await expectOciError(
      new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject).resume()),
      'DIGEST_MISMATCH',
    );
  });

  it('names manifests in index.json with org.opencontainers.image.ref.name; re-adding a name replaces it', async () => {
    const layout = await OciLayout.open(join(work, 'refs'), { create: true });
    const db = trivyArtifact('db', { dbContents: 2000 });
    const javaDb = trivyArtifact('java-db', { dbContents: 2000 });
    await writeArtifact(layout, 'trivy-db:2', db);
    await writeArtifact(layout, 'trivy-java-db:1', javaDb);
    assert.equal((await layout.resolve('trivy-db:2')).digest, db.manifestDigest);
    const newer = trivyArtifact('db', { dbContents: 2000, created: '2026-11-26T00:00:00Z' });
    await writeArtifact(layout, 'trivy-db:2', newer);
    const refs = await layout.listRefs();
    assert.deepEqual(refs.map((r) => r.refName).sort(), ['trivy-db:2', 'trivy-java-db:1']);
    assert.equal((await layout.resolve('trivy-db:2')).digest, newer.manifestDigest);
    assert.equal((await layout.resolve('trivy-db:2')).mediaType, MEDIA_TYPES.ociManifest);
    await expectOciError(layout.resolve('trivy-checks:2'), 'LAYOUT_REF_UNKNOWN');
  });
});

describe('cross-checks with skopeo', () => {
  it('a layout written by OciLayout is copied by skopeo to a registry with the same manifest digest', async () => {
    const dir = join(work, 'ours');
    const layout = await OciLayout.open(dir, { create: true });
    const artifact = trivyArtifact('db', { dbContents: 150_000 });
    await writeArtifact(layout, 'trivy-db:2', artifact);
    await skopeo([
      'copy',
      `oci:${dir}:trivy-db:2`,
      `docker://${registry.host}/skopeo-in/trivy-db:2`,
      '--dest-tls-verify=false',
    ]);
    const pulled = await client.getManifest(`${registry.host}/skopeo-in/trivy-db:2`);
    assert.equal(pulled.digest, artifact.manifestDigest);
    assert.deepEqual(pulled.bytes, artifact.manifest);
  });

  it('an artifact skopeo pushed is pulled by us byte-identically', async () => {
    const source = join(work, 'fixture-layout');
    const artifact = trivyArtifact('checks');
    writeOciLayout(source, [{ ref: 'trivy-checks:2', artifact }]);
    const target = `${registry.host}/skopeo-out/trivy-checks:2`;
    await skopeo(['copy', `oci:${source}:trivy-checks:2`, `docker://${target}`, '--dest-tls-verify=false']);
    // skopeo cannot interpret artifacts (no config to inspect): only --raw works.
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${target}`]);

    const layout = await OciLayout.open(join(work, 'pulled'), { create: true });
    const pulled = await pullToLayout(client, target, layout, { refName: 'trivy-checks:2' });
    assert.equal(pulled.manifest.bytes.toString('utf8'), raw);
    assert.equal(pulled.manifest.digest, artifact.manifestDigest);
    const layer = pulled.parsed.layers[0]!;
    assert.deepEqual(await readFile(layout.blobPath(layer.digest)), artifact.layer);
    assert.deepEqual(await readFile(layout.blobPath(pulled.parsed.config.digest)), artifact.config);
    await layout.removePartials();
    assert.deepEqual((await readdir(join(work, 'pulled'))).sort(), ['blobs', 'index.json', 'oci-layout']);

    // And the layout we wrote is one skopeo reads back: copy it again, digest unchanged.
    await skopeo([
      'copy',
      `oci:${join(work, 'pulled')}:trivy-checks:2`,
      `docker://${registry.host}/again/trivy-checks:2`,
      '--dest-tls-verify=false',
    ]);
    assert.equal(
      (await client.getManifest(`${registry.host}/again/trivy-checks:2`)).digest,
      artifact.manifestDigest as Digest,
    );
  });
});
