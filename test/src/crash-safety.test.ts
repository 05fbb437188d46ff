import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  buildBundle,
  checksLayer,
  defaultTestKey,
  seededInt,
  seededRandom,
  runNode,
  testSeed,
  type BuiltBundle,
  type ProcessRun,
} from '@trivy-airgap/test-utils';

/**
 * Crash safety of a real import (design.md: "a crash at any moment leaves each component either old
 * or new, never mixed; leftovers are cleaned on the next run"): the built CLI imports a bundle of
 * about ten MB and is killed with SIGKILL at seeded random moments, while a reader in this process
 * hashes db/trivy.db in a loop as a running Trivy would read it. Three caches ("lanes") are worked
 * at once, each with its own reader, ten kills each: the kills wait mostly on fsync and process
 * start, so lanes overlap well on two cores. After each kill, every component
 * is wholly the old or the new one (files and metadata of one generation; every third time also as
 * `status --json` reports it); every fourth import runs to the end and must succeed and leave no
 * staging, temporary link, journal or lock behind.
 */

const CLI = fileURLToPath(new URL('../../../packages/cli/dist/src/main.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'airgap-crash-'));
after(() => rmSync(work, { recursive: true, force: true }));
const trust = join(work, 'signing.pub');
writeFileSync(trust, defaultTestKey().publicKeyPem);
/** One cache and its repository.yaml; several lanes run at once, each killing its own imports. */
interface Lane {
  readonly cache: string;
  readonly vexConfig: string;
}

interface Version {
  readonly name: 'old' | 'new';
  readonly path: string;
  readonly bundle: BuiltBundle;
  readonly updatedAt: string;
  readonly dbHash: string;
  readonly javaDbHash: string;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

function version(name: 'old' | 'new', updatedAt: string): Version {
  // Big enough that kills land in every phase (streaming, staging, durability, swaps), small
  // enough for the suite's time budget (scripts/test ~10 min on 2 cores).
  const db = randomBytes(8 * 1024 * 1024);
  const javaDb = randomBytes(2 * 1024 * 1024);
  const date = new Date(updatedAt);
  const bundle = buildBundle({
    components: [
      { kind: 'db', options: { updatedAt: date, dbContents: db } },
      { kind: 'java-db', options: { updatedAt: date, dbContents: javaDb } },
      {
        kind: 'checks',
        options: { layer: checksLayer(name), checksVersion: name === 'old' ? '2.1.0' : '2.2.0' },
      },
      { kind: 'vex', updatedAt },
    ],
  });
  const path = join(work, `${name}.tgz`);
  writeFileSync(path, bundle.bytes);
  return { name, path, bundle, updatedAt, dbHash: sha256(db), javaDbHash: sha256(javaDb) };
}

/** Runs the CLI; `killAfterMs` sends SIGKILL then. */
function cli(args: readonly string[], killAfterMs?: number): Promise<ProcessRun> {
  return runNode(CLI, args, {
    cwd: work,
    env: { PATH: process.env.PATH, HOME: work, NO_COLOR: '1' },
    ...(killAfterMs === undefined ? {} : { killAfterMs }),
  });
}

const importArgs = ({ cache, vexConfig }: Lane, bundle: string): string[] => [
  'import',
  bundle,
  '--trust',
  trust,
  '--cache-dir',
  cache,
  '--vex-config',
  vexConfig,
  '--allow-downgrade',
];

/** Which version each component is, asserting that its files all belong to that one version. */
function installedVersions(cache: string, versions: readonly Version[]): Record<string, string> {
  const which = (found: string, pick: (v: Version) => string, what: string): Version => {
    const match = versions.find((v) => pick(v) === found);
    assert.ok(match !== undefined, `${what} is neither the old nor the new one: ${found}`);
    return match;
  };
  const json = (path: string): Record<string, unknown> =>
    JSON.parse(readFileSync(join(cache, path), 'utf8')) as Record<string, unknown>;
  const db = which(sha256(readFileSync(join(cache, 'db', 'trivy.db'))), (v) => v.dbHash, 'db/trivy.db');
  assert.equal(
    Date.parse(String(json('db/metadata.json').UpdatedAt)),
    Date.parse(db.updatedAt),
    'db metadata mixed',
  );
  const javaDb = which(
    sha256(readFileSync(join(cache, 'java-db', 'trivy-java.db'))),
    (v) => v.javaDbHash,
    'java-db/trivy-java.db',
  );
  assert.equal(
    Date.parse(String(json('java-db/metadata.json').UpdatedAt)),
    Date.parse(javaDb.updatedAt),
    'java-db metadata mixed',
  );
  const rego = readFileSync(
    join(cache, 'policy', 'content', 'policies', 'kubernetes', 'policies', 'general', 'privileged.rego'),
    'utf8',
  );
  const checks = which(rego.includes('# old') ? 'old' : 'new', (v) => v.name, 'policy/content');
  assert.equal(
    json('policy/metadata.json').Digest,
    checks.bundle.artifacts.get('checks')?.manifestDigest,
    'policy metadata mixed',
  );
  const index = json('vex/repositories/default/0.1/index.json');
  const vex = which(String(index.updated_at), (v) => v.updatedAt, 'VEX index.json');
  assert.ok(existsSync(join(cache, 'vex', 'repositories', 'default', 'vex-repository.json')));
  return { db: db.name, 'java-db': javaDb.name, checks: checks.name, vex: vex.name };
}

/** Nothing an interrupted run leaves: staging, temporary links, the journal, the lock. */
function assertNoLeftovers(cache: string): void {
  const state = join(cache, '.trivy-airgap');
  const staging = join(state, 'staging');
  assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], 'staging left');
  for (const dir of [cache, join(cache, 'vex', 'repositories')]) {
    const temp = readdirSync(dir).filter((name) => name.endsWith('.trivy-airgap-new'));
    assert.deepEqual(temp, [], `temporary links left in ${dir}`);
  }
  assert.ok(!existsSync(join(state, 'journal.json')), 'journal left');
  assert.ok(!existsSync(join(state, 'lock')), 'lock left');
}

/** What one lane saw. */
interface LaneResult {
  kills: number;
  completed: number;
}

/**
 * Imports into one lane's cache, killing most of them at a seeded moment, until `kills` were
 * killed: every fourth import runs to the end instead and must finish what the kills left.
 */
async function killImports(
  lane: Lane,
  versions: readonly Version[],
  random: () => number,
  wanted: number,
  fullImportMs: number,
): Promise<LaneResult> {
  const { cache, vexConfig } = lane;
  let kills = 0;
  let completed = 0;
  let importMs = fullImportMs;
  for (let round = 0; kills < wanted && round < 3 * wanted; round++) {
    const target = versions[round % 2]!;
    if (round % 4 === 3) {
      // The next import after kills: it must finish what they left and succeed.
      const begun = Date.now();
      const run = await cli(importArgs(lane, target.path));
      importMs = Date.now() - begun;
      assert.equal(run.code, 0, `${cache} round ${round}: ${run.stderr}`);
      assertNoLeftovers(cache);
      const installed = installedVersions(cache, versions);
      for (const [component, name] of Object.entries(installed)) {
        assert.equal(name, target.name, `${cache} round ${round}: ${component} is not the imported one`);
      }
      completed++;
      continue;
    }
    // Anywhere from process start to just before the end of a full import.
    const delay = seededInt(random, 0, Math.max(50, Math.floor(importMs * 0.95)));
    const run = await cli(importArgs(lane, target.path), delay);
    if (run.signal === 'SIGKILL') kills++;
    else assert.equal(run.code, 0, `${cache} round ${round} (not killed): ${run.stderr}`);
    // Each component wholly old or new (files and metadata of one generation), after every kill.
    installedVersions(cache, versions);
    // `status` reads the cache as it was left (every third kill: each run is a process start).
    if (kills % 3 !== 0) continue;
    const status = await cli(['status', '--cache-dir', cache, '--vex-config', vexConfig, '--json']);
    assert.ok(status.code === 0 || status.code === 1, `status: ${status.stderr}`);
    const report = JSON.parse(status.stdout) as {
      diagnosis?: { components?: { kind: string; present?: boolean }[] };
    };
    for (const kind of ['db', 'java-db', 'checks', 'vex']) {
      assert.ok(
        report.diagnosis?.components?.some((c) => c.kind === kind && c.present === true),
        `${cache} round ${round}: status does not show ${kind}:\n${status.stdout}`,
      );
    }
  }
  return { kills, completed };
}

/** Lanes at once (each its own cache, reader and seeded moments) and the kills each must reach. */
const LANES = 3;
const KILLS_PER_LANE = 10;

describe('crash safety: a real import killed (SIGKILL) at random moments', () => {
  it('every component stays old or new, a reader never sees a partial DB, the next import finishes and cleans up', async (t) => {
    const versions = [version('old', '2026-11-20T06:12:01.123Z'), version('new', '2026-11-25T06:12:01.123Z')];
    const lanes: Lane[] = Array.from({ length: LANES }, (_, index) => ({
      cache: join(work, `cache-${index}`),
      vexConfig: join(work, `repository-${index}.yaml`),
    }));
    const started = Date.now();
    for (const lane of lanes) {
      const seeded = await cli(importArgs(lane, versions[0]!.path));
      assert.equal(seeded.code, 0, seeded.stderr);
      installedVersions(lane.cache, versions);
    }
    const fullImportMs = Math.round((Date.now() - started) / LANES);

    // A reader per lane, like a Trivy scan, hashing the DB through the link for the whole test.
    let reads = 0;
    let reading = true;
    const readers = lanes.map(async ({ cache }) => {
      while (reading) {
        const bytes = await readFile(join(cache, 'db', 'trivy.db'));
        const hash = sha256(bytes);
        assert.ok(
          versions.some((v) => v.dbHash === hash),
          `a reader saw a ${cache}/db/trivy.db that is neither old nor new (${bytes.length} bytes)`,
        );
        reads++;
        // Leave the CPU to the import now and then, as a scan would between lookups.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });

    const seed = testSeed();
    t.diagnostic(`seed ${seed} (TRIVY_AIRGAP_SEED=${seed} replays); a full import took ${fullImportMs} ms`);
    // One seeded sequence per lane, derived from the one seed, so a replay is exact per lane.
    const randoms = lanes.map((_, index) => seededRandom(seed + index));
    let results: LaneResult[];
    try {
      results = await Promise.all(
        lanes.map((lane, index) =>
          killImports(lane, versions, randoms[index]!, KILLS_PER_LANE, fullImportMs),
        ),
      );
    } finally {
      reading = false;
      await Promise.all(readers);
    }
    const kills = results.reduce((sum, r) => sum + r.kills, 0);
    const completed = results.reduce((sum, r) => sum + r.completed, 0);
    t.diagnostic(`${kills} imports killed, ${completed} completed, ${reads} reads of db/trivy.db`);
    assert.ok(kills >= 30, `only ${kills} imports were killed mid-way`);
    assert.ok(reads > 0);
  });
});
