import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { generateKeyPair } from '@trivy-airgap/format';
import { runCli } from './in-process.js';

// Checks of the command line itself; everything here fails before any network access.
// The end-to-end runs against real registries are in packages/exporter/test/export-cli.test.ts.
const work = mkdtempSync(join(tmpdir(), 'airgap-cli-export-'));
after(() => rmSync(work, { recursive: true, force: true }));

const encrypted = generateKeyPair('ecdsa-p256', 'the right passphrase');
const keyPath = join(work, 'signing.key');
writeFileSync(keyPath, encrypted.privateKeyPem);
const wrongPass = join(work, 'wrong.txt');
writeFileSync(wrongPass, 'not the passphrase\n');

function cli(args: string[]) {
  return runCli(args, {
    cwd: work,
    // No registry is reachable: a test that got past its check would fail loudly, not hang.
    env: { PATH: process.env.PATH, HOME: work, HTTPS_PROXY: 'http://127.0.0.1:9', NO_COLOR: '1' },
  });
}

describe('trivy-airgap export (command line checks)', () => {
  it('a wrong passphrase is exit 1 with a one-line error and no stack', async () => {
    const run = await cli([
      'export',
      '--all',
      '--key',
      keyPath,
      '--passphrase-file',
      wrongPass,
      '-o',
      'b.tgz',
    ]);
    assert.equal(run.code, 1, run.stderr);
    const errors = run.stderr.split('\n').filter((line) => line.startsWith('error:'));
    assert.equal(errors.length, 1, run.stderr);
    assert.match(errors[0] ?? '', /wrong passphrase/);
    assert.doesNotMatch(run.stderr, /^\s+at /m);
    assert.deepEqual(
      readdirSync(work).filter((name) => name.startsWith('b.tgz')),
      [],
    );
  });

  it('the passphrase can come through a pipe (a FIFO, as `--passphrase-file <(pass show key)` gives)', async () => {
    const codes: string[] = [];
    for (const passphrase of ['not the passphrase', 'the right passphrase']) {
      const fifo = join(work, `pass-${codes.length}.fifo`);
      execFileSync('mkfifo', [fifo]);
      const feeding = (async () => {
        const writer = await open(fifo, 'w'); // returns once the CLI opened it for reading
        await writer.write(`${passphrase}\n`);
        await writer.close();
      })();
      const run = await cli([
        'export',
        '--db',
        '--key',
        keyPath,
        '--passphrase-file',
        fifo,
        '-o',
        'b.tgz',
        '--json',
      ]);
      await feeding;
      assert.equal(run.code, 1, run.stderr);
      codes.push((JSON.parse(run.stdout) as { error: { code: string } }).error.code);
    }
    // The wrong one is refused at the key; the right one unlocks it, and the export goes on to the
    // network (which this test cannot reach).
    assert.equal(codes[0], 'KEY_PASSPHRASE_WRONG');
    assert.ok(!codes[1]!.startsWith('KEY_'), codes[1]);
  });

  it('a --passphrase-file with no line end in its first 64 KiB (a wrong path to a big file) is refused unread', async () => {
    const big = join(work, 'not-a-passphrase.bin');
    writeFileSync(big, Buffer.alloc(1 << 20, 0x41));
    const run = await cli([
      'export',
      '--db',
      '--key',
      keyPath,
      '--passphrase-file',
      big,
      '-o',
      'b.tgz',
      '--json',
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'PASSPHRASE_FILE');
  });

  it('an encrypted key without a passphrase is refused with a hint', async () => {
    const run = await cli(['export', '--db', '--key', keyPath, '-o', 'b.tgz', '--json']);
    assert.equal(run.code, 1);
    const error = (JSON.parse(run.stdout) as { error: { code: string; hint?: string } }).error;
    assert.equal(error.code, 'KEY_PASSPHRASE_REQUIRED');
    assert.match(error.hint ?? '', /passphrase-file/);
  });

  it('signing is required unless --unsigned is given explicitly (usage error, exit 2)', async () => {
    const run = await cli(['export', '--all', '-o', 'b.tgz']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--unsigned/);
    assert.equal((await cli(['export', '--all', '--unsigned', '--key', keyPath, '-o', 'b.tgz'])).code, 2);
  });

  it('usage errors: nothing selected, bad --split, bad --expires, bad VEX name, unknown flag', async () => {
    assert.equal((await cli(['export', '--unsigned', '-o', 'b.tgz'])).code, 2);
    assert.equal((await cli(['export', '--all', '--unsigned', '--split', '7Q', '-o', 'b.tgz'])).code, 2);
    assert.equal((await cli(['export', '--all', '--unsigned', '--expires', 'soon', '-o', 'b.tgz'])).code, 2);
    assert.equal(
      (
        await cli([
          'export',
          '--vex',
          '--unsigned',
          '--vex-repository',
          '../x=https://example.com',
          '-o',
          'b.tgz',
        ])
      ).code,
      2,
    );
    assert.equal((await cli(['export', '--all', '--unsigned', '--no-such-flag', '-o', 'b.tgz'])).code, 2);
    assert.equal((await cli(['export', '--all', '--unsigned'])).code, 2, '-o is required');
  });

  it('an existing output is not overwritten without --force (exit 1, OUTPUT_EXISTS)', async () => {
    writeFileSync(join(work, 'exists.tgz'), 'keep me');
    const run = await cli(['export', '--all', '--unsigned', '-o', 'exists.tgz', '--json']);
    assert.equal(run.code, 1);
    assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'OUTPUT_EXISTS');
  });
});
