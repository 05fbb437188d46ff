import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchVexRepository } from '@trivy-airgap/exporter';
import { OciLayout, RegistryClient, createHttpClient } from '@trivy-airgap/oci';
import * as utils from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';

// `trivy-airgap import --to-registry / --vex-serve-dir` through run() in process, against
// docker-registry (token auth over plain HTTP, htpasswd over TLS with --ca-cert) and a static file
// server.

const work = await mkdtemp(join(tmpdir(), 'airgap-cli-publish-'));
let token: utils.TestRegistry;
let tls: utils.TestRegistry;
let caPath: string;
let caPem: string;
let files: Server;
let origin: string;
const bundle = utils.buildBundle({
  components: [{ kind: 'db' }, { kind: 'java-db' }, { kind: 'checks' }, { kind: 'vex' }],
});

before(async () => {
  const ca = await utils.makeTestCa(await mkdtemp(join(work, 'ca-')));
  caPath = ca.caCertPath;
  caPem = ca.caCertPem;
  [token, tls] = await Promise.all([
    utils.startRegistry({ mode: 'token', ca }),
    utils.startRegistry({ mode: 'htpasswd-tls', ca }),
  ]);
  await writeFile(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);
  await writeFile(join(work, 'bundle.tgz'), bundle.bytes);
  const www = join(work, 'www');
  files = createServer((req, res) => {
    const target = resolve(www, `.${decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)}`);
    if (!target.startsWith(www + sep)) {
      res.writeHead(404).end();
      return;
    }
    stat(target).then(
      (info) => {
        if (!info.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-length': String(info.size) });
        createReadStream(target).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((done) => files.listen(0, '127.0.0.1', done));
  origin = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});

after(async () => {
  await Promise.all([token.stop(), tls.stop()]);
  await new Promise<void>((done) => files.close(() => done()));
  await rm(work, { recursive: true, force: true });
});

function cli(args: string[]) {
  return runCli(args, {
    cwd: work,
    env: {
      PATH: process.env.PATH,
      HOME: work,
      XDG_DATA_HOME: join(work, 'data'),
      XDG_CONFIG_HOME: join(work, 'config'),
      DOCKER_CONFIG: join(work, 'docker'),
      NO_COLOR: '1',
    },
  });
}

interface PublishJson {
  registry?: {
    target: string;
    trivyFlags: string[];
    trivyYaml: string;
    artifacts: { kind: utils.FixtureKind; reference: string; digest: string }[];
  };
  vexServe?: {
    dir: string;
    repositories: { name: string; url: string; location: string }[];
    repositoryYaml: string;
  };
  installed?: unknown[];
  error?: { code: string; message: string };
}

describe('trivy-airgap import --to-registry / --vex-serve-dir (run() in process)', () => {
  it('--no-cache: pushes with the upstream digests and lays out VEX; --json returns the client settings', async () => {
    const serveDir = join(work, 'www', 'vex');
    const run = await cli([
      'import',
      'bundle.tgz',
      '--trust',
      'signing.pub',
      '--no-cache',
      '--to-registry',
      `${token.host}/site`,
      '--plain-http',
      '--username',
      'pusher',
      '--password',
      'pusher-secret',
      '--vex-serve-dir',
      serveDir,
      '--vex-base-url',
      `${origin}/vex`,
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const result = JSON.parse(run.stdout) as PublishJson;
    assert.equal(result.installed, undefined);
    const registry = result.registry;
    assert.ok(registry);
    assert.deepEqual(registry.trivyFlags, [
      '--db-repository',
      `${token.host}/site/trivy-db:2`,
      '--java-db-repository',
      `${token.host}/site/trivy-java-db:1`,
      '--checks-bundle-repository',
      `${token.host}/site/trivy-checks:2`,
      '--insecure',
    ]);
    assert.match(registry.trivyYaml, /checks-bundle-repository: \S+\/site\/trivy-checks:2/);
    // What the registry serves under each tag is the bundle's manifest, digest for digest.
    const client = new RegistryClient({
      transport: { userAgent: 'test', plainHttp: true, env: {} },
      credentials: { username: 'pusher', password: 'pusher-secret', useDockerConfig: false, env: {} },
    });
    try {
      for (const artifact of registry.artifacts) {
        const manifest = await client.getManifest(artifact.reference);
        assert.equal(manifest.digest, bundle.artifacts.get(artifact.kind)?.manifestDigest, artifact.kind);
      }
      assert.equal(registry.artifacts.length, 3);
    } finally {
      await client.close();
    }
    // The exporter's fetcher, acting as Trivy, reads the served tree back.
    assert.deepEqual(
      result.vexServe?.repositories.map((r) => [r.name, r.url, r.location]),
      [['default', `${origin}/vex/default`, `${origin}/vex/default/archive.tar.gz//vexhub-main`]],
    );
    assert.ok((await lstat(serveDir)).isSymbolicLink());
    const http = createHttpClient({ userAgent: 'test', env: {} });
    try {
      const layout = await OciLayout.open(await mkdtemp(join(work, 'fetch-')), { create: true });
      const fetched = await fetchVexRepository(
        { http, layout, env: {}, onProgress: () => undefined },
        { name: 'default', url: `${origin}/vex/default` },
      );
      assert.equal(fetched.component.subdir, 'vexhub-main');
      assert.equal(fetched.component.updatedAt, '2026-11-25T01:00:00Z');
      assert.equal(
        (await readFile(fetched.archive.file)).length,
        (await stat(join(serveDir, 'default', 'archive.tar.gz'))).size,
      );
    } finally {
      await http.close();
    }
  });

  it('with the local cache too (human output), over TLS with --ca-cert', async () => {
    const cache = join(work, 'cache');
    const run = await cli([
      'import',
      'bundle.tgz',
      '--trust',
      'signing.pub',
      '--cache-dir',
      cache,
      '--to-registry',
      `${tls.host}/mirror`,
      '--ca-cert',
      caPath,
      '--username',
      'pusher',
      '--password',
      'pusher-secret',
    ]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.ok((await lstat(join(cache, 'db'))).isSymbolicLink());
    assert.match(run.stdout, /Point Trivy clients at the registry/);
    assert.match(
      run.stdout,
      new RegExp(
        `trivy image --db-repository ${tls.host}/mirror/trivy-db:2 --java-db-repository ${tls.host}/mirror/trivy-java-db:1 --checks-bundle-repository ${tls.host}/mirror/trivy-checks:2 IMAGE`,
      ),
    );
    assert.match(run.stdout, /private CA/);
    assert.ok(caPem.length > 0);
  });

  it('wrong credentials: exit 1, REGISTRY_UNAUTHORIZED in --json', async () => {
    const run = await cli([
      'import',
      'bundle.tgz',
      '--trust',
      'signing.pub',
      '--no-cache',
      '--to-registry',
      `${tls.host}/denied`,
      '--ca-cert',
      caPath,
      '--username',
      'pusher',
      '--password',
      'wrong',
      '--json',
    ]);
    assert.equal(run.code, 1, run.stderr + run.stdout);
    const result = JSON.parse(run.stdout) as PublishJson;
    assert.equal(result.error?.code, 'REGISTRY_UNAUTHORIZED');
  });

  for (const [name, args] of [
    ['--vex-serve-dir without --vex-base-url', ['--no-cache', '--vex-serve-dir', 'x']],
    ['--no-cache with nothing to publish', ['--no-cache']],
    ['stdin both installed and published', ['--to-registry', 'r.example']],
  ] as const) {
    it(`usage error (exit 2): ${name}`, async () => {
      const bundleArg = name.startsWith('stdin') ? '-' : 'bundle.tgz';
      const run = await cli(['import', bundleArg, '--trust', 'signing.pub', ...args]);
      assert.equal(run.code, 2, run.stderr + run.stdout);
    });
  }
});
