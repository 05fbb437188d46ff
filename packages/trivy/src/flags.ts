import type { ComponentKind } from '@trivy-airgap/format';
import { stringify } from 'yaml';

export interface OfflineFlagsInput {
  /** The cache dir the content was installed into. */
  readonly cacheDir?: string;
  /** What Trivy would use without `--cache-dir` (from `defaultCacheDir`/`resolveCacheDirDetailed`). */
  readonly defaultCacheDir: string;
  /** The components installed (only their skip flags are emitted). */
  readonly components: readonly ComponentKind[];
}

function needsCacheDir(input: OfflineFlagsInput): input is OfflineFlagsInput & { cacheDir: string } {
  return input.cacheDir !== undefined && input.cacheDir !== input.defaultCacheDir;
}

/**
 * The Trivy arguments an offline host needs (trivy-facts.md: "Trivy flags an offline host needs"),
 * as an argv list: the skip flags of the installed components, `--offline-scan`, `--vex repo
 * --skip-vex-repo-update` when VEX is installed, `--cache-dir` when not the default, and
 * `--skip-version-check --disable-telemetry` against phone-home calls.
 */
export function offlineTrivyFlags(input: OfflineFlagsInput): string[] {
  const has = (kind: ComponentKind): boolean => input.components.includes(kind);
  const flags: string[] = [];
  if (has('db')) flags.push('--skip-db-update');
  if (has('java-db')) flags.push('--skip-java-db-update');
  if (has('checks')) flags.push('--skip-check-update');
  flags.push('--offline-scan');
  if (has('vex')) flags.push('--vex', 'repo', '--skip-vex-repo-update');
  if (needsCacheDir(input)) flags.push('--cache-dir', input.cacheDir);
  flags.push('--skip-version-check', '--disable-telemetry');
  return flags;
}

/**
 * The same as a trivy.yaml (`trivy --config FILE`). The skip-check-update key moved between Trivy
 * releases (`rego.` in older, `misconfiguration.` in newer ones); both are written, Trivy ignores
 * the one it does not know.
 */
export function trivyConfigYaml(input: OfflineFlagsInput): string {
  const has = (kind: ComponentKind): boolean => input.components.includes(kind);
  const config: Record<string, unknown> = {};
  if (needsCacheDir(input)) config.cache = { dir: input.cacheDir };
  const db: Record<string, boolean> = {};
  if (has('db')) db['skip-update'] = true;
  if (has('java-db')) db['java-skip-update'] = true;
  if (Object.keys(db).length > 0) config.db = db;
  if (has('checks')) {
    config.misconfiguration = { 'skip-check-update': true };
    config.rego = { 'skip-check-update': true };
  }
  config.scan = { offline: true };
  if (has('vex')) config.vulnerability = { vex: ['repo'], 'skip-vex-repo-update': true };
  config['skip-version-check'] = true;
  config['disable-telemetry'] = true;
  return `# Written by trivy-airgap: run Trivy offline against the imported content.\n${stringify(config)}`;
}

/** Quotes an argv list for a POSIX shell (for messages like "run: trivy image …"). */
export function shellQuote(args: readonly string[]): string {
  return args
    .map((arg) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
