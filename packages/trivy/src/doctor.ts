import type { ComponentKind } from '@trivy-airgap/format';
import { isRfc3339 } from '@trivy-airgap/format';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ARTIFACTS,
  COMPONENTS,
  COMPONENT_KINDS,
  artifactCachePaths,
  perKind,
  type ArtifactKind,
  DEFAULT_VEX_REPOSITORY,
  componentCachePath,
} from './components.js';
import { TrivyError } from './errors.js';
import { offlineSettingOf } from './flags.js';
import { readRepositoryYaml, type VexRepositoryEntry } from './repository-yaml.js';
import { indexLocationProblem, parseVexIndex } from './vex.js';

export type Verdict = 'ok' | 'warning' | 'fail';

/** One component of the cache as Trivy would see it offline. */
export interface ComponentDiagnosis {
  readonly kind: ComponentKind;
  /** VEX repository name (vex only). */
  readonly name?: string;
  readonly present: boolean;
  /**
   * The cache holds what this component's offline flag looks for (db: trivy.db + metadata.json;
   * java-db: metadata.json; checks: a non-empty policy/content; vex: a cached repository that
   * repository.yaml enables), so that flag belongs in the Trivy command (see offlineComponents).
   */
  readonly installed: boolean;
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
  /**
   * Whether Trivy can scan offline: the worst verdict of the vulnerability DB (required: without it
   * no scan runs offline) and of every other component that is present.
   */
  readonly verdict: Verdict;
}

export interface DiagnoseOptions {
  /** repository.yaml to replay the VEX rules against; without it only the cached repositories are listed. */
  readonly vexConfigPath?: string;
  readonly now: Date;
}

const MAX_READ = 64 * 1024 * 1024;
const ZERO_TIME_MS = Date.parse('0001-01-01T00:00:00Z');
const HOUR = 3_600_000;
const VEX_FLAGS = offlineSettingOf('vex')?.flags ?? [];

type PathKind = 'file' | 'directory' | 'other';

// stat, not lstat: Trivy follows symbolic links in its cache dir.
async function kindOf(path: string): Promise<PathKind | undefined> {
  try {
    const stats = await stat(path);
    return stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other';
  } catch {
    return undefined;
  }
}

async function readSmall(path: string): Promise<Buffer | undefined> {
  if ((await kindOf(path)) !== 'file') return undefined;
  const stats = await stat(path);
  if (stats.size > MAX_READ) return undefined;
  return readFile(path);
}

async function countFiles(dir: string, limit = 1_000_000): Promise<number> {
  let count = 0;
  const stack = [dir];
  while (stack.length > 0 && count < limit) {
    const current = stack.pop();
    if (current === undefined) break;
    for (const entry of await readdir(current, { withFileTypes: true })) {
      if (entry.isDirectory()) stack.push(join(current, entry.name));
      else count += 1;
    }
  }
  return count;
}

