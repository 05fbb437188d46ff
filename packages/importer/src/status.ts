import { diagnoseCache, type CacheDiagnosis, type ComponentDiagnosis } from '@trivy-airgap/trivy';
import { inspectLock } from '@trivy-airgap/durable';
import { cachePaths, readJournal, readState, type InstallState } from './cache.js';

export interface CacheStatusOptions {
  readonly cacheDir: string;
  /** repository.yaml to replay the VEX rules against. */
  readonly vexConfigPath?: string;
  readonly now?: Date;
  /** Content older than this (upstream build time) makes the status unhealthy. */
  readonly maxAgeMs?: number;
}

export interface StaleComponent {
  readonly kind: string;
  readonly name?: string;
  readonly updatedAt: string;
  readonly ageMs: number;
}

export interface LockedBy {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  readonly operation: string;
  /** The same as `operation` (the name earlier releases used). */
  readonly command: string;
  readonly alive: boolean;
}

export interface CacheStatus {
  readonly cacheDir: string;
  /** The doctor's replay of Trivy's offline rules, per component. */
  readonly diagnosis: CacheDiagnosis;
  /** What trivy-airgap installed (empty when it never imported here). */
  readonly state: InstallState;
  /** An import or rollback was interrupted; the next import or rollback finishes it. */
  readonly interrupted: boolean;
  /**
   * Who holds the lock, if anyone. `alive` false: its process is gone (killed or crashed): the
   * lock is stale and the next import or rollback takes it over.
   */
  readonly lockedBy?: LockedBy;
  /** Components older than maxAgeMs. */
  readonly stale: readonly StaleComponent[];
  /** No component fails, and none is stale. */
  readonly healthy: boolean;
}

/** Reads only: what is installed, how old, and whether Trivy will run offline with it. */
export async function cacheStatus(options: CacheStatusOptions): Promise<CacheStatus> {
  const paths = cachePaths(options.cacheDir);
  const now = options.now ?? new Date();
  const diagnosis = await diagnoseCache(paths.cacheDir, {
    now,
    ...(options.vexConfigPath === undefined ? {} : { vexConfigPath: options.vexConfigPath }),
  });
  const state = await readState(paths);
  const interrupted = (await readJournal(paths)) !== undefined;
  const lock = await inspectLock(paths.lockFile).catch(() => undefined);
  const lockedBy: LockedBy | undefined =
    lock?.holder === undefined
      ? undefined
      : { ...lock.holder, command: lock.holder.operation, alive: lock.alive };
  const stale: StaleComponent[] = [];
  if (options.maxAgeMs !== undefined) {
    for (const component of diagnosis.components) {
      if (!component.present || component.ageMs === undefined || component.updatedAt === undefined) continue;
      if (component.ageMs > options.maxAgeMs) stale.push(staleOf(component));
    }
  }
  return {
    cacheDir: paths.cacheDir,
    diagnosis,
    state,
    interrupted,
    ...(lockedBy === undefined ? {} : { lockedBy }),
    stale,
    healthy: diagnosis.verdict !== 'fail' && stale.length === 0,
  };
}

function staleOf(component: ComponentDiagnosis): StaleComponent {
  return {
    kind: component.kind,
    ...(component.name === undefined ? {} : { name: component.name }),
    updatedAt: component.updatedAt ?? '',
    ageMs: component.ageMs ?? 0,
  };
}

const UNITS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** `36h`, `7d`, `90m`, `2w`, `1d12h` → milliseconds; undefined when it is not a duration. */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  if (!/^(?:\d+(?:\.\d+)?(?:w|d|h|min|m|s))+$/.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(/(\d+(?:\.\d+)?)(w|d|h|min|m|s)/g)) {
    total += Number(match[1]) * (UNITS[match[2] ?? 's'] ?? 1000);
  }
  return total;
}
