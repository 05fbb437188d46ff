import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  seedRegistryWithSkopeo,
  startRegistry,
  startVexRepositoryServer,
  trivyArtifact,
  vexRepositoryArchive,
  type TestRegistry,
  type VexRepositoryServer,
} from '@trivy-airgap/test-utils';
import { runProgram } from './process.js';

// Issue 12: a real `trivy-airgap` command (npm's bin entry), and the README's examples run as written,
// from a directory that is not the repository. The README is read here, not copied: what is tested
// is what users read. Only two things differ from a user's machine: npm's global prefix is a
// temporary directory (npm_config_prefix), and export gets the loopback registry and VEX server as
// its sources (the default ones are on the internet).

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const README = readFileSync(join(REPO, 'README.md'), 'utf8');
const work = mkdtempSync(join(tmpdir(), 'airgap-readme-'));
const home = join(work, 'home');
const operator = join(work, 'somewhere', 'else');
const prefix = join(work, 'npm-global');
mkdirSync(home, { recursive: true });
mkdirSync(operator, { recursive: true });

let registry: TestRegistry;
let vexServer: VexRepositoryServer;
before(async () => {
  [registry, vexServer] = await Promise.all([
    startRegistry({ mode: 'plain' }),
    startVexRepositoryServer(vexRepositoryArchive({ type: 'tar.gz', topDir: 'vexhub-main' })),
  ]);
  await seedRegistryWithSkopeo(registry, {
    'aquasec/trivy-db:2': trivyArtifact('db', { updatedAt: new Date(Date.now() - 3 * 3600_000) }),
    'aquasec/trivy-java-db:1': trivyArtifact('java-db', { updatedAt: new Date(Date.now() - 3 * 3600_000) }),
    'aquasec/trivy-checks:2': trivyArtifact('checks'),
  });
});
after(async () => {
  await Promise.all([registry.stop(), vexServer.close()]);
  rmSync(work, { recursive: true, force: true });
});

