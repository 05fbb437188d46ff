import type { ComponentKind } from '@trivy-airgap/format';

export type Verdict = 'ok' | 'warning' | 'fail';

/** One component of the cache as Trivy would see it offline. */
export interface ComponentDiagnosis {
  readonly kind: ComponentKind;
  /** VEX repository name (vex only). */
  readonly name?: string;
  readonly present: boolean;
  /** Cache paths looked at (absolute). */
  readonly paths: readonly string[];
  /** metadata.json Version (db, java-db) or MajorVersion (checks). */
  readonly version?: number;
  /** Upstream build time: metadata.json UpdatedAt (db, java-db) or index.json updated_at (vex). */
  readonly updatedAt?: string;
  /** now − updatedAt, in milliseconds. */
  readonly ageMs?: number;
  /** metadata.json / policy metadata DownloadedAt, or cache.json UpdatedAt (vex). */
  readonly downloadedAt?: string;
  /** Checks: the manifest digest recorded in policy/metadata.json. */
  readonly digest?: string;
  readonly verdict: Verdict;
  /** One line: "--skip-db-update will work", "will fail: …". */
  readonly summary: string;
  /** Every rule that was replayed, with what it found. */
  readonly reasons: readonly string[];
  /** The Trivy flags this component needs offline. */
  readonly flags: readonly string[];
}

export interface CacheDiagnosis {
  readonly cacheDir: string;
  readonly vexConfigPath?: string;
  /** db, java-db, checks, then one entry per VEX repository (enabled in repository.yaml or cached). */
  readonly components: readonly ComponentDiagnosis[];
  /** The worst verdict of the components that are present. */
  readonly verdict: Verdict;
}

export interface DiagnoseOptions {
  /** repository.yaml to replay VEX rules against; VEX is skipped when undefined. */
  readonly vexConfigPath?: string;
  readonly now: Date;
}

/** Replays Trivy's offline rules (trivy-facts.md) against a cache dir. Reads only; never writes. */
export async function diagnoseCache(cacheDir: string, options: DiagnoseOptions): Promise<CacheDiagnosis> {
  void options;
  await Promise.resolve();
  return { cacheDir, components: [], verdict: 'ok' };
}
