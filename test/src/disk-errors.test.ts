import assert from 'node:assert/strict';
import { spawn, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@trivy-airgap/format';
import {
  assertCanMount,
  buildBundle,
  defaultTestKey,
  seedRegistryWithSkopeo,
  spawnWithMounts,
  startRegistry,
  treeDigest,
  trivyArtifact,
  type TestMount,
  type TestRegistry,
} from '@trivy-airgap/test-utils';

/**
 * Disks that users' machines really have: a read-only cache, a full work dir, a full output
 * disk. Each error must be one clear line naming the path (exit 1, a FS_* code), never "this is
 * a bug", and must leave the cache as it was and no output behind. The built CLI runs as a
 * process in a private mount namespace where the directory is really read-only or really full.
 */

const CLI = fileURLToPath(new URL('../../../packages/cli/dist/src/main.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'airgap-disk-'));
const trust = join(work, 'signing.pub');
const bundle = join(work, 'bundle.tgz');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The built CLI as a process, in a mount namespace with `mounts` when given. `listAfter`: a
 * directory listed inside that namespace after the CLI exits (a tmpfs vanishes with it), as
 * `left: <names>` on stderr's last line.
 */
function runCli(args: string[], mounts: readonly TestMount[] = [], listAfter?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const options: SpawnOptions = { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] };
    const child =
      mounts.length === 0
        ? spawn(process.execPath, [CLI, ...args], options)
        : listAfter === undefined
          ? spawnWithMounts(mounts, process.execPath, [CLI, ...args], options)
          : spawnWithMounts(
              mounts,
              'sh',
              [
                '-c',
                '"$@"; s=$?; printf "left: %s\\n" "$(ls -A "$0")" >&2; exit $s',
                listAfter,
                process.execPath,
                CLI,
                ...args,
              ],
              options,
            );
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface JsonError {
  code: string;
  category: string;
  path?: string;
  message: string;
  hint?: string;
}

/** Runs with --json and returns the error document, after checking exit 1 and nothing else on stdout. */
async function failsWith(
  args: string[],
  mounts: readonly TestMount[],
  code: string,
  listAfter?: string,
): Promise<JsonError & { left?: string }> {
  const run = await runCli([...args, '--json'], mounts, listAfter);
  assert.equal(run.code, 1, run.stderr + run.stdout);
  const { error } = JSON.parse(run.stdout) as { error: JsonError };
  assert.equal(error.code, code, error.message);
  assert.equal(error.category, 'failure');
  assert.doesNotMatch(run.stderr, /this is a bug/);
  const left = /left: (.*)\n$/.exec(run.stderr)?.[1];
  if (listAfter !== undefined) assert.notEqual(left, undefined, run.stderr);
  return { ...error, ...(left === undefined ? {} : { left }) };
}

let counter = 0;
function freshDir(name: string): string {
  const dir = join(work, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

before(() => {
  assertCanMount();
  writeFileSync(trust, defaultTestKey().publicKeyPem);
  writeFileSync(bundle, buildBundle({ components: [{ kind: 'db' }, { kind: 'checks' }] }).bytes);
});

after(() => rmSync(work, { recursive: true, force: true }));

describe('a read-only cache (read-only bind mount)', () => {
  // Node's recursive mkdir reports a read-only parent as ENOENT: FS_CANNOT_CREATE says both.
  it('import into an empty read-only cache dir: FS_CANNOT_CREATE naming the path, nothing written', async () => {
    const cache = freshDir('ro-empty');
    const error = await failsWith(
      ['import', bundle, '--trust', trust, '--cache-dir', cache],
      [{ kind: 'read-only', path: cache }],
      'FS_CANNOT_CREATE',
    );
    assert.ok(error.path?.startsWith(cache), error.path);
    assert.match(error.message, /read-only/);
    assert.deepEqual(readdirSync(cache), []);
  });

  it('import into a cache dir to be made under a read-only parent: FS_CANNOT_CREATE naming it', async () => {
    const parent = freshDir('ro-parent');
    const cache = join(parent, 'trivy');
    const error = await failsWith(
      ['import', bundle, '--trust', trust, '--cache-dir', cache],
      [{ kind: 'read-only', path: parent }],
      'FS_CANNOT_CREATE',
    );
    assert.equal(error.path, cache);
    assert.ok(!existsSync(cache));
  });

  it('rollback and a new import on a cache that became read-only: FS_READ_ONLY, the cache unchanged', async () => {
    const cache = freshDir('ro-filled');
    const run = await runCli(['import', bundle, '--trust', trust, '--cache-dir', cache, '--quiet']);
    assert.equal(run.code, 0, run.stderr);
    const before = treeDigest(cache);
    const readOnly: TestMount[] = [{ kind: 'read-only', path: cache }];
    // As a person sees it: one error line and the advice, no stack, not "this is a bug".
    const human = await runCli(['rollback', '--cache-dir', cache], readOnly);
    assert.equal(human.code, 1);
    assert.match(
      human.stderr,
      new RegExp(`^error: cannot open ${cache}/\\S+: read-only file system\\n  \\S`),
    );
    assert.doesNotMatch(human.stderr, /this is a bug|\n\s+at /);
    await failsWith(
      ['import', bundle, '--trust', trust, '--cache-dir', cache, '--allow-downgrade'],
      readOnly,
      'FS_READ_ONLY',
    );
    assert.equal(treeDigest(cache), before);
  });
});

describe('a full disk (1 MiB tmpfs)', () => {
  let registry: TestRegistry;
  let key: string;

  before(async () => {
    registry = await startRegistry({ mode: 'plain' });
    // ~3 MB of incompressible DB content: does not fit into the 1 MiB tmpfs.
    await seedRegistryWithSkopeo(registry, {
      'aquasec/trivy-db:2': trivyArtifact('db', { dbContents: 3_000_000 }),
    });
    key = join(work, 'signing.key');
    writeFileSync(key, generateKeyPair('ecdsa-p256').privateKeyPem);
  });

  after(async () => {
    await registry.stop();
  });

  const exportArgs = (workDir: string, output: string) => [
    'export',
    '--db',
    '--db-repository',
    `${registry.host}/aquasec/trivy-db:2`,
    '--plain-http',
    '--work-dir',
    workDir,
    '--key',
    key,
    '-o',
    output,
  ];

  it('export --work-dir on a full disk: FS_NO_SPACE naming the work dir, no bundle written', async () => {
    const workDir = freshDir('full-work');
    const out = freshDir('out');
    const error = await failsWith(
      exportArgs(workDir, join(out, 'bundle.tgz')),
      [{ kind: 'tmpfs', path: workDir, size: '1m' }],
      'FS_NO_SPACE',
    );
    assert.ok(error.path?.startsWith(workDir), error.path);
    assert.match(error.hint ?? '', new RegExp(`free space on the disk of ${workDir}|--work-dir`));
    assert.deepEqual(readdirSync(out), []);
  });

  it('export -o onto a full disk: FS_NO_SPACE naming the bundle, no part of it left', async () => {
    const workDir = freshDir('roomy-work');
    const out = freshDir('full-out');
    const output = join(out, 'bundle.tgz');
    const error = await failsWith(
      exportArgs(workDir, output),
      [{ kind: 'tmpfs', path: out, size: '1m' }],
      'FS_NO_SPACE',
      out,
    );
    assert.ok(error.path?.startsWith(out), error.path);
    assert.equal(error.left, '', 'the full disk holds no partial bundle, part or temp file');
  });
});
