import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { CLI, cliSync, collect, userEnv } from './process.js';

// Issue 12: Ctrl-C (SIGINT) or SIGTERM during a command stops it cleanly — staging removed, lock
// released, one line `<command> cancelled; …`, exit 130 for every cancelled command — and a lock
// left by a killed process is reported as stale by `status`.

const work = mkdtempSync(join(tmpdir(), 'airgap-cancel-'));
after(() => rmSync(work, { recursive: true, force: true }));
writeFileSync(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);
const env = userEnv(work);
const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000);
const installed = utils.buildBundle({ components: [{ kind: 'db', options: { updatedAt: hoursAgo(5) } }] });
writeFileSync(join(work, 'installed.tgz'), installed.bytes);
// Big enough that half of it holds the manifest and the start of the layer, not the whole layer.
const big = utils.buildBundle({
  components: [{ kind: 'db', options: { updatedAt: hoursAgo(1), dbContents: 2 << 20 } }],
});

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** An import reading the first half of `big` from its stdin, stalled there with its staging dir made. */
async function stalledImport(cache: string, extra: string[] = []) {
  const child = spawn(
    process.execPath,
    [CLI, 'import', '-', '--trust', 'signing.pub', '--cache-dir', cache, ...extra],
    {
      cwd: work,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const exit = collect(child);
  // The rest of this write is pending when the child goes away: its EPIPE is expected here.
  child.stdin.on('error', () => undefined);
  child.stdin.write(big.bytes.subarray(0, Math.floor(big.bytes.length / 2)));
  const staging = join(cache, '.trivy-airgap', 'staging');
  await until('the staging dir', () => existsSync(staging) && readdirSync(staging).length > 0);
  return { child, exit };
}

function preparedCache(name: string): { cache: string; before: string } {
  const cache = join(work, name);
  const run = cliSync(['import', 'installed.tgz', '--trust', 'signing.pub', '--cache-dir', cache], {
    cwd: work,
    env,
  });
  assert.equal(run.code, 0, run.stderr);
  return { cache, before: utils.treeDigest(cache) };
}

describe('cancelling an import (Ctrl-C, SIGTERM)', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} mid-import: exit 130, "import cancelled; nothing was changed", staging removed, lock released, cache as it was`, async () => {
      const { cache, before } = preparedCache(`cache-${signal}`);
      const { child, exit } = await stalledImport(cache);
      child.kill(signal);
      const result = await exit;
      assert.equal(result.signal, null, 'the CLI handled the signal itself');
      assert.equal(result.code, 130, result.stderr);
      assert.match(result.stderr, /^error: import cancelled; nothing was changed$/m);
      assert.ok(!existsSync(join(cache, '.trivy-airgap', 'lock')), 'lock released');
      assert.deepEqual(readdirSync(join(cache, '.trivy-airgap', 'staging')), []);
      assert.equal(utils.treeDigest(cache), before, 'the cache is byte for byte as it was');
    });
  }

  it('--json: the error is CANCELLED (category cancelled) and a fresh cache dir is not left behind', async () => {
    const cache = join(work, 'cache-fresh');
    const { child, exit } = await stalledImport(cache, ['--json']);
    child.kill('SIGINT');
    const result = await exit;
    assert.equal(result.code, 130, result.stderr);
    const error = (JSON.parse(result.stdout) as { error: { code: string; category: string } }).error;
    assert.deepEqual([error.code, error.category], ['CANCELLED', 'cancelled']);
    assert.ok(!existsSync(cache), 'the cache dir this run created is gone again');
  });
});

describe('a lock left by a killed import', () => {
  it('status calls it stale (the pid is gone); the next import takes it over', async () => {
    const { cache } = preparedCache('cache-killed');
    const { child, exit } = await stalledImport(cache);
    child.kill('SIGKILL'); // no chance to clean up: what kill -9 or a power cut leaves
    await exit;
    assert.ok(existsSync(join(cache, '.trivy-airgap', 'lock')), 'the lock stayed behind');
    const status = cliSync(['status', '--cache-dir', cache, '--json'], { cwd: work, env });
    const report = JSON.parse(status.stdout) as { lockedBy?: { pid: number; alive: boolean } };
    assert.equal(report.lockedBy?.pid, child.pid);
    assert.equal(report.lockedBy?.alive, false);
    const human = cliSync(['status', '--cache-dir', cache], { cwd: work, env });
    assert.match(human.stdout, new RegExp(`stale lock of pid ${child.pid}`));
    const next = cliSync(
      ['import', 'installed.tgz', '--trust', 'signing.pub', '--cache-dir', cache, '--allow-downgrade'],
      {
        cwd: work,
        env,
      },
    );
    assert.equal(next.code, 0, next.stderr);
    assert.ok(!existsSync(join(cache, '.trivy-airgap', 'lock')));
  });
});

/** Whether process `pid` has `path` open (Linux /proc): the CLI got as far as opening it. */
function hasOpen(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

describe('cancelling a command outside its cancellable work', () => {
  // Before any writer opened the FIFO (`<(slow-command)` not started yet), and after one did.
  for (const { json, writerFirst } of [
    { json: false, writerFirst: true },
    { json: true, writerFirst: false },
  ]) {
    it(`SIGINT while export waits for its --passphrase-file (FIFO, ${writerFirst ? 'writer open, nothing written' : 'no writer yet'}${json ? ', --json' : ''}): exit 130, reported as CANCELLED like any error`, async () => {
      const fifo = join(work, `passphrase-${json}.fifo`);
      execFileSync('mkfifo', [fifo]);
      writeFileSync(join(work, 'signing.key'), utils.defaultTestKey().privateKeyPem);
      const child = spawn(
        process.execPath,
        [CLI, 'export', '--db', '--key', 'signing.key', '--passphrase-file', fifo, '-o', 'never.tgz'].concat(
          json ? ['--json'] : [],
        ),
        { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const exit = collect(child);
      let writer: number | undefined;
      await until('the CLI opening the passphrase file', () => hasOpen(child.pid!, fifo));
      // A FIFO opens for writing (non-blocking) only while a reader has it open.
      if (writerFirst) writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      child.kill('SIGINT');
      const result = await exit;
      if (writer !== undefined) closeSync(writer);
      assert.equal(result.code, 130, result.stderr);
      if (json) {
        const { error } = JSON.parse(result.stdout) as { error: { code: string; category: string } };
        assert.deepEqual([error.code, error.category], ['CANCELLED', 'cancelled']);
      } else {
        assert.match(result.stderr, /^error: export cancelled by SIGINT$/m);
      }
      assert.ok(!existsSync(join(work, 'never.tgz')));
    });
  }
});

describe('cancelling an export', () => {
  it('SIGINT while a download stalls: exit 130 (the same as import), "export cancelled", no bundle written', async () => {
    // A VEX repository whose archive download never finishes.
    let archiveRequested = false;
    const server: Server = createServer((request, response) => {
      const { port } = server.address() as AddressInfo;
      if (request.url === '/.well-known/vex-repository.json') {
        response.setHeader('content-type', 'application/json');
        response.end(
          utils.vexRepositoryManifest(`http://127.0.0.1:${port}/archive/main.tar.gz//vexhub-main`),
        );
      } else {
        archiveRequested = true;
        response.writeHead(200, { 'content-length': '1000000' });
        response.write(Buffer.alloc(1000)); // … and nothing more
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const child = spawn(
        process.execPath,
        [
          CLI,
          'export',
          '--vex',
          '--vex-repository',
          `stall=http://127.0.0.1:${port}`,
          '--unsigned',
          '-o',
          'stalled.tgz',
        ],
        { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const exit = collect(child);
      await until('the archive request', () => archiveRequested);
      child.kill('SIGINT');
      const result = await exit;
      assert.equal(result.code, 130, result.stderr);
      assert.match(result.stderr, /^error: export cancelled; no bundle was written/m);
      assert.deepEqual(
        readdirSync(work).filter((name) => name.startsWith('stalled.tgz')),
        [],
      );
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
