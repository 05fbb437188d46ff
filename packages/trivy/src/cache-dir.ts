import { posix, win32 } from 'node:path';

export type Environment = Readonly<Record<string, string | undefined>>;

export interface CacheDirInput {
  /** `--cache-dir` as given. */
  readonly flag?: string;
  /** `cache.dir` from a trivy.yaml, when the caller read one. */
  readonly configFile?: string;
  /** The process environment (`TRIVY_CACHE_DIR`, `XDG_CACHE_HOME`, `LocalAppData`). */
  readonly env: Environment;
  readonly platform: NodeJS.Platform;
  readonly homedir: string;
  readonly tmpdir: string;
}

export type CacheDirSource = 'flag' | 'env' | 'config' | 'default' | 'fallback';

export interface ResolvedCacheDir {
  readonly path: string;
  /** Which rule chose it; `--cache-dir` must be passed to Trivy unless it is 'default'. */
  readonly source: CacheDirSource;
  /** What Trivy would use with no flag, env or config (to decide whether `--cache-dir` is needed). */
  readonly defaultPath: string;
}

function pathsFor(platform: NodeJS.Platform): typeof posix {
  return platform === 'win32' ? win32 : posix;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/**
 * Trivy's default cache dir: the OS user cache dir + `trivy`, else `<tmpdir>/trivy`
 * (trivy-facts.md: "Cache directory"). Linux and other Unixes: `$XDG_CACHE_HOME` only when absolute,
 * else `~/.cache`; macOS `~/Library/Caches`; Windows `%LocalAppData%`.
 */
export function defaultCacheDir(input: Omit<CacheDirInput, 'flag' | 'configFile'>): {
  path: string;
  source: 'default' | 'fallback';
} {
  const paths = pathsFor(input.platform);
  const home = nonEmpty(input.homedir);
  let userCache: string | undefined;
  if (input.platform === 'win32') {
    userCache = nonEmpty(input.env.LocalAppData) ?? nonEmpty(input.env.LOCALAPPDATA);
  } else if (input.platform === 'darwin') {
    userCache = home === undefined ? undefined : paths.join(home, 'Library', 'Caches');
  } else {
    const xdg = nonEmpty(input.env.XDG_CACHE_HOME);
    if (xdg !== undefined && paths.isAbsolute(xdg)) userCache = xdg;
    else userCache = home === undefined ? undefined : paths.join(home, '.cache');
  }
  if (userCache === undefined) return { path: paths.join(input.tmpdir, 'trivy'), source: 'fallback' };
  return { path: paths.join(userCache, 'trivy'), source: 'default' };
}

/** The cache dir Trivy uses: `--cache-dir`, then `TRIVY_CACHE_DIR`, then trivy.yaml `cache.dir`, then the default. */
export function resolveCacheDirDetailed(input: CacheDirInput): ResolvedCacheDir {
  const fallback = defaultCacheDir(input);
  const chosen: [string | undefined, CacheDirSource][] = [
    [nonEmpty(input.flag), 'flag'],
    [nonEmpty(input.env.TRIVY_CACHE_DIR), 'env'],
    [nonEmpty(input.configFile), 'config'],
  ];
  for (const [path, source] of chosen) {
    if (path !== undefined) return { path, source, defaultPath: fallback.path };
  }
  return { path: fallback.path, source: fallback.source, defaultPath: fallback.path };
}

/** The cache dir Trivy uses (see `resolveCacheDirDetailed` for which rule chose it). */
export function resolveCacheDir(input: CacheDirInput): string {
  return resolveCacheDirDetailed(input).path;
}

export interface VexConfigInput {
  /** `--vex-config` of trivy-airgap (Trivy itself has no flag for it). */
  readonly flag?: string;
  readonly env: Environment;
  readonly homedir: string;
  readonly platform?: NodeJS.Platform;
}

/**
 * Where Trivy keeps repository.yaml: `$XDG_DATA_HOME/.trivy/vex/repository.yaml` when
 * XDG_DATA_HOME is set, else `~/.trivy/vex/repository.yaml` (trivy-facts.md: outside the cache dir).
 */
export function resolveVexConfigPath(input: VexConfigInput): string {
  const flag = nonEmpty(input.flag);
  if (flag !== undefined) return flag;
  const paths = pathsFor(input.platform ?? process.platform);
  const base = nonEmpty(input.env.XDG_DATA_HOME) ?? input.homedir;
  return paths.join(base, '.trivy', 'vex', 'repository.yaml');
}
