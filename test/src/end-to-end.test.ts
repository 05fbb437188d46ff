import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  runNode,
  seedRegistryWithSkopeo,
  startRegistry,
  startVexRepositoryServer,
  treeDigest,
  trivyArtifact,
  vexRepositoryArchive,
  type ProcessRun,
  type TestRegistry,
  type VexRepositoryServer,
} from '@trivy-airgap/test-utils';

/**
 * The whole job through the BUILT command-line programs, as separate processes: keygen and export
 * with the workspace CLI on the "connected side"; verify and import with the single-file CLI copied
 * alone into an empty directory on the "isolated side". Nothing here calls library code directly.
 */

const CLI = fileURLToPath(new URL('../../../packages/cli/dist/src/main.js', import.meta.url));
const SINGLE_FILE = fileURLToPath(new URL('../../../packages/cli/dist/trivy-airgap.mjs', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'airgap-e2e-'));

type Run = ProcessRun;

/** Runs a CLI asynchronously: the VEX server lives in this process and must keep answering. */
function runCli(
  program: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return runNode(program, args, {
    cwd: options.cwd ?? work,
    env: { ...process.env, NO_COLOR: undefined, ...options.env },
  });
}

let registry: TestRegistry;
let vexServer: VexRepositoryServer;
const keys = join(work, 'keys');
const transfer = join(work, 'transfer');
const bundle = join(transfer, 'trivy-bundle.tgz');
const isolated = join(work, 'isolated');
const singleFileCopy = join(isolated, 'trivy-airgap.mjs');
/** What the connected side's keygen and export printed (their assertions are the first test's). */
let keygen: Run;
let exported: Run;

/**
 * The fixtures every test starts from, built once and only read by the tests: a registry and a
 * VEX server on loopback, a key pair, the signed bundle, and on the isolated side the single-file
 * CLI with the public key. A test that needs more (an installed cache) builds it itself.
 */
before(async () => {
  registry = await startRegistry({ mode: 'plain' });
  await seedRegistryWithSkopeo(registry, {
    'aquasec/trivy-db:2': trivyArtifact('db', { updatedAt: new Date(Date.now() - 2 * 3600_000) }),
    'aquasec/trivy-java-db:1': trivyArtifact('java-db', { updatedAt: new Date(Date.now() - 30 * 3600_000) }),
    'aquasec/trivy-checks:2': trivyArtifact('checks'),
  });
  // The zip shape (a GitHub-style top folder + //subdir); the demo covers tar.gz.
  vexServer = await startVexRepositoryServer(vexRepositoryArchive({ type: 'zip', topDir: 'vexhub-main' }));
  mkdirSync(transfer, { recursive: true });
  keygen = await runCli(CLI, ['keygen', '--out-dir', keys]);
  exported = await runCli(CLI, [
    'export',
    '--all',
    '--db-repository',
    `${registry.host}/aquasec/trivy-db:2`,
    '--java-db-repository',
    `${registry.host}/aquasec/trivy-java-db:1`,
    '--checks-bundle-repository',
    `${registry.host}/aquasec/trivy-checks:2`,
    '--vex-repository',
    `default=${vexServer.url}`,
    '--plain-http',
    '--work-dir',
    join(work, 'export-work'),
    '--key',
    join(keys, 'signing.key'),
    '-o',
    bundle,
    '--json',
  ]);
  mkdirSync(isolated, { recursive: true });
  copyFileSync(SINGLE_FILE, singleFileCopy);
  if (keygen.code === 0) copyFileSync(join(keys, 'signing.pub'), join(isolated, 'signing.pub'));
});

