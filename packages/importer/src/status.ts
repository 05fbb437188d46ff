import { diagnoseCache, type CacheDiagnosis, type ComponentDiagnosis } from '@trivy-airgap/trivy';
import { inspectLock } from '@trivy-airgap/durable';
import { lstat, readlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  cachePaths,
  linkPathOf,
  readJournal,
  readState,
  type ComponentKey,
  type ComponentState,
  type InstallState,
} from './cache.js';
import { generationFingerprint } from './fingerprint.js';

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

export interface ChangedComponent {
  readonly key: ComponentKey;
  readonly kind: string;
  readonly name?: string;
  readonly change: 'removed' | 'replaced' | 'modified';
}

async function changeOf(
  cacheDir: string,
  component: ComponentState,
): Promise<ChangedComponent['change'] | undefined> {
  const link = join(cacheDir, linkPathOf(component.key));
  const info = await lstat(link).catch(() => undefined);
  if (info === undefined) return 'removed';
  if (!info.isSymbolicLink() || (await readlink(link)) !== component.current.target) return 'replaced';
  const recorded = component.current.fingerprint;
  if (recorded === undefined) return undefined;
  const now = await generationFingerprint(resolve(dirname(link), component.current.target));
  return now === recorded ? undefined : 'modified';
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
  /**
   * Installed components that are no longer what the import installed: `removed` (the link is
   * gone, e.g. `trivy clean`), `replaced` (Trivy put its own directory or link there), `modified`
   * (Trivy updated our generation in place). What the doctor reports for them is Trivy's content.
   */
  readonly changedSinceImport: readonly ChangedComponent[];
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
  const changedSinceImport: ChangedComponent[] = [];
  for (const component of Object.values(state.components)) {
    const change = await changeOf(paths.cacheDir, component);
    if (change !== undefined) {
      changedSinceImport.push({
        key: component.key,
        kind: component.kind,
        ...(component.name === undefined ? {} : { name: component.name }),
        change,
      });
    }
  }
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
    changedSinceImport,
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
