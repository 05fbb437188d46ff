import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';
import { cliCommand, cliSync, onTerminal, shell, userEnv } from './process.js';

// Issue 12, "what people type" and "smaller": the CLI with the arguments, environment and terminal
// an operator really has; through await run() in process, as a process where the shell or the terminal
// is the point (process substitution, colours, the width of help, a stalled pipe).

const work = mkdtempSync(join(tmpdir(), 'airgap-typed-'));
after(() => rmSync(work, { recursive: true, force: true }));
const key = utils.defaultTestKey();
writeFileSync(join(work, 'signing.pub'), key.publicKeyPem);
writeFileSync(join(work, 'signing.key'), key.privateKeyPem);
const other = utils.makeTestKey('ed25519');
writeFileSync(join(work, 'other.pub'), other.publicKeyPem);
const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000);
const bundle = utils.buildBundle({ components: [{ kind: 'db', options: { updatedAt: hoursAgo(2) } }] });
writeFileSync(join(work, 'bundle.tgz'), bundle.bytes);
writeFileSync(
  join(work, 'older.tgz'),
  utils.buildBundle({ components: [{ kind: 'db', options: { updatedAt: hoursAgo(48) } }] }).bytes,
);
writeFileSync(
  join(work, 'unsigned.tgz'),
  utils.buildBundle({ key: null, components: [{ kind: 'db' }] }).bytes,
);

const env = userEnv(work);
const run = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  runCli(args, { cwd: work, env: { ...env, ...extra } });
function jsonError(stdout: string): { code: string; message: string; hint?: string } {
  return (JSON.parse(stdout) as { error: { code: string; message: string; hint?: string } }).error;
}

describe('--trust: one key per flag, in any order (cosign/oras users put it first)', () => {
  it('`verify --trust signing.pub bundle.tgz` verifies; the flag repeats for several keys', async () => {
    assert.equal((await run(['verify', '--trust', 'signing.pub', 'bundle.tgz'])).code, 0);
    assert.equal(
      (await run(['verify', '--trust', 'other.pub', '--trust', 'signing.pub', 'bundle.tgz'])).code,
      0,
    );
    assert.equal((await run(['inspect', '--trust', 'signing.pub', 'bundle.tgz'])).code, 0);
    const cache = join(work, 'trust-first-cache');
    assert.equal(
      (await run(['import', '--trust', 'signing.pub', 'bundle.tgz', '--cache-dir', cache])).code,
      0,
    );
  });

  it('--trust without a value is a usage error (exit 2), not "no key given"', async () => {
    const last = await run(['verify', 'bundle.tgz', '--trust', '--json']);
    assert.equal(last.code, 2);
    assert.equal(jsonError(last.stdout).code, 'USAGE');
    assert.equal((await run(['verify', 'bundle.tgz', '--trust'])).code, 2);
    // Said in the user's words, not yargs' "Not enough arguments following: trust".
    assert.match(jsonError(last.stdout).message, /^--trust needs a value/);
  });

  it('a command without its bundle names the bundle as missing (exit 2), not "non-option arguments"', async () => {
    for (const args of [
      ['verify', '--trust', 'signing.pub'],
      ['inspect'],
      ['import', '--trust', 'signing.pub'],
    ]) {
      const result = await run([...args, '--json']);
      assert.equal(result.code, 2, result.stdout);
      const error = jsonError(result.stdout);
      assert.equal(error.code, 'USAGE');
      assert.match(error.message, new RegExp(`^${args[0] ?? ''} needs the bundle`));
    }
  });
});

describe('the bundle path', () => {
  it('a directory or /dev/null: exit 1, BUNDLE_NOT_A_FILE naming the path', async () => {
    for (const path of [work, '/dev/null']) {
      const result = await run(['verify', path, '--trust', 'signing.pub', '--json']);
      assert.equal(result.code, 1, result.stdout);
      const error = jsonError(result.stdout);
      assert.equal(error.code, 'BUNDLE_NOT_A_FILE');
      assert.ok(error.message.includes(path));
    }
  });

  it('a named pipe (`verify <(cat parts…)`) is read like standard input', () => {
    const command = `${cliCommand(['verify', '--trust', 'signing.pub'])} <(cat bundle.tgz)`;
    const result = shell(command, { cwd: work, env });
    assert.equal(result.code, 0, result.stderr);
  });

  it('a missing middle split part is named (BUNDLE_PART_MISSING), not "unexpected end of file"', async () => {
    const size = Math.ceil(bundle.bytes.length / 3);
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(work, `split.tgz.part-00${i}`), bundle.bytes.subarray(i * size, (i + 1) * size));
    }
    assert.equal((await run(['verify', 'split.tgz', '--trust', 'signing.pub'])).code, 0);
    rmSync(join(work, 'split.tgz.part-001'));
    const result = await run(['verify', 'split.tgz.part-000', '--trust', 'signing.pub', '--json']);
    assert.equal(result.code, 1, result.stdout);
    const error = jsonError(result.stdout);
    assert.equal(error.code, 'BUNDLE_PART_MISSING');
    assert.ok(error.message.includes('split.tgz.part-001'));
  });

  it('one split part: "(1 part)", not "(1 parts)"', async () => {
    writeFileSync(join(work, 'one.tgz.part-000'), bundle.bytes);
    const result = await run(['verify', 'one.tgz', '--trust', 'signing.pub']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /\(1 part\)/);
    assert.doesNotMatch(result.stderr, /1 parts/);
  });
});

