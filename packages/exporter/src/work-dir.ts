import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ExporterError } from './errors.js';

/**
 * One export per work dir at a time: two processes appending to the same partial download would
 * ruin it. The lock file holds the owner's pid; a lock left by a process that no longer runs
 * (killed, crashed) is taken over, which is what lets an interrupted export simply be run again.
 */
export async function lockWorkDir(workDir: string): Promise<() => Promise<void>> {
  await mkdir(workDir, { recursive: true });
  const path = join(workDir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
      throw new ExporterError(
        'WORK_DIR_BUSY',
        `another export (pid ${owner}) is using the work dir ${workDir}`,
        {
          hint: 'wait for it to finish, or pass another --work-dir',
        },
      );
    }
    await rm(path, { force: true }); // stale: its owner is gone
  }
  throw new ExporterError('WORK_DIR_BUSY', `cannot lock the work dir ${workDir}`, {
    hint: 'pass another --work-dir',
  });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
