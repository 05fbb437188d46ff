import type { ComponentKind, OciComponentKind } from '@trivy-airgap/format';
import { stringify } from 'yaml';
import {
  ARTIFACTS,
  ARTIFACT_KINDS,
  COMPONENTS,
  COMPONENT_KINDS,
  SCAN_SETTINGS,
  type OfflineSetting,
} from './components.js';
import { forRelease, lowestTrivyVersion, type TrivyVersion } from './versions.js';

/**
 * What a Trivy release accepts on its command line and in trivy.yaml, for the settings an offline
 * host needs (trivy-facts.md "Second reading": flags by release; keys from pkg/flag/*_flags.go of
 * each release), read from the component table. Cobra rejects an unknown flag, so a command
 * printed for an older Trivy must leave out what it does not know; trivy.yaml keys Trivy does not
 * know are ignored silently, so a wrong key is worse: it looks applied and is not.
 */
export interface TrivyCapabilities {
  /** `--vex repo` and `--skip-vex-repo-update` (from 0.54; before, `--vex` takes only a file path). */
  readonly vexRepositories: boolean;
  /** The flag naming each artifact's repository (`--policy-bundle-repository` for checks before 0.51). */
  readonly repositoryFlags: Readonly<Record<OciComponentKind, string>>;
  /** The same as trivy.yaml keys. */
  readonly repositoryKeys: Readonly<Record<OciComponentKind, string>>;
}

function releaseOf(trivyVersion: string | undefined): TrivyVersion | undefined {
  return trivyVersion === undefined ? undefined : lowestTrivyVersion(trivyVersion);
}

/** How the targeted release uses a component offline (null: it cannot use it). */
export function offlineSettingOf(kind: ComponentKind, trivyVersion?: string): OfflineSetting | null {
  return forRelease(COMPONENTS[kind].offline, releaseOf(trivyVersion));
}

/**
 * The capabilities every release of `trivyVersion` shares: an exact release (`0.57.1`) or a bundle
 * manifest's `trivyVersions` range (its lowest release decides). Without one: the newest release.
 */
export function trivyCapabilities(trivyVersion?: string): TrivyCapabilities {
  const version = releaseOf(trivyVersion);
  const option = (kind: OciComponentKind) => forRelease(ARTIFACTS[kind].repositoryOption, version);
  return {
    vexRepositories: forRelease(COMPONENTS.vex.offline, version) !== null,
    repositoryFlags: Object.fromEntries(ARTIFACT_KINDS.map((kind) => [kind, option(kind).flag])) as Record<
      OciComponentKind,
      string
    >,
    repositoryKeys: Object.fromEntries(ARTIFACT_KINDS.map((kind) => [kind, option(kind).key])) as Record<
      OciComponentKind,
      string
    >,
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

/** The offline settings of the installed components the targeted release can use, in table order. */
function installedSettings(input: OfflineFlagsInput, group: OfflineSetting['group']): OfflineSetting[] {
  const version = releaseOf(input.trivyVersion);
  const settings: OfflineSetting[] = [];
  for (const kind of COMPONENT_KINDS) {
    if (!input.components.includes(kind)) continue;
    const setting = forRelease(COMPONENTS[kind].offline, version);
    if (setting !== null && setting.group === group) settings.push(setting);
  }
  return settings;
}

/**
 * The Trivy arguments an offline host needs (trivy-facts.md: "Trivy flags an offline host needs"),
 * as an argv list for the targeted Trivy, from the component table: the skip flags of the
 * installed components, `--offline-scan`, the scan options of installed components (`--vex repo
 * --skip-vex-repo-update`, 0.54+), `--cache-dir` when not the default, and
 * `--skip-version-check --disable-telemetry` against phone-home calls (0.63+).
 */
export function offlineTrivyFlags(input: OfflineFlagsInput): string[] {
  const flags: string[] = [];
  for (const setting of installedSettings(input, 'update')) flags.push(...setting.flags);
  flags.push(...SCAN_SETTINGS.offlineScan.flags);
  for (const setting of installedSettings(input, 'scan')) flags.push(...setting.flags);
  if (needsCacheDir(input)) flags.push('--cache-dir', input.cacheDir);
  flags.push(...(forRelease(SCAN_SETTINGS.phoneHome, releaseOf(input.trivyVersion))?.flags ?? []));
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
  const config: Record<string, unknown> = {};
  const apply = (settings: Readonly<Record<string, unknown>>): void => {
    for (const [key, value] of Object.entries(settings)) setKey(config, key, value);
  };
  if (needsCacheDir(input)) setKey(config, SCAN_SETTINGS.cacheDirKey, input.cacheDir);
  for (const setting of installedSettings(input, 'update')) apply(setting.config);
  apply(SCAN_SETTINGS.offlineScan.config);
  apply(forRelease(SCAN_SETTINGS.phoneHome, releaseOf(input.trivyVersion))?.config ?? {});
  for (const setting of installedSettings(input, 'scan')) apply(setting.config);
  return `# Written by trivy-airgap: run Trivy offline against the imported content.\n${stringify(config)}`;
}

/** Quotes an argv list for a POSIX shell (for messages like "run: trivy image …"). */
export function shellQuote(args: readonly string[]): string {
  return args
    .map((arg) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
