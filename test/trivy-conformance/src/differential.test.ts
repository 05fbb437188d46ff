import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { registryError, respond, startRouteServer, type RouteHandler } from '@trivy-airgap/test-utils';
import { exportBundle, importBundle, sourceFlags } from './harness/airgap.js';
import { cacheFiles, compareTrees } from './harness/tree.js';
import { VERSIONS } from './harness/toolchain.js';
import { runAirgap, runTrivy, startWorld, type World } from './harness/world.js';

/**
 * Differential: Trivy itself fills a second cache from the same loopback registry and VEX server
 * (--download-db-only, --download-java-db-only, a `trivy config` run without skip, `trivy vex repo
 * download`); export → import fills the first. Both are compared file by file, byte for byte,
 * except what the issue allows to differ: `DownloadedAt` and the times in cache.json.
 */

const TRIVY = VERSIONS.primary;
let world: World;
let ours: string;
let theirs: string;

/** Blanks the download times: the only bytes allowed to differ between the two caches. */
function normalize(path: string, bytes: Buffer): Buffer {
  if (!path.endsWith('metadata.json') && !path.endsWith('/cache.json')) return bytes;
  return Buffer.from(
    bytes
      .toString('utf8')
      .replace(/"DownloadedAt":"[^"]*"/g, '"DownloadedAt":"…"')
      .replace(/"UpdatedAt":"[^"]*"(?=,"ETags")/g, '"UpdatedAt":"…"'),
  );
}

before(async () => {
  world = await startWorld({ checksMajors: ['2'] });
  ours = join(world.work, 'ours');
  theirs = join(world.work, 'theirs');
  const bundle = await exportBundle(world, 'all', ['--all', ...sourceFlags(world, world.refs.checks['2']!)]);
  const imported = await importBundle(world, bundle, ours);
  assert.equal(imported.code, 0, imported.stderr);
  // Trivy fills its own cache from the same sources (the same repository.yaml: `probe` only is downloaded).
  const runs = await Promise.all([
    runTrivy(world, TRIVY, [
      'rootfs',
      '--download-db-only',
      '--db-repository',
      world.refs.db,
      '--cache-dir',
      theirs,
      '--skip-version-check',
      '--disable-telemetry',
    ]),
    runTrivy(world, TRIVY, [
      'rootfs',
      '--download-java-db-only',
      '--java-db-repository',
      world.refs.javaDb,
      '--cache-dir',
      theirs,
      '--skip-version-check',
      '--disable-telemetry',
    ]),
    runTrivy(world, TRIVY, [
      'config',
      '--checks-bundle-repository',
      world.refs.checks['2']!,
      '--cache-dir',
      theirs,
      '--skip-version-check',
      '--disable-telemetry',
      world.project,
    ]),
    runTrivy(world, TRIVY, ['vex', 'repo', 'download', 'probe', '--cache-dir', theirs]),
  ]);
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
});

after(async () => {
  await (world as World | undefined)?.close();
});

describe(`differential: our import vs Trivy ${TRIVY}'s own download, file by file`, () => {
  it('the same files, byte for byte, apart from DownloadedAt and the cache.json time', () => {
    const left = cacheFiles(ours);
    const right = cacheFiles(theirs);
    assert.ok(left.has('db/trivy.db') && right.has('db/trivy.db'));
    assert.ok(left.has('java-db/trivy-java.db') && right.has('java-db/trivy-java.db'));
    assert.ok(left.has('policy/metadata.json') && right.has('policy/metadata.json'));
    assert.ok(left.has('vex/repositories/probe/0.1/index.json'));
    assert.ok([...left.keys()].filter((path) => path.startsWith('policy/content/')).length > 100);
    assert.deepEqual(compareTrees(left, right, normalize), { onlyLeft: [], onlyRight: [], differ: [] });
  });

  it('the download times themselves are real (not the zero time upstream publishes)', () => {
    const left = cacheFiles(ours);
    for (const path of ['db/metadata.json', 'java-db/metadata.json', 'policy/metadata.json']) {
      const { DownloadedAt } = JSON.parse(left.get(path)!.toString('utf8')) as { DownloadedAt: string };
      assert.ok(Date.now() - Date.parse(DownloadedAt) < 3600_000, `${path}: ${DownloadedAt}`);
    }
  });
});

/**
 * A first mirror that has the DB manifest but fails every blob with `blob`; the world registry is
 * the second mirror. Fetches the manifest bytes from the world registry (they are served as is).
 */
async function startHalfMirror(blob: RouteHandler) {
  const accept = 'application/vnd.oci.image.manifest.v1+json';
  const response = await fetch(`${world.registry.url}/v2/aquasec/trivy-db/manifests/2`, {
    headers: { accept },
  });
  const manifest = Buffer.from(await response.arrayBuffer());
  return startRouteServer([
    {
      name: 'ping',
      method: 'GET',
      path: '/v2/',
      handle: respond(200, { 'content-type': 'application/json' }, {}),
    },
    {
      name: 'manifest',
      path: '/v2/aquasec/trivy-db/manifests/2',
      handle: respond(200, { 'content-type': accept }, manifest.toString('utf8')),
    },
    { name: 'blob', path: /\/blobs\//, handle: blob },
  ]);
}

describe(`fallback to the next DB repository: our exporter decides as Trivy ${TRIVY} does`, () => {
  for (const [label, blob, fallsBack] of [
    ['a bare 404 on the blob (no error body)', respond(404, {}, ''), false],
    ['BLOB_UNKNOWN in the error body', registryError(404, 'BLOB_UNKNOWN'), true],
  ] as const) {
    it(`${label}: ${fallsBack ? 'both fall back to the second repository' : 'neither falls back'}`, async () => {
      const half = await startHalfMirror(blob);
      try {
        const repositories = [`${half.host}/aquasec/trivy-db:2`, world.refs.db];
        const trivy = await runTrivy(world, TRIVY, [
          'rootfs',
          '--download-db-only',
          '--db-repository',
          repositories.join(','),
          '--cache-dir',
          join(world.work, `fallback-${String(fallsBack)}`),
          '--skip-version-check',
          '--disable-telemetry',
        ]);
        const ours = await runAirgap(world, [
          'export',
          '--db',
          ...repositories.flatMap((repository) => ['--db-repository', repository]),
          '--plain-http',
          '--unsigned',
          '--work-dir',
          join(world.work, `fallback-work-${String(fallsBack)}`),
          '-o',
          join(world.work, `fallback-${String(fallsBack)}.tgz`),
        ]);
        assert.ok(half.hits('blob') >= 2, 'both asked the first mirror for the blob');
        assert.equal(trivy.code === 0, fallsBack, trivy.stderr);
        assert.equal(ours.code === 0, fallsBack, ours.stderr);
      } finally {
        await half.close().catch(() => undefined);
      }
    });
  }
});
