import { randomBytes } from 'node:crypto';
import { lstat, readlink, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import {
  asFileSystemError,
  ignoreProgress,
  resolveInside,
  type BundleManifest,
  type Component,
  type ComponentKind,
  type Digest,
  type OciComponent,
  type ProgressListener,
  type VerifiedSignature,
  type VexComponent,
} from '@trivy-airgap/format';
import {
  ARTIFACTS,
  CREATED_ANNOTATION,
  mergeRepositoryYaml,
  perKind,
  readBuildTime,
  type DbMetadataFields,
  resolveVexConfigPath,
} from '@trivy-airgap/trivy';
import { fsyncDir, syncTree } from '@trivy-airgap/durable';
import {
  acquireCacheLock,
  applyJournal,
  cachePaths,
  commitJournal,
  componentOfKey,
  generationPathOf,
  linkOf,
  linkTargetOf,
  mkdirTracked,
  readRepositoryYamlFile,
  readState,
  recoverAndClean,
  removeIfEmpty,
  type CacheLock,
  type CachePaths,
  type ComponentKey,
  type ComponentState,
  type GenerationRecord,
  type InstallState,
  type Journal,
  type LinkSwitch,
  type StepHook,
} from './cache.js';
import { ImporterError, throwIfAborted } from './errors.js';
import { generationFingerprint } from './fingerprint.js';
import { keyOf, prepareBundle } from './prepare.js';
import { downgradeReason, type PolicyOptions, type TrustedBundle, type VerificationCheck } from './policy.js';
import type { BundleInput } from './source.js';
import { explainMissingTrust, loadTrustedKeys, type TrustOptions } from './trust.js';

export interface ImportBundleOptions extends PolicyOptions, TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  /** Trivy's cache dir (resolve it with @trivy-airgap/trivy's resolveCacheDir). */
  readonly cacheDir: string;
  /** repository.yaml to merge imported VEX repositories into (default: Trivy's location). */
  readonly vexConfigPath?: string;
  /** Install a component older than the installed one. */
  readonly allowDowngrade?: boolean;
  readonly onProgress?: ProgressListener;
  /** The clock for DownloadedAt and install records (tests). */
  readonly clock?: () => Date;
  /** Called after each install step; throwing simulates a crash there (tests). */
  readonly stepHook?: StepHook;
  /**
   * Stops the import (Ctrl-C) until its commit point: it then rejects with ABORTED and the cache
   * is as it was. Once the journal is written the install completes (a second Ctrl-C is the
   * CLI's business; a kill there is finished by the next run).
   */
  readonly signal?: AbortSignal;
}

export interface InstalledComponent {
  readonly key: ComponentKey;
  readonly kind: ComponentKind;
  readonly name?: string;
  /** The path Trivy reads (a symlink to the generation). */
  readonly path: string;
  readonly generation: string;
  readonly updatedAt?: string;
  readonly version?: string;
  readonly digest?: string;
  /** What it replaced, kept for `rollback`. */
  readonly previous?: GenerationRecord;
  /** Installed although older than what it replaced (--allow-downgrade). */
  readonly downgrade: boolean;
}

export interface ImportBundleResult {
  readonly bundleId: string;
  readonly manifestDigest: Digest;
  /** The Trivy releases the bundle targets (its manifest's range): what the offline flags are for. */
  readonly trivyVersions: string;
  readonly signature: VerifiedSignature | null;
  readonly warnings: readonly string[];
  readonly cacheDir: string;
  readonly vexConfigPath?: string;
  readonly installed: readonly InstalledComponent[];
  /** Leftovers of earlier runs that were finished or removed. */
  readonly cleaned: readonly string[];
  readonly checks: readonly VerificationCheck[];
}

/** What a component brings, for anti-rollback and the install record. */
type Description = Pick<GenerationRecord, 'updatedAt' | 'version' | 'created' | 'digest' | 'source'>;

function describeArtifact(component: OciComponent, upstream?: DbMetadataFields): Description {
  const created = component.annotations[CREATED_ANNOTATION];
  // A DB's build time is its layer's metadata.json (older manifests also record it, equal to it).
  const updatedAt = upstream?.UpdatedAt ?? component.metadata?.UpdatedAt;
  return {
    ...(updatedAt === undefined ? {} : { updatedAt }),
    ...(component.version === undefined ? {} : { version: component.version }),
    ...(created === undefined ? {} : { created }),
    digest: component.manifest.digest,
    source: component.servedBy,
  };
}

function describeVexRepository(component: VexComponent): Description {
  return {
    ...(component.updatedAt === undefined ? {} : { updatedAt: component.updatedAt }),
    source: component.url,
  };
}

