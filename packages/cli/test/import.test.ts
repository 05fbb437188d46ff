import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';
import { CLI } from './process.js';

// The CLI through run() in process, end to end: import (file, pipe, split parts), status, rollback;
// two imports racing for the lock are two processes. Fixture bundles come from
// @trivy-airgap/test-utils (a private workspace package).

const work = mkdtempSync(join(tmpdir(), 'airgap-cli-import-'));
after(() => rmSync(work, { recursive: true, force: true }));
writeFileSync(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);

function dated(date: string) {
  return utils.buildBundle({
    components: [
      { kind: 'db', options: { updatedAt: new Date(date) } },
      { kind: 'java-db', options: { updatedAt: new Date(date) } },
      { kind: 'checks' },
      { kind: 'vex', updatedAt: date },
    ],
  });
}
const recent = new Date(Date.now() - 3600_000).toISOString();
const newer = dated(recent);
const older = dated(new Date(Date.now() - 5 * 86_400_000).toISOString());
writeFileSync(join(work, 'newer.tgz'), newer.bytes);
writeFileSync(join(work, 'older.tgz'), older.bytes);

const env = (cache?: string) => ({
  PATH: process.env.PATH,
  HOME: work,
  XDG_DATA_HOME: join(work, 'data'),
  XDG_CONFIG_HOME: join(work, 'config'),
  NO_COLOR: '1',
  ...(cache === undefined ? {} : { TRIVY_CACHE_DIR: cache }),
});

function cli(args: string[], options: { input?: Buffer; cache?: string } = {}) {
  return runCli(args, {
    cwd: work,
    env: env(options.cache),
    ...(options.input === undefined ? {} : { input: options.input }),
  });
}

