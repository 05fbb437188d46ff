import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  generateKeyPair,
  loadSigningKey,
  parseManifestBytes,
  type OciComponent,
  type ProgressEvent,
  type VexComponent,
} from '@trivy-airgap/format';
import {
  makeTestCa,
  redirectTo,
  registryError,
  respond,
  serveBlob,
  startRegistry,
  startProxy,
  startRouteServer,
  trivyArtifact,
  vexRepositoryArchive,
  vexRepositoryManifest,
  type FixtureArtifact,
  type RouteServer,
  type TestCa,
  type TestRegistry,
} from '@trivy-airgap/test-utils';
import { ExporterError, exportBundle, type ExportOptions } from '../src/index.js';
import { pushArtifact, startFrontend, type Frontend } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-export-'));
const keyPair = generateKeyPair('ecdsa-p256');
const signingKey = loadSigningKey(keyPair.privateKeyPem);
const publicKeyPath = join(work, 'signing.pub');
writeFileSync(publicKeyPath, keyPair.publicKeyPem);

const UPDATED = new Date('2026-11-25T06:12:01.123Z');
const db = trivyArtifact('db', { dbContents: 300_000, updatedAt: UPDATED });
const javaDb = trivyArtifact('java-db', { dbContents: 200_000, updatedAt: UPDATED });
const checks = trivyArtifact('checks');

let ca: TestCa;
let tokenRegistry: TestRegistry;
let plainRegistry: TestRegistry;
let tlsFront: Frontend;
let vexServer: RouteServer;
let codeload: RouteServer;
const tarRepo = vexRepositoryArchive({
  type: 'tar.gz',
  topDir: 'vexhub-main',
  updatedAt: '2026-11-25T01:00:00Z',
});
const zipRepo = vexRepositoryArchive({
  type: 'zip',
  topDir: '',
  updatedAt: '2026-11-24T01:00:00Z',
  packages: 2,
});

before(async () => {
  ca = await makeTestCa(mkdtempSync(join(work, 'ca-')));
  [tokenRegistry, plainRegistry] = await Promise.all([
    startRegistry({ mode: 'token', ca }),
    startRegistry({ mode: 'plain' }),
  ]);
  tlsFront = await startFrontend(tokenRegistry.url, {
    tls: { key: readFileSync(ca.serverKeyPath, 'utf8'), cert: readFileSync(ca.serverCertPath, 'utf8') },
  });
  for (const registry of [tokenRegistry, plainRegistry]) {
    await pushArtifact(registry, `${registry.host}/aquasec/trivy-db:2`, db);
    await pushArtifact(registry, `${registry.host}/aquasec/trivy-java-db:1`, javaDb);
    await pushArtifact(registry, `${registry.host}/aquasec/trivy-checks:2`, checks);
  }
  // The archive host of the tar.gz repository is another origin, as codeload.github.com is for GitHub.
  codeload = await startRouteServer([
    {
      name: 'tarball',
      method: 'GET',
      path: '/aquasecurity/vexhub/tar.gz/refs/heads/main',
      handle: serveBlob(tarRepo.archive),
    },
  ]);
  codeload.addRoute({
    name: 'tarball-etag',
    method: 'GET',
    path: '/never',
    handle: respond(404),
  });
  vexServer = await startRouteServer([
    {
      // The GitHub contents API, raw media type (GITHUB_API_URL points here).
      name: 'github-contents',
      method: 'GET',
      path: '/repos/aquasecurity/vexhub/contents/vex-repository.json',
      handle: (req, res) => {
        const location = `${vexServer.origin}/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main`;
        const body = vexRepositoryManifest(location);
        res
          .writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) })
          .end(body);
      },
    },
    {
      name: 'archive-redirect',
      method: 'GET',
      path: '/aquasecurity/vexhub/archive/refs/heads/main.tar.gz',
      handle: redirectTo(() => `${codeload.origin}/aquasecurity/vexhub/tar.gz/refs/heads/main`, 302),
    },
    {
      name: 'zip-manifest',
      method: 'GET',
      path: '/zipped/.well-known/vex-repository.json',
      handle: (_req, res) => {
        const body = Buffer.from(
          JSON.stringify({
            name: 'Zipped',
            versions: [
              {
                spec_version: '0.1',
                // The first location is broken: the next one must be used.
                locations: [
                  { url: `${vexServer.origin}/gone.zip` },
                  { url: `${vexServer.origin}/zipped/repo.zip` },
                ],
                update_interval: '24h',
              },
            ],
          }),
        );
        res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      },
    },
    { name: 'gone', method: 'GET', path: '/gone.zip', handle: respond(404) },
    {
      name: 'zip',
      method: 'GET',
      path: '/zipped/repo.zip',
      handle: (_req, res) => {
        res
          .writeHead(200, { etag: '"zip-etag-1"', 'content-length': String(zipRepo.archive.length) })
          .end(zipRepo.archive);
      },
    },
  ]);
});

