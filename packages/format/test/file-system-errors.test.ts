import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileSystemError, FormatError, asFileSystemError, fileSystemError } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-fs-errors-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The error a real system call throws (what Node gives us; no mock). */
function caught(action: () => unknown): NodeJS.ErrnoException {
  try {
    action();
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
  throw new Error('expected the call to fail');
}

/** An error as Node reports it for a write to an open file descriptor: no path. */
function errnoError(code: string, syscall: string, path?: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall}`), { code, syscall, errno: -1, path });
}

/** The mapped error; fails the test when the error was not mapped. */
function mapped(error: unknown, context: Parameters<typeof fileSystemError>[1] = {}): FileSystemError {
  const result = fileSystemError(error, context);
  assert.ok(result instanceof FileSystemError, `not mapped: ${String(error)}`);
  return result;
}

describe('file-system errors the user causes: one typed error naming the path', () => {
  const file = join(work, 'file');
  writeFileSync(file, 'x');

  it('real ENOENT, EISDIR, ENOTDIR, ENAMETOOLONG, ELOOP from Node map to their FS_* codes with the path', () => {
    const loop = join(work, 'loop');
    symlinkSync(loop, loop);
    for (const [action, code, path] of [
      [() => readFileSync(join(work, 'missing.key')), 'FS_NOT_FOUND', join(work, 'missing.key')],
      [() => readFileSync(work), 'FS_IS_A_DIRECTORY', undefined],
      [() => readFileSync(join(file, 'below')), 'FS_NOT_A_DIRECTORY', join(file, 'below')],
      [() => readFileSync(join(work, 'n'.repeat(300))), 'FS_NAME_TOO_LONG', join(work, 'n'.repeat(300))],
      [() => readFileSync(loop), 'FS_LINK_LOOP', loop],
    ] as const) {
      const error = mapped(caught(action), { where: work });
      assert.equal(error.code, code);
      assert.equal(error.category, 'failure');
      assert.equal(error.path, path ?? work, code);
      assert.ok(error.message.includes(path ?? work), error.message);
      assert.ok(error.hint !== undefined && error.hint.length > 0);
    }
  });

  it('a write without a path (full disk) names the place the caller gave, with its way out', () => {
    const error = mapped(errnoError('ENOSPC', 'write'), {
      where: '/work/dir',
      elsewhere: 'pass --work-dir DIR on another disk',
    });
    assert.equal(error.code, 'FS_NO_SPACE');
    assert.equal(error.path, '/work/dir');
    assert.equal(error.errno, 'ENOSPC');
    assert.match(error.message, /^cannot write \/work\/dir: no space left/);
    assert.match(error.hint ?? '', /\/work\/dir, or pass --work-dir DIR on another disk/);
  });

  it('EROFS, EDQUOT, EACCES, EPERM, EIO, EMFILE each get their code; the failing path is named first', () => {
    for (const [errno, code] of [
      ['EROFS', 'FS_READ_ONLY'],
      ['EDQUOT', 'FS_NO_SPACE'],
      ['EACCES', 'FS_PERMISSION_DENIED'],
      ['EPERM', 'FS_PERMISSION_DENIED'],
      ['EIO', 'FS_IO_ERROR'],
      ['EMFILE', 'FS_TOO_MANY_OPEN_FILES'],
      ['ENFILE', 'FS_TOO_MANY_OPEN_FILES'],
    ] as const) {
      const error = mapped(errnoError(errno, 'open', '/cache/.trivy-airgap/lock'), {
        where: '/cache',
      });
      assert.equal(error.code, code, errno);
      assert.equal(error.path, '/cache/.trivy-airgap/lock');
      assert.match(error.message, /^cannot open \/cache\/\.trivy-airgap\/lock: /);
    }
  });

  it('a recursive mkdir on a read-only disk (Node reports ENOENT) is FS_CANNOT_CREATE, saying it may be read-only', () => {
    const error = mapped(errnoError('ENOENT', 'mkdir', '/ro/cache'), { where: '/ro/cache' });
    assert.equal(error.code, 'FS_CANNOT_CREATE');
    assert.match(error.message, /^cannot create the directory \/ro\/cache: .*read-only/);
  });

  it('a mkdir where a file is in the way (EEXIST: --out-dir naming a file) is FS_NOT_A_DIRECTORY naming it', () => {
    const error = mapped(errnoError('EEXIST', 'mkdir', '/keys'), {});
    assert.equal(error.code, 'FS_NOT_A_DIRECTORY');
    assert.equal(error.path, '/keys');
    assert.equal(
      fileSystemError(errnoError('EEXIST', 'open', '/keys')),
      undefined,
      "open wx stays the caller's",
    );
  });

  it("the caller's advice for a wrong path replaces the generic one; a full disk keeps its own", () => {
    const pathHint = 'check the --key path';
    assert.equal(mapped(errnoError('ENOENT', 'open', '/k'), { pathHint }).hint, pathHint);
    assert.notEqual(mapped(errnoError('ENOSPC', 'open', '/k'), { pathHint }).hint, pathHint);
  });

  it('leaves alone what is not a file-system error: our own errors, network errnos, plain errors', () => {
    const own = new FormatError('KEY_INVALID', 'not a key');
    assert.equal(fileSystemError(own), undefined);
    assert.equal(asFileSystemError(own), own);
    assert.equal(fileSystemError(errnoError('EACCES', 'listen')), undefined);
    assert.equal(fileSystemError(errnoError('ENOENT', 'spawn trivy')), undefined);
    assert.equal(fileSystemError(errnoError('ECONNREFUSED', 'connect')), undefined);
    assert.equal(fileSystemError(new TypeError('x is undefined')), undefined);
    assert.equal(fileSystemError('ENOSPC'), undefined);
  });
});
