import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { readRepositoryYaml } from '@trivy-airgap/trivy';
import { runCli } from './in-process.js';
import { userEnv } from './process.js';

// Issue 12, "wrong answers": what `status` and `import` tell an operator (and a monitoring check)
// must follow what is installed in the cache, whichever bundles put it there.

const work = mkdtempSync(join(tmpdir(), 'airgap-status-truth-'));
after(() => rmSync(work, { recursive: true, force: true }));
writeFileSync(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);

const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000);
function bundle(name: string, components: utils.BundleComponentSpec[]): string {
  writeFileSync(join(work, name), utils.buildBundle({ components }).bytes);
  return name;
}
const checksOnly = bundle('checks-only.tgz', [{ kind: 'checks' }]);
const internalVex = { kind: 'vex' as const, name: 'internal', url: 'https://vex.example.com/internal' };
const vexOnly = bundle('vex-only.tgz', [{ ...internalVex, updatedAt: hoursAgo(2).toISOString() }]);
const everything = bundle('all.tgz', [
  { kind: 'db', options: { updatedAt: hoursAgo(5) } },
  { kind: 'java-db', options: { updatedAt: hoursAgo(5) } },
  { kind: 'checks' },
  { kind: 'vex', updatedAt: hoursAgo(5).toISOString() },
]);
const newerDb = bundle('newer-db.tgz', [{ kind: 'db', options: { updatedAt: hoursAgo(1) } }]);
const vexHubAndInternal = bundle('vexhub-internal.tgz', [
  { kind: 'vex', updatedAt: hoursAgo(1).toISOString() },
  { ...internalVex, updatedAt: hoursAgo(1).toISOString() },
]);

let counter = 0;
/** A fresh user: own HOME (so Trivy's default repository.yaml location is fresh) and cache. */
function freshUser() {
  counter += 1;
  const home = join(work, `user-${counter}`);
  mkdirSync(home);
  const cache = join(home, 'trivy-cache');
  const vexConfig = join(home, 'data', '.trivy', 'vex', 'repository.yaml');
  const run = (args: string[]) => runCli(args, { cwd: work, env: userEnv(home) });
  return { home, cache, vexConfig, run };
}

interface StatusJson {
  healthy: boolean;
  trivyFlags: string[];
  diagnosis: { verdict: string; components: { kind: string; name?: string; verdict: string }[] };
}

describe('status follows the component results (a monitoring check never passes when Trivy cannot scan)', () => {
  for (const [what, file] of [
    ['a checks-only bundle', checksOnly],
    ['a VEX-only bundle', vexOnly],
  ] as const) {
    it(`${what} in a fresh cache: no DB, so the verdict is FAIL and status exits 1, --max-age 3d included`, async () => {
      const user = freshUser();
      const imported = await user.run(['import', file, '--trust', 'signing.pub', '--cache-dir', user.cache]);
      assert.equal(imported.code, 0, imported.stderr);
      assert.doesNotMatch(imported.stdout, /^Run Trivy offline with:/m);
      // Named as help and status name it: checks, not the cache folder `policy`.
      assert.doesNotMatch(imported.stdout + imported.stderr, /\bpolicy\b/);
      assert.match(imported.stdout, /cannot scan offline/);

      const human = await user.run(['status', '--cache-dir', user.cache]);
      assert.equal(human.code, 1, human.stdout);
      assert.match(human.stdout, /^db +FAIL/m);
      assert.doesNotMatch(human.stdout, /Trivy will run offline/);

      const monitored = await user.run(['status', '--cache-dir', user.cache, '--max-age', '3d', '--json']);
      assert.equal(monitored.code, 1, monitored.stdout);
      const status = JSON.parse(monitored.stdout) as StatusJson;
      assert.equal(status.healthy, false);
      assert.equal(status.diagnosis.verdict, 'fail');
    });
  }
});

describe('the printed Trivy command is the one for what is installed (import and status agree)', () => {
  it('a DB-only bundle into a cache that has checks and VEX keeps their flags in the command', async () => {
    const user = freshUser();
    assert.equal(
      (await user.run(['import', everything, '--trust', 'signing.pub', '--cache-dir', user.cache])).code,
      0,
    );
    const imported = await user.run([
      'import',
      newerDb,
      '--trust',
      'signing.pub',
      '--cache-dir',
      user.cache,
      '--json',
    ]);
    assert.equal(imported.code, 0, imported.stderr);
    const result = JSON.parse(imported.stdout) as { trivyFlags: string[]; installed: { kind: string }[] };
    assert.deepEqual(
      result.installed.map((component) => component.kind),
      ['db'],
    );
    for (const flag of [
      '--skip-db-update',
      '--skip-java-db-update',
      '--skip-check-update',
      '--skip-vex-repo-update',
    ])
      assert.ok(result.trivyFlags.includes(flag), `${flag} in ${result.trivyFlags.join(' ')}`);
    const status = JSON.parse(
      (await user.run(['status', '--cache-dir', user.cache, '--json'])).stdout,
    ) as StatusJson;
    assert.deepEqual(result.trivyFlags, status.trivyFlags);

    const human = await user.run(['import', newerDb, '--trust', 'signing.pub', '--cache-dir', user.cache]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /trivy image --skip-db-update --skip-java-db-update --skip-check-update --offline-scan --vex repo --skip-vex-repo-update /,
    );
  });
});

describe("repository.yaml: only what the bundle installed is enabled; the user's choices stay", () => {
  it('a VEX-only bundle and no repository.yaml yet: only its repository is written, status has no warning about VEX Hub', async () => {
    const user = freshUser();
    const run = await user.run(['import', vexOnly, '--trust', 'signing.pub', '--cache-dir', user.cache]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      readRepositoryYaml(readFileSync(user.vexConfig, 'utf8')).map((entry) => entry.name),
      ['internal'],
    );
    const status = JSON.parse(
      (await user.run(['status', '--cache-dir', user.cache, '--json'])).stdout,
    ) as StatusJson;
    assert.deepEqual(
      status.diagnosis.components.filter((c) => c.kind === 'vex').map((c) => `${c.name} ${c.verdict}`),
      ['internal ok'],
    );
  });

  it('an explicit `enabled: false` is never flipped: not for a repository the bundle lacks, nor for one it carries (a warning says so)', async () => {
    const user = freshUser();
    const userFile =
      'repositories:\n' +
      '  - name: default\n    url: https://github.com/aquasecurity/vexhub\n    enabled: false\n' +
      '  - name: lab\n    url: https://vex.lab.example\n    enabled: false\n';
    mkdirSync(join(user.home, 'data', '.trivy', 'vex'), { recursive: true });
    writeFileSync(user.vexConfig, userFile);
    const run = await user.run([
      'import',
      vexHubAndInternal,
      '--trust',
      'signing.pub',
      '--cache-dir',
      user.cache,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /warning: vex default: .*disabled/);
    assert.deepEqual(
      readRepositoryYaml(readFileSync(user.vexConfig, 'utf8')).map((entry) => [entry.name, entry.enabled]),
      [
        ['default', false],
        ['lab', false],
        ['internal', true],
      ],
    );
    assert.ok(readFileSync(user.vexConfig, 'utf8').startsWith(userFile), 'the user lines are unchanged');
  });
});
