import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock } from '@trivy-airgap/durable';
import { ExporterError } from './errors.js';

/**
 * One export per work dir at a time: two processes appending to the same partial download would
 * ruin it. The lock (durable's acquireLock) names its holder; a lock left by a process that no
 * longer runs (killed, crashed) is taken over, which is what lets an interrupted export simply be
 * run again. A second export in the same process is refused like any other live holder.
 */
export async function lockWorkDir(workDir: string): Promise<() => Promise<void>> {
  await mkdir(workDir, { recursive: true });
  const path = join(workDir, 'lock');
  const attempt = await acquireLock(path, 'export');
  if (attempt.acquired) return () => attempt.lock.release();
  const holder = attempt.state.holder;
  throw new ExporterError(
    'WORK_DIR_BUSY',
    holder === undefined
      ? `the work dir ${workDir} is being locked by another export`
      : `another export (pid ${holder.pid}${attempt.state.sameHost ? '' : ` on ${holder.host}`}) is using the work dir ${workDir}`,
    { hint: 'wait for it to finish, or pass another --work-dir' },
  );
}

/** Blobs and partial downloads not used for this long are removed after a successful export. */
export const WORK_DIR_RETENTION_MS = 7 * 86_400_000;

/**
 * Keeps the work dir from growing without bound (a new DB build every 6 h): after a successful
 * export, files of the blob store, the metadata cache (written by earlier versions) and the
 * partial downloads that this export
 * did not use and that were not touched for `retentionMs` are removed. Used files are touched, so
 * what a regular export needs stays. Errors are ignored: pruning is housekeeping, not the job.
 */
export async function pruneWorkDir(
  workDir: string,
  used: ReadonlySet<string>,
  now: Date,
  retentionMs = WORK_DIR_RETENTION_MS,
): Promise<number> {
  let removed = 0;
  for (const path of used) await utimes(path, now, now).catch(() => undefined);
  for (const dir of [
    join(workDir, 'oci', 'blobs', 'sha256'),
    join(workDir, 'oci', '.partial'),
    join(workDir, 'metadata'),
  ]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(dir, name);
      if (used.has(path)) continue;
      const info = await stat(path).catch(() => undefined);
      if (info === undefined || !info.isFile() || now.getTime() - info.mtimeMs < retentionMs) continue;
      await rm(path, { force: true }).catch(() => undefined);
      removed++;
    }
  }
  return removed;
}
