import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportBundle, importBundle, offlineRootfsArgs, sourceFlags } from './harness/airgap.js';
import { PROBE } from './harness/fixtures.js';
import { VERSIONS } from './harness/toolchain.js';
import { reportOf, runAirgap, runTrivy, startWorld, vulnerabilities, type World } from './harness/world.js';

/**
 * Our symlinked generations against Trivy's own writes (trivy-facts "What Trivy writes into the
 * cache"): Trivy ONLINE on an imported cache updates the checks (a bundle of another major makes
 * 0.69+ re-download: RemoveAll(policy/content) through our `policy` link) and the VEX repository
 * (update_interval 1s: 0.1 renamed and replaced inside the repository dir), `trivy clean` removes
 * what it removes; then `status` must tell the truth, the next import must take over, and
 * `rollback` must never bring back a generation Trivy changed in place.
 */

const TRIVY = VERSIONS.primary;
const ALL = [
  `${PROBE.os.package} ${PROBE.os.cve}`,
  `${PROBE.maven.groupId}:${PROBE.maven.artifactId} ${PROBE.maven.cve}`,
].sort();
let world: World;
let cache: string;
let older: string;
let newer: string;

interface StatusJson {
  diagnosis: {
    verdict: string;
    components: { kind: string; name?: string; verdict: string; present: boolean }[];
  };
  changedSinceImport: { key: string; change: string }[];
  healthy: boolean;
}

async function status(): Promise<{ code: number | null; json: StatusJson }> {
  const run = await runAirgap(world, ['status', '--cache-dir', cache, '--json']);
  return { code: run.code, json: JSON.parse(run.stdout) as StatusJson };
}

function changes(json: StatusJson): string[] {
  return json.changedSinceImport.map((entry) => `${entry.key} ${entry.change}`).sort();
}

async function scanOffline(): Promise<string[]> {
  return vulnerabilities(reportOf(await runTrivy(world, TRIVY, offlineRootfsArgs(world, cache))));
}

function exportFor(version: string, name: string, major: '1' | '2'): Promise<string> {
  return exportBundle(world, name, [
    '--all',
    ...sourceFlags(world, world.refs.checks[major]!),
    '--trivy-version',
    version,
  ]);
}

function importInto(bundle: string): Promise<{ code: number | null; stderr: string }> {
  return importBundle(world, bundle, cache);
}

function describeCache(): string {
  const lines: string[] = [];
  for (const name of readdirSync(cache)) {
    const stat = lstatSync(join(cache, name));
    lines.push(
      `${name} ${stat.isSymbolicLink() ? `-> ${readlinkSync(join(cache, name))}` : stat.isDirectory() ? 'dir' : 'file'}`,
    );
  }
  return lines.join('\n');
}

before(async () => {
  world = await startWorld({ checksMajors: ['1', '2'], vexUpdateInterval: '1s' });
  cache = join(world.work, 'cache');
  older = await exportFor('0.68.2', 'for-0.68', '1');
  newer = await exportFor(TRIVY, `for-${TRIVY}`, '2');
  assert.equal((await importInto(older)).code, 0);
});

after(async () => {
  await (world as World | undefined)?.close();
});

