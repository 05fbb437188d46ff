import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportBundle, importBundle, sourceFlags } from './harness/airgap.js';
import { cacheFiles, compareTrees } from './harness/tree.js';
import { VERSIONS } from './harness/toolchain.js';
import { runTrivy, startWorld, type World } from './harness/world.js';

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
