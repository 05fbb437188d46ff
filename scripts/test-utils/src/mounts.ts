import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real read-only and full file systems for process-level tests. chmod does not stop root (which
 * these machines and CI run as), so a read-only directory is a read-only bind mount and a full
 * disk is a small tmpfs, both mounted in a private mount namespace (`unshare --mount`) that
 * exists only for the child process: nothing is mounted for anyone else and nothing is left
 * mounted when the child ends, even if the test dies.
 */
export type TestMount =
  /** An existing directory, seen read-only by the child (writes fail with EROFS). */
  | { readonly kind: 'read-only'; readonly path: string }
  /** An empty tmpfs of `size` (`64k`, `1m`) over an existing directory: writes past it fail with ENOSPC. */
  | { readonly kind: 'tmpfs'; readonly path: string; readonly size: string };

const SIZE = /^\d+[km]?$/;

function mountScript(mounts: readonly TestMount[]): string {
  // Paths go in as positional parameters ($1…), never into the script text.
  const steps = mounts.map((mount, index) => {
    const dir = `"$${index + 1}"`;
    if (mount.kind === 'read-only') return `mount --bind ${dir} ${dir} && mount -o remount,bind,ro ${dir}`;
    if (!SIZE.test(mount.size)) throw new Error(`tmpfs size ${mount.size} is not like 64k or 1m`);
    return `mount -t tmpfs -o size=${mount.size},mode=0755 tmpfs ${dir}`;
  });
  return `set -e; ${steps.join('; ')}; shift ${mounts.length}; exec "$@"`;
}

/** `unshare` arguments that run `command args` with `mounts` in place. */
function unshareArgs(mounts: readonly TestMount[], command: string, args: readonly string[]): string[] {
  return [
    '--mount',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    mountScript(mounts),
    'sh',
    ...mounts.map((mount) => mount.path),
    command,
    ...args,
  ];
}

/** Spawns `command args` with `mounts` in place (asynchronously: servers in this process keep answering). */
export function spawnWithMounts(
  mounts: readonly TestMount[],
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  return spawn('unshare', unshareArgs(mounts, command, args), options);
}

let checked: string | undefined;

/**
 * Throws, with what to do, when this process may not mount (not root / no CAP_SYS_ADMIN, or no
 * unshare): tests that need real read-only and full disks then FAIL instead of passing unchecked.
 */
export function assertCanMount(): void {
  if (checked === 'ok') return;
  const probe = mkdtempSync(join(tmpdir(), 'airgap-mount-probe-'));
  try {
    const result = spawnSync(
      'unshare',
      unshareArgs([{ kind: 'tmpfs', path: probe, size: '64k' }], 'true', []),
      {
        encoding: 'utf8',
      },
    );
    checked = result.status === 0 ? 'ok' : `${result.error?.message ?? ''}${result.stderr}`.trim();
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
  if (checked !== 'ok') {
    throw new Error(
      `these tests mount a read-only bind mount and a small tmpfs in a private mount namespace ` +
        `(unshare --mount), which needs root (CAP_SYS_ADMIN) and util-linux; run them as root, as CI does ` +
        `(${checked})`,
    );
  }
}
