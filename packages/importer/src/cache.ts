import { lstat, mkdir, readFile, readdir, readlink, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { acquireLock, fsyncDir, swapSymlink, writeFileAtomic, type HeldLock } from '@trivy-airgap/durable';
import {
  COMPONENTS,
  COMPONENT_KINDS,
  componentCachePath,
  mergeRepositoryYaml,
  type ImportedVexRepository,
} from '@trivy-airgap/trivy';
import { asFileSystemError, isInside, resolveInside, type ComponentKind } from '@trivy-airgap/format';
import { ImporterError } from './errors.js';

/**
 * The cache layout trivy-airgap manages (documented in the README and the importer's report):
 *
 *   <cache>/db                      → symlink .trivy-airgap/generations/db/<gen>
 *   <cache>/java-db                 → symlink .trivy-airgap/generations/java-db/<gen>
 *   <cache>/policy                  → symlink .trivy-airgap/generations/policy/<gen>
 *   <cache>/vex/repositories/<name> → symlink ../../.trivy-airgap/generations/vex/<name>/<gen>
 *   <cache>/.trivy-airgap/
 *       layout.json       the version of this layout (LAYOUT_VERSION); absent: version 1, which
 *                         releases before it was recorded wrote
 *       lock              one import/rollback at a time (holder's pid, host, start time)
 *       state.json        what is installed: per component the current and previous generation
 *       journal.json      present only while links are being switched (roll-forward on crash)
 *       staging/<id>/     content being written; never referenced by a link
 *       generations/<component>/<gen>/   complete, fsynced component directories
 *
 * The link paths are the component table's cache paths (@trivy-airgap/trivy COMPONENTS).
 *
 * Why symlinks: Trivy reads `db/trivy.db` etc. through the link; replacing a component is one
 * rename(2) of a new link over the old one, which is atomic, so a concurrent Trivy sees the old
 * generation or the new one, never a mix, and a crash leaves either. A directory that Trivy (or a
 * person) made before is moved into a generation first, so `rollback` can restore it. Trivy's own
 * `trivy clean` removes the link, which is harmless.
 */
export const STATE_DIR_NAME = '.trivy-airgap';

/**
 * The version of the layout of `.trivy-airgap/` (file names, state.json and journal shapes,
 * generations/<key>/<gen>), recorded in layout.json like cacache's `content-v2`: a release that
 * changes the layout bumps it and adds the step from the previous version to MIGRATIONS; a
 * release that finds a newer version than it knows refuses to touch the cache.
 */
export const LAYOUT_VERSION = 1;

/** Steps from version N to N+1, run under the lock by the first import or rollback that sees N. */
const MIGRATIONS: Readonly<Record<number, (paths: CachePaths) => Promise<void>>> = {};

export interface CachePaths {
  readonly cacheDir: string;
  readonly stateDir: string;
  readonly layoutFile: string;
  readonly lockFile: string;
  readonly stateFile: string;
  readonly journalFile: string;
  readonly stagingDir: string;
  readonly generationsDir: string;
}

export function cachePaths(cacheDir: string): CachePaths {
  const root = resolve(cacheDir);
  const stateDir = join(root, STATE_DIR_NAME);
  return {
    cacheDir: root,
    stateDir,
    layoutFile: join(stateDir, 'layout.json'),
    lockFile: join(stateDir, 'lock'),
    stateFile: join(stateDir, 'state.json'),
    journalFile: join(stateDir, 'journal.json'),
    stagingDir: join(stateDir, 'staging'),
    generationsDir: join(stateDir, 'generations'),
  };
}

/**
 * A component's key in state.json and its generations folder: the table's cache path (`db`,
 * `java-db`, `policy`), or `<kind>/<name>` for a per-repository kind (`vex/<name>`).
 */
export type ComponentKey = string;

export function componentKeyOf(kind: ComponentKind, name?: string): ComponentKey {
  return COMPONENTS[kind].perRepository ? `${kind}/${name ?? ''}` : COMPONENTS[kind].cachePath;
}

/** The kind (and repository name) a key stands for; undefined for a key no kind makes. */
export function componentOfKey(key: ComponentKey): { kind: ComponentKind; name?: string } | undefined {
  const slash = key.indexOf('/');
  for (const kind of COMPONENT_KINDS) {
    const facts = COMPONENTS[kind];
    if (facts.perRepository && slash > 0 && key.slice(0, slash) === kind) {
      return { kind, name: key.slice(slash + 1) };
    }
    if (!facts.perRepository && key === facts.cachePath) return { kind };
  }
  return undefined;
}

/** A key as users may type it: the kind (`checks`) or the key itself (`policy`, `vex/<name>`). */
export function componentKeyFromUser(text: string): ComponentKey {
  const kind = COMPONENT_KINDS.find((candidate) => candidate === text);
  return kind !== undefined && !COMPONENTS[kind].perRepository ? componentKeyOf(kind) : text;
}

/** The path Trivy reads, relative to the cache dir (native separators). */
export function linkPathOf(key: ComponentKey): string {
  const component = componentOfKey(key);
  const path = component === undefined ? key : componentCachePath(component.kind, component.name);
  return join(...path.split('/'));
}

/** Directories that hold component links: where leftovers of interrupted switches can be. */
function linkDirectories(paths: CachePaths): string[] {
  const dirs = new Set<string>();
  for (const kind of COMPONENT_KINDS) {
    const facts = COMPONENTS[kind];
    const cachePath = join(paths.cacheDir, ...facts.cachePath.split('/'));
    dirs.add(facts.perRepository ? cachePath : dirname(cachePath));
  }
  return [...dirs];
}

/** Where Trivy reads a component (the link), contained in the cache dir. */
export function linkOf(paths: CachePaths, key: ComponentKey): string {
  return resolveInside(paths.cacheDir, linkPathOf(key).split(sep).join('/'), 'component link');
}

/** Keys come from bundles (VEX names) and state.json: checked before they become paths. */
export function generationPathOf(paths: CachePaths, key: ComponentKey, generation: string): string {
  return resolveInside(paths.generationsDir, `${key}/${generation}`, 'component generation');
}

/** The symlink text for a link at `linkPath` (relative to the cache) pointing at a generation. */
export function linkTargetOf(paths: CachePaths, key: ComponentKey, generation: string): string {
  const link = linkOf(paths, key);
  return relative(dirname(link), generationPathOf(paths, key, generation));
}

/** One installed generation of a component. */
export interface GenerationRecord {
  /** Directory name under generations/<component>/, or null for a link target we did not make. */
  readonly generation: string | null;
  /** The symlink text. */
  readonly target: string;
  /** Bundle it came from (null: a directory that existed before trivy-airgap managed the cache). */
  readonly bundleId: string | null;
  readonly manifestDigest?: string;
  /** Key id that signed the bundle (null: unsigned, accepted with --allow-unsigned). */
  readonly keyId: string | null;
  readonly installedAt: string;
  /** Upstream build time: DB metadata UpdatedAt, VEX index updated_at. */
  readonly updatedAt?: string;
  /** Checks bundle version annotation. */
  readonly version?: string;
  /** Checks: org.opencontainers.image.created of the artifact. */
  readonly created?: string;
  /** OCI manifest digest, or the VEX archive digest. */
  readonly digest?: string;
  readonly source?: string;
  /**
   * `generationFingerprint` of the generation when it was installed (or taken over): rollback
   * refuses a generation that changed since (Trivy updated it in place), status reports it.
   */
  readonly fingerprint?: string;
}

export interface ComponentState {
  readonly key: ComponentKey;
  readonly kind: ComponentKind;
  readonly name?: string;
  readonly current: GenerationRecord;
  readonly previous?: GenerationRecord;
}

export interface InstallState {
  readonly version: 1;
  readonly updatedAt: string;
  readonly lastBundleId?: string;
  /** `trivyVersions` of the last imported bundle: the Trivy releases `status` prints flags for. */
  readonly trivyVersions?: string;
  readonly components: Readonly<Record<ComponentKey, ComponentState>>;
}

export const EMPTY_STATE: InstallState = { version: 1, updatedAt: new Date(0).toISOString(), components: {} };

/**
 * The layout version of the state dir: the recorded one, or 1 when none is recorded (releases
 * before layout.json wrote version 1) or nothing was ever imported. A newer version than this
 * release knows is refused (CACHE_LAYOUT_UNSUPPORTED) before anything is read or written.
 */
export async function readLayoutVersion(paths: CachePaths): Promise<number> {
  let text: string;
  try {
    text = await readFile(paths.layoutFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 1;
    throw error;
  }
  let version: unknown;
  try {
    version = (JSON.parse(text) as { layoutVersion?: unknown } | null)?.layoutVersion;
  } catch {
    version = undefined;
  }
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new ImporterError('CACHE_STATE_INVALID', `${paths.layoutFile} is damaged`, {
      path: paths.layoutFile,
      hint: `it should read {"layoutVersion":${LAYOUT_VERSION}}; if no newer trivy-airgap manages this cache, write that`,
    });
  }
  if (version > LAYOUT_VERSION) {
    throw new ImporterError(
      'CACHE_LAYOUT_UNSUPPORTED',
      `${paths.stateDir} has layout version ${version}, made by a newer trivy-airgap; this one knows up to version ${LAYOUT_VERSION} and changed nothing`,
      {
        path: paths.layoutFile,
        expected: String(LAYOUT_VERSION),
        found: String(version),
        hint: 'use the trivy-airgap release that last imported into this cache, or a newer one',
      },
    );
  }
  return version;
}

/**
 * Brings the state dir to LAYOUT_VERSION under the lock: runs the migrations from the version it
 * has, then records the new one. An unversioned dir is version 1: nothing to migrate; the record
 * is written with the next commit (commitJournal), so a failed first import leaves nothing behind.
 */
export async function migrateLayout(paths: CachePaths): Promise<void> {
  let version = await readLayoutVersion(paths);
  if (version === LAYOUT_VERSION) return;
  for (; version < LAYOUT_VERSION; version++) {
    const step = MIGRATIONS[version];
    if (step === undefined) throw new Error(`internal: no migration from layout version ${version}`);
    await step(paths);
  }
  await recordLayout(paths);
}

const LAYOUT_RECORD = `${JSON.stringify({ layoutVersion: LAYOUT_VERSION })}\n`;

/** Writes layout.json (atomically) unless it already records this version. */
async function recordLayout(paths: CachePaths): Promise<void> {
  const current = await readFile(paths.layoutFile, 'utf8').catch(() => undefined);
  if (current !== LAYOUT_RECORD) await writeFileAtomic(paths.layoutFile, LAYOUT_RECORD);
}

export async function readState(paths: CachePaths): Promise<InstallState> {
  await readLayoutVersion(paths);
  let text: string;
  try {
    text = await readFile(paths.stateFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_STATE;
    throw error;
  }
  try {
    const state = JSON.parse(text) as Partial<InstallState> | null;
    if (state?.version !== 1 || typeof state.components !== 'object') throw new Error('unknown shape');
    return state as InstallState;
  } catch (error) {
    throw new ImporterError('CACHE_STATE_INVALID', `${paths.stateFile} is damaged`, {
      cause: error,
      hint: `move ${paths.stateFile} away; the next import starts a fresh history`,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Lock

export type { LockHolder, LockState } from '@trivy-airgap/durable';

export type CacheLock = HeldLock;

/**
 * Takes the cache's lock (durable's acquireLock); a lock left by a dead process on this host is
 * taken over. Refused when another process (or this one) holds it.
 */
export async function acquireCacheLock(paths: CachePaths, operation: string): Promise<CacheLock> {
  // Where a newer layout keeps its lock is unknown: refuse before writing one.
  await readLayoutVersion(paths);
  const attempt = await acquireLock(paths.lockFile, operation);
  if (attempt.acquired) return attempt.lock;
  const holder = attempt.state.holder;
  if (holder === undefined) {
    throw new ImporterError('LOCKED', `${paths.lockFile} is being written by another trivy-airgap`, {
      path: paths.lockFile,
      hint: 'try again in a moment',
    });
  }
  const where = attempt.state.sameHost ? '' : ` on ${holder.host}`;
  throw new ImporterError(
    'LOCKED',
    `another trivy-airgap (pid ${holder.pid}${where}, ${holder.operation} since ${holder.startedAt || '?'}) is working on ${paths.cacheDir}`,
    {
      path: paths.lockFile,
      hint: `wait for it to finish; if no such process runs, remove ${paths.lockFile}`,
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Journal: the commit record of an import or rollback. Written (fsynced) only once every new
// generation is complete; replayed forward by the next run if the process died while switching.

export interface LinkSwitch {
  readonly key: ComponentKey;
  readonly target: string;
  /** A real directory found at the link path is first moved here (absolute path). */
  readonly migrateTo?: string;
}

export interface Journal {
  readonly version: 1;
  readonly operation: 'import' | 'rollback';
  readonly startedAt: string;
  readonly links: readonly LinkSwitch[];
  /** The state to record once every link is switched. */
  readonly state: InstallState;
  readonly repositoryYaml?: { readonly path: string; readonly imported: readonly ImportedVexRepository[] };
}

export async function readJournal(paths: CachePaths): Promise<Journal | undefined> {
  try {
    return JSON.parse(await readFile(paths.journalFile, 'utf8')) as Journal;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A journal is written atomically: an unreadable one was never committed.
    await rm(paths.journalFile, { force: true });
    return undefined;
  }
}

/** Temporary links of an interrupted switch end in this; the next run removes them. */
const NEW_LINK_SUFFIX = '.trivy-airgap-new';

/** Points the link at `target` atomically (new symlink renamed over the old one). */
export async function pointLink(linkPath: string, target: string): Promise<void> {
  await swapSymlink(linkPath, target, `${linkPath}${NEW_LINK_SUFFIX}`);
}

export type StepHook = (step: string) => void | Promise<void>;

/**
 * The text of Trivy's repository.yaml, or undefined when there is none yet. Any other failure to
 * read it (a directory, no permission) names that file, not the cache.
 */
export async function readRepositoryYamlFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw asFileSystemError(error, {
      where: path,
      pathHint: `${path} must be Trivy's repository.yaml file; pass --vex-config FILE to use another`,
    });
  }
}

/** Carries out (or finishes) a committed journal. Idempotent: each step checks what is done. */
export async function applyJournal(paths: CachePaths, journal: Journal, hook?: StepHook): Promise<void> {
  for (const link of journal.links) {
    const linkPath = linkOf(paths, link.key);
    const info = await lstat(linkPath).catch(() => undefined);
    if (info?.isDirectory() === true && link.migrateTo !== undefined) {
      await mkdir(dirname(link.migrateTo), { recursive: true });
      await rename(linkPath, link.migrateTo);
      await hook?.(`migrated ${link.key}`);
    } else if (info !== undefined && !info.isSymbolicLink()) {
      throw new ImporterError(
        'CACHE_STATE_INVALID',
        `${linkPath} is neither a directory nor a link; it was left alone`,
        { path: linkPath, hint: `move ${linkPath} away and run the import again` },
      );
    }
    const current = info?.isSymbolicLink() === true ? await readlink(linkPath) : undefined;
    if (current !== link.target) await pointLink(linkPath, link.target);
    await hook?.(`switched ${link.key}`);
  }
  await writeFileAtomic(paths.stateFile, `${JSON.stringify(journal.state, null, 2)}\n`);
  await hook?.('state written');
  if (journal.repositoryYaml !== undefined) {
    const { path, imported } = journal.repositoryYaml;
    const existing = await readRepositoryYamlFile(path);
    const merged = mergeRepositoryYaml(existing, imported, path);
    if (merged !== existing) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, merged, 0o600);
    }
    await hook?.('repository.yaml written');
  }
  await rm(paths.journalFile, { force: true });
  await fsyncDir(paths.stateDir);
}

/** Writes the journal atomically: from here on the operation completes, now or on the next run. */
export async function commitJournal(paths: CachePaths, journal: Journal): Promise<void> {
  // The layout the journal and state are written in, recorded before them.
  await recordLayout(paths);
  await writeFileAtomic(paths.journalFile, `${JSON.stringify(journal, null, 2)}\n`);
}

/**
 * Brings the cache to a clean state under the lock: finishes a committed journal, removes
 * staging leftovers and temporary links, and prunes generations that neither the current nor
 * the previous install (nor any live link) uses. Returns what it did, for the user.
 */
export async function recoverAndClean(paths: CachePaths): Promise<string[]> {
  const done: string[] = [];
  await migrateLayout(paths);
  const journal = await readJournal(paths);
  if (journal !== undefined) {
    await applyJournal(paths, journal);
    done.push(
      `finished an interrupted ${journal.operation} of ${journal.links.map((l) => l.key).join(', ')}`,
    );
  }
  const staged = await readdir(paths.stagingDir).catch(() => [] as string[]);
  for (const name of staged) {
    await rm(join(paths.stagingDir, name), { recursive: true, force: true });
    done.push(`removed unfinished staging ${name}`);
  }
  const state = await readState(paths);
  const keep = new Set<string>();
  for (const component of Object.values(state.components)) {
    for (const record of [component.current, component.previous]) {
      if (record?.generation != null) keep.add(generationPathOf(paths, component.key, record.generation));
    }
  }
  // Anything a link points at stays, whatever state.json says.
  for (const dir of linkDirectories(paths)) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name);
      if (name.endsWith(NEW_LINK_SUFFIX)) {
        await rm(path, { force: true });
        continue;
      }
      const target = await readlink(path).catch(() => undefined);
      if (target !== undefined) keep.add(resolve(dir, target));
    }
  }
  for (const generation of await listGenerations(paths)) {
    if (keep.has(generation)) continue;
    if (!isInside(paths.generationsDir, generation)) continue;
    await rm(generation, { recursive: true, force: true });
    done.push(`pruned ${relative(paths.stateDir, generation)}`);
  }
  return done;
}

/** Every generation directory: generations/<key>/<gen>, i.e. also generations/vex/<name>/<gen>. */
async function listGenerations(paths: CachePaths): Promise<string[]> {
  const out: string[] = [];
  const list = async (dir: string): Promise<string[]> => readdir(dir).catch(() => [] as string[]);
  for (const kind of await list(paths.generationsDir)) {
    const kindDir = join(paths.generationsDir, kind);
    const perRepository = COMPONENT_KINDS.some((k) => k === kind && COMPONENTS[k].perRepository);
    if (perRepository) {
      for (const name of await list(kindDir)) {
        for (const gen of await list(join(kindDir, name))) out.push(join(kindDir, name, gen));
      }
    } else {
      for (const gen of await list(kindDir)) out.push(join(kindDir, gen));
    }
  }
  return out;
}

/** Removes directories this run created, deepest first, if they are still empty. */
export async function removeIfEmpty(dirs: readonly string[]): Promise<void> {
  for (const dir of [...dirs].reverse()) await rmdir(dir).catch(() => undefined);
}

/** mkdir -p that reports which directories it created. */
export async function mkdirTracked(path: string, created: string[], mode?: number): Promise<void> {
  const first = await mkdir(path, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  if (first === undefined) return;
  let dir = path;
  const made: string[] = [];
  while (isInside(first, dir) || dir === first) {
    made.unshift(dir);
    if (dir === first) break;
    dir = dirname(dir);
  }
  created.push(...made);
}

/**
 * Finishes or cleans up after an interrupted import or rollback, under the lock (the same step
 * every import and rollback runs first). Returns what it did; a cache we never managed is left alone.
 */
export async function repairCache(cacheDir: string): Promise<string[]> {
  const paths = cachePaths(cacheDir);
  const info = await lstat(paths.stateDir).catch(() => undefined);
  if (info?.isDirectory() !== true) return [];
  const lock = await acquireCacheLock(paths, 'repair');
  try {
    return await recoverAndClean(paths);
  } finally {
    await lock.release();
  }
}
