import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';

// The CLI through run() in process. Fixture bundles come from @trivy-airgap/test-utils.

const work = mkdtempSync(join(tmpdir(), 'airgap-cli-verify-'));
after(() => rmSync(work, { recursive: true, force: true }));
const pub = join(work, 'signing.pub');
writeFileSync(pub, utils.defaultTestKey().publicKeyPem);
const built = utils.buildBundle({
  components: [{ kind: 'db' }, { kind: 'java-db' }, { kind: 'checks' }, { kind: 'vex' }],
});
const bundle = join(work, 'trivy-bundle.tgz');
writeFileSync(bundle, built.bytes);

function cli(args: string[]) {
  return runCli(args, {
    cwd: work,
    env: { PATH: process.env.PATH, HOME: work, XDG_CONFIG_HOME: join(work, 'config'), NO_COLOR: '1' },
  });
}

describe('trivy-airgap verify (run() in process)', () => {
  it('a good bundle: exit 0; --json lists every check performed', async () => {
    const run = await cli(['verify', 'trivy-bundle.tgz', '--trust', 'signing.pub', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as {
      ok: boolean;
      bundleId: string;
      checks: { check: string; ok: boolean }[];
    };
    assert.equal(result.bundleId, built.bundleId);
    assert.ok(result.checks.length > 15);
    assert.ok(result.checks.some((check) => check.check === 'signature' && check.ok));
    assert.ok(result.checks.some((check) => check.check === 'layer-content'));
  });

  it('human output names the signer and the components', async () => {
    const run = await cli(['verify', 'trivy-bundle.tgz', '--trust', 'signing.pub']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(utils.defaultTestKey().keyId));
    assert.match(run.stdout, /mirror\.gcr\.io\/aquasec\/trivy-db:2/);
  });

  it('a flipped byte is a verification failure: exit 3, JSON error with a code', async () => {
    const [path, at] = [...built.offsets.entries()][4]!;
    writeFileSync(join(work, 'flipped.tgz'), utils.flipTarByte(built, at.body));
    const run = await cli(['verify', 'flipped.tgz', '--trust', 'signing.pub', '--json']);
    assert.equal(run.code, 3, `${path}: ${run.stderr}`);
    assert.equal(
      (JSON.parse(run.stdout) as { error: { code: string } }).error.code,
      'BUNDLE_DIGEST_MISMATCH',
    );
  });

  it('a wrong key: exit 3 with a one-line hint to pass --trust', async () => {
    const other = join(work, 'other.pub');
    writeFileSync(other, utils.makeTestKey().publicKeyPem);
    const run = await cli(['verify', 'trivy-bundle.tgz', '--trust', 'other.pub']);
    assert.equal(run.code, 3);
    assert.match(run.stderr, /^error: signed by key [0-9a-f]{64}, which is not among the trusted keys/m);
    assert.match(run.stderr, /--trust/);
  });

  it('no key at all: exit 3 saying where keys are looked for', async () => {
    const run = await cli(['verify', 'trivy-bundle.tgz']);
    assert.equal(run.code, 3);
    assert.match(run.stderr, /trusted/);
  });

  it('keys in $XDG_CONFIG_HOME/trivy-airgap/trusted-keys/*.pub are trusted', async () => {
    const dir = join(work, 'config', 'trivy-airgap', 'trusted-keys');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'exporter.pub'), utils.defaultTestKey().publicKeyPem);
    const run = await cli(['verify', 'trivy-bundle.tgz']);
    assert.equal(run.code, 0, run.stderr);
    rmSync(join(work, 'config'), { recursive: true });
  });

  it("without XDG_CONFIG_HOME: keys in $HOME/.config/trivy-airgap/trusted-keys (the HOME given, not the process owner's)", async () => {
    const home = join(work, 'other-home');
    const dir = join(home, '.config', 'trivy-airgap', 'trusted-keys');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'exporter.pub'), utils.defaultTestKey().publicKeyPem);
    const run = await runCli(['verify', 'trivy-bundle.tgz'], {
      cwd: work,
      env: { PATH: process.env.PATH, HOME: home, NO_COLOR: '1' },
    });
    assert.equal(run.code, 0, run.stderr);
  });

  it('unsigned: exit 3, and with --allow-unsigned exit 0 and a loud warning', async () => {
    writeFileSync(
      join(work, 'unsigned.tgz'),
      utils.buildBundle({ components: [{ kind: 'db' }], key: null }).bytes,
    );
    const refused = await cli(['verify', 'unsigned.tgz', '--trust', 'signing.pub', '--json']);
    assert.equal(refused.code, 3);
    assert.equal((JSON.parse(refused.stdout) as { error: { code: string } }).error.code, 'BUNDLE_UNSIGNED');
    const allowed = await cli(['verify', 'unsigned.tgz', '--allow-unsigned']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, /warning: THE BUNDLE IS NOT SIGNED/);
  });

  it('a --trust file that does not exist: exit 1 with one line naming it, not a stack', async () => {
    const run = await cli(['verify', 'trivy-bundle.tgz', '--trust', 'nope.pub']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: .*nope\.pub: .*\n {2}.*--trust\n$/);
    assert.doesNotMatch(run.stderr, /this is a bug/);
    const json = await cli(['verify', 'trivy-bundle.tgz', '--trust', 'nope.pub', '--json']);
    const { error } = JSON.parse(json.stdout) as { error: { code: string; path: string } };
    assert.equal(error.code, 'FS_NOT_FOUND');
    assert.match(error.path, /nope\.pub$/);
  });

  it('a missing bundle argument is a usage error (exit 2)', async () => {
    assert.equal((await cli(['verify'])).code, 2);
    assert.equal((await cli(['verify', 'x.tgz', '--no-such-flag'])).code, 2);
  });
});

describe('trivy-airgap inspect (run() in process)', () => {
  it('needs no key; shows components, sources, digests, age, expiry and the signer key id', async () => {
    const run = await cli(['inspect', 'trivy-bundle.tgz']);
    assert.equal(run.code, 0, run.stderr);
    for (const expected of [
      'trivy-db:2',
      'trivy-java-db:1',
      'trivy-checks:2',
      'vexhub',
      'expires',
      utils.defaultTestKey().keyId,
    ]) {
      assert.ok(run.stdout.includes(expected), expected);
    }
    assert.match(run.stdout, /\(\d+ [a-z]+ old\)/);
  });

  it('--json is one document with the components', async () => {
    const run = await cli(['inspect', 'trivy-bundle.tgz', '--json', '--trust', 'signing.pub']);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { signature: string; components: { kind: string }[] };
    assert.equal(result.signature, 'verified');
    assert.deepEqual(
      result.components.map((c) => c.kind),
      ['db', 'java-db', 'checks', 'vex'],
    );
  });
});