/** A user's shell: HOME of its own, npm's global bin on PATH, no colours, nothing of this test's env. */
const env: NodeJS.ProcessEnv = {
  PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`,
  HOME: home,
  NO_COLOR: '1',
  npm_config_prefix: prefix,
  // Nothing to download (the CLI has no runtime dependencies): keep npm off the network.
  npm_config_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};

async function bash(command: string, cwd: string): Promise<{ code: number | null; output: string }> {
  const run = await runProgram('bash', ['-c', command], { cwd, env });
  return { code: run.code, output: run.stdout + run.stderr };
}

/** The commands of the ```sh blocks between two headings, continuation lines joined, comments dropped. */
function readmeCommands(from: string, to: string): string[] {
  const start = README.indexOf(from);
  const end = README.indexOf(to, start);
  assert.ok(start >= 0 && end > start, `README sections ${from} … ${to}`);
  const commands: string[] = [];
  for (const block of README.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = (block[1] ?? '').replace(/\\\n\s*/g, '');
    for (const line of joined.split('\n')) {
      const command = line.replace(/\s+#.*$/, '').trim();
      if (command !== '' && !command.startsWith('#')) commands.push(command);
    }
  }
  return commands;
}

describe('README: the trivy-airgap command and the workflow examples, as written', () => {
  it('refers to nothing a user cannot see (issue notes live with the maintainers)', () => {
    assert.doesNotMatch(README, /notes on issue|see (the )?issue \d|issue \d+'s notes/i);
  });

  it('documents TRIVY_AIRGAP_PASSPHRASE (keygen and export read it)', () => {
    assert.match(README, /`TRIVY_AIRGAP_PASSPHRASE`/);
  });

  it('`npm install -g ./packages/cli` puts trivy-airgap on PATH; it runs from any directory', async () => {
    const setup = readmeCommands('put the `trivy-airgap` command on your `PATH`', '## The workflow');
    const npmLine = setup.find((command) => command.startsWith('npm install -g'));
    assert.equal(npmLine, 'npm install -g ./packages/cli');
    const installed = await bash(npmLine, REPO);
    assert.equal(installed.code, 0, installed.output);
    const found = await bash('command -v trivy-airgap && trivy-airgap --version', operator);
    assert.equal(found.code, 0, found.output);
    assert.ok(realpathSync(found.output.split('\n')[0] ?? '').endsWith('packages/cli/dist/trivy-airgap.mjs'));
  });

  it('`npm pack ./packages/cli` packs the one self-contained file; installed from the tarball it runs', async () => {
    const packDir = join(work, 'packed');
    mkdirSync(packDir);
    const packed = await bash(`npm pack ${REPO}packages/cli --pack-destination ${packDir} --silent`, work);
    assert.equal(packed.code, 0, packed.output);
    const tarball = join(packDir, packed.output.trim().split('\n').at(-1) ?? '');
    const listing = await bash(`tar -tzf ${tarball}`, work);
    // npm always packs the package's README.md beside what `files` names.
    assert.deepEqual(listing.output.trim().split('\n').sort(), [
      'package/README.md',
      'package/dist/trivy-airgap.mjs',
      'package/package.json',
    ]);
    const otherPrefix = join(work, 'npm-from-tarball');
    const installed = await bash(`npm install -g --prefix ${otherPrefix} ${tarball}`, work);
    assert.equal(installed.code, 0, installed.output);
    const version = await bash(`${join(otherPrefix, 'bin', 'trivy-airgap')} --version`, operator);
    assert.equal(version.code, 0, version.output);
  });

  it('the workflow (keygen, export, gate check, verify, inspect, import, parts from a pipe, status) runs as written', async () => {
    const commands = readmeCommands('## The workflow', '### Scale out');
    const ran: string[] = [];
    for (const command of commands) {
      if (command.startsWith('trivy ')) continue; // Trivy itself is not installed here
      let line = command;
      if (command.startsWith('trivy-airgap export')) {
        line +=
          ` --db-repository ${registry.host}/aquasec/trivy-db:2 --java-db-repository ${registry.host}/aquasec/trivy-java-db:1` +
          ` --checks-bundle-repository ${registry.host}/aquasec/trivy-checks:2 --vex-repository default=${vexServer.url} --plain-http`;
      }
      // The carrying the README describes in words: the public key to the gate and the isolated side,
      // and (for the `cat …part-*` line) the bundle in parts, as `export --split` leaves it.
      if (command.startsWith('openssl') && !existsSync(join(operator, 'signing.pub'))) {
        const carried = await bash('cp ~/.trivy-airgap/signing.pub .', operator);
        assert.equal(carried.code, 0, carried.output);
      }
      if (command.startsWith('cat trivy-bundle.tgz.part-*')) {
        const split = await bash('split -b 4096 -d -a 3 trivy-bundle.tgz trivy-bundle.tgz.part-', operator);
        assert.equal(split.code, 0, split.output);
      }
      const result = await bash(line, operator);
      assert.equal(result.code, 0, `${line}\n${result.output}`);
      ran.push(command.split(' ').slice(0, 2).join(' '));
    }
    for (const expected of [
      'trivy-airgap keygen',
      'trivy-airgap export',
      'openssl dgst',
      'sha256sum -c',
      'trivy-airgap verify',
      'trivy-airgap inspect',
      'trivy-airgap import',
      'cat trivy-bundle.tgz.part-*',
      'trivy-airgap status',
    ]) {
      assert.ok(
        ran.includes(expected),
        `the README still shows and the test ran: ${expected} (ran ${ran.join(', ')})`,
      );
    }
    // Relative paths resolved from where the user stood: the bundle is here, the cache is Trivy's default.
    assert.ok(existsSync(join(operator, 'trivy-bundle.tgz')));
    assert.ok(existsSync(join(home, '.cache', 'trivy', 'db', 'trivy.db')));
  });
});
