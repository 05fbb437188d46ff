import type { CacheStatus, InstalledComponent } from '@trivy-airgap/importer';
import {
  decidesVerdict,
  offlineComponents,
  offlineTrivyFlags,
  parseTrivyVersion,
  shellQuote,
  trivyConfigYaml,
  TrivyError,
  type OfflineFlagsInput,
} from '@trivy-airgap/trivy';
import { UsageError } from './errors.js';

/** `--trivy-version` of import and status: which Trivy release the printed command is for. */
export const TRIVY_VERSION_OPTION = {
  type: 'string',
  describe:
    'the Trivy release to print the offline flags for (default: the target of the imported bundle, set by export --trivy-version)',
} as const;

/** A `--trivy-version` that is not a release is a usage error, before anything is done. */
export function checkTrivyVersion(value: string | undefined): void {
  if (value === undefined) return;
  try {
    parseTrivyVersion(value);
  } catch (error) {
    if (error instanceof TrivyError) throw new UsageError(error.message, error.hint);
    throw error;
  }
}

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
 * (whichever bundle brought them), not of what one bundle carried, for the Trivy release(s) given
 * (`--trivy-version`), else those the last imported bundle targets (its manifest's range).
 */
export function offlineCommand(
  status: CacheStatus,
  defaultCacheDir: string,
  trivyVersion?: string,
): OfflineCommand {
  const target = trivyVersion ?? status.state.trivyVersions;
  const input: OfflineFlagsInput = {
    cacheDir: status.cacheDir,
    defaultCacheDir,
    components: offlineComponents(status.diagnosis),
    ...(target === undefined ? {} : { trivyVersion: target }),
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
    .filter((component) => component.verdict === 'fail' && decidesVerdict(component))
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
