import type { CacheStatus, InstalledComponent } from '@trivy-airgap/importer';
import {
  offlineComponents,
  offlineTrivyFlags,
  shellQuote,
  trivyConfigYaml,
  type OfflineFlagsInput,
} from '@trivy-airgap/trivy';

/** The offline Trivy command for a cache, from what the doctor finds installed there. */
export interface OfflineCommand {
  /** The Trivy arguments (before the scan target). */
  readonly flags: string[];
  /** `trivy image <flags> IMAGE`, quoted for a POSIX shell. */
  readonly line: string;
  /** The same settings as a trivy.yaml (`trivy --config FILE`). */
  readonly trivyYaml: string;
  /** Whether Trivy can scan offline with this cache (the doctor's verdict is not 'fail'). */
  readonly works: boolean;
}

/**
 * One answer for `import` and `status`: the flags of the components installed in the cache now
 * (whichever bundle brought them), not of what one bundle carried.
 */
export function offlineCommand(status: CacheStatus, defaultCacheDir: string): OfflineCommand {
  const input: OfflineFlagsInput = {
    cacheDir: status.cacheDir,
    defaultCacheDir,
    components: offlineComponents(status.diagnosis),
  };
  const flags = offlineTrivyFlags(input);
  return {
    flags,
    trivyYaml: trivyConfigYaml(input),
    line: `trivy image ${shellQuote(flags)} IMAGE`,
    works: status.diagnosis.verdict !== 'fail',
  };
}

/** `db FAIL: …` lines for the components that make Trivy fail offline. */
export function failingComponents(status: CacheStatus): string[] {
  return status.diagnosis.components
    .filter((component) => component.verdict === 'fail' && (component.kind === 'db' || component.present))
    .map(
      (component) =>
        `${component.kind}${component.name === undefined ? '' : ` ${component.name}`}: ${component.summary}`,
    );
}

/** What the doctor finds wrong with components this import just installed (e.g. VEX left disabled). */
export function importedProblems(status: CacheStatus, installed: readonly InstalledComponent[]): string[] {
  return status.diagnosis.components
    .filter(
      (component) =>
        component.verdict !== 'ok' &&
        installed.some((entry) => entry.kind === component.kind && entry.name === component.name),
    )
    .map(
      (component) =>
        `${component.kind}${component.name === undefined ? '' : ` ${component.name}`}: ${component.summary}`,
    );
}