describe('flags and keys', () => {
  it('an unknown flag is named as typed, without camelCase twins (exit 2)', async () => {
    const result = await run(['status', '--cache-dri', 'x']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /cache-dri/);
    assert.doesNotMatch(result.stderr, /cacheDri/);
  });

  it('a bad --expires is a usage error that names the flag', async () => {
    const result = await run(['export', '--all', '--unsigned', '--expires', 'soon', '-o', 'b.tgz', '--json']);
    assert.equal(result.code, 2);
    const error = jsonError(result.stdout);
    assert.equal(error.code, 'USAGE');
    assert.match(error.message, /^--expires\b/);
  });

  it('--key given the public key says that it is the public key (exit 1, nothing written)', async () => {
    const result = await run(['export', '--db', '--key', 'signing.pub', '-o', 'pub.tgz', '--json']);
    assert.equal(result.code, 1);
    const error = jsonError(result.stdout);
    assert.equal(error.code, 'KEY_INVALID');
    assert.match(error.message, /public key/);
    assert.ok(!existsSync(join(work, 'pub.tgz')));
  });

  it('*.pem files in the trusted-keys folder are trusted like *.pub', async () => {
    const home = join(work, 'pem-user');
    const keys = join(home, 'config', 'trivy-airgap', 'trusted-keys');
    mkdirSync(keys, { recursive: true });
    writeFileSync(join(keys, 'site-signing.pem'), key.publicKeyPem);
    const result = await runCli(['verify', 'bundle.tgz'], { cwd: work, env: userEnv(home) });
    assert.equal(result.code, 0, result.stderr);
  });

  it('keygen --passphrase-file with a missing file: explained with how to create it, nothing written', async () => {
    const out = join(work, 'keys-missing-pass');
    const result = await run(['keygen', '--passphrase-file', 'no-such-pass.txt', '--out-dir', out, '--json']);
    assert.equal(result.code, 1);
    const error = jsonError(result.stdout);
    assert.equal(error.code, 'PASSPHRASE_FILE');
    assert.match(error.hint ?? '', /no-such-pass\.txt/);
    assert.ok(!existsSync(out));
  });

  it('TRIVY_AIRGAP_PASSPHRASE is documented in --help and encrypts a new key like --passphrase-file', async () => {
    for (const command of ['export', 'keygen']) {
      assert.match((await run([command, '--help'])).stdout, /TRIVY_AIRGAP_PASSPHRASE/);
    }
    const out = join(work, 'keys-env-pass');
    const result = await run(['keygen', '--out-dir', out, '--json'], {
      TRIVY_AIRGAP_PASSPHRASE: 'from the environment',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { encrypted: boolean }).encrypted, true);
    assert.match(readFileSync(join(out, 'signing.key'), 'utf8'), /ENCRYPTED PRIVATE KEY/);
  });
});

