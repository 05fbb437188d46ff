import { homedir, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { resolveCacheDirDetailed, resolveVexConfigPath, type ResolvedCacheDir } from '@trivy-airgap/trivy';
import type { CommandContext } from './context.js';

// Where Trivy's files are on this host, resolved from the flags and the environment of the run
// (import, status, rollback).

export function home(context: CommandContext): string {
  return context.io.env.HOME ?? homedir();
}

/** Trivy's cache dir: --cache-dir, then TRIVY_CACHE_DIR, then the OS default (as Trivy resolves it). */
export function resolveCache(context: CommandContext, flag: string | undefined): ResolvedCacheDir {
  const resolved = resolveCacheDirDetailed({
    ...(flag === undefined ? {} : { flag: resolve(context.io.cwd, flag) }),
    env: context.io.env,
    platform: process.platform,
    homedir: home(context),
    tmpdir: tmpdir(),
  });
  return { ...resolved, path: resolve(context.io.cwd, resolved.path) };
}

export function resolveVexConfig(context: CommandContext, flag: string | undefined): string {
  return resolveVexConfigPath({
    ...(flag === undefined ? {} : { flag: resolve(context.io.cwd, flag) }),
    env: context.io.env,
    homedir: home(context),
  });
}
