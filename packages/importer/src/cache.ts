import { lstat, mkdir, readFile, readdir, readlink, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { acquireLock, fsyncDir, swapSymlink, writeFileAtomic, type HeldLock } from '@trivy-airgap/durable';
import { mergeRepositoryYaml, type ImportedVexRepository } from '@trivy-airgap/trivy';
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
 *       lock              one import/rollback at a time (holder's pid, host, start time)
 *       state.json        what is installed: per component the current and previous generation
 *       journal.json      present only while links are being switched (roll-forward on crash)
 *       staging/<id>/     content being written; never referenced by a link
 *       generations/<component>/<gen>/   complete, fsynced component directories
 *
 * Why symlinks: Trivy reads `db/trivy.db` etc. through the link; replacing a component is one
 * rename(2) of a new link over the old one, which is atomic, so a concurrent Trivy sees the old
 * generation or the new one, never a mix, and a crash leaves either. A directory that Trivy (or a
 * person) made before is moved into a generation first, so `rollback` can restore it. Trivy's own
 * `trivy clean` removes the link, which is harmless.
 */
export const STATE_DIR_NAME = '.trivy-airgap';

export interface CachePaths {
  readonly cacheDir: string;
  readonly stateDir: string;
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
    lockFile: join(stateDir, 'lock'),
    stateFile: join(stateDir, 'state.json'),
    journalFile: join(stateDir, 'journal.json'),
    stagingDir: join(stateDir, 'staging'),
    generationsDir: join(stateDir, 'generations'),
  };
}

/** `db`, `java-db`, `policy` or `vex/<name>`: a component's key, its link path and generations folder. */
export type ComponentKey = string;

export function componentKeyOf(kind: ComponentKind, name?: string): ComponentKey {
  if (kind === 'checks') return 'policy';
  if (kind === 'vex') return `vex/${name ?? ''}`;
  return kind;
}

/** The path Trivy reads, relative to the cache dir. */
export function linkPathOf(key: ComponentKey): string {
  return key.startsWith('vex/') ? join('vex', 'repositories', key.slice(4)) : key;
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

export async function readState(paths: CachePaths): Promise<InstallState> {
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
  await writeFileAtomic(paths.journalFile, `${JSON.stringify(journal, null, 2)}\n`);
}

/**
 * Brings the cache to a clean state under the lock: finishes a committed journal, removes
 * staging leftovers and temporary links, and prunes generations that neither the current nor
 * the previous install (nor any live link) uses. Returns what it did, for the user.
 */
export async function recoverAndClean(paths: CachePaths): Promise<string[]> {
  const done: string[] = [];
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
  const linkDirs = [paths.cacheDir, join(paths.cacheDir, 'vex', 'repositories')];
  for (const dir of linkDirs) {
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

/** Every generation directory: generations/<kind>/<gen> and generations/vex/<name>/<gen>. */
async function listGenerations(paths: CachePaths): Promise<string[]> {
  const out: string[] = [];
  const list = async (dir: string): Promise<string[]> => readdir(dir).catch(() => [] as string[]);
  for (const kind of await list(paths.generationsDir)) {
    const kindDir = join(paths.generationsDir, kind);
    if (kind === 'vex') {
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
