import { isAbsolute, relative, resolve, sep } from 'node:path';
import { FormatError } from './errors.js';

/** Longest path a bundle may name (bytes of UTF-8); generous for our layout, small for an attacker. */
export const MAX_BUNDLE_PATH_BYTES = 1024;
/** Longest single path segment (the common file-system limit). */
export const MAX_SEGMENT_BYTES = 255;

/**
 * Why a path is not a safe bundle path, or `undefined` when it is. A safe path is relative,
 * already normalized (no empty, `.` or `..` segments, no trailing slash), uses `/` only,
 * has no drive letter, colon, NUL or other control character, and is bounded in length.
 * These are pure string checks so they run before any file-system call.
 */
export function bundlePathProblem(path: string): string | undefined {
  if (path.length === 0) return 'empty path';
  if (Buffer.byteLength(path, 'utf8') > MAX_BUNDLE_PATH_BYTES) {
    return `longer than ${MAX_BUNDLE_PATH_BYTES} bytes`;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'contains a NUL or control character';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.includes(':')) return 'contains a colon (drive letter or stream name)';
  if (path.startsWith('/')) return 'is absolute';
  for (const segment of path.split('/')) {
    if (segment === '') return 'has an empty segment (leading, trailing or double slash)';
    if (segment === '.' || segment === '..') return `has a "${segment}" segment`;
    if (Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES) {
      return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
    }
  }
  return undefined;
}

export function isSafeBundlePath(path: unknown): path is string {
  return typeof path === 'string' && bundlePathProblem(path) === undefined;
}

/** Returns the path unchanged when it is safe, otherwise throws PATH_UNSAFE naming the rule. */
export function assertSafeBundlePath(path: unknown, what = 'path'): string {
  if (typeof path !== 'string') {
    throw new FormatError('PATH_UNSAFE', `${what} is not a string`);
  }
  const problem = bundlePathProblem(path);
  if (problem !== undefined) {
    throw new FormatError('PATH_UNSAFE', `${what} ${JSON.stringify(path.slice(0, 200))} ${problem}`);
  }
  return path;
}

/** Why `name` is not a safe single path segment (a file or directory name), or `undefined`. */
export function pathSegmentProblem(name: string): string | undefined {
  if (name.includes('/')) return 'contains a slash (must be a single name)';
  return bundlePathProblem(name);
}

/** True when `path` lies strictly inside `root` (both absolute); `path.relative` and `root + sep`. */
export function isInside(root: string, path: string): boolean {
  const base = resolve(root);
  const target = resolve(path);
  const rel = relative(base, target);
  return (
    rel !== '' &&
    rel !== '..' &&
    !rel.startsWith(`..${sep}`) &&
    !isAbsolute(rel) &&
    target.startsWith(base.endsWith(sep) ? base : base + sep)
  );
}

/**
 * `root` joined with a `/`-separated relative path that came from a bundle (or was derived from
 * one), after the safe-path rules AND a containment check on the resolved result: defense in
 * depth for every join of untrusted input, so that a rule missed elsewhere still cannot reach
 * outside `root`. Pure string work (no file-system call). Throws PATH_UNSAFE.
 */
export function resolveInside(root: string, relativePath: string, what = 'path'): string {
  assertSafeBundlePath(relativePath, what);
  const target = resolve(root, ...relativePath.split('/'));
  if (!isInside(root, target)) {
    throw new FormatError(
      'PATH_UNSAFE',
      `${what} ${JSON.stringify(relativePath.slice(0, 200))} would resolve outside ${root}`,
    );
  }
  return target;
}
