import { bundlePathProblem, isRfc3339 } from '@trivy-airgap/format';
import { posix } from 'node:path';
import { TrivyError } from './errors.js';
import type { VexArchiveType } from './vex-archive.js';
import { COMPONENTS, VEX_SPEC_VERSION } from './components.js';

/** The one vex-repo-spec version Trivy reads (the component table's). */
export { VEX_SPEC_VERSION };
export const MAX_VEX_MANIFEST_BYTES = 1024 * 1024;
export const MAX_VEX_INDEX_BYTES = 64 * 1024 * 1024;
/** Where a non-GitHub repository publishes its manifest, relative to the repository URL. */
export const WELL_KNOWN_VEX_MANIFEST = `.well-known/${COMPONENTS.vex.files.manifest}`;
export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';
/** Accept header for raw file content from the GitHub contents API. */
export const GITHUB_RAW_MEDIA_TYPE = 'application/vnd.github.raw+json';

export interface VexRepositoryVersion {
  readonly specVersion: string;
  /** Location URLs in the manifest's order (try the first, then the next). */
  readonly locations: readonly string[];
  /** As written (`24h`). */
  readonly updateInterval: string;
  /** The same in milliseconds. */
  readonly updateIntervalMs: number;
}

export interface VexRepositoryManifest {
  readonly name: string;
  readonly description?: string;
  /** The version entry with spec_version "0.1" — the one Trivy uses. */
  readonly version: VexRepositoryVersion;
  /** The parsed JSON as published (goes into the bundle manifest for inspection). */
  readonly raw: unknown;
}

export interface VexIndexPackage {
  readonly id: string;
  /** Normalized relative path inside the repository directory. */
  readonly location: string;
  /** 'openvex' when absent. */
  readonly format: 'openvex' | 'csaf';
}

export interface VexIndex {
  /** `updated_at`, when the repository gives one (Trivy does not require it). */
  readonly updatedAt?: string;
  readonly packages: readonly VexIndexPackage[];
}

export interface VexLocation {
  /** The URL to download (without the `//subdir`; a query string is kept). */
  readonly archiveUrl: string;
  /** Sub directory inside the archive ('' when none). */
  readonly subdir: string;
  readonly archiveType: VexArchiveType;
}