/** Each kind's description: what anti-rollback compares and the install record keeps. */
const DESCRIBE = perKind(() => describeArtifact, describeVexRepository);

function describeComponent(component: Component, upstream?: DbMetadataFields): Description {
  // Keyed by kind, so the function matches the component (TypeScript cannot correlate it).
  const describe = DESCRIBE[component.kind] as (
    component: Component,
    upstream?: DbMetadataFields,
  ) => Description;
  return describe(component, upstream);
}

/** What is installed for a component: our record, or else what the live directory says. */
async function installedRecord(
  paths: CachePaths,
  state: InstallState,
  key: ComponentKey,
): Promise<Pick<GenerationRecord, 'updatedAt' | 'version' | 'created'> | undefined> {
  const recorded = state.components[key];
  if (recorded !== undefined) return recorded.current;
  return probeLiveDirectory(paths, key);
}

/** Reads the upstream build time of a component Trivy (or a person) put into the cache. */
async function probeLiveDirectory(
  paths: CachePaths,
  key: ComponentKey,
): Promise<Pick<GenerationRecord, 'updatedAt'> | undefined> {
  const component = componentOfKey(key);
  if (component === undefined) return undefined;
  const updatedAt = await readBuildTime(component.kind, linkOf(paths, key));
  return updatedAt === undefined ? undefined : { updatedAt };
}

/** A component on its way in, with its layer's metadata.json once the bundle pass read it. */
interface IncomingComponent {
  readonly component: Component;
  readonly upstream?: DbMetadataFields | undefined;
}

/**
 * Anti-rollback. Runs early on the signed manifest alone (refusing before any work where the
 * manifest tells), and finally, with `layersRead`, on what the bundle pass read from the layers,
 * before anything is swapped. Early, a DB whose build time is still unknown is skipped: its push
 * time (`created`) differs per mirror for the same build and decides nothing.
 */
async function checkDowngrades(
  paths: CachePaths,
  incoming: readonly IncomingComponent[],
  options: { allowDowngrade: boolean; layersRead: boolean; onProgress: ProgressListener },
): Promise<Set<ComponentKey>> {
  const state = await readState(paths);
  const downgrades = new Set<ComponentKey>();
  for (const { component, upstream } of incoming) {
    const key = keyOf(component);
    const described = describeComponent(component, upstream);
    const buildTimeUnknown =
      component.kind !== 'vex' &&
      ARTIFACTS[component.kind].metadataFormat === 'db' &&
      described.updatedAt === undefined;
    if (!options.layersRead && buildTimeUnknown) continue;
    const installed = await installedRecord(paths, state, key);
    if (installed === undefined) continue;
    const reason = downgradeReason(described, installed);
    if (reason === undefined) continue;
    if (!options.allowDowngrade) {
      throw new ImporterError(
        'DOWNGRADE_REFUSED',
        `the bundle's ${key} is older than the installed one (${reason}); refusing to roll back content`,
        { hint: 'import a newer bundle; to install this older one on purpose pass --allow-downgrade' },
      );
    }
    downgrades.add(key);
    options.onProgress({
      type: 'warning',
      message: `installing an older ${key} (${reason}) as --allow-downgrade asks`,
    });
  }
  return downgrades;
}

function componentsOf(manifest: BundleManifest): IncomingComponent[] {
  return manifest.components.map((component) => ({ component }));
}

function generationName(now: Date, bundleId: string): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const id = bundleId.replace(/[^A-Za-z0-9]/g, '').slice(0, 8) || 'bundle';
  return `${stamp}-${id}-${randomBytes(3).toString('hex')}`;
}

/**
 * Imports a bundle into Trivy's cache in one pass over the bundle:
 *  1. manifest + signature verified (nothing written before), anti-rollback checked;
 *  2. the cache lock taken, leftovers of an interrupted run finished or removed;
 *  3. while the bundle streams, layers are inflated into a staging dir under the cache and every
 *     entry's digest is checked; VEX archives are saved there;
 *  4. only when every digest of the bundle is verified: metadata rendered (real DownloadedAt),
 *     VEX archives extracted, everything fsynced and moved into generation directories;
 *  5. the journal (the commit point) is written, then each component's link is switched with one
 *     atomic rename, state.json and repository.yaml are written, and old generations pruned
 *     (the current and the previous one of each component are kept for `rollback`).
 * A failure before 5 leaves the cache as it was; a crash during 5 is finished by the next run.
 */
