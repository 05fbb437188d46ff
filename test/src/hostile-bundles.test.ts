import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  buildBundle,
  compressedOffset,
  defaultTestKey,
  flipTarByte,
  seededInt,
  seededRandom,
  testSeed,
  treeDigest,
  treeList,
  type BuiltBundle,
} from '@trivy-airgap/test-utils';

/**
 * Damaged and hostile bundles through the BUILT CLI as a process: what a user sees is the exit
 * code (3 = the bundle cannot be trusted), exactly one `error:` line, and a cache and VEX config
 * exactly as they were, without a staging directory left behind. In-process sweeps over many
 * more variants live in packages/importer/test; this file proves the process-level contract
 * (no unsettled promise: Node exits 13 when the top-level await never settles).
 */

const CLI = fileURLToPath(new URL('../../../packages/cli/dist/src/main.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'airgap-hostile-'));
after(() => rmSync(work, { recursive: true, force: true }));
const trust = join(work, 'signing.pub');
writeFileSync(trust, defaultTestKey().publicKeyPem);

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[]): Run {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: work,
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH, HOME: work, NO_COLOR: '1' },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A cache with a working import in it, so that "unchanged" means something. */
function seededCache(name: string): { cache: string; vexConfig: string } {
  const cache = join(work, name, 'cache');
  const vexConfig = join(work, name, 'repository.yaml');
  const seed = join(work, `${name}-seed.tgz`);
  const old = new Date('2024-01-01T00:00:00Z');
  writeFileSync(
    seed,
    buildBundle({
      components: [
        { kind: 'db', options: { updatedAt: old } },
        { kind: 'checks' },
        { kind: 'vex', updatedAt: old.toISOString() },
      ],
    }).bytes,
  );
  const run = cli(['import', seed, '--trust', trust, '--cache-dir', cache, '--vex-config', vexConfig]);
  assert.equal(run.code, 0, run.stderr);
  return { cache, vexConfig };
}

function snapshot(target: { cache: string; vexConfig: string }): string {
  const yaml = existsSync(target.vexConfig) ? readFileSync(target.vexConfig, 'utf8') : '';
  return `${treeDigest(target.cache)} ${yaml}`;
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('error:'));
}

/** verify and import both refuse with exit 3 and one error line; the cache is untouched. */
function assertRefusedByProcess(
  bytes: Buffer,
  target: { cache: string; vexConfig: string },
  what: string,
): void {
  const path = join(work, 'hostile.tgz');
  writeFileSync(path, bytes);
  const before = snapshot(target);
  const verify = cli(['verify', path, '--trust', trust]);
  assert.equal(verify.code, 3, `${what}: verify exited ${String(verify.code)}\n${verify.stderr}`);
  assert.equal(errorLines(verify.stderr).length, 1, `${what}: verify\n${verify.stderr}`);
  const run = cli([
    'import',
    path,
    '--trust',
    trust,
    '--cache-dir',
    target.cache,
    '--vex-config',
    target.vexConfig,
  ]);
  assert.equal(run.code, 3, `${what}: import exited ${String(run.code)}\n${run.stderr}`);
  assert.equal(errorLines(run.stderr).length, 1, `${what}: import\n${run.stderr}`);
  assert.equal(snapshot(target), before, `${what}: the cache changed:\n${treeList(target.cache).join('\n')}`);
  const staging = join(target.cache, '.trivy-airgap', 'staging');
  assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], `${what}: staging left behind`);
}

/** Offsets (in the uncompressed tar) spread over the body of the DB layer blob. */
function dbLayerOffsets(bundle: BuiltBundle, fractions: readonly number[]): number[] {
  const artifact = bundle.artifacts.get('db');
  assert.ok(artifact !== undefined);
  const entry = bundle.offsets.get(`oci/blobs/sha256/${artifact.layerDigest.slice('sha256:'.length)}`);
  assert.ok(entry !== undefined);
  return fractions.map((fraction) => entry.body + Math.floor(entry.size * fraction));
}

describe('damaged bundles through the CLI process: exit 3, one error line, cache unchanged', () => {
  // A DB big enough that its layer inflates over several chunks while the entry's digest is hashed.
  const bundle = buildBundle({
    components: [
      { kind: 'db', options: { dbContents: 1_500_000 } },
      { kind: 'java-db' },
      { kind: 'checks' },
      { kind: 'vex' },
    ],
  });

  it('a flipped byte inside a gzip-compressed layer cannot leave import unsettled (Node exit 13) or staging behind', () => {
    const target = seededCache('flip-layer');
    for (const offset of dbLayerOffsets(bundle, [0.3, 0.7])) {
      assertRefusedByProcess(flipTarByte(bundle, offset), target, `flip at tar offset ${offset}`);
    }
  });

  it('a bundle truncated in the middle cannot leave import unsettled or staging behind', () => {
    const target = seededCache('truncated');
    for (const fraction of [0.3, 0.6, 0.97]) {
      const cut = Math.floor(bundle.bytes.length * fraction);
      assertRefusedByProcess(bundle.bytes.subarray(0, cut), target, `truncated at ${cut}`);
    }
  });
});

describe('a representative subset of the importer sweeps through the CLI process', () => {
  // The same kind of bundle as packages/importer/test/sweeps.test.ts, smaller.
  const small = buildBundle({
    components: [{ kind: 'db' }, { kind: 'java-db' }, { kind: 'checks' }, { kind: 'vex' }],
  });

  it('flips in the gzip header, the manifest and the signature, and seeded random flips and a cut: exit 3, one error line', (t) => {
    const target = seededCache('sweep-subset');
    const seed = testSeed();
    t.diagnostic(`seed ${seed} (TRIVY_AIRGAP_SEED=${seed} replays this run)`);
    const random = seededRandom(seed);
    const manifest = small.offsets.get('manifest.json');
    const signature = small.offsets.get('manifest.json.sig');
    assert.ok(manifest !== undefined && signature !== undefined);
    // Flips inside a gzip'd layer and mid-bundle cuts have their own tests above.
    const flips: { what: string; offset: number }[] = [
      { what: 'gzip MTIME', offset: 5 },
      { what: 'manifest body', offset: compressedOffset(small.bytes, manifest.body + 40) },
      { what: 'signature body', offset: compressedOffset(small.bytes, signature.body + 10) },
    ];
    for (let i = 0; i < 2; i++)
      flips.push({ what: `seeded flip ${i}`, offset: seededInt(random, 0, small.bytes.length) });
    for (const { what, offset } of flips) {
      const bytes = Buffer.from(small.bytes);
      bytes[offset] = (bytes[offset] ?? 0) ^ 0x01;
      assertRefusedByProcess(bytes, target, `seed ${seed}: ${what} (byte ${offset})`);
    }
    const cut = seededInt(random, 0, small.bytes.length);
    assertRefusedByProcess(small.bytes.subarray(0, cut), target, `seed ${seed}: truncated to ${cut}`);
  });
});
