import type { ComponentKind, OciComponentKind } from '@trivy-airgap/format';
import { stringify } from 'yaml';
import { lowestTrivyVersion, trivyAtLeast } from './artifacts.js';

/**
 * What a Trivy release accepts on its command line and in trivy.yaml, for the settings an offline
 * host needs (trivy-facts.md "Second reading": flags by release; keys from pkg/flag/*_flags.go of
 * each release). Cobra rejects an unknown flag, so a command printed for an older Trivy must leave
 * out what it does not know; trivy.yaml keys Trivy does not know are ignored silently, so a wrong
 * key is worse: it looks applied and is not.
 */
export interface TrivyCapabilities {
  /** `--skip-check-update` from 0.51; before: `--skip-policy-update`. */
  readonly skipChecksUpdateFlag: '--skip-check-update' | '--skip-policy-update';
  /** Its trivy.yaml key: `rego.skip-check-update` from 0.51; before: `rego.skip-policy-update`. */
  readonly skipChecksUpdateKey: 'rego.skip-check-update' | 'rego.skip-policy-update';
  /** `--vex repo` and `--skip-vex-repo-update` (from 0.54; before, `--vex` takes only a file path). */
  readonly vexRepositories: boolean;
  /** `--skip-version-check` and `--disable-telemetry` (`scan.` keys), from 0.63. */
  readonly phoneHomeFlags: boolean;
  /** The flag naming each artifact's repository (`--policy-bundle-repository` for checks before 0.51). */
  readonly repositoryFlags: Readonly<Record<OciComponentKind, string>>;
  /** The same as trivy.yaml keys. */
  readonly repositoryKeys: Readonly<Record<OciComponentKind, string>>;
}

/**
 * The capabilities every release of `trivyVersion` shares: an exact release (`0.57.1`) or a bundle
 * manifest's `trivyVersions` range (its lowest release decides). Without one: the newest release.
 */
export function trivyCapabilities(trivyVersion?: string): TrivyCapabilities {
  const version = trivyVersion === undefined ? undefined : lowestTrivyVersion(trivyVersion);
  const since = (minor: number): boolean => version === undefined || trivyAtLeast(version, minor);
  const checks = since(51);
  return {
    skipChecksUpdateFlag: checks ? '--skip-check-update' : '--skip-policy-update',
    skipChecksUpdateKey: checks ? 'rego.skip-check-update' : 'rego.skip-policy-update',
    vexRepositories: since(54),
    phoneHomeFlags: since(63),
    repositoryFlags: {
      db: '--db-repository',
      'java-db': '--java-db-repository',
      checks: checks ? '--checks-bundle-repository' : '--policy-bundle-repository',
    },
    repositoryKeys: {
      db: 'db.repository',
      'java-db': 'db.java-repository',
      checks: checks
        ? 'misconfiguration.checks-bundle-repository'
        : 'misconfiguration.policy-bundle-repository',
    },
  };
}

export interface OfflineFlagsInput {
  /** The cache dir the content was installed into. */
  readonly cacheDir?: string;
  /** What Trivy would use without `--cache-dir` (from `defaultCacheDir`/`resolveCacheDirDetailed`). */
  readonly defaultCacheDir: string;
  /** The components installed (only their skip flags are emitted). */
  readonly components: readonly ComponentKind[];
  /**
   * The Trivy the command is for: an exact release (`--trivy-version 0.57.1`) or the bundle
   * manifest's `trivyVersions` range. Flags some release of it does not know are left out.
   * Default: the newest Trivy.
   */
  readonly trivyVersion?: string;
}

function needsCacheDir(input: OfflineFlagsInput): input is OfflineFlagsInput & { cacheDir: string } {
  return input.cacheDir !== undefined && input.cacheDir !== input.defaultCacheDir;
}

/**
 * The Trivy arguments an offline host needs (trivy-facts.md: "Trivy flags an offline host needs"),
 * as an argv list for the targeted Trivy: the skip flags of the installed components,
 * `--offline-scan`, `--vex repo --skip-vex-repo-update` when VEX is installed (0.54+),
 * `--cache-dir` when not the default, and `--skip-version-check --disable-telemetry` against
 * phone-home calls (0.63+).
 */
export function offlineTrivyFlags(input: OfflineFlagsInput): string[] {
  const can = trivyCapabilities(input.trivyVersion);
  const has = (kind: ComponentKind): boolean => input.components.includes(kind);
  const flags: string[] = [];
  if (has('db')) flags.push('--skip-db-update');
  if (has('java-db')) flags.push('--skip-java-db-update');
  if (has('checks')) flags.push(can.skipChecksUpdateFlag);
  flags.push('--offline-scan');
  if (has('vex') && can.vexRepositories) flags.push('--vex', 'repo', '--skip-vex-repo-update');
  if (needsCacheDir(input)) flags.push('--cache-dir', input.cacheDir);
  if (can.phoneHomeFlags) flags.push('--skip-version-check', '--disable-telemetry');
  return flags;
}

/** Sets `a.b` = value in a nested object (trivy.yaml keys are dotted paths). */
function setKey(config: Record<string, unknown>, key: string, value: unknown): void {
  const [head, ...rest] = key.split('.');
  if (head === undefined) return;
  if (rest.length === 0) {
    config[head] = value;
    return;
  }
  const child = (config[head] ??= {}) as Record<string, unknown>;
  setKey(child, rest.join('.'), value);
}

/**
 * The same settings as a trivy.yaml (`trivy --config FILE`), with the keys of the targeted release
 * (pkg/flag/*_flags.go: `db.skip-update`, `db.java-skip-update`, `rego.skip-check-update`,
 * `scan.offline`, `vulnerability.vex`, `vulnerability.skip-vex-repo-update`,
 * `scan.skip-version-check`, `scan.disable-telemetry`, `cache.dir`).
 */
export function trivyConfigYaml(input: OfflineFlagsInput): string {
  const can = trivyCapabilities(input.trivyVersion);
  const has = (kind: ComponentKind): boolean => input.components.includes(kind);
  const config: Record<string, unknown> = {};
  if (needsCacheDir(input)) setKey(config, 'cache.dir', input.cacheDir);
  if (has('db')) setKey(config, 'db.skip-update', true);
  if (has('java-db')) setKey(config, 'db.java-skip-update', true);
  if (has('checks')) setKey(config, can.skipChecksUpdateKey, true);
  setKey(config, 'scan.offline', true);
  if (can.phoneHomeFlags) {
    setKey(config, 'scan.skip-version-check', true);
    setKey(config, 'scan.disable-telemetry', true);
  }
  if (has('vex') && can.vexRepositories) {
    setKey(config, 'vulnerability.vex', ['repo']);
    setKey(config, 'vulnerability.skip-vex-repo-update', true);
  }
  return `# Written by trivy-airgap: run Trivy offline against the imported content.\n${stringify(config)}`;
}

/** Quotes an argv list for a POSIX shell (for messages like "run: trivy image …"). */
export function shellQuote(args: readonly string[]): string {
  return args
    .map((arg) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