export async function importBundle(options: ImportBundleOptions): Promise<ImportBundleResult> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const clock = options.clock ?? (() => new Date());
  const signal = options.signal;
  const trustedKeys = await loadTrustedKeys(options);
  const paths = cachePaths(options.cacheDir);
  const created: string[] = [];
  const moved: string[] = [];
  let lock: CacheLock | undefined;
  let stage: string | undefined;
  let committed = false;
  let cleaned: string[] = [];
  let downgrades = new Set<ComponentKey>();
  let vexConfigPath: string | undefined;

  try {
    const prepared = await prepareBundle({
      ...options,
      trustedKeys,
      onProgress,
      clock,
      onTrusted: async (trusted: TrustedBundle) => {
        const hasVex = trusted.manifest.components.some((c) => c.kind === 'vex');
        if (hasVex) {
          vexConfigPath =
            options.vexConfigPath ?? resolveVexConfigPath({ env: process.env, homedir: homedir() });
          // Refuse a repository.yaml we could not read or merge now, before anything changes
          // (a directory or an unreadable file given as --vex-config).
          const existing = await readRepositoryYamlFile(vexConfigPath);
          mergeRepositoryYaml(
            existing,
            trusted.manifest.components.filter((c): c is VexComponent => c.kind === 'vex'),
            vexConfigPath,
          );
        }
        await checkDowngrades(paths, componentsOf(trusted.manifest), {
          allowDowngrade: options.allowDowngrade === true,
          layersRead: false,
          onProgress: ignoreProgress,
        });
      },
      stage: async (trusted: TrustedBundle) => {
        // The first write under the cache: only now that the signature and policy passed.
        await mkdirTracked(paths.stateDir, created);
        lock = await acquireCacheLock(paths, 'import');
        cleaned = await recoverAndClean(paths);
        for (const line of cleaned) onProgress({ type: 'note', message: line });
        // Again under the lock: another import may have finished in between.
        await checkDowngrades(paths, componentsOf(trusted.manifest), {
          allowDowngrade: options.allowDowngrade === true,
          layersRead: false,
          onProgress: ignoreProgress,
        });
        stage = resolveInside(
          paths.stagingDir,
          generationName(clock(), trusted.manifest.bundleId),
          'staging',
        );
        await mkdirTracked(stage, created);
        return stage;
      },
      onPrepared: async (components) => {
        // The build times read from the layers decide, still under the lock and before any swap.
        downgrades = await checkDowngrades(paths, components, {
          allowDowngrade: options.allowDowngrade === true,
          layersRead: true,
          onProgress,
        });
      },
    }).catch((error: unknown) => {
      throw explainMissingTrust(error, options);
    });
    if (stage === undefined) throw new Error('internal: no staging directory');
    const manifest = prepared.manifest;
    await options.stepHook?.('verified');
    throwIfAborted(signal);

    // One sync of the whole staging tree: its cost follows the bytes, not the number of files.
    await syncTree(stage);
    await options.stepHook?.('staged');
    throwIfAborted(signal);

    // Move the finished directories into generations (still invisible to Trivy).
    const installedAt = prepared.preparedAt;
    const state = await readState(paths);
    const components: Record<ComponentKey, ComponentState> = { ...state.components };
    const links: LinkSwitch[] = [];
    const installed: InstalledComponent[] = [];
    for (const { component, key, dir, upstream } of prepared.components) {
      if (dir === undefined) throw new Error(`internal: ${key} was not staged`);
      const generation = generationName(installedAt, manifest.bundleId);
      const generationPath = generationPathOf(paths, key, generation);
      await mkdirTracked(dirname(generationPath), created);
      await rename(dir, generationPath);
      moved.push(generationPath);
      await fsyncDir(dirname(generationPath));
      const fingerprint = await generationFingerprint(generationPath);
      const record: GenerationRecord = {
        generation,
        target: linkTargetOf(paths, key, generation),
        bundleId: manifest.bundleId,
        manifestDigest: prepared.manifestDigest,
        keyId: prepared.signature?.keyId ?? null,
        installedAt: installedAt.toISOString(),
        ...describeComponent(component, upstream),
        ...(fingerprint === undefined ? {} : { fingerprint }),
      };
      const { previous, migrateTo } = await previousOf(paths, state.components[key], key, installedAt);
      components[key] = {
        key,
        kind: component.kind,
        ...(component.kind === 'vex' ? { name: component.name } : {}),
        current: record,
        ...(previous === undefined ? {} : { previous }),
      };
      links.push({ key, target: record.target, ...(migrateTo === undefined ? {} : { migrateTo }) });
      installed.push({
        key,
        kind: component.kind,
        ...(component.kind === 'vex' ? { name: component.name } : {}),
        path: linkOf(paths, key),
        generation,
        ...(record.updatedAt === undefined ? {} : { updatedAt: record.updatedAt }),
        ...(record.version === undefined ? {} : { version: record.version }),
        ...(record.digest === undefined ? {} : { digest: record.digest }),
        ...(previous === undefined ? {} : { previous }),
        downgrade: downgrades.has(key),
      });
    }
    await options.stepHook?.('generations ready');
    // The last moment a cancel is honoured: from the journal on, the install completes.
    throwIfAborted(signal);

    const vexComponents = manifest.components.filter((c): c is VexComponent => c.kind === 'vex');
    const journal: Journal = {
      version: 1,
      operation: 'import',
      startedAt: installedAt.toISOString(),
      links,
      state: {
        version: 1,
        updatedAt: installedAt.toISOString(),
        lastBundleId: manifest.bundleId,
        trivyVersions: manifest.trivyVersions,
        components,
      },
      ...(vexConfigPath === undefined || vexComponents.length === 0
        ? {}
        : {
            repositoryYaml: {
              path: vexConfigPath,
              imported: vexComponents.map((c) => ({ name: c.name, url: c.url })),
            },
          }),
    };
    await commitJournal(paths, journal);
    committed = true;
    await options.stepHook?.('journal committed');
    await applyJournal(paths, journal, options.stepHook);
    await rm(stage, { recursive: true, force: true });
    stage = undefined;
    cleaned = [...cleaned, ...(await recoverAndClean(paths))];
    for (const component of installed) {
      // Named as help and status name components: checks, not the cache folder `policy`.
      const task = component.kind === 'vex' ? component.key : component.kind;
      onProgress({ type: 'task-done', task, summary: summaryOf(component) });
    }
    return {
      bundleId: manifest.bundleId,
      manifestDigest: prepared.manifestDigest,
      trivyVersions: manifest.trivyVersions,
      signature: prepared.signature,
      warnings: prepared.warnings,
      cacheDir: paths.cacheDir,
      ...(vexConfigPath === undefined ? {} : { vexConfigPath }),
      installed,
      cleaned,
      checks: prepared.checks,
    };
  } catch (error) {
    if (!committed) {
      for (const path of moved) await rm(path, { recursive: true, force: true });
    }
    throw asFileSystemError(error, { where: paths.cacheDir });
  } finally {
    if (stage !== undefined) await rm(stage, { recursive: true, force: true });
    await lock?.release();
    if (!committed) await removeIfEmpty(created);
  }
}

