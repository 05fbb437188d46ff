import { TrivyError } from './errors.js';

/** A Trivy release as `major.minor.patch` (pre-release and build suffixes are ignored). */
export interface TrivyVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

const VERSION_PATTERN = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]*)?$/;

/** `0.57.1`, `v0.57`, `0.58.0-rc1` → a TrivyVersion; anything else is TRIVY_VERSION_INVALID. */
export function parseTrivyVersion(value: string): TrivyVersion {
  const match = VERSION_PATTERN.exec(value.trim());
  if (match === null) {
    throw new TrivyError('TRIVY_VERSION_INVALID', `not a Trivy version: ${JSON.stringify(value)}`, {
      hint: 'give it as X.Y.Z, e.g. --trivy-version 0.57.1 (see `trivy --version`)',
    });
  }
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

function compareVersions(a: TrivyVersion, b: TrivyVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** True when `version` is `0.<minor>.0` or later. */
export function trivyAtLeast(version: TrivyVersion, minor: number): boolean {
  return compareVersions(version, { major: 0, minor, patch: 0 }) >= 0;
}

/** The oldest release we know anything about: what an open lower end of a range means. */
const OLDEST: TrivyVersion = { major: 0, minor: 0, patch: 0 };

/**
 * The lowest Trivy release a target names: the release itself (`0.57.1`), or the lower bound of a
 * range as bundle manifests record it (`>=0.58.0 <0.63.0` → 0.58.0; `<0.51.0` → the oldest).
 * Flags computed for it are accepted by every release of the range, since Trivy only adds them.
 */
export function lowestTrivyVersion(target: string): TrivyVersion {
  const clauses = target.trim().split(/\s+/);
  if (clauses.length === 1 && !/^[<>=]/.test(clauses[0] ?? '')) return parseTrivyVersion(target);
  let lowest = OLDEST;
  for (const clause of clauses) {
    const match = /^(>=|>|<=|<|=)?(.+)$/.exec(clause);
    const operator = match?.[1];
    const version = parseTrivyVersion(match?.[2] ?? clause);
    if (operator === undefined || operator === '=' || operator === '>=' || operator === '>') {
      if (compareVersions(version, lowest) > 0) lowest = version;
    }
  }
  return lowest;
}

/**
 * A fact that changed across Trivy releases: rows newest first, each valid from release
 * `0.<from>.0` until the next newer row. The last row has `from: 0`, so every release finds one.
 */
export type ByRelease<T> = readonly { readonly from: number; readonly value: T }[];

/** The row of `rows` for `version`; without a version (the newest Trivy), the newest row. */
export function forRelease<T>(rows: ByRelease<T>, version: TrivyVersion | undefined): T {
  const row = version === undefined ? rows[0] : rows.find((r) => trivyAtLeast(version, r.from));
  if (row === undefined) throw new Error('internal: a ByRelease table needs a row from 0');
  return row.value;
}
