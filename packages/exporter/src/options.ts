import { homedir, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isVexRepositoryName } from '@trivy-airgap/format';
import { DEFAULT_VEX_REPOSITORY } from '@trivy-airgap/trivy';
import { ExporterError } from './errors.js';

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * `--split` sizes: `4G`, `700M`, `650MiB`, `1.5g`, `1048576`. Binary units (what `split -b`
 * means by K/M/G), so a 4G part fits a FAT32 file (< 4 GiB) only with `4095M`; the user picks.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase()];
  if (match === null || unit === undefined) {
    throw new ExporterError('INVALID_OPTION', `not a size: ${JSON.stringify(text)}`, {
      hint: 'use a number with an optional unit K, M, G or T (binary), e.g. 4G or 700M',
    });
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new ExporterError('INVALID_OPTION', `size ${JSON.stringify(text)} must be at least 1 byte`);
  }
  return bytes;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** `--expires` durations: `30d`, `12h`, `2w`, `90m`, or combined like `1d12h`. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  let rest = trimmed;
  let total = 0;
  const part = /^(\d+(?:\.\d+)?)([smhdw])/;
  while (rest !== '') {
    const match = part.exec(rest);
    const unit = DURATION_UNITS[match?.[2] ?? ''];
    if (match === null || unit === undefined) {
      throw new ExporterError('INVALID_OPTION', `not a duration: ${JSON.stringify(text)}`, {
        hint: 'use a number with a unit s, m, h, d or w, e.g. 30d or 12h',
      });
    }
    total += Number(match[1]) * unit;
    rest = rest.slice(match[0].length);
  }
  if (trimmed === '' || total <= 0) {
    throw new ExporterError('INVALID_OPTION', `duration ${JSON.stringify(text)} must be positive`);
  }
  return Math.round(total);
}

/** A VEX repository to export: the name it gets in repository.yaml, and its URL. */
export interface VexRepositorySpec {
  readonly name: string;
  readonly url: string;
}

/** A name for a repository given without one: `default` for VEX Hub, else from its URL. */
function nameFromUrl(url: string): string {
  if (url.replace(/\/+$/, '') === DEFAULT_VEX_REPOSITORY.url) return DEFAULT_VEX_REPOSITORY.name;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'vex';
  }
  const segments = parsed.pathname.split('/').filter((segment) => segment !== '');
  const base = segments.at(-1) ?? parsed.hostname;
  const name = base
    .replace(/\.git$/, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return isVexRepositoryName(name) ? name : 'vex';
}

/**
 * `--vex-repository [NAME=]URL` values → specs with unique, plain local names. A NAME is what
 * Trivy's repository.yaml and `vex/repositories/<name>/` will use on the isolated host.
 */
export function parseVexRepositorySpecs(values: readonly string[]): VexRepositorySpec[] {
  const specs: VexRepositorySpec[] = [];
  const names = new Set<string>();
  for (const value of values) {
    const equals = value.indexOf('=');
    const scheme = value.indexOf('://');
    const explicit = equals > 0 && (scheme < 0 || equals < scheme);
    const url = explicit ? value.slice(equals + 1) : value;
    let name = explicit ? value.slice(0, equals) : nameFromUrl(url);
    if (explicit && !isVexRepositoryName(name)) {
      throw new ExporterError(
        'INVALID_OPTION',
        `VEX repository name ${JSON.stringify(name)} is not a plain local name (letters, digits, . _ -)`,
      );
    }
    if (!/^https?:\/\//i.test(url)) {
      throw new ExporterError('INVALID_OPTION', `VEX repository URL must be http(s): ${JSON.stringify(url)}`);
    }
    if (names.has(name)) {
      if (explicit) throw new ExporterError('INVALID_OPTION', `VEX repository name ${name} is given twice`);
      let counter = 2;
      while (names.has(`${name}-${counter}`)) counter++;
      name = `${name}-${counter}`;
    }
    names.add(name);
    specs.push({ name, url });
  }
  return specs;
}

/**
 * The default work dir: the OS user cache dir + `trivy-airgap/work` (Linux `$XDG_CACHE_HOME`
 * when absolute, else `~/.cache`; macOS `~/Library/Caches`; Windows `%LocalAppData%`).
 */
export function defaultWorkDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.HOME ?? homedir();
  let cache: string;
  if (platform() === 'darwin') cache = join(home, 'Library', 'Caches');
  else if (platform() === 'win32') cache = env.LOCALAPPDATA ?? join(tmpdir());
  else {
    const xdg = env.XDG_CACHE_HOME;
    cache = xdg !== undefined && xdg.startsWith('/') ? xdg : join(home, '.cache');
  }
  return join(cache, 'trivy-airgap', 'work');
}

/**
 * The bundle's creation time: SOURCE_DATE_EPOCH (seconds) when set, so that the same inputs give
 * the same bytes (https://reproducible-builds.org/specs/source-date-epoch/), else `now`.
 */
export function creationTime(env: NodeJS.ProcessEnv, now: Date): { created: Date; reproducible: boolean } {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch === undefined || epoch === '') return { created: now, reproducible: false };
  if (!/^\d+$/.test(epoch)) {
    throw new ExporterError(
      'INVALID_OPTION',
      `SOURCE_DATE_EPOCH must be whole seconds, got ${JSON.stringify(epoch)}`,
    );
  }
  return { created: new Date(Number(epoch) * 1000), reproducible: true };
}