describe(`symlinked generations vs Trivy ${TRIVY}'s own writes`, () => {
  it('after the import: status reports nothing changed', async () => {
    const { code, json } = await status();
    assert.equal(code, 0);
    assert.deepEqual(changes(json), []);
  });

  it('Trivy online updates the checks and VEX in place, and re-downloads a cleaned DB: status says what Trivy changed', async () => {
    // Our checks bundle is major 1 (exported for 0.68): Trivy 0.69+ discards it and downloads :2.
    const config = await runTrivy(world, TRIVY, [
      'config',
      '--checks-bundle-repository',
      world.refs.checks['2']!,
      '--cache-dir',
      cache,
      '--skip-version-check',
      '--disable-telemetry',
      '--format',
      'json',
      world.project,
    ]);
    assert.equal(config.code, 0, config.stderr);
    // The repository declares update_interval 1s: Trivy replaces 0.1 in place.
    const vex = await runTrivy(world, TRIVY, ['vex', 'repo', 'download', 'probe', '--cache-dir', cache]);
    assert.equal(vex.code, 0, vex.stderr);
    const clean = await runTrivy(world, TRIVY, ['clean', '--vuln-db', '--cache-dir', cache]);
    assert.equal(clean.code, 0, clean.stderr);
    const removed = await status();
    assert.ok(changes(removed.json).includes('db removed'), JSON.stringify(removed.json.changedSinceImport));
    assert.equal(removed.code, 1, 'no vulnerability DB: Trivy cannot scan offline');
    const db = await runTrivy(world, TRIVY, [
      'rootfs',
      '--download-db-only',
      '--db-repository',
      world.refs.db,
      '--cache-dir',
      cache,
      '--skip-version-check',
      '--disable-telemetry',
    ]);
    assert.equal(db.code, 0, db.stderr);
    assert.ok(
      !lstatSync(join(cache, 'db')).isSymbolicLink(),
      'Trivy 0.63+ replaces the db link with a directory',
    );
    const { code, json } = await status();
    assert.deepEqual(changes(json), ['db replaced', 'policy modified', 'vex/probe modified']);
    assert.equal(code, 0, "Trivy's own content works offline: healthy, and reported as Trivy's");
  });

  it('rollback after Trivy changed generations in place: refused, nothing changed', async () => {
    // Nothing to roll back to yet for the changed components except their first import: make one.
    const imported = await importInto(newer);
    assert.equal(imported.code, 0, imported.stderr);
    const before = describeCache();
    const run = await runAirgap(world, ['rollback', '--cache-dir', cache, '--json']);
    assert.equal(run.code, 1, run.stdout);
    assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'CACHE_STATE_INVALID');
    assert.equal(describeCache(), before);
    assert.deepEqual(await scanOffline(), ALL);
    // Components Trivy left alone still roll back: java-db (ours, intact) and db (Trivy's own
    // download, taken over by the import as a pre-existing generation).
    const some = await runAirgap(world, [
      'rollback',
      '--cache-dir',
      cache,
      '--component',
      'java-db',
      '--component',
      'db',
    ]);
    assert.equal(some.code, 0, some.stderr);
    assert.deepEqual(await scanOffline(), ALL);
  });

  it('the next import takes over whatever Trivy left; status is clean again and Trivy scans offline', async () => {
    const imported = await importInto(newer);
    assert.equal(imported.code, 0, imported.stderr);
    const { code, json } = await status();
    assert.equal(code, 0);
    assert.deepEqual(changes(json), []);
    assert.deepEqual(await scanOffline(), ALL);
  });

  for (const [what, flags, expected] of [
    [
      'the Java DB, the checks bundle and the VEX repositories',
      ['--java-db', '--checks-bundle', '--vex-repo'],
      ['java-db removed', 'policy removed', 'vex/probe removed'],
    ],
    ['everything', ['--all'], ['db removed', 'java-db removed', 'policy removed', 'vex/probe removed']],
  ] as const) {
    it(`trivy clean ${flags.join(' ')} (${what}): status tells, the next import restores`, async () => {
      const clean = await runTrivy(world, TRIVY, ['clean', ...flags, '--cache-dir', cache]);
      assert.equal(clean.code, 0, clean.stderr);
      const after = await status();
      assert.deepEqual(changes(after.json), [...expected]);
      assert.equal(
        after.code,
        (flags as readonly string[]).includes('--all') ? 1 : 0,
        'FAIL only without the vulnerability DB',
      );
      const imported = await importInto(newer);
      assert.equal(imported.code, 0, imported.stderr);
      assert.deepEqual(changes((await status()).json), []);
      assert.deepEqual(await scanOffline(), ALL);
    });
  }
});
