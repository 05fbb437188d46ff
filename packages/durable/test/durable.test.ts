import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  acquireLock,
  inspectLock,
  swapSymlink,
  syncTree,
  writeFileAtomic,
  type LockAttempt,
  type LockState,
} from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-durable-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const fresh = (name: string): string => {
  const dir = join(work, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

/** The state of a lock an attempt did not get. */
function refused(attempt: LockAttempt): LockState {
  if (attempt.acquired) assert.fail('the lock was acquired');
  return attempt.state;
}

/** A pid that certainly does not run any more: a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(child.stdout);
}

describe('lock: one operation at a time', () => {
  it('a second acquisition in the same process is refused, not taken over as stale', async () => {
    const path = join(fresh('lock'), 'lock');
    const first = await acquireLock(path, 'export');
    assert.ok(first.acquired);
    const second = refused(await acquireLock(path, 'export'));
    assert.equal(second.holder?.pid, process.pid);
    assert.equal(second.alive, true);
    await first.lock.release();
    const third = await acquireLock(path, 'export');
    assert.ok(third.acquired, 'free again after release');
    await third.lock.release();
  });

  it('release never removes a lock someone else holds now', async () => {
    const path = join(fresh('lock'), 'lock');
    const mine = await acquireLock(path, 'import');
    assert.ok(mine.acquired);
    const theirs = `${JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'x', operation: 'import', token: 'other' })}\n`;
    writeFileSync(path, theirs);
    await mine.lock.release();
    assert.equal(readFileSync(path, 'utf8'), theirs);
  });

  it('a lock held by a dead pid is recognisable as stale, and is taken over', async () => {
    const path = join(fresh('lock'), 'lock');
    const pid = deadPid();
    writeFileSync(
      path,
      JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z', operation: 'import' }),
    );
    const state = await inspectLock(path);
    assert.ok(state?.holder !== undefined);
    assert.equal(state.holder.pid, pid);
    assert.equal(state.holder.operation, 'import');
    assert.equal(state.alive, false);
    const attempt = await acquireLock(path, 'import');
    assert.ok(attempt.acquired);
    assert.equal((await inspectLock(path))?.holder?.pid, process.pid);
    await attempt.lock.release();
    assert.equal(await inspectLock(path), undefined);
  });

  it('reads the lock files of earlier releases: a bare pid, and `command` for the operation', async () => {
    const dir = fresh('lock');
    writeFileSync(join(dir, 'bare'), `${deadPid()}\n`);
    assert.equal((await inspectLock(join(dir, 'bare')))?.alive, false);
    writeFileSync(
      join(dir, 'old'),
      JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'x', command: 'rollback' }),
    );
    const old = await inspectLock(join(dir, 'old'));
    assert.ok(old?.holder !== undefined);
    assert.equal(old.holder.operation, 'rollback');
    assert.equal(old.alive, true);
  });

  it("another host's lock is never judged stale from here", async () => {
    const path = join(fresh('lock'), 'lock');
    writeFileSync(
      path,
      JSON.stringify({ pid: deadPid(), host: 'elsewhere.example', startedAt: 'x', operation: 'import' }),
    );
    assert.equal(refused(await acquireLock(path, 'import')).sameHost, false);
  });

  it('an unreadable lock file that was just written is respected; an old one is taken over', async () => {
    const path = join(fresh('lock'), 'lock');
    writeFileSync(path, '');
    refused(await acquireLock(path, 'import'));
    const old = new Date(Date.now() - 60_000);
    const { utimesSync } = await import('node:fs');
    utimesSync(path, old, old);
    const attempt = await acquireLock(path, 'import');
    assert.ok(attempt.acquired);
    await attempt.lock.release();
  });
});

describe('durable writes', () => {
  it('syncTree makes a tree durable by syncfs or, as a fallback, file by file', async () => {
    const root = fresh('tree');
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    writeFileSync(join(root, 'a', 'b', 'f'), 'x');
    writeFileSync(join(root, 'g'), 'y');
    await syncTree(root);
    await syncTree(root, { method: 'each' });
    await assert.rejects(syncTree(join(root, 'missing'), { method: 'each' }), { code: 'ENOENT' });
  });

  it('writeFileAtomic replaces a file whole and leaves no temp file', async () => {
    const dir = fresh('atomic');
    const path = join(dir, 'state.json');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two', 0o600);
    assert.equal(readFileSync(path, 'utf8'), 'two');
    assert.equal(lstatSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['state.json']);
  });

  it('swapSymlink points a link at a new target in one rename and leaves no temp link', async () => {
    const dir = fresh('link');
    const link = join(dir, 'db');
    await swapSymlink(link, 'gen-1', `${link}.new`);
    await swapSymlink(link, 'gen-2', `${link}.new`);
    assert.equal(readlinkSync(link), 'gen-2');
    assert.deepEqual(readdirSync(dir), ['db']);
  });
});
