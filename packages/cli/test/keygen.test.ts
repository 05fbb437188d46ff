import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadSigningKey, loadTrustedKey } from '@trivy-airgap/format';
import { runCli } from './in-process.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[], cwd = work) {
  return runCli(args, { cwd, env: { ...process.env } });
}

describe('trivy-airgap keygen (run() in process)', () => {
  it('writes signing.key 0600 and signing.pub and prints the key id', async () => {
    const dir = join(work, 'plain');
    const run = await cli(['keygen', '--out-dir', dir, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { keyId: string; algorithm: string };
    assert.equal(statSync(join(dir, 'signing.key')).mode & 0o777, 0o600);
    const key = loadSigningKey(readFileSync(join(dir, 'signing.key'), 'utf8'));
    const pub = loadTrustedKey(readFileSync(join(dir, 'signing.pub'), 'utf8'));
    assert.equal(result.keyId, key.keyId);
    assert.equal(result.keyId, pub.keyId);
    assert.equal(result.algorithm, 'ecdsa-p256-sha256');
  });

  it('refuses to overwrite an existing key (exit 1, JSON error with a code)', async () => {
    const dir = join(work, 'again');
    assert.equal((await cli(['keygen', '--out-dir', dir])).code, 0);
    const before = readFileSync(join(dir, 'signing.key'));
    const again = await cli(['keygen', '--out-dir', dir, '--json']);
    assert.equal(again.code, 1);
    assert.equal((JSON.parse(again.stdout) as { error: { code: string } }).error.code, 'OUTPUT_EXISTS');
    assert.deepEqual(readFileSync(join(dir, 'signing.key')), before);
  });

  it('encrypts an Ed25519 key with the passphrase file', async () => {
    const dir = join(work, 'encrypted');
    const passFile = join(work, 'pass.txt');
    writeFileSync(passFile, 'correct horse battery\n');
    const run = await cli(['keygen', '--type', 'ed25519', '--out-dir', dir, '--passphrase-file', passFile]);
    assert.equal(run.code, 0, run.stderr);
    const pem = readFileSync(join(dir, 'signing.key'), 'utf8');
    assert.match(pem, /ENCRYPTED PRIVATE KEY/);
    assert.equal(loadSigningKey(pem, { passphrase: 'correct horse battery' }).algorithm, 'ed25519');
    assert.match(run.stdout, /key id +[0-9a-f]{64}/);
  });

  it('unknown flags and missing commands are usage errors (exit 2)', async () => {
    assert.equal((await cli(['keygen', '--no-such-flag'])).code, 2);
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /command/);
    assert.equal((await cli(['keygen', '--type', 'rsa'])).code, 2);
  });

  it('--version prints the package version', async () => {
    const run = await cli(['--version']);
    assert.equal(run.code, 0);
    assert.match(run.stdout.trim(), /^\d+\.\d+\.\d+/);
  });
});
