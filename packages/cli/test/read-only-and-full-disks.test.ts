import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';
import { CLI, cliCommand, cliSync, runProgram, userEnv, type Run } from './process.js';

// Issue 12: errors a user's environment causes — a read-only cache (a read-only bind mount), a full
// disk under `export --work-dir` (a small tmpfs) — are one line naming the path and what to do,
// exit 1, never "this is a bug". The mounts are made inside a private mount namespace
// (`unshare -m`), so they vanish with the shell that made them, whatever happens to this test.
// That needs root (CAP_SYS_ADMIN), as CI and these machines run; without it the test FAILS, saying so.

const work = mkdtempSync(join(tmpdir(), 'airgap-env-errors-'));
const env = userEnv(work);
writeFileSync(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);
const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000);
writeFileSync(
  join(work, 'first.tgz'),
  utils.buildBundle({ components: [{ kind: 'db', options: { updatedAt: hoursAgo(5) } }] }).bytes,
);
writeFileSync(
  join(work, 'second.tgz'),
  utils.buildBundle({ components: [{ kind: 'db', options: { updatedAt: hoursAgo(1) } }] }).bytes,
);

let registry: utils.TestRegistry;
before(async () => {
  registry = await utils.startRegistry({ mode: 'plain' });
  // An incompressible 1 MiB DB: its layer cannot fit a 256 KiB work dir.
  await utils.seedRegistryWithSkopeo(registry, {
    'aquasec/trivy-db:2': utils.trivyArtifact('db', { dbContents: 1 << 20 }),
  });
});
after(async () => {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
});

/**
 * Runs `setup` (mounts) then the CLI in a private mount namespace, then `afterwards` (a look at
 * what the mounts hold, before they vanish); returns the CLI's result.
 */
function inMountNamespace(setup: string, args: string[], afterwards = ''): Promise<Run> {
  const script = `set -e\n${setup}\nset +e\n${cliCommand(args)}\ncode=$?\n${afterwards}\nexit $code`;
  return runProgram('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], {
    cwd: work,
    env,
  });
}

/** Fails loudly when this machine cannot make the mounts (not root): never a silent skip. */
function assertMounted(run: Run): void {
  assert.doesNotMatch(
    run.stderr,
    /^(unshare|mount): /m,
    `this test needs root (CAP_SYS_ADMIN) for unshare --mount and mount; run the suite as root:\n${run.stderr}`,
  );
}

function readOnly(dir: string): string {
  return `mount --bind ${dir} ${dir}\nmount -o remount,bind,ro ${dir}`;
}

/** One `error:` line (and its hint), naming `path`, no stack, no "this is a bug". */
function assertOneLine(run: Run, path: string): void {
  const errors = run.stderr.split('\n').filter((line) => line.startsWith('error:'));
  assert.equal(errors.length, 1, run.stderr);
  assert.ok(errors[0]?.includes(path), `the error names ${path}: ${run.stderr}`);
  assert.doesNotMatch(run.stderr, /bug|INTERNAL|^\s+at /m, run.stderr);
}

describe('a read-only cache', () => {
  it('import into an empty cache dir on a read-only mount: exit 1, one line naming the cache, not "a bug"', async () => {
    const cache = join(work, 'ro-empty');
    mkdirSync(cache);
    const args = ['import', 'first.tgz', '--trust', 'signing.pub', '--cache-dir', cache];
    const human = await inMountNamespace(readOnly(cache), args);
    assertMounted(human);
    assert.equal(human.code, 1, human.stderr);
    assertOneLine(human, cache);
    const json = await inMountNamespace(readOnly(cache), [...args, '--json']);
    // Node's recursive mkdir reports ENOENT, not EROFS, on a read-only mount: the shared mapping
    // calls that FS_CANNOT_CREATE ("missing, read-only or not writable"), naming the directory.
    assert.ok(
      ['FS_READ_ONLY', 'FS_CANNOT_CREATE'].includes(
        (JSON.parse(json.stdout) as { error: { code: string } }).error.code,
      ),
      json.stdout,
    );
  });

  it('import and rollback on a cache that became read-only: exit 1, one line naming the cache, the cache as it was', async () => {
    const cache = join(work, 'ro-installed');
    for (const bundle of ['first.tgz', 'second.tgz']) {
      const run = cliSync(['import', bundle, '--trust', 'signing.pub', '--cache-dir', cache], {
        cwd: work,
        env,
      });
      assert.equal(run.code, 0, run.stderr);
    }
    const before = utils.treeDigest(cache);
    const imported = await inMountNamespace(readOnly(cache), [
      'import',
      'second.tgz',
      '--trust',
      'signing.pub',
      '--cache-dir',
      cache,
    ]);
    assertMounted(imported);
    assert.equal(imported.code, 1, imported.stderr);
    assertOneLine(imported, cache);
    const rolledBack = await inMountNamespace(readOnly(cache), ['rollback', '--cache-dir', cache, '--json']);
    assert.equal(rolledBack.code, 1, rolledBack.stderr);
    const error = (JSON.parse(rolledBack.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'FS_READ_ONLY');
    assert.ok(error.message.includes(cache), error.message);
    const human = await inMountNamespace(readOnly(cache), ['rollback', '--cache-dir', cache]);
    assertOneLine(human, cache);
    assert.equal(utils.treeDigest(cache), before);
  });
});

describe('a full disk', () => {
  it('export --work-dir on a 256 KiB tmpfs: exit 1, FS_NO_SPACE naming the work dir, no bundle', async () => {
    const workDir = join(work, 'small-work-dir');
    mkdirSync(workDir);
    const args = [
      'export',
      '--db',
      '--unsigned',
      '--plain-http',
      '--db-repository',
      `${registry.host}/aquasec/trivy-db:2`,
      '--work-dir',
      workDir,
      '-o',
      join(work, 'full.tgz'),
    ];
    const tmpfs = `mount -t tmpfs -o size=256k tmpfs ${workDir}`;
    const human = await inMountNamespace(tmpfs, args);
    assertMounted(human);
    assert.equal(human.code, 1, human.stderr);
    assertOneLine(human, workDir);
    const json = await inMountNamespace(tmpfs, [...args, '--json']);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'FS_NO_SPACE');
    assert.deepEqual(
      readdirSync(work).filter((name) => name.startsWith('full.tgz')),
      [],
    );
  });
});

