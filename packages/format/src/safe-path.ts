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