/** Parses JSON the way Go's encoding/json would fail on it (invalid JSON or wrong field types). */
function parseGoJson(bytes: Buffer): { value?: Record<string, unknown>; problem?: string } {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { problem: 'is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { problem: 'is not a JSON object' };
  return { value: value as Record<string, unknown> };
}

/** Problems Go's json.Unmarshal into Trivy's metadata struct would report (types, time format). */
function dbMetadataProblem(object: Record<string, unknown>): string | undefined {
  if (object.Version !== undefined && !Number.isSafeInteger(object.Version))
    return 'Version is not an integer';
  for (const key of ['NextUpdate', 'UpdatedAt', 'DownloadedAt']) {
    if (object[key] !== undefined && !isRfc3339(object[key])) return `${key} is not an RFC 3339 timestamp`;
  }
  return undefined;
}

function age(updatedAt: unknown, now: Date): { updatedAt?: string; ageMs?: number } {
  if (!isRfc3339(updatedAt)) return {};
  return { updatedAt, ageMs: now.getTime() - Date.parse(updatedAt) };
}

function formatAge(ms: number): string {
  const hours = ms / HOUR;
  if (Math.abs(hours) < 48) return `${Math.round(hours)} h`;
  return `${Math.round(hours / 24)} days`;
}

/**
 * A database (db, java-db) as Trivy sees it with its skip flag, from the component table's status
 * rule: which files the flag needs, whether a schema mismatch is fatal, when Trivy would download
 * again without the flag.
 */
async function diagnoseDatabase(
  cacheDir: string,
  kind: ArtifactKind,
  now: Date,
): Promise<ComponentDiagnosis> {
  const facts = ARTIFACTS[kind];
  const rule = facts.status;
  const databaseFile = facts.databaseFile;
  if (rule === undefined || databaseFile === undefined)
    throw new Error(`internal: ${kind} has no status rule`);
  const { content: dbName, metadata: metadataName } = artifactCachePaths(kind);
  const dbPath = join(cacheDir, ...dbName.split('/'));
  const metadataPath = join(cacheDir, ...metadataName.split('/'));
  const flags = offlineSettingOf(kind)?.flags ?? [];
  const flag = flags.join(' ');
  const base = { kind, paths: [dbPath, metadataPath], flags };
  const hasDb = (await kindOf(dbPath)) === 'file';
  const metadataBytes = await readSmall(metadataPath);
  const reasons: string[] = [];
  if (metadataBytes === undefined || (rule.skipNeedsDatabaseFile && !hasDb)) {
    const missing = [hasDb ? undefined : dbName, metadataBytes === undefined ? metadataName : undefined]
      .filter((name) => name !== undefined)
      .join(' and ');
    return {
      ...base,
      present: hasDb || metadataBytes !== undefined,
      installed: false,
      verdict: rule.missing,
      summary:
        rule.missing === 'fail'
          ? `${flag} will fail: ${missing} missing (${rule.missingEffect})`
          : `not installed: ${rule.missingEffect} (${flag} needs ${metadataName})`,
      reasons: [rule.missing === 'fail' ? `${missing} missing` : `${metadataName} missing`],
    };
  }
  const parsed = parseGoJson(metadataBytes);
  const problem =
    parsed.problem ?? (parsed.value === undefined ? undefined : dbMetadataProblem(parsed.value));
  if (parsed.value === undefined || problem !== undefined) {
    // Trivy parses metadata.json even with the skip flag: invalid JSON there is fatal.
    const what = `${metadataName} ${problem ?? 'cannot be read'}`;
    return {
      ...base,
      present: true,
      installed: true,
      verdict: 'fail',
      summary:
        rule.missing === 'fail' ? `Trivy will fail: ${what}` : `Trivy will fail even with ${flag}: ${what}`,
      reasons: [what],
    };
  }
  const metadata = parsed.value;
  const version = typeof metadata.Version === 'number' ? metadata.Version : 0;
  const timing = age(metadata.UpdatedAt, now);
  const downloadedAt = typeof metadata.DownloadedAt === 'string' ? metadata.DownloadedAt : undefined;
  if (timing.ageMs !== undefined)
    reasons.push(`built ${formatAge(timing.ageMs)} ago (UpdatedAt ${timing.updatedAt ?? ''})`);
  if (rule.refresh !== undefined) {
    const downloadedMs = downloadedAt === undefined ? ZERO_TIME_MS : Date.parse(downloadedAt);
    if (downloadedMs === ZERO_TIME_MS) {
      reasons.push(
        `DownloadedAt is zero: without ${flag} Trivy calls the DB "may be corrupted" and re-downloads`,
      );
    } else if (isRfc3339(metadata.NextUpdate)) {
      const wouldUpdate =
        now.getTime() > Date.parse(metadata.NextUpdate) &&
        now.getTime() > downloadedMs + rule.refresh.graceMs;
      reasons.push(
        wouldUpdate
          ? `NextUpdate has passed: without ${flag} Trivy tries to download, which is fatal offline`
          : `NextUpdate not reached yet: even without ${flag} Trivy would not download now`,
      );
    }
  }
  let verdict: Verdict = 'ok';
  let summary = `${flag} will work`;
  const expected = facts.schemaVersion;
  if (!hasDb) {
    // Only reached when the skip flag does not look at the database file (java-db).
    verdict = 'warning';
    summary = `${flag} is accepted, but ${dbName} is missing: ${rule.missingEffect}`;
    reasons.push(`${dbName} missing (with the skip flag Trivy only checks ${facts.metadataFile})`);
  } else if (version !== expected && rule.schemaMismatch === 'warning') {
    verdict = 'warning';
    summary = `${flag} is accepted, but metadata.json Version ${version} is not the schema ${expected} Trivy reads`;
  } else if (version > expected) {
    verdict = 'fail';
    summary = `${flag} will fail: metadata.json Version ${version} > ${expected} ("the version of DB schema doesn't match": this Trivy is too old)`;
  } else if (version < expected) {
    verdict = 'fail';
    summary = `${flag} will fail: metadata.json Version ${version} < ${expected} (old schema)`;
  }
  reasons.unshift(
    rule.schemaMismatch === 'fail'
      ? `metadata.json Version ${version} (Trivy needs exactly ${expected})`
      : `metadata.json Version ${version} (schema ${expected} expected)`,
  );
  return {
    ...base,
    present: true,
    installed: true,
    version,
    ...timing,
    ...(downloadedAt === undefined ? {} : { downloadedAt }),
    verdict,
    summary,
    reasons,
  };
}

async function diagnoseChecks(cacheDir: string, kind: ArtifactKind, now: Date): Promise<ComponentDiagnosis> {
  const facts = ARTIFACTS[kind];
  const { content: contentName, metadata: metadataName } = artifactCachePaths(kind);
  const contentPath = join(cacheDir, ...contentName.split('/'));
  const metadataPath = join(cacheDir, ...metadataName.split('/'));
  const flags = offlineSettingOf(kind)?.flags ?? [];
  const flag = flags.join(' ');
  const base = { kind, paths: [contentPath, metadataPath], flags };
  const contentKind = await kindOf(contentPath);
  const metadataBytes = await readSmall(metadataPath);
  const reasons: string[] = [];
  let metadata: Record<string, unknown> | undefined;
  if (metadataBytes !== undefined) {
    const parsed = parseGoJson(metadataBytes);
    if (parsed.value === undefined) reasons.push(`${metadataName} ${parsed.problem ?? 'cannot be read'}`);
    metadata = parsed.value;
  }
  if (contentKind !== 'directory') {
    return {
      ...base,
      present: metadataBytes !== undefined,
      installed: false,
      verdict: 'warning',
      summary: 'not installed: Trivy uses the checks embedded in its binary (possibly older)',
      reasons: [`${contentName} missing`, ...reasons],
    };
  }
  const files = await countFiles(contentPath);
  const majorVersion = typeof metadata?.MajorVersion === 'number' ? metadata.MajorVersion : undefined;
  const customBuild = metadata?.CustomBuild === true;
  const digest = typeof metadata?.Digest === 'string' ? metadata.Digest : undefined;
  const downloadedAt = typeof metadata?.DownloadedAt === 'string' ? metadata.DownloadedAt : undefined;
  let verdict: Verdict = 'ok';
  let summary = `${flag} will use the cached checks (${files} files)`;
  if (files === 0) {
    verdict = 'fail';
    summary = `${flag} will run ZERO checks: ${contentName} is empty (the embedded checks are switched off)`;
  }
  if (metadataBytes === undefined) {
    reasons.push(`${metadataName} missing: compliance specs are not read from ${contentName}`);
    if (verdict === 'ok') verdict = 'warning';
  } else if (metadata !== undefined) {
    if (majorVersion === undefined) {
      reasons.push(
        `MajorVersion missing (written by Trivy ≤ 0.68): without ${flag} Trivy ≥ 0.69 discards the cache and re-downloads (offline: falls back to the embedded checks)`,
      );
      if (verdict === 'ok') verdict = 'warning';
    } else if (majorVersion !== facts.schemaVersion && !customBuild) {
      reasons.push(
        `MajorVersion ${majorVersion} ≠ ${facts.schemaVersion}: without ${flag} Trivy ≥ 0.69 re-downloads (offline: falls back to the embedded checks)`,
      );
      if (verdict === 'ok') verdict = 'warning';
    } else {
      reasons.push(`MajorVersion ${majorVersion}${customBuild ? ' (custom build)' : ''}`);
    }
    if (isRfc3339(downloadedAt)) {
      const stale = now.getTime() > Date.parse(downloadedAt) + 24 * HOUR;
      reasons.push(
        stale
          ? `downloaded more than 24 h ago: without ${flag} Trivy asks the registry (offline: silently uses the embedded checks)`
          : 'downloaded less than 24 h ago',
      );
    }
  }
  return {
    ...base,
    present: true,
    // An empty content/ with --skip-check-update runs zero checks; without the flag Trivy falls back
    // to its embedded checks, so the flag only belongs in the command when there are files.
    installed: files > 0,
    ...(majorVersion === undefined ? {} : { version: majorVersion }),
    ...(downloadedAt === undefined ? {} : { downloadedAt }),
    ...(digest === undefined ? {} : { digest }),
    verdict,
    summary,
    reasons: [`${contentName} holds ${files} files`, ...reasons],
  };
}

async function diagnoseVexRepository(
  cacheDir: string,
  name: string,
  configured: VexRepositoryEntry | undefined,
  configChecked: boolean,
  now: Date,
): Promise<ComponentDiagnosis> {
  const files = COMPONENTS.vex.files;
  const repoDir = join(cacheDir, ...componentCachePath('vex', name).split('/'));
  const indexPath = join(repoDir, ...files.index.split('/'));
  const cacheJsonPath = join(repoDir, files.cacheJson);
  const manifestPath = join(repoDir, files.manifest);
  const base = {
    kind: 'vex' as const,
    name,
    paths: [indexPath, cacheJsonPath, manifestPath],
    flags: VEX_FLAGS,
  };
  const reasons: string[] = [];
  const present = (await kindOf(repoDir)) === 'directory';
  let enabledProblem: string | undefined;
  if (configChecked) {
    if (configured === undefined) enabledProblem = 'not listed in repository.yaml: --vex repo ignores it';
    else if (!configured.enabled)
      enabledProblem =
        'disabled in repository.yaml (enabled: false): --vex repo ignores it until it is enabled';
    else reasons.push('enabled in repository.yaml');
  } else {
    reasons.push('repository.yaml not checked');
  }
  if (!present) {
    return {
      ...base,
      present: false,
      installed: false,
      verdict: 'warning',
      summary: 'enabled in repository.yaml but not in the cache: Trivy has no VEX data for it offline',
      reasons: [...reasons, `${repoDir} missing`],
    };
  }
  const indexBytes = await readSmall(indexPath);
  if (indexBytes === undefined) {
    return {
      ...base,
      present: true,
      installed: false,
      verdict: 'fail',
      summary: `${VEX_FLAGS.join(' ')} will fail: ${files.index} missing`,
      reasons: [...reasons, `${files.index} missing`],
    };
  }
  let index;
  try {
    index = parseVexIndex(indexBytes, `${name}/${files.index}`);
  } catch (error) {
    return {
      ...base,
      present: true,
      installed: false,
      verdict: 'fail',
      summary: `${VEX_FLAGS.join(' ')} will fail: ${error instanceof TrivyError ? error.message : String(error)}`,
      reasons,
    };
  }
  let missing = 0;
  for (const entry of index.packages) {
    if (indexLocationProblem(entry.location) !== undefined) missing += 1;
    else if ((await kindOf(join(repoDir, files.content, ...entry.location.split('/')))) !== 'file')
      missing += 1;
  }
  const timing = age(index.updatedAt, now);
  if (timing.ageMs !== undefined)
    reasons.push(`index updated ${formatAge(timing.ageMs)} ago (${index.updatedAt})`);
  let downloadedAt: string | undefined;
  const cacheJson = await readSmall(cacheJsonPath);
  if (cacheJson === undefined) reasons.push(`${files.cacheJson} missing`);
  else {
    const parsed = parseGoJson(cacheJson);
    if (parsed.value !== undefined && isRfc3339(parsed.value.UpdatedAt))
      downloadedAt = parsed.value.UpdatedAt;
    else reasons.push(`${files.cacheJson} ${parsed.problem ?? 'has no valid UpdatedAt'}`);
  }
  if ((await kindOf(manifestPath)) !== 'file') reasons.push(`${files.manifest} missing`);
  let verdict: Verdict = 'ok';
  let summary = `${VEX_FLAGS.join(' ')} will use ${index.packages.length} packages`;
  if (missing > 0) {
    verdict = 'fail';
    summary = `--vex repo will fail: ${missing} document(s) listed in ${files.index} are missing`;
  } else if (enabledProblem !== undefined) {
    verdict = 'warning';
    summary = `cached but ${enabledProblem}`;
  }
  if (enabledProblem !== undefined) reasons.unshift(enabledProblem);
  return {
    ...base,
    present: true,
    installed: enabledProblem === undefined,
    ...timing,
    ...(downloadedAt === undefined ? {} : { downloadedAt }),
    verdict,
    summary,
    reasons: [`${files.index} lists ${index.packages.length} packages`, ...reasons],
  };
}

async function diagnoseVex(cacheDir: string, options: DiagnoseOptions): Promise<ComponentDiagnosis[]> {
  const reposDir = join(cacheDir, ...COMPONENTS.vex.cachePath.split('/'));
  const cached: string[] = [];
  if ((await kindOf(reposDir)) === 'directory') {
    // stat, not the dirent type: an installer may make each repository a symlink to a generation.
    for (const name of (await readdir(reposDir)).sort()) {
      if ((await kindOf(join(reposDir, name))) === 'directory') cached.push(name);
    }
  }
  let configured: VexRepositoryEntry[] = [];
  const configChecked = options.vexConfigPath !== undefined;
  if (options.vexConfigPath !== undefined) {
    const text = await readSmall(options.vexConfigPath);
    if (text === undefined) {
      // Trivy creates the default file when it is missing.
      configured = [{ ...DEFAULT_VEX_REPOSITORY, enabled: true }];
    } else {
      try {
        configured = readRepositoryYaml(text.toString('utf8'), options.vexConfigPath);
      } catch (error) {
        return [
          {
            kind: 'vex',
            present: cached.length > 0,
            installed: false,
            paths: [options.vexConfigPath],
            flags: VEX_FLAGS,
            verdict: 'fail',
            summary: `--vex repo will fail: ${error instanceof Error ? error.message : String(error)}`,
            reasons: [],
          },
        ];
      }
    }
  }
  const names = [
    ...configured.filter((entry) => entry.enabled && !cached.includes(entry.name)).map((entry) => entry.name),
    ...cached,
  ];
  // Only report enabled-but-uncached repositories when something VEX is installed at all.
  const relevant = cached.length > 0 ? names : [];
  const results: ComponentDiagnosis[] = [];
  for (const name of relevant) {
    results.push(
      await diagnoseVexRepository(
        cacheDir,
        name,
        configured.find((entry) => entry.name === name),
        configChecked,
        options.now,
      ),
    );
  }
  return results;
}

type Diagnose = (cacheDir: string, options: DiagnoseOptions) => Promise<ComponentDiagnosis[]>;

/**
 * Each kind's replay: a database (its table row has DB metadata) by its status rule, a checks
 * bundle (policy metadata) by the checks rules, VEX repositories by their own.
 */
const DIAGNOSE: Readonly<Record<ComponentKind, Diagnose>> = perKind<Diagnose, Diagnose>(
  (kind) =>
    ARTIFACTS[kind].metadataFormat === 'db'
      ? async (cacheDir, options) => [await diagnoseDatabase(cacheDir, kind, options.now)]
      : async (cacheDir, options) => [await diagnoseChecks(cacheDir, kind, options.now)],
  diagnoseVex,
);

/**
 * Whether a component's verdict decides if Trivy can scan offline: a required one always (the
 * table's status rule `missing: 'fail'`: the vulnerability DB, without which no scan runs
 * offline), any other once it is present.
 */
export function decidesVerdict(component: ComponentDiagnosis): boolean {
  const facts = COMPONENTS[component.kind];
  return (!facts.perRepository && facts.status?.missing === 'fail') || component.present;
}

/**
 * The upstream build time of a component directory as Trivy (or a person) left it: the DB
 * metadata's UpdatedAt, a VEX index's updated_at (read as leniently as Trivy reads it); undefined
 * when the kind records none (checks) or the file is missing or unreadable.
 */
export async function readBuildTime(kind: ComponentKind, dir: string): Promise<string | undefined> {
  const facts = COMPONENTS[kind];
  const file = facts.perRepository
    ? facts.files.index
    : facts.metadataFormat === 'db'
      ? facts.metadataFile
      : undefined;
  if (file === undefined) return undefined;
  const bytes = await readSmall(join(dir, ...file.split('/'))).catch(() => undefined);
  if (bytes === undefined) return undefined;
  try {
    const updatedAt = facts.perRepository
      ? parseVexIndex(bytes).updatedAt
      : (JSON.parse(bytes.toString('utf8')) as { UpdatedAt?: unknown }).UpdatedAt;
    return typeof updatedAt === 'string' ? updatedAt : undefined;
  } catch {
    return undefined;
  }
}

const RANK: Record<Verdict, number> = { ok: 0, warning: 1, fail: 2 };

/**
 * Replays Trivy's offline rules (trivy-facts.md) against a cache dir, assuming Trivy runs with the
 * offline flags (`offlineTrivyFlags`). Reads only; never writes.
 */
export async function diagnoseCache(cacheDir: string, options: DiagnoseOptions): Promise<CacheDiagnosis> {
  const components: ComponentDiagnosis[] = [];
  for (const kind of COMPONENT_KINDS) components.push(...(await DIAGNOSE[kind](cacheDir, options)));
  const counted = components.filter(decidesVerdict);
  const verdict = counted.reduce<Verdict>(
    (worst, c) => (RANK[c.verdict] > RANK[worst] ? c.verdict : worst),
    'ok',
  );
  return {
    cacheDir,
    ...(options.vexConfigPath === undefined ? {} : { vexConfigPath: options.vexConfigPath }),
    components,
    verdict,
  };
}

/**
 * The components whose offline flags belong in the Trivy command for this cache, in the order
 * offlineTrivyFlags expects them: what is installed now, whichever bundle (or Trivy) put it there.
 * The one answer to "what is installed" for both `import` and `status`.
 */
export function offlineComponents(diagnosis: CacheDiagnosis): ComponentKind[] {
  const kinds: ComponentKind[] = [];
  for (const component of diagnosis.components) {
    if (component.installed && !kinds.includes(component.kind)) kinds.push(component.kind);
  }
  return kinds;
}