describe('a full cache disk', () => {
  it('import of a 1 MiB DB into a cache on a 256 KiB tmpfs: exit 1, FS_NO_SPACE naming the cache; what was installed stays, no staging left', async () => {
    writeFileSync(
      join(work, 'big.tgz'),
      utils.buildBundle({
        components: [{ kind: 'db', options: { updatedAt: hoursAgo(1), dbContents: 1 << 20 } }],
      }).bytes,
    );
    const cache = join(work, 'full-cache');
    mkdirSync(cache);
    const setup = [
      `mount -t tmpfs -o size=256k tmpfs ${cache}`,
      cliCommand(['import', 'first.tgz', '--trust', 'signing.pub', '--cache-dir', cache, '--quiet']),
    ].join('\n');
    const seen = join(work, 'full-cache-seen.json');
    const staging = join(work, 'full-cache-staging.txt');
    const afterwards = `${cliCommand(['status', '--cache-dir', cache, '--json'])} > ${seen}; ls -A ${cache}/.trivy-airgap/staging > ${staging} 2>&1`;
    const args = ['import', 'big.tgz', '--trust', 'signing.pub', '--cache-dir', cache];
    const human = await inMountNamespace(setup, args, afterwards);
    assertMounted(human);
    assert.equal(human.code, 1, human.stderr);
    assertOneLine(human, cache);
    const json = await inMountNamespace(setup, [...args, '--json'], afterwards);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'FS_NO_SPACE');
    const status = JSON.parse(readFileSync(seen, 'utf8')) as {
      diagnosis: { components: { kind: string; verdict: string }[] };
    };
    assert.deepEqual(
      status.diagnosis.components.filter((c) => c.kind === 'db').map((c) => c.verdict),
      ['ok'],
      'the DB installed before is still there and usable',
    );
    assert.equal(readFileSync(staging, 'utf8'), '', 'no staging left behind');
  });
});

describe('a path of the wrong kind, a directory the user may not write', () => {
  // The first two through run() in process (the message is the point); EACCES needs another user.
  it('--vex-config naming a directory: exit 1, FS_IS_A_DIRECTORY naming it, refused before anything is installed', async () => {
    writeFileSync(
      join(work, 'with-vex.tgz'),
      utils.buildBundle({ components: [{ kind: 'db' }, { kind: 'vex' }] }).bytes,
    );
    const vexConfig = join(work, 'vex-config-dir');
    mkdirSync(vexConfig);
    const cache = join(work, 'vex-config-cache');
    const args = ['import', 'with-vex.tgz', '--trust', 'signing.pub', '--cache-dir', cache];
    const human = await runCli([...args, '--vex-config', vexConfig], { cwd: work, env });
    assert.equal(human.code, 1, human.stderr);
    assertOneLine(human, vexConfig);
    const json = await runCli([...args, '--vex-config', vexConfig, '--json'], { cwd: work, env });
    const error = (JSON.parse(json.stdout) as { error: { code: string; path?: string } }).error;
    assert.deepEqual([error.code, error.path], ['FS_IS_A_DIRECTORY', vexConfig]);
    assert.ok(!existsSync(join(cache, 'db')), 'no component was installed');
  });

  it('keygen --out-dir naming a file: exit 1, FS_NOT_A_DIRECTORY naming it, not "a bug"', async () => {
    const file = join(work, 'not-a-dir');
    writeFileSync(file, 'a file\n');
    const human = await runCli(['keygen', '--out-dir', file], { cwd: work, env });
    assert.equal(human.code, 1, human.stderr);
    assertOneLine(human, file);
    const json = await runCli(['keygen', '--out-dir', file, '--json'], { cwd: work, env });
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'FS_NOT_A_DIRECTORY');
  });

  it('a cache directory another user owns (EACCES, run as nobody): exit 1, FS_PERMISSION_DENIED naming it', () => {
    const cache = join(work, 'root-owned-cache');
    mkdirSync(cache, { mode: 0o755 });
    chmodSync(work, 0o755); // nobody may read the bundle and the key, not write the cache
    const asNobody = (extra: string[]) =>
      spawnSync(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          process.execPath,
          CLI,
          'import',
          'first.tgz',
          '--trust',
          'signing.pub',
          '--cache-dir',
          cache,
          ...extra,
        ],
        { cwd: work, env: { ...env, HOME: cache }, encoding: 'utf8' },
      );
    const human = asNobody([]);
    assert.equal(human.status, 1, `${human.stderr}${human.error?.message ?? ''}`);
    assertOneLine(
      { code: human.status, signal: human.signal, stdout: human.stdout, stderr: human.stderr },
      cache,
    );
    const json = asNobody(['--json']);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'FS_PERMISSION_DENIED');
    assert.deepEqual(readdirSync(cache), []);
  });
});