describe('trivy-airgap import', () => {
  it('imports a file, prints the exact offline Trivy flags, writes trivy.yaml on request', async () => {
    const cache = join(work, 'cache-file');
    const run = await cli([
      'import',
      'newer.tgz',
      '--trust',
      'signing.pub',
      '--cache-dir',
      cache,
      '--write-trivy-config',
      'trivy.yaml',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      new RegExp(
        `trivy image --skip-db-update --skip-java-db-update --skip-check-update --offline-scan --vex repo --skip-vex-repo-update --cache-dir ${cache} --skip-version-check --disable-telemetry IMAGE`,
      ),
    );
    const config = readFileSync(join(work, 'trivy.yaml'), 'utf8');
    assert.match(config, /skip-update: true/);
    assert.match(config, new RegExp(`dir: ${cache}`));
    assert.ok(existsSync(join(cache, 'db', 'trivy.db')));
    // repository.yaml goes where Trivy looks: $XDG_DATA_HOME/.trivy/vex/repository.yaml
    assert.match(
      readFileSync(join(work, 'data', '.trivy', 'vex', 'repository.yaml'), 'utf8'),
      /name: default/,
    );
    assert.ok(!run.stderr.includes('\u001b['), 'no escape codes off a TTY');
  });

  it('`import -` reads the bundle from a pipe; TRIVY_CACHE_DIR is honoured like Trivy does', async () => {
    const cache = join(work, 'cache-pipe');
    const run = await cli(['import', '-', '--trust', 'signing.pub', '--json'], { input: newer.bytes, cache });
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { bundleId: string; cacheDir: string; trivyFlags: string[] };
    assert.equal(result.bundleId, newer.bundleId);
    assert.equal(result.cacheDir, cache);
    assert.ok(result.trivyFlags.includes('--skip-db-update'));
    assert.ok(lstatSync(join(cache, 'db')).isSymbolicLink());
  });

  it('split parts (`<bundle>.part-000…`) are joined in order', async () => {
    const cache = join(work, 'cache-split');
    const size = Math.ceil(newer.bytes.length / 4);
    for (let i = 0; i < 4; i++) {
      writeFileSync(join(work, `split.tgz.part-00${i}`), newer.bytes.subarray(i * size, (i + 1) * size));
    }
    const run = await cli(['import', 'split.tgz.part-000', '--trust', 'signing.pub', '--cache-dir', cache]);
    assert.equal(run.code, 0, run.stderr);
    const again = await cli([
      'import',
      'split.tgz',
      '--trust',
      'signing.pub',
      '--cache-dir',
      cache,
      '--json',
    ]);
    assert.equal(again.code, 0, again.stderr);
  });

  it('a tampered bundle: exit 3 and the cache is untouched', async () => {
    const cache = join(work, 'cache-tampered');
    const bytes = Buffer.from(newer.bytes);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
    writeFileSync(join(work, 'tampered.tgz'), bytes);
    const run = await cli(['import', 'tampered.tgz', '--trust', 'signing.pub', '--cache-dir', cache]);
    assert.equal(run.code, 3, run.stderr);
    assert.ok(!existsSync(cache));
  });

  it('a cache locked by another running import: exit 1 naming the holder pid', async () => {
    const cache = join(work, 'cache-locked');
    mkdirSync(join(cache, '.trivy-airgap'), { recursive: true });
    writeFileSync(
      join(cache, '.trivy-airgap', 'lock'),
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        startedAt: new Date().toISOString(),
        command: 'import',
      }),
    );
    const run = await cli(['import', 'newer.tgz', '--trust', 'signing.pub', '--cache-dir', cache, '--json']);
    assert.equal(run.code, 1);
    const error = (JSON.parse(run.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'LOCKED');
    assert.match(error.message, new RegExp(`pid ${process.pid}`));
  });

  it('two imports started at once: one waits for nothing and fails LOCKED, the other installs', async () => {
    const cache = join(work, 'cache-race');
    const slow = spawn(
      process.execPath,
      [CLI, 'import', '-', '--trust', 'signing.pub', '--cache-dir', cache],
      {
        cwd: work,
        env: env(),
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const half = Math.floor(newer.bytes.length / 2);
    slow.stdin.write(newer.bytes.subarray(0, half));
    const lock = join(cache, '.trivy-airgap', 'lock');
    for (let i = 0; i < 300 && !existsSync(lock); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(existsSync(lock));
    const blocked = await cli(['import', 'newer.tgz', '--trust', 'signing.pub', '--cache-dir', cache]);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, new RegExp(`pid ${slow.pid ?? 0}`));
    slow.stdin.end(newer.bytes.subarray(half));
    const code = await new Promise<number | null>((resolve) => slow.on('exit', resolve));
    assert.equal(code, 0);
  });
});

describe('trivy-airgap import anti-rollback and rollback', () => {
  it('an older bundle (a replay): exit 1 DOWNGRADE_REFUSED (README: a refused operation); --allow-downgrade installs it; rollback restores the newer one', async () => {
    const cache = join(work, 'cache-downgrade');
    const updatedAt = () =>
      (JSON.parse(readFileSync(join(cache, 'db', 'metadata.json'), 'utf8')) as { UpdatedAt: string })
        .UpdatedAt;
    assert.equal(
      (await cli(['import', 'newer.tgz', '--trust', 'signing.pub', '--cache-dir', cache])).code,
      0,
    );
    const importOlder = (flag: string) =>
      cli(['import', 'older.tgz', '--trust', 'signing.pub', '--cache-dir', cache, flag]);
    const refused = await importOlder('--json');
    assert.equal(refused.code, 1);
    assert.equal((JSON.parse(refused.stdout) as { error: { code: string } }).error.code, 'DOWNGRADE_REFUSED');
    const allowed = await importOlder('--allow-downgrade');
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, /warning: installing an older db/);
    assert.notEqual(updatedAt(), recent);
    const back = await cli(['rollback', '--cache-dir', cache]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /db/);
    assert.equal(updatedAt(), recent);
  });

  it('rollback with nothing imported: exit 1 with a hint', async () => {
    const run = await cli(['rollback', '--cache-dir', join(work, 'cache-empty')]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: nothing was imported/m);
  });
});

describe('trivy-airgap status', () => {
  const cache = join(work, 'cache-status');
  before(async () => {
    assert.equal(
      (await cli(['import', 'newer.tgz', '--trust', 'signing.pub', '--cache-dir', cache])).code,
      0,
    );
  });

  it('reports per component with a verdict; exit 0 when fresh', async () => {
    const run = await cli(['status', '--cache-dir', cache, '--max-age', '7d']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /db +OK/);
    assert.match(run.stdout, /verdict: Trivy will run offline/);
  });

  it('--max-age makes it exit 1 when content is older, and --json still prints the status', async () => {
    const run = await cli(['status', '--cache-dir', cache, '--max-age', '1m', '--json']);
    assert.equal(run.code, 1);
    const status = JSON.parse(run.stdout) as { healthy: boolean; stale: { kind: string }[] };
    assert.equal(status.healthy, false);
    assert.ok(status.stale.some((entry) => entry.kind === 'db'));
  });

  it('a bad --max-age is a usage error (exit 2)', async () => {
    assert.equal((await cli(['status', '--cache-dir', cache, '--max-age', 'soon'])).code, 2);
  });

  it('an empty cache: Trivy would fail offline, exit 1', async () => {
    const run = await cli(['status', '--cache-dir', join(work, 'cache-nothing')]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /FAIL/);
  });
});