after(async () => {
  await vexServer.close();
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Fails the calling test with the export's own error when the fixture bundle could not be made. */
function assertBundle(): void {
  assert.equal(keygen.code, 0, `keygen failed: ${keygen.stderr}`);
  assert.equal(exported.code, 0, `export failed: ${exported.stderr}`);
}

describe('export → carry → import, through the built CLIs', () => {
  it('connected side: keygen, then export --all into one signed bundle', () => {
    assertBundle();
    JSON.parse(exported.stdout); // --json: one JSON document on stdout, nothing else
    assert.ok(existsSync(`${bundle}.sha256`) && existsSync(`${bundle}.sha256.sig`));
  });

  it('before the air gap: stock tools check it (sha256sum -c, openssl on the checksum file and the manifest)', () => {
    assertBundle();
    assert.match(
      execFileSync('sha256sum', ['-c', 'trivy-bundle.tgz.sha256'], { cwd: transfer, encoding: 'utf8' }),
      /OK/,
    );
    const pub = join(keys, 'signing.pub');
    const checksum = spawnSync(
      'openssl',
      ['dgst', '-sha256', '-verify', pub, '-signature', `${bundle}.sha256.sig`, `${bundle}.sha256`],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(checksum.status, 0, checksum.stderr);
    const listing = execFileSync('tar', ['-tzf', bundle], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(listing.slice(0, 2), ['manifest.json', 'manifest.json.sig']);
    const unpacked = mkdtempSync(join(work, 'unpacked-'));
    execFileSync('tar', ['-xzf', bundle, '-C', unpacked, 'manifest.json', 'manifest.json.sig']);
    const manifest = spawnSync(
      'openssl',
      [
        'dgst',
        '-sha256',
        '-verify',
        pub,
        '-signature',
        join(unpacked, 'manifest.json.sig'),
        join(unpacked, 'manifest.json'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(manifest.status, 0, manifest.stderr);
  });

  it('isolated side: the single-file CLI alone in an empty directory verifies and imports', async () => {
    assertBundle();
    const cache = join(isolated, 'cache');
    const vexConfig = join(isolated, 'vex', 'repository.yaml');
    // No node_modules anywhere above the copy's directory would help it: it must need none.
    const verified = await runCli(singleFileCopy, ['verify', bundle, '--trust', 'signing.pub'], {
      cwd: isolated,
    });
    assert.equal(verified.code, 0, verified.stderr);
    const imported = await runCli(
      singleFileCopy,
      ['import', bundle, '--trust', 'signing.pub', '--cache-dir', cache, '--vex-config', vexConfig],
      { cwd: isolated },
    );
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout + imported.stderr, /--skip-db-update/);
    // trivy-facts: "An installer MUST write a real DownloadedAt".
    const metadata = JSON.parse(readFileSync(join(cache, 'db', 'metadata.json'), 'utf8')) as {
      Version: number;
      DownloadedAt: string;
    };
    assert.equal(metadata.Version, 2);
    assert.notEqual(metadata.DownloadedAt, '0001-01-01T00:00:00Z');
    assert.ok(existsSync(join(cache, 'db', 'trivy.db')));
    assert.ok(existsSync(join(cache, 'java-db', 'trivy-java.db')));
    assert.ok(
      readdirSync(join(cache, 'policy', 'content')).length > 0,
      'trivy-facts: never an empty policy/content',
    );
    assert.ok(existsSync(join(cache, 'vex', 'repositories', 'default', '0.1', 'index.json')));
    assert.match(readFileSync(vexConfig, 'utf8'), /name: default/);
    const status = await runCli(
      singleFileCopy,
      ['status', '--cache-dir', cache, '--vex-config', vexConfig, '--json'],
      { cwd: isolated },
    );
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as {
      diagnosis: { components: { kind: string; name?: string; verdict: string }[] };
    };
    assert.deepEqual(
      report.diagnosis.components.map(
        (c) => `${c.kind}${c.name === undefined ? '' : `/${c.name}`} ${c.verdict}`,
      ),
      ['db ok', 'java-db ok', 'checks ok', 'vex/default ok'],
    );
  });

  it('a bundle changed by one byte after export is refused (exit 3) and the cache stays byte-for-byte as it was', async () => {
    assertBundle();
    // A cache with this bundle installed, so "as it was" covers every component.
    const cache = join(isolated, 'tamper-cache');
    const vexConfig = join(isolated, 'tamper-vex', 'repository.yaml');
    const trust = ['--trust', join(isolated, 'signing.pub'), '--cache-dir', cache, '--vex-config', vexConfig];
    const installed = await runCli(singleFileCopy, ['import', bundle, ...trust], { cwd: isolated });
    assert.equal(installed.code, 0, installed.stderr);
    const tampered = join(work, 'tampered.tgz');
    const bytes = readFileSync(bundle);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x20;
    writeFileSync(tampered, bytes);
    const before = treeDigest(cache);
    const run = await runCli(singleFileCopy, ['import', tampered, ...trust], { cwd: isolated });
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /error:/);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace without --debug');
    assert.equal(treeDigest(cache), before);
  });

  it('on a terminal (script(1) pseudo-terminal) progress is drawn; off a terminal there are no escape codes', async () => {
    assertBundle();
    const pty = importOnTerminal(join(work, 'tty-cache'), join(work, 'tty-vex.yaml'), {});
    assert.equal(pty.status, 0, pty.stdout.slice(-2000));
    assert.ok(pty.stdout.includes('\u001b['), 'escape codes of the spinner on a TTY');
    assert.match(pty.stdout, /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/u, 'a spinner frame');
    assert.match(pty.stdout, /\d+(\.\d+)? (B|KiB|MiB) \/ \d/u, 'bytes done / total while reading');
    assert.match(pty.stdout, /✔.*verified/u, 'the spinner ends in a summary line');

    const plainCache = join(work, 'plain-cache');
    const plain = await runCli(CLI, [
      'import',
      bundle,
      '--trust',
      join(keys, 'signing.pub'),
      '--cache-dir',
      plainCache,
      '--vex-config',
      join(work, 'plain-vex.yaml'),
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.ok(!(plain.stderr + plain.stdout).includes('\u001b'), 'no escape codes off a TTY');
    assert.match(plain.stderr, /db/, 'a plain summary line per component');
  });

  it('NO_COLOR on a terminal: no colours and no spinner, only the plain summary lines', () => {
    assertBundle();
    const pty = importOnTerminal(join(work, 'nocolor-cache'), join(work, 'nocolor-vex.yaml'), {
      NO_COLOR: '1',
    });
    assert.equal(pty.status, 0, pty.stdout.slice(-2000));
    assert.ok(!pty.stdout.includes('\u001b'), 'no escape codes with NO_COLOR');
    assert.match(pty.stdout, /verified/);
  });
});

/** Runs `import` under script(1), which gives it a pseudo-terminal; stty gives that terminal a size. */
function importOnTerminal(cacheDir: string, vexConfigPath: string, env: NodeJS.ProcessEnv) {
  const command = [process.execPath, CLI, 'import', bundle, '--trust', join(keys, 'signing.pub')]
    .concat(['--cache-dir', cacheDir, '--vex-config', vexConfigPath])
    .map((part) => `'${part.replaceAll("'", "'\\''")}'`)
    .join(' ');
  return spawnSync('script', ['-q', '-e', '-c', `stty cols 120 rows 40; ${command}`, '/dev/null'], {
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'utf8',
    env: { ...process.env, TERM: 'xterm-256color', NO_COLOR: undefined, ...env },
  });
}