function parseJsonObject(
  bytes: Uint8Array,
  maxBytes: number,
  code: 'VEX_MANIFEST_INVALID' | 'VEX_ARCHIVE_INVALID',
  what: string,
): Record<string, unknown> {
  if (bytes.byteLength > maxBytes) {
    throw new TrivyError(code, `${what} is larger than ${maxBytes} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new TrivyError(code, `${what} is not valid JSON`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TrivyError(code, `${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go `time.ParseDuration` string (`24h`, `1h30m`, `1.5h`, `0`) → milliseconds. */
export function parseGoDuration(value: string): number {
  const invalid = (): TrivyError =>
    new TrivyError('VEX_MANIFEST_INVALID', `not a Go duration: ${JSON.stringify(value)}`);
  let rest = value;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw invalid();
  let total = 0;
  const part = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;
  while (rest !== '') {
    const match = part.exec(rest);
    if (match === null) throw invalid();
    const [whole, integer = '', fraction = '', unit = ''] = match;
    if (integer === '' && fraction === '') throw invalid();
    const scale = DURATION_UNITS[unit];
    if (scale === undefined) throw invalid();
    total += Number(`${integer === '' ? '0' : integer}.${fraction === '' ? '0' : fraction}`) * scale;
    rest = rest.slice(whole.length);
  }
  return sign * total;
}

/**
 * Parses vex-repository.json (vex-repo-spec 0.1, trivy-facts.md: Trivy needs spec_version exactly
 * "0.1"; update_interval is a Go duration). Returns the 0.1 version entry.
 */
export function parseVexRepositoryManifest(bytes: Uint8Array): VexRepositoryManifest {
  const object = parseJsonObject(
    bytes,
    MAX_VEX_MANIFEST_BYTES,
    'VEX_MANIFEST_INVALID',
    COMPONENTS.vex.files.manifest,
  );
  const problems: string[] = [];
  if (typeof object.name !== 'string' || object.name === '') problems.push('name must be a non-empty string');
  if (object.description !== undefined && typeof object.description !== 'string') {
    problems.push('description must be a string');
  }
  if (!Array.isArray(object.versions)) problems.push('versions must be an array');
  const versions = Array.isArray(object.versions) ? (object.versions as unknown[]) : [];
  const index = versions.findIndex(
    (entry) =>
      typeof entry === 'object' &&
      entry !== null &&
      (entry as Record<string, unknown>).spec_version === VEX_SPEC_VERSION,
  );
  let version: VexRepositoryVersion | undefined;
  if (Array.isArray(object.versions) && index < 0) {
    const found = versions
      .map((entry) =>
        typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>).spec_version : entry,
      )
      .map((v) => JSON.stringify(v))
      .join(', ');
    problems.push(
      `versions has no entry with spec_version "${VEX_SPEC_VERSION}" (found: ${found || 'none'})`,
    );
  } else if (index >= 0) {
    const entry = versions[index] as Record<string, unknown>;
    const field = `versions[${index}]`;
    const locations: string[] = [];
    if (!Array.isArray(entry.locations) || entry.locations.length === 0) {
      problems.push(`${field}.locations must be a non-empty array`);
    } else {
      (entry.locations as unknown[]).forEach((location, i) => {
        const url =
          typeof location === 'object' && location !== null
            ? (location as Record<string, unknown>).url
            : undefined;
        if (typeof url !== 'string' || url === '')
          problems.push(`${field}.locations[${i}].url must be a string`);
        else locations.push(url);
      });
    }
    let updateIntervalMs = 0;
    const interval = entry.update_interval;
    if (typeof interval !== 'string') {
      problems.push(`${field}.update_interval must be a Go duration string`);
    } else {
      try {
        updateIntervalMs = parseGoDuration(interval);
      } catch {
        problems.push(`${field}.update_interval ${JSON.stringify(interval)} is not a Go duration`);
      }
    }
    version = {
      specVersion: VEX_SPEC_VERSION,
      locations,
      updateInterval: typeof interval === 'string' ? interval : '',
      updateIntervalMs,
    };
  }
  if (problems.length > 0 || version === undefined) {
    throw new TrivyError('VEX_MANIFEST_INVALID', `invalid vex-repository.json: ${problems.join('; ')}`);
  }
  return {
    name: object.name as string,
    ...(typeof object.description === 'string' ? { description: object.description } : {}),
    version,
    raw: object,
  };
}

/** Why a `location` of index.json would leave the repository directory, or undefined when it stays inside. */
export function indexLocationProblem(location: string): string | undefined {
  if (location === '') return 'is empty';
  if (location.includes('\\')) return 'contains a backslash';
  if (location.includes('\0')) return 'contains a NUL';
  if (location.startsWith('/') || /^[A-Za-z]:/.test(location)) return 'is absolute';
  const normalized = posix.normalize(location);
  if (normalized === '..' || normalized.startsWith('../')) return 'leaves the repository directory';
  if (normalized === '.' || normalized.endsWith('/')) return 'does not name a file';
  return undefined;
}

/** Go's case folding of a JSON key (encoding/json matches struct fields case-insensitively). */
function foldKey(key: string): string {
  // The only non-ASCII letters Go folds onto ASCII ones: KELVIN SIGN → k, LATIN SMALL LONG S → s.
  return key
    .replace(/\u212a/g, 'k')
    .replace(/\u017f/g, 's')
    .toLowerCase();
}

/**
 * The value Go's encoding/json would decode into the field tagged `name`: every key equal to it
 * under case folding decodes into that field, in document order, so the last one wins. JSON null
 * counts as absent (Go leaves the field at its zero value).
 */
export function goJsonField(object: Record<string, unknown>, name: string): unknown {
  let value: unknown;
  const want = foldKey(name);
  // Object.entries keeps document order (except integer-like keys, which never fold onto ours).
  for (const [key, entry] of Object.entries(object)) if (foldKey(key) === want) value = entry;
  return value === null ? undefined : value;
}

/**
 * Parses a repository's index.json as Trivy reads it (pkg/vex/repo RawIndex through Go's
 * encoding/json): keys match case-insensitively (`ID`, `Location`, `Updated_At` are fine),
 * `updated_at` is optional, `format` absent or "" means openvex. Stricter than Trivy on purpose:
 * every `location` must stay inside the repository directory (we install these files).
 */
export function parseVexIndex(bytes: Uint8Array, what = 'index.json'): VexIndex {
  const object = parseJsonObject(bytes, MAX_VEX_INDEX_BYTES, 'VEX_ARCHIVE_INVALID', what);
  const problems: string[] = [];
  const updatedAt = goJsonField(object, 'updated_at');
  if (updatedAt !== undefined && !isRfc3339(updatedAt)) {
    problems.push('updated_at must be an RFC 3339 timestamp when present');
  }
  const packages: VexIndexPackage[] = [];
  const list = goJsonField(object, 'packages');
  if (list !== undefined && !Array.isArray(list)) {
    problems.push('packages must be an array');
  } else {
    ((list ?? []) as unknown[]).forEach((entry, i) => {
      const field = `packages[${i}]`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        problems.push(`${field} must be an object`);
        return;
      }
      const item = entry as Record<string, unknown>;
      const id = goJsonField(item, 'id');
      const location = goJsonField(item, 'location');
      const format = goJsonField(item, 'format');
      if (typeof id !== 'string' || id === '') problems.push(`${field}.id must be a non-empty string`);
      let normalized = '';
      if (typeof location !== 'string') {
        problems.push(`${field}.location must be a string`);
      } else {
        const problem = indexLocationProblem(location);
        if (problem === undefined) normalized = posix.normalize(location);
        else problems.push(`${field}.location ${JSON.stringify(location)} ${problem}`);
      }
      if (format !== undefined && format !== '' && format !== 'openvex' && format !== 'csaf') {
        problems.push(`${field}.format must be "openvex" or "csaf"`);
      }
      packages.push({
        id: typeof id === 'string' ? id : '',
        location: normalized,
        format: format === 'csaf' ? 'csaf' : 'openvex',
      });
    });
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join('; ');
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : '';
    throw new TrivyError('VEX_ARCHIVE_INVALID', `invalid ${what}: ${shown}${more}`);
  }
  return { ...(typeof updatedAt === 'string' ? { updatedAt } : {}), packages };
}

function parseHttpUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch (error) {
    throw new TrivyError('VEX_LOCATION_INVALID', `${what} is not a URL: ${JSON.stringify(value)}`, {
      cause: error,
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TrivyError('VEX_LOCATION_INVALID', `${what} must be http(s): ${JSON.stringify(value)}`);
  }
  return url;
}

/** go-getter's split of `URL//subdir?query` into `URL?query` and `subdir`. */
function splitSubdir(source: string): [string, string] {
  const queryAt = source.indexOf('?');
  const stop = queryAt < 0 ? source.length : queryAt;
  const schemeAt = source.slice(0, stop).indexOf('://');
  const offset = schemeAt < 0 ? 0 : schemeAt + 3;
  const slashesAt = source.slice(offset, stop).indexOf('//');
  if (slashesAt < 0) return [source, ''];
  const at = offset + slashesAt;
  let subdir = source.slice(at + 2);
  let url = source.slice(0, at);
  const subQuery = subdir.indexOf('?');
  if (subQuery >= 0) {
    url += subdir.slice(subQuery);
    subdir = subdir.slice(0, subQuery);
  }
  return [url, subdir];
}

function archiveTypeOf(url: URL): VexArchiveType | undefined {
  const forced = url.searchParams.get('archive');
  if (forced !== null) {
    if (forced === 'zip') return 'zip';
    if (forced === 'tar.gz' || forced === 'tgz') return 'tar.gz';
    return undefined;
  }
  const path = url.pathname.toLowerCase();
  if (path.endsWith('.tar.gz') || path.endsWith('.tgz')) return 'tar.gz';
  if (path.endsWith('.zip')) return 'zip';
  return undefined;
}

/**
 * A location URL of vex-repository.json → what to download and what to keep (trivy-facts.md:
 * go-getter `//subdir`; the archive type comes from the URL path ending).
 */
export function parseLocationUrl(location: string): VexLocation {
  const [archiveUrl, rawSubdir] = splitSubdir(location);
  const url = parseHttpUrl(archiveUrl, 'VEX location');
  const subdir = rawSubdir.replace(/\/+$/, '');
  if (subdir !== '') {
    const problem = bundlePathProblem(subdir);
    if (problem !== undefined) {
      throw new TrivyError(
        'VEX_LOCATION_INVALID',
        `VEX location ${JSON.stringify(location)}: subdir ${JSON.stringify(subdir)} ${problem}`,
      );
    }
  }
  const archiveType = archiveTypeOf(url);
  if (archiveType === undefined) {
    throw new TrivyError(
      'VEX_LOCATION_INVALID',
      `VEX location ${JSON.stringify(location)} is not a .tar.gz, .tgz or .zip archive`,
    );
  }
  // go-getter consumes its `archive` parameter; it is not sent to the server.
  let downloadUrl = archiveUrl;
  if (url.searchParams.has('archive')) {
    url.searchParams.delete('archive');
    downloadUrl = url.toString();
  }
  return { archiveUrl: downloadUrl, subdir, archiveType };
}

export interface VexManifestRequest {
  readonly url: string;
  /** Request headers Trivy sends for this URL (GitHub contents API: raw media type). */
  readonly headers: Readonly<Record<string, string>>;
  /** True when the URL is the GitHub contents API (GITHUB_TOKEN may be sent as Bearer). */
  readonly githubApi: boolean;
}

/**
 * Where Trivy fetches a repository's manifest (trivy-facts.md): for github.com,
 * `<url>/vex-repository.json` through the contents API (raw content); for any other host,
 * `<url>/.well-known/vex-repository.json`.
 */
export function vexManifestRequest(
  repoUrl: string,
  options: { githubApiUrl?: string } = {},
): VexManifestRequest {
  const url = parseHttpUrl(repoUrl, 'VEX repository URL');
  const segments = url.pathname.split('/').filter((segment) => segment !== '');
  if (url.hostname.toLowerCase() === 'github.com') {
    const [owner, repo, ...rest] = segments;
    if (owner === undefined || repo === undefined) {
      throw new TrivyError(
        'VEX_LOCATION_INVALID',
        `VEX repository URL ${JSON.stringify(repoUrl)} must name a GitHub owner and repository`,
      );
    }
    const api = (options.githubApiUrl ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, '');
    parseHttpUrl(api, 'GitHub API URL');
    // Segments come from URL.pathname and are already percent-encoded.
    const path = [...rest, COMPONENTS.vex.files.manifest].join('/');
    return {
      url: `${api}/repos/${owner}/${repo.replace(/\.git$/, '')}/contents/${path}`,
      headers: { Accept: GITHUB_RAW_MEDIA_TYPE },
      githubApi: true,
    };
  }
  url.pathname = `/${[...segments, ...WELL_KNOWN_VEX_MANIFEST.split('/')].join('/')}`;
  url.hash = '';
  return { url: url.toString(), headers: {}, githubApi: false };
}

/** The URL of a repository's vex-repository.json (see `vexManifestRequest`). */
export function vexManifestUrl(repoUrl: string, options: { githubApiUrl?: string } = {}): string {
  return vexManifestRequest(repoUrl, options).url;
}
