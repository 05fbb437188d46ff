import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bundlePathProblem, isInside, resolveInside, type FormatError } from '../src/index.js';
import { assertSafeBundlePath, isSafeBundlePath } from '../src/safe-path.js';

const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/).filter((s) => s !== '.' && s !== '..');

describe('safe bundle paths', () => {
  it('accepts the layout paths the exporter writes', () => {
    for (const path of [
      'oci/oci-layout',
      'oci/index.json',
      `oci/blobs/sha256/${'a'.repeat(64)}`,
      'vex/vexhub/vex-repository.json',
      'vex/vexhub/archive.tar.gz',
    ]) {
      assert.equal(bundlePathProblem(path), undefined, path);
    }
  });

  for (const [path, why] of [
    ['', 'empty'],
    ['/etc/passwd', 'absolute'],
    ['../escape', 'parent'],
    ['a/../../escape', 'parent in the middle'],
    ['a/./b', 'dot segment'],
    ['a//b', 'double slash'],
    ['a/b/', 'trailing slash'],
    ['a\\..\\b', 'backslash'],
    ['C:/Windows', 'drive letter'],
    ['c:evil', 'drive-relative'],
    ['a\0b', 'NUL'],
    ['a\nb', 'newline'],
    ['x'.repeat(256), 'segment too long'],
    [`${'abcdefgh/'.repeat(120)}x`, 'path too long'],
  ] as const) {
    it(`refuses ${why}`, () => {
      assert.equal(isSafeBundlePath(path), false);
      assert.throws(
        () => assertSafeBundlePath(path),
        (error: FormatError) => error.code === 'PATH_UNSAFE',
      );
    });
  }

  it('property: joins of plain segments are accepted and already normalized', () => {
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), (segments) => {
        const path = segments.join('/');
        assert.equal(isSafeBundlePath(path), true);
        assert.equal(posix.normalize(path), path);
      }),
    );
  });

  it('property: an accepted path never resolves outside its root', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (path) => {
        if (!isSafeBundlePath(path)) return;
        const resolved = posix.resolve('/root/bundle', path);
        assert.ok(resolved.startsWith('/root/bundle/'), `${path} -> ${resolved}`);
        assert.equal(posix.normalize(path), path);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: any path with a ".." segment is refused', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 4 }),
        fc.array(segment, { maxLength: 4 }),
        (before, after) => {
          assert.equal(isSafeBundlePath([...before, '..', ...after].join('/')), false);
        },
      ),
    );
  });
});

describe('resolveInside: joins of untrusted relative paths stay inside their root', () => {
  it('joins safe paths', () => {
    assert.equal(resolveInside('/cache/stage', 'vex/default'), '/cache/stage/vex/default');
  });

  for (const path of ['../x', '/abs', 'a/../../b', '', 'a\\..\\b', 'C:/x']) {
    it(`refuses ${JSON.stringify(path)}`, () => {
      assert.throws(
        () => resolveInside('/cache/stage', path),
        (error: FormatError) => error.code === 'PATH_UNSAFE',
      );
    });
  }

  it('isInside is a containment check, never a bare string prefix', () => {
    assert.equal(isInside('/cache/stage', '/cache/stage-evil/x'), false);
    assert.equal(isInside('/cache/stage', '/cache/stage'), false);
    assert.equal(isInside('/cache/stage', '/cache/stage/x'), true);
  });
});