function summaryOf(component: InstalledComponent): string {
  const parts = [`installed ${component.generation}`];
  if (component.version !== undefined) parts.push(`version ${component.version}`);
  if (component.updatedAt !== undefined) parts.push(`built ${component.updatedAt}`);
  if (component.digest !== undefined) parts.push(`manifest ${component.digest.slice(0, 19)}`);
  if (component.downgrade) parts.push('DOWNGRADE');
  return parts.join(', ');
}

/** What the new generation replaces: our previous record, or a directory/link made by others. */
async function previousOf(
  paths: CachePaths,
  recorded: ComponentState | undefined,
  key: ComponentKey,
  now: Date,
): Promise<{ previous?: GenerationRecord; migrateTo?: string }> {
  const linkPath = linkOf(paths, key);
  const info = await lstat(linkPath).catch(() => undefined);
  if (info === undefined) return recorded === undefined ? {} : { previous: recorded.current };
  if (info.isDirectory()) {
    // Made by Trivy or by hand: keep it as a generation so rollback can bring it back.
    const generation = generationName(now, 'preexisting');
    const probed = await probeLiveDirectory(paths, key);
    // Moving the directory keeps every entry's inode and mtime: the fingerprint stays valid.
    const fingerprint = await generationFingerprint(linkPath);
    return {
      previous: {
        generation,
        target: linkTargetOf(paths, key, generation),
        bundleId: null,
        keyId: null,
        installedAt: info.mtime.toISOString(),
        ...(probed?.updatedAt === undefined ? {} : { updatedAt: probed.updatedAt }),
        ...(fingerprint === undefined ? {} : { fingerprint }),
      },
      migrateTo: generationPathOf(paths, key, generation),
    };
  }
  if (info.isSymbolicLink()) {
    const target = await readlink(linkPath);
    if (recorded !== undefined && recorded.current.target === target) return { previous: recorded.current };
    return {
      previous: {
        generation: null,
        target,
        bundleId: null,
        keyId: null,
        installedAt: info.mtime.toISOString(),
      },
    };
  }
  throw new ImporterError(
    'CACHE_STATE_INVALID',
    `${linkPath} is neither a directory nor a link; it was left alone`,
    {
      path: linkPath,
      hint: `move ${linkPath} away and import again`,
    },
  );
}