after(async () => {
  await Promise.all([
    tokenRegistry.stop(),
    plainRegistry.stop(),
    tlsFront.close(),
    vexServer.close(),
    codeload.close(),
  ]);
  rmSync(work, { recursive: true, force: true });
});

const fastRetry = { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 5 };

function options(name: string, extra: Partial<ExportOptions> = {}): ExportOptions {
  return {
    output: join(work, name),
    components: ['db', 'java-db', 'checks'],
    repositories: {
      db: [`${plainRegistry.host}/aquasec/trivy-db:2`],
      'java-db': [`${plainRegistry.host}/aquasec/trivy-java-db`],
      checks: [`${plainRegistry.host}/aquasec/trivy-checks:2`],
    },
    signingKey,
    toolVersion: '0.1.0-test',
    workDir: join(work, `work-${name}`),
    registry: { plainHttp: true, retry: fastRetry, useDockerConfig: false },
    env: {},
    ...extra,
  };
}

function run(command: string, args: string[], cwd = work) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function assertExporterError(
  promise: Promise<unknown>,
  code: ExporterError['code'],
): Promise<ExporterError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ExporterError, `expected ExporterError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected ExporterError ${code}, but the export succeeded`);
}

describe('exportBundle', () => {
  it('exports everything from a token-auth registry over TLS (extra CA) plus VEX in both shapes; stock tools verify it', async () => {
    const events: ProgressEvent[] = [];
    const result = await exportBundle({
      ...options('all.tgz'),
      components: ['db', 'java-db', 'checks', 'vex'],
      repositories: {
        db: [`${tlsFront.host}/aquasec/trivy-db`],
        'java-db': [`${tlsFront.host}/aquasec/trivy-java-db`],
        checks: [`${tlsFront.host}/aquasec/trivy-checks:2`],
      },
      vexRepositories: [
        { name: 'default', url: 'https://github.com/aquasecurity/vexhub' },
        { name: 'zipped', url: `${vexServer.origin}/zipped` },
      ],
      registry: {
        username: 'pusher',
        password: 'pusher-secret',
        caCertPem: ca.caCertPem,
        retry: fastRetry,
        useDockerConfig: false,
      },
      env: { GITHUB_API_URL: vexServer.origin, GITHUB_TOKEN: 'gh-test-token' },
      onProgress: (event) => events.push(event),
    });
    const bundle = result.bundle.path;

    const listed = run('tar', ['-tzf', bundle]).stdout.trim().split('\n');
    assert.deepEqual(listed.slice(0, 2), ['manifest.json', 'manifest.json.sig']);
    assert.deepEqual(listed.slice(2), [...listed.slice(2)].sort());
    assert.ok(listed.includes('vex/default/archive.tar.gz'));
    assert.ok(listed.includes('vex/zipped/archive.zip'));
    assert.ok(listed.includes(`oci/blobs/sha256/${db.layerDigest.slice(7)}`));

    const out = join(work, 'all-extract');
    mkdirSync(out);
    assert.equal(run('tar', ['-xzf', bundle, '-C', out]).code, 0);
    const verifyManifest = run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      publicKeyPath,
      '-signature',
      join(out, 'manifest.json.sig'),
      join(out, 'manifest.json'),
    ]);
    assert.equal(verifyManifest.code, 0, verifyManifest.stderr);
    const verifySums = run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      publicKeyPath,
      '-signature',
      `${bundle}.sha256.sig`,
      `${bundle}.sha256`,
    ]);
    assert.equal(verifySums.code, 0, verifySums.stderr);
    const sums = run('sha256sum', ['-c', 'all.tgz.sha256']);
    assert.equal(sums.code, 0, sums.stderr);

    const manifest = parseManifestBytes(await readFile(join(out, 'manifest.json')));
    assert.equal(manifest.trivyVersions, '>=0.69.0');
    const [dbComponent, javaComponent, checksComponent, vexDefault, vexZip] = manifest.components as [
      OciComponent,
      OciComponent,
      OciComponent,
      VexComponent,
      VexComponent,
    ];
    assert.equal(dbComponent.kind, 'db');
    assert.equal(dbComponent.source, `${tlsFront.host}/aquasec/trivy-db:2`, 'the tag rule appends :2');
    assert.equal(dbComponent.servedBy, `${tlsFront.host}/aquasec/trivy-db:2`);
    assert.equal(dbComponent.manifest.digest, db.manifestDigest);
    assert.equal(dbComponent.layer.digest, db.layerDigest);
    assert.equal(dbComponent.layer.title, 'db.tar.gz');
    assert.equal(
      dbComponent.metadata,
      undefined,
      'the layer is not inflated: the importer reads metadata.json',
    );
    assert.equal(dbComponent.annotations['org.opencontainers.image.created'], '2026-11-25T06:20:00Z');
    assert.equal(
      javaComponent.servedBy,
      `${tlsFront.host}/aquasec/trivy-java-db:1`,
      'the tag rule appends :1',
    );
    assert.equal(javaComponent.metadata, undefined);
    assert.equal(checksComponent.version, '2.2.0');
    assert.equal(checksComponent.metadata, undefined);

    assert.equal(vexDefault.name, 'default');
    assert.equal(vexDefault.subdir, 'vexhub-main');
    assert.equal(vexDefault.archiveType, 'tar.gz');
    assert.equal(vexDefault.updatedAt, '2026-11-25T01:00:00Z');
    assert.equal(vexDefault.servedBy, `${codeload.origin}/aquasecurity/vexhub/tar.gz/refs/heads/main`);
    assert.ok(vexDefault.location.endsWith('main.tar.gz//vexhub-main'));
    assert.deepEqual(readFileSync(join(out, 'vex/default/archive.tar.gz')), tarRepo.archive);
    assert.equal(vexZip.archiveType, 'zip');
    assert.equal(vexZip.subdir, '');
    assert.equal(vexZip.etag, '"zip-etag-1"');
    assert.equal(vexZip.updatedAt, '2026-11-24T01:00:00Z');
    assert.equal(
      vexZip.location,
      `${vexServer.origin}/zipped/repo.zip`,
      'the broken first location was skipped',
    );

    // GITHUB_TOKEN goes to the contents API, never to the archive host after a redirect.
    const apiRequest = vexServer.requestsFor('github-contents')[0];
    assert.equal(apiRequest?.headers.authorization, 'Bearer gh-test-token');
    assert.equal(apiRequest.headers.accept, 'application/vnd.github.raw+json');
    assert.equal(codeload.requestsFor('tarball')[0]?.headers.authorization, undefined);

    // OCI layout: index.json names every manifest by its layoutRef.
    const index = JSON.parse(readFileSync(join(out, 'oci/index.json'), 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    assert.deepEqual(
      index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']),
      ['db', 'java-db', 'checks'],
    );
    assert.equal(result.components.length, 5);
    assert.ok(events.some((e) => e.type === 'task-done' && e.task === 'db'));
    assert.ok(
      events.some((e) => e.type === 'task-progress' && e.task === 'db' && e.done === db.layer.length),
    );
  });

  it('falls back to the next mirror on 503 and 429 and records which one served it', async () => {
    for (const [status, code] of [
      [503, 'UNAVAILABLE'],
      [429, 'TOOMANYREQUESTS'],
    ] as const) {
      const broken = await startRouteServer([
        { name: 'manifest', method: 'GET', path: /\/manifests\//, handle: registryError(status, code) },
        { name: 'ping', path: '/v2/', handle: respond(200, {}, {}) },
      ]);
      try {
        const events: ProgressEvent[] = [];
        const result = await exportBundle({
          ...options(`fallback-${status}.tgz`),
          components: ['db'],
          repositories: {
            db: [`${broken.host}/aquasec/trivy-db:2`, `${plainRegistry.host}/aquasec/trivy-db:2`],
          },
          onProgress: (event) => events.push(event),
        });
        const component = result.manifest.components[0] as OciComponent;
        assert.equal(component.source, `${broken.host}/aquasec/trivy-db:2`);
        assert.equal(component.servedBy, `${plainRegistry.host}/aquasec/trivy-db:2`);
        assert.equal(result.components[0]?.servedBy, `${plainRegistry.host}/aquasec/trivy-db:2`);
        assert.ok(broken.hits('manifest') >= 1);
        assert.ok(
          events.some((e) => e.type === 'warning' && e.message.includes(`${broken.host}/aquasec/trivy-db:2`)),
        );
      } finally {
        await broken.close();
      }
    }
  });

  /** A mirror that serves the DB manifest and answers every blob request with `blob`. */
  const startHalfMirror = (blob: Parameters<typeof startRouteServer>[0][number]['handle']) =>
    startRouteServer([
      {
        name: 'manifest',
        method: 'GET',
        path: '/v2/aquasec/trivy-db/manifests/2',
        handle: respond(
          200,
          { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          db.manifest.toString(),
        ),
      },
      { name: 'blob', method: 'GET', path: /\/blobs\//, handle: blob },
    ]);

  it('falls back when the first mirror has the manifest but not the blob (BLOB_UNKNOWN is temporary for Trivy)', async () => {
    const halfMirror = await startHalfMirror(registryError(404, 'BLOB_UNKNOWN'));
    try {
      const result = await exportBundle({
        ...options('blob-unknown.tgz'),
        components: ['db'],
        repositories: {
          db: [`${halfMirror.host}/aquasec/trivy-db:2`, `${plainRegistry.host}/aquasec/trivy-db:2`],
        },
      });
      assert.equal(
        (result.manifest.components[0] as OciComponent).servedBy,
        `${plainRegistry.host}/aquasec/trivy-db:2`,
      );
      assert.ok(halfMirror.hits('blob') >= 1);
    } finally {
      await halfMirror.close();
    }
  });

  it('a registry serving layer bytes that do not hash to the digest fails the export (SOURCE_FAILED) with no bundle, part or temp file left', async () => {
    const tampered = Buffer.from(db.layer);
    const middle = tampered.length >> 1;
    tampered.writeUInt8((tampered.readUInt8(middle) ^ 0xff) & 0xff, middle);
    const liar = await startHalfMirror((req, res) => {
      const body = req.url?.includes(db.layerDigest.slice(7)) === true ? tampered : db.config;
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    });
    const name = 'tampered-layer.tgz';
    try {
      const error = await assertExporterError(
        exportBundle({
          ...options(name),
          components: ['db'],
          repositories: { db: [`${liar.host}/aquasec/trivy-db:2`] },
        }),
        'SOURCE_FAILED',
      );
      assert.equal(error.expected, db.layerDigest);
      assert.ok(liar.hits('blob') >= 2, 'the config and the layer were asked for');
      assert.deepEqual(
        readdirSync(work).filter((file) => file.startsWith(name)),
        [],
        'no bundle, .sha256 or temp file',
      );
      const workBlobs = join(work, `work-${name}`, 'oci', 'blobs', 'sha256');
      assert.equal(existsSync(join(workBlobs, db.layerDigest.slice(7))), false, 'nothing unverified kept');
    } finally {
      await liar.close();
    }
  });

  it('does not fall back on a bare 404 for the blob (no error body: not temporary for Trivy)', async () => {
    const halfMirror = await startHalfMirror(respond(404, {}, ''));
    const second = await startRouteServer([]);
    try {
      await assertExporterError(
        exportBundle({
          ...options('bare-404-blob.tgz'),
          components: ['db'],
          repositories: {
            db: [`${halfMirror.host}/aquasec/trivy-db:2`, `${second.host}/aquasec/trivy-db:2`],
          },
        }),
        'SOURCE_FAILED',
      );
      assert.ok(halfMirror.hits('blob') >= 1);
      assert.equal(second.requests.length, 0);
    } finally {
      await halfMirror.close();
      await second.close();
    }
  });

  it('does not fall back on 404: the error names the repository, the second mirror is never asked', async () => {
    const missing = await startRouteServer([
      {
        name: 'manifest',
        method: 'GET',
        path: /\/manifests\//,
        handle: registryError(404, 'MANIFEST_UNKNOWN'),
      },
      { name: 'ping', path: '/v2/', handle: respond(200, {}, {}) },
    ]);
    const second = await startRouteServer([]);
    try {
      const error = await assertExporterError(
        exportBundle({
          ...options('no-fallback.tgz'),
          components: ['db'],
          repositories: { db: [`${missing.host}/aquasec/trivy-db:2`, `${second.host}/aquasec/trivy-db:2`] },
        }),
        'SOURCE_FAILED',
      );
      assert.match(error.message, new RegExp(`${missing.host}/aquasec/trivy-db:2`));
      assert.match(error.message, /temporary/);
      assert.equal(second.requests.length, 0);
    } finally {
      await missing.close();
      await second.close();
    }
  });

  for (const [label, artifactOptions, rule] of [
    ['two layers', { extraLayer: true }, 'ARTIFACT_LAYER_COUNT'],
    [
      'a wrong layer media type',
      { layerMediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
      'ARTIFACT_MEDIA_TYPE',
    ],
    ['no title annotation', { omitTitle: true }, 'ARTIFACT_TITLE_MISSING'],
  ] as const) {
    it(`refuses an artifact with ${label}, naming the rule`, async () => {
      const artifact: FixtureArtifact = trivyArtifact('db', {
        ...artifactOptions,
        updatedAt: new Date(label.length * 1e11),
      });
      const repo = `${plainRegistry.host}/bad/${rule.toLowerCase().replace(/_/g, '-')}:2`;
      await pushArtifact(plainRegistry, repo, artifact);
      const error = await assertExporterError(
        exportBundle({ ...options(`bad-${rule}.tgz`), components: ['db'], repositories: { db: [repo] } }),
        'ARTIFACT_INVALID',
      );
      assert.match(error.message, new RegExp(rule));
      assert.match(error.message, new RegExp(repo));
      assert.equal((error.cause as { code?: string }).code, rule);
    });
  }

  it('carries DB layers as published without inflating them: a layer of another schema or without metadata.json exports (the importer judges it)', async () => {
    for (const [name, artifact] of [
      ['schema3', trivyArtifact('db', { version: 3, updatedAt: new Date('2026-01-01T00:00:00Z') })],
      ['no-metadata', trivyArtifact('db', { withoutMetadata: true })],
    ] as const) {
      const repo = `${plainRegistry.host}/carried/${name}:2`;
      await pushArtifact(plainRegistry, repo, artifact);
      const result = await exportBundle({
        ...options(`${name}.tgz`),
        components: ['db'],
        repositories: { db: [repo] },
      });
      const [component] = result.manifest.components as [OciComponent];
      assert.equal(component.layer.digest, artifact.layerDigest);
      assert.equal(component.metadata, undefined);
    }
  });

  it('reuses unchanged blobs from the work dir; same SOURCE_DATE_EPOCH gives byte-identical bundles (ECDSA key)', async () => {
    const shared = join(work, 'work-shared');
    const first = await exportBundle({
      ...options('repro-1.tgz'),
      workDir: shared,
      env: { SOURCE_DATE_EPOCH: '1764000000' },
    });
    assert.ok(first.components.every((c) => !c.reused));
    const second = await exportBundle({
      ...options('repro-2.tgz'),
      workDir: shared,
      env: { SOURCE_DATE_EPOCH: '1764000000' },
    });
    assert.ok(
      second.components.every((c) => c.reused),
      'the second export downloads no layer',
    );
    assert.deepEqual(readFileSync(second.bundle.path), readFileSync(first.bundle.path));
    assert.equal(first.manifest.created, '2025-11-24T16:00:00.000Z');
    // A fresh work dir gives the same bytes too.
    const third = await exportBundle({
      ...options('repro-3.tgz'),
      env: { SOURCE_DATE_EPOCH: '1764000000' },
    });
    assert.deepEqual(readFileSync(third.bundle.path), readFileSync(first.bundle.path));
  });

  it('--trivy-version picks that release: its range is recorded and a checks bundle of another major is refused', async () => {
    const older = await exportBundle({
      ...options('trivy-0.60.tgz'),
      components: ['db'],
      trivyVersion: '0.60.2',
    });
    assert.equal(older.manifest.trivyVersions, '>=0.58.0 <0.63.0');
    const error = await assertExporterError(
      exportBundle({ ...options('trivy-0.57.tgz'), components: ['checks'], trivyVersion: '0.57.1' }),
      'METADATA_INVALID',
    );
    assert.match(error.message, /2\.2\.0/);
    await assertExporterError(
      exportBundle({ ...options('trivy-bad.tgz'), trivyVersion: 'latest' }),
      'INVALID_OPTION',
    );
  });

  it('refuses VEX for a Trivy older than 0.54 (it reads VEX only from files), before any download', async () => {
    await assertExporterError(
      exportBundle({ ...options('trivy-0.53.tgz'), components: ['db', 'vex'], trivyVersion: '0.53.0' }),
      'INVALID_OPTION',
    );
    assert.equal(existsSync(join(work, 'trivy-0.53.tgz')), false);
  });

  it('--verify-mirrors: accepts when a second registry serves the same layer, refuses when it differs', async () => {
    const other = trivyArtifact('db', { updatedAt: new Date('2026-11-24T06:00:00Z') });
    const mirror = await startRouteServer([
      {
        name: 'same',
        method: 'GET',
        path: '/v2/mirror/trivy-db/manifests/2',
        handle: respond(
          200,
          { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          db.manifest.toString(),
        ),
      },
      {
        name: 'stale',
        method: 'GET',
        path: '/v2/stale/trivy-db/manifests/2',
        handle: respond(
          200,
          { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          other.manifest.toString(),
        ),
      },
    ]);
    try {
      const agreed = await exportBundle({
        ...options('mirrors-ok.tgz'),
        components: ['db'],
        repositories: {
          db: [`${plainRegistry.host}/aquasec/trivy-db:2`, `${mirror.host}/mirror/trivy-db:2`],
        },
        verifyMirrors: true,
      });
      assert.deepEqual(agreed.components[0]?.confirmedBy, [`${mirror.host}/mirror/trivy-db:2`]);
      const error = await assertExporterError(
        exportBundle({
          ...options('mirrors-bad.tgz'),
          components: ['db'],
          repositories: {
            db: [`${plainRegistry.host}/aquasec/trivy-db:2`, `${mirror.host}/stale/trivy-db:2`],
          },
          verifyMirrors: true,
        }),
        'MIRRORS_DISAGREE',
      );
      assert.equal(error.expected, db.layerDigest);
      assert.equal(error.found, other.layerDigest);
      await assertExporterError(
        exportBundle({ ...options('mirrors-alone.tgz'), components: ['db'], verifyMirrors: true }),
        'MIRRORS_DISAGREE',
      );
    } finally {
      await mirror.close();
    }
  });

  it('one export per work dir: a live owner is refused, a dead one is taken over', async () => {
    const dir = join(work, 'work-locked');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`); // a process that is certainly alive
    await assertExporterError(exportBundle({ ...options('locked.tgz'), workDir: dir }), 'WORK_DIR_BUSY');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    writeFileSync(join(dir, 'lock'), `${gone.stdout}\n`);
    await exportBundle({ ...options('locked.tgz'), components: ['checks'], workDir: dir });
    assert.equal(existsSync(join(dir, 'lock')), false, 'the lock is released');
  });

  it('prunes work-dir files unused for a week, keeps (and touches) what the export used', async () => {
    const dir = join(work, 'work-prune');
    await exportBundle({ ...options('prune-1.tgz'), components: ['checks'], workDir: dir });
    const blobs = join(dir, 'oci', 'blobs', 'sha256');
    const stale = join(blobs, 'f'.repeat(64));
    writeFileSync(stale, 'an old build');
    const monthAgo = new Date(Date.now() - 30 * 86_400_000);
    utimesSync(stale, monthAgo, monthAgo);
    const layer = join(blobs, checks.layerDigest.slice(7));
    utimesSync(layer, monthAgo, monthAgo);
    await exportBundle({ ...options('prune-2.tgz'), components: ['checks'], workDir: dir });
    assert.equal(existsSync(stale), false);
    assert.equal(existsSync(layer), true);
    assert.ok(statSync(layer).mtimeMs > monthAgo.getTime() + 86_400_000, 'a used blob is touched');
  });

  it('TLS: an unknown CA is refused with a hint; --insecure skips verification; HTTPS_PROXY is used', async () => {
    const tlsOptions = (name: string, registry: ExportOptions['registry'], env: NodeJS.ProcessEnv = {}) => ({
      ...options(name),
      components: ['checks'] as const,
      repositories: { checks: [`${tlsFront.host}/aquasec/trivy-checks:2`] },
      registry: {
        username: 'pusher',
        password: 'pusher-secret',
        retry: fastRetry,
        useDockerConfig: false,
        ...registry,
      },
      env,
    });
    const untrusted = await assertExporterError(
      exportBundle(tlsOptions('tls-untrusted.tgz', {})),
      'SOURCE_FAILED',
    );
    assert.match(untrusted.message, /TLS/);
    assert.match(untrusted.hint ?? '', /--ca-cert/);
    const insecure = await exportBundle(tlsOptions('tls-insecure.tgz', { insecure: true }));
    assert.equal(insecure.components[0]?.layerDigest, checks.layerDigest);

    // registry.test resolves only inside the test proxy: reaching it proves the proxy was used.
    const proxy = await startProxy();
    try {
      const viaProxy = await exportBundle({
        ...tlsOptions('tls-proxy.tgz', { caCertPem: ca.caCertPem }, { HTTPS_PROXY: proxy.url }),
        repositories: { checks: [`registry.test:${tlsFront.port}/aquasec/trivy-checks:2`] },
      });
      assert.equal(viaProxy.components[0]?.servedBy, `registry.test:${tlsFront.port}/aquasec/trivy-checks:2`);
      assert.ok(
        proxy.forwarded.some((f) => f.kind === 'connect' && f.target === `registry.test:${tlsFront.port}`),
      );
    } finally {
      await proxy.close();
    }
  });

  it('VEX: an unchanged archive (304 to the remembered ETag) is reused from the work dir', async () => {
    const repo = vexRepositoryArchive({ type: 'tar.gz', topDir: 'hub-main' });
    const server: RouteServer = await startRouteServer([
      {
        name: 'manifest',
        method: 'GET',
        path: '/hub/.well-known/vex-repository.json',
        handle: (_req, res) => {
          const body = vexRepositoryManifest(`${server.origin}/hub/main.tgz//hub-main`);
          res.writeHead(200, { 'content-length': String(body.length) }).end(body);
        },
      },
      {
        name: 'archive',
        method: 'GET',
        path: '/hub/main.tgz',
        handle: (req, res) => {
          if (req.headers['if-none-match'] === '"hub-1"') res.writeHead(304, { etag: '"hub-1"' }).end();
          else
            res
              .writeHead(200, { etag: '"hub-1"', 'content-length': String(repo.archive.length) })
              .end(repo.archive);
        },
      },
    ]);
    try {
      const vexOnly = (name: string) => ({
        ...options(name),
        components: ['vex'] as const,
        vexRepositories: [{ name: 'hub', url: `${server.origin}/hub` }],
        workDir: join(work, 'work-vex-etag'),
        env: { SOURCE_DATE_EPOCH: '1764000000' },
      });
      const first = await exportBundle(vexOnly('vex-1.tgz'));
      const second = await exportBundle(vexOnly('vex-2.tgz'));
      assert.equal(first.components[0]?.reused, false);
      assert.equal(second.components[0]?.reused, true);
      assert.equal(server.requestsFor('archive')[1]?.headers['if-none-match'], '"hub-1"');
      assert.deepEqual(readFileSync(second.bundle.path), readFileSync(first.bundle.path));
    } finally {
      await server.close();
    }
  });

  it('refuses an existing output before downloading anything', async () => {
    writeFileSync(join(work, 'taken.tgz'), 'x');
    const watcher = await startRouteServer([]);
    try {
      await assertExporterError(
        exportBundle({
          ...options('taken.tgz'),
          components: ['db'],
          repositories: { db: [`${watcher.host}/x/trivy-db:2`] },
        }),
        'OUTPUT_EXISTS',
      );
      await assert.rejects(
        exportBundle({
          ...options('no/such/dir/b.tgz'),
          components: ['db'],
          repositories: { db: [`${watcher.host}/x/trivy-db:2`] },
        }),
        { code: 'FS_NOT_FOUND', path: join(work, 'no/such/dir') },
      );
      assert.equal(watcher.requests.length, 0);
    } finally {
      await watcher.close();
    }
  });
});
