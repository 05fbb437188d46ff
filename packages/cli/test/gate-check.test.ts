import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  startVexRepositoryServer,
  vexRepositoryArchive,
  type VexRepositoryServer,
} from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';
import { shell, userEnv } from './process.js';

// Issue 12: the stock-tool check printed for the gate must work for the signer's key type
// (`openssl dgst` cannot verify Ed25519). The printed commands are run exactly as printed.

const work = mkdtempSync(join(tmpdir(), 'airgap-gate-check-'));
let vexServer: VexRepositoryServer;
before(async () => {
  vexServer = await startVexRepositoryServer(vexRepositoryArchive({ type: 'tar.gz', topDir: 'vexhub-main' }));
});
after(async () => {
  await vexServer.close();
  rmSync(work, { recursive: true, force: true });
});

const env = userEnv(work);

for (const type of ['ed25519', 'ecdsa-p256'] as const) {
  describe(`gate check for a ${type} signer`, () => {
    const dir = join(work, type);
    let exportedJson: { gateCheck: string[] };
    let exportedHuman: string;

    it('export prints (and --json lists) commands that pass where the bundle lies', async () => {
      const keygen = await runCli(['keygen', '--type', type, '--out-dir', dir], { cwd: work, env });
      assert.equal(keygen.code, 0, keygen.stderr);
      const exportArgs = (output: string) => [
        'export',
        '--vex',
        '--vex-repository',
        `default=${vexServer.url}`,
        '--key',
        join(dir, 'signing.key'),
        '-o',
        join(dir, output),
      ];
      const json = await runCli([...exportArgs('json.tgz'), '--json'], { cwd: work, env });
      assert.equal(json.code, 0, json.stderr);
      exportedJson = JSON.parse(json.stdout) as { gateCheck: string[] };
      const human = await runCli(exportArgs('trivy-bundle.tgz'), { cwd: work, env });
      assert.equal(human.code, 0, human.stderr);
      exportedHuman = human.stdout;

      const printed = /before it enters the isolated network:\n {2}(.+)\n/.exec(exportedHuman)?.[1];
      assert.ok(printed !== undefined, exportedHuman);
      if (type === 'ed25519')
        assert.match(printed, /openssl pkeyutl -verify -pubin -inkey signing\.pub -rawin/);
      const good = shell(printed, { cwd: dir, env });
      assert.equal(good.code, 0, `${printed}\n${good.stdout}${good.stderr}`);
      for (const command of exportedJson.gateCheck) {
        const run = shell(command, { cwd: dir, env });
        assert.equal(run.code, 0, `${command}\n${run.stderr}`);
      }
    });

    it('a changed checksum file fails the printed signature check (the check can fail)', () => {
      const tamperedDir = join(dir, 'tampered');
      shell(
        `mkdir -p tampered && cp signing.pub trivy-bundle.tgz* tampered/ && printf ' ' >> tampered/trivy-bundle.tgz.sha256`,
        { cwd: dir, env },
      );
      const printed = /before it enters the isolated network:\n {2}(.+)\n/.exec(exportedHuman)?.[1] ?? '';
      const signatureCheck = printed.split(' && ')[0] ?? '';
      assert.notEqual(shell(signatureCheck, { cwd: tamperedDir, env }).code, 0);
    });

    it('inspect prints the same check (human and --json)', async () => {
      const human = await runCli(['inspect', 'trivy-bundle.tgz'], { cwd: dir, env });
      assert.equal(human.code, 0, human.stderr);
      const json = await runCli(['inspect', 'trivy-bundle.tgz', '--json'], { cwd: dir, env });
      const gateCheck = (JSON.parse(json.stdout) as { gateCheck: string[] }).gateCheck;
      assert.ok(human.stdout.includes(gateCheck.join(' && ')), human.stdout);
      for (const command of gateCheck) {
        const run = shell(command, { cwd: dir, env });
        assert.equal(run.code, 0, `${command}\n${run.stderr}`);
      }
    });
  });
}