describe('what the terminal shows', () => {
  const importArgs = (cache: string) => [
    'import',
    'older.tgz',
    '--trust',
    'signing.pub',
    '--cache-dir',
    cache,
  ];

  /** Exactly one `error:` line (its hint indented below it), nothing labelled ✗ or "verify". */
  function assertOneFailureLine(stderr: string): void {
    const lines = stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('  '));
    assert.deepEqual(
      lines.map((line) => line.split(' ')[0]),
      ['error:'],
      stderr,
    );
    assert.doesNotMatch(stderr, /✗/);
  }

  it('a failure is one line, off a terminal and on one, labelled by what failed (no "✗ verify" for a refused downgrade)', async () => {
    const cache = join(work, 'one-line-cache');
    assert.equal(
      (await run(['import', 'bundle.tgz', '--trust', 'signing.pub', '--cache-dir', cache])).code,
      0,
    );
    const plain = await run(importArgs(cache));
    assert.equal(plain.code, 1);
    assertOneFailureLine(plain.stderr);
    const terminal = onTerminal(cliCommand(importArgs(cache)), {
      cwd: work,
      env: { ...env, NO_COLOR: undefined },
    });
    assert.equal(terminal.code, 1);
    assert.doesNotMatch(terminal.stdout, /✗/);
    assert.equal(terminal.stdout.match(/error:/g)?.length, 1, terminal.stdout);
  });

  it('a cache locked by a running process and a repository.yaml that is not YAML: one line each, nothing changed', async () => {
    const cache = join(work, 'one-line-locked');
    mkdirSync(join(cache, '.trivy-airgap'), { recursive: true });
    // This test process is alive: its pid holds the lock.
    const lock = {
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      operation: 'import',
    };
    writeFileSync(join(cache, '.trivy-airgap', 'lock'), JSON.stringify(lock));
    const before = utils.treeDigest(cache);
    const locked = await run(['import', 'bundle.tgz', '--trust', 'signing.pub', '--cache-dir', cache]);
    assert.equal(locked.code, 1, locked.stderr);
    assertOneFailureLine(locked.stderr);
    const lockedJson = await run([
      'import',
      'bundle.tgz',
      '--trust',
      'signing.pub',
      '--cache-dir',
      cache,
      '--json',
    ]);
    assert.equal((JSON.parse(lockedJson.stdout) as { error: { code: string } }).error.code, 'LOCKED');
    assert.equal(utils.treeDigest(cache), before, 'the locked cache is as it was');

    const home = join(work, 'bad-yaml-user');
    const vexConfig = join(home, 'data', '.trivy', 'vex', 'repository.yaml');
    mkdirSync(dirname(vexConfig), { recursive: true });
    writeFileSync(vexConfig, 'repositories: [ : bad\n');
    const vexBundle = join(work, 'vex.tgz');
    writeFileSync(vexBundle, utils.buildBundle({ components: [{ kind: 'db' }, { kind: 'vex' }] }).bytes);
    const yamlCache = join(work, 'bad-yaml-cache');
    const badYaml = cliSync(['import', vexBundle, '--trust', 'signing.pub', '--cache-dir', yamlCache], {
      cwd: work,
      env: userEnv(home),
    });
    assert.equal(badYaml.code, 1, badYaml.stderr);
    assertOneFailureLine(badYaml.stderr);
    assert.ok(badYaml.stderr.includes(vexConfig), badYaml.stderr);
    assert.equal(readFileSync(vexConfig, 'utf8'), 'repositories: [ : bad\n');
    assert.ok(!existsSync(join(yamlCache, 'db')), 'nothing installed');
  });

  it('NO_COLOR set to an empty string counts as unset (no-color.org); NO_COLOR=1 turns colour off', () => {
    const command = cliCommand(['verify', 'missing.tgz', '--trust', 'signing.pub']);
    const empty = onTerminal(command, { cwd: work, env: { ...env, NO_COLOR: '' } });
    assert.ok(empty.stdout.includes('\u001b['), 'colours with NO_COLOR=""');
    const set = onTerminal(command, { cwd: work, env: { ...env, NO_COLOR: '1' } });
    assert.ok(!set.stdout.includes('\u001b['), 'no colours with NO_COLOR=1');
  });

  it('help examples are whole commands on one line each, even on an 80-column terminal', async () => {
    const longest =
      'trivy-airgap import trivy-bundle.tgz --trust signing.pub --no-cache --to-registry registry.example.com/trivy --vex-serve-dir /srv/www/vex --vex-base-url https://web.example.com/vex';
    const terminal = onTerminal(cliCommand(['import', '--help']), { cwd: work, env, columns: 80 });
    assert.equal(terminal.code, 0);
    assert.ok(
      terminal.stdout.split(/\r?\n/).some((line) => line.trim() === longest),
      terminal.stdout,
    );
    const piped = await run(['import', '--help']);
    assert.ok(
      piped.stdout.split('\n').some((line) => line.trim() === longest),
      piped.stdout,
    );
  });

  it('an unsigned bundle is never reported as "verified (signature, …)"', async () => {
    const result = await run(['verify', 'unsigned.tgz', '--allow-unsigned']);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /verified \(signature/);
    assert.match(result.stderr, /UNSIGNED/);
  });

  it('a stalled stdin shows that it stalled, not the last rate with "ETA 0 s"', () => {
    const big = utils.buildBundle({ components: [{ kind: 'db', options: { dbContents: 3 << 20 } }] });
    const half = Math.floor(big.bytes.length / 2);
    writeFileSync(join(work, 'big-1'), big.bytes.subarray(0, half));
    writeFileSync(join(work, 'big-2'), big.bytes.subarray(half));
    const cache = join(work, 'stall-cache');
    const command = `(cat big-1; sleep 6.5; cat big-2) | ${cliCommand(['import', '-', '--trust', 'signing.pub', '--cache-dir', cache])}`;
    const terminal = onTerminal(command, { cwd: work, env: { ...env, NO_COLOR: undefined } });
    assert.equal(terminal.code, 0, terminal.stdout.slice(-2000));
    assert.match(terminal.stdout, /no data for \d+ s/);
    assert.doesNotMatch(terminal.stdout, /ETA 0 s/);
    assert.ok(readdirSync(cache).includes('db'));
  });
});
