import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { SINGLE_FILE, cli, userEnv } from './process.js';

// The exit codes as the shell sees them, from the file users install (dist/trivy-airgap.mjs): one
// run per code. Everything else about the commands is tested through run() in process.

const work = mkdtempSync(join(tmpdir(), 'airgap-binary-'));
after(() => rmSync(work, { recursive: true, force: true }));
writeFileSync(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);
const built = utils.buildBundle({ components: [{ kind: 'db' }] });
writeFileSync(join(work, 'bundle.tgz'), built.bytes);
const [, entry] = [...built.offsets.entries()].at(-1)!;
writeFileSync(join(work, 'changed.tgz'), utils.flipTarByte(built, entry.body));

const binary = (args: string[]) => cli(args, { cwd: work, env: userEnv(work), program: SINGLE_FILE });

describe('exit codes of the installed binary', () => {
  it('0 verified, 1 failure, 2 usage, 3 verification failure', async () => {
    const [ok, failure, usage, verification] = await Promise.all([
      binary(['verify', 'bundle.tgz', '--trust', 'signing.pub']),
      binary(['verify', 'missing.tgz', '--trust', 'signing.pub']),
      binary(['verify', 'bundle.tgz', '--no-such-flag']),
      binary(['verify', 'changed.tgz', '--trust', 'signing.pub']),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(failure.code, 1, failure.stderr);
    assert.equal(usage.code, 2, usage.stderr);
    assert.equal(verification.code, 3, verification.stderr);
    for (const run of [failure, usage, verification]) {
      assert.equal(run.stderr.split('\n').filter((line) => line.startsWith('error:')).length, 1, run.stderr);
    }
  });
});
