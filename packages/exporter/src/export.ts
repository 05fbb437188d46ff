import { createHash, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  MANIFEST_MEDIA_TYPE,
  asFileSystemError,
  fileSystemError,
  ignoreProgress,
  type BundleManifest,
  type Component,
  type OciComponentKind,
  type ProgressListener,
  type SigningKey,
} from '@trivy-airgap/format';
import {
  OciLayout,
  RegistryClient,
  createHttpClient,
  type OciEvent,
  type RetryOptions,
  type TransportOptions,
} from '@trivy-airgap/oci';
import {
  COMPONENT_KINDS,
  TrivyError,
  defaultSources,
  trivyCapabilities,
  type DefaultSources,
} from '@trivy-airgap/trivy';
import { assertOutputFree, writeBundle, type BundleEntry, type WrittenBundle } from './bundle-writer.js';
import { ExporterError } from './errors.js';
import {
  EXPORT_STEPS,
  bytesEntry,
  type ExportStepContext,
  type FetchedComponent,
} from './component-steps.js';
import { creationTime, defaultWorkDir, type VexRepositorySpec } from './options.js';
import { lockWorkDir, pruneWorkDir } from './work-dir.js';

export type ExportComponentKind = OciComponentKind | 'vex';
/** Every kind, in the component table's order (the order of the bundle). */
export const EXPORT_COMPONENT_KINDS: readonly ExportComponentKind[] = COMPONENT_KINDS;

/** How to reach registries (and VEX servers): Trivy's flags, passed through to packages/oci. */
export interface RegistryOptions {
  /** `--username` / `--password`, for every registry. */
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** `--registry-token`: a Bearer token for every registry. */
  readonly registryToken?: string | undefined;
  /** `--ca-cert`: an extra CA (PEM) trusted for registries and VEX servers. */
  readonly caCertPem?: string | undefined;
  /** `--insecure`: skip TLS verification. */
  readonly insecure?: boolean | undefined;
  /** `--plain-http`: talk HTTP to registries. */
  readonly plainHttp?: boolean | undefined;
  /** Retry policy of the transport (tests make it fast). */
  readonly retry?: RetryOptions | undefined;
  /** Read Docker's config.json for credentials (default true). */
  readonly useDockerConfig?: boolean | undefined;
}

export interface ExportOptions {
  /** The bundle path (`trivy-bundle.tgz`). */
  readonly output: string;
  /** What to export (`--all` = every kind). */
  readonly components: readonly ExportComponentKind[];
  /**
   * Each artifact's repositories (`--db-repository`, … the table's repositoryFlag), in fallback
   * order; one where Trivy takes one (the table's repositoryList). Absent or empty: what the
   * targeted Trivy uses.
   */
  readonly repositories?: { readonly [K in OciComponentKind]?: readonly string[] | undefined };
  /** `--vex-repository [NAME=]URL` (default: VEX Hub named `default`). */
  readonly vexRepositories?: readonly VexRepositorySpec[] | undefined;
  /** `--trivy-version`: pick the sources and tags that Trivy release uses. */
  readonly trivyVersion?: string | undefined;
  /** The signing key, or null for an explicitly unsigned bundle. */
  readonly signingKey: SigningKey | null;
  /** Validity from `created`; default 30 days. */
  readonly expiresInMs?: number | undefined;
  readonly splitSize?: number | undefined;
  readonly force?: boolean | undefined;
  /** Content-addressed download cache; default `defaultWorkDir(env)`. */
  readonly workDir?: string | undefined;
  readonly registry?: RegistryOptions | undefined;
  /** Confirm every DB layer digest with a second registry before accepting it. */
  readonly verifyMirrors?: boolean | undefined;
  /** Files carried beside the bundle and listed in its checksum file (`--with-tool`). */
  readonly companions?: readonly string[] | undefined;
  readonly toolVersion: string;
  /** SOURCE_DATE_EPOCH, GITHUB_API_URL, GITHUB_TOKEN, proxies, HOME/XDG_CACHE_HOME; default process.env. */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** The clock, for tests; SOURCE_DATE_EPOCH wins over it. */
  readonly now?: Date | undefined;
  readonly onProgress?: ProgressListener | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** One exported component, as the `--json` summary shows it. */
export interface ExportedComponent {
  readonly kind: ExportComponentKind;
  /** VEX repository name. */
  readonly name?: string | undefined;
  /** What was asked for (first repository, or the VEX repository URL). */
  readonly source: string;
  /** What actually served it: the mirror reference, or the archive URL after redirects. */
  readonly servedBy: string;
  /** Manifest digest (OCI) or archive digest (VEX). */
  readonly digest: string;
  /** Layer digest (OCI only). */
  readonly layerDigest?: string | undefined;
  /** Layer size (OCI) or archive size (VEX), in bytes. */
  readonly size: number;
  /** Upstream build time: index.json updated_at (VEX). */
  readonly updatedAt?: string | undefined;
  /** When the OCI artifact was pushed (`org.opencontainers.image.created`). */
  readonly published?: string | undefined;
  /** Checks bundle version annotation. */
  readonly version?: string | undefined;
  /** The layer/archive was already in the work dir (not downloaded again). */
  readonly reused: boolean;
  /** `--verify-mirrors`: the other registries that served the same layer digest. */
  readonly confirmedBy?: readonly string[] | undefined;
}

export interface ExportResult {
  readonly bundle: WrittenBundle;
  readonly manifest: BundleManifest;
  readonly components: readonly ExportedComponent[];
  readonly workDir: string;
}

const DEFAULT_EXPIRY_MS = 30 * 86_400_000;
const OCI_LAYOUT_BYTES = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
const REF_NAME = 'org.opencontainers.image.ref.name';

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A stable id for reproducible exports (SOURCE_DATE_EPOCH): a UUID-shaped sha256 of what the
 * bundle holds, so the same inputs give the same manifest bytes.
 */
function contentBundleId(created: string, components: readonly Component[]): string {
  const hex = createHash('sha256').update(JSON.stringify({ created, components })).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Exports Trivy's offline content into one signed bundle: resolves the sources (Trivy's defaults
 * for the targeted release, or the given repositories), downloads through the content-addressed
 * work dir (resumable, reusing unchanged blobs), checks every artifact the way Trivy would, and
 * writes the bundle with its checksum file. Progress and warnings go to `onProgress`.
 */
export async function exportBundle(options: ExportOptions): Promise<ExportResult> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const env = options.env ?? process.env;
  const kinds = EXPORT_COMPONENT_KINDS.filter((kind) => options.components.includes(kind));
  if (kinds.length === 0) {
    throw new ExporterError('NO_COMPONENTS', 'nothing to export', {
      hint: 'pass --all, or any of --db --java-db --checks --vex',
    });
  }
  const output = resolve(options.output);
  const force = options.force === true;
  // Before any download: a name clash or an unwritable directory should cost nothing.
  await assertOutputFree(output, force);
  await assertWritableDirectory(dirname(output));

  let sources: DefaultSources;
  try {
    sources = defaultSources(options.trivyVersion);
  } catch (error) {
    if (error instanceof TrivyError) {
      throw new ExporterError('INVALID_OPTION', error.message, {
        cause: error,
        ...(error.hint === undefined ? {} : { hint: error.hint }),
      });
    }
    throw error;
  }
  if (kinds.includes('vex') && !trivyCapabilities(sources.trivyVersions).vexRepositories) {
    // Before 0.54, --vex takes only a file path: a VEX repository in the bundle would be dead weight.
    throw new ExporterError(
      'INVALID_OPTION',
      `Trivy ${options.trivyVersion ?? sources.trivyVersions} cannot read VEX repositories (Trivy 0.54 and later can)`,
      { hint: 'leave out --vex (use --db --java-db --checks instead of --all), or target a newer Trivy' },
    );
  }
  const { created, reproducible } = creationTime(env, options.now ?? new Date());
  const expiresInMs = options.expiresInMs ?? DEFAULT_EXPIRY_MS;

  const workDir = resolve(options.workDir ?? defaultWorkDir(env));
  let layout: OciLayout;
  let unlock: () => Promise<void>;
  try {
    unlock = await lockWorkDir(workDir);
  } catch (cause) {
    throw workDirError(workDir, cause);
  }
  try {
    // A cache: every later use of a blob re-checks its digest (bundleEntries, `verify`) and removes a
    // damaged copy, so no fsyncs.
    layout = await OciLayout.open(join(workDir, 'oci'), { create: true, durable: false });
  } catch (cause) {
    await unlock();
    throw workDirError(workDir, cause);
  }
  const registry = options.registry ?? {};
  const transport: TransportOptions = {
    userAgent: `trivy-airgap/${options.toolVersion}`,
    plainHttp: registry.plainHttp,
    insecure: registry.insecure,
    caCertPem: registry.caCertPem,
    env,
    retry: registry.retry,
  };
  const onEvent = (event: OciEvent) => reportOciEvent(onProgress, event);
  const client = new RegistryClient({
    transport,
    credentials: {
      username: registry.username,
      password: registry.password,
      registryToken: registry.registryToken,
      useDockerConfig: registry.useDockerConfig,
      env,
    },
    onEvent,
  });
  const http = createHttpClient({ ...transport, onEvent });

  // One signal for the whole run: the first failing component aborts the others.
  const run = new AbortController();
  const abortRun = () => run.abort(options.signal?.reason);
  if (options.signal?.aborted === true) abortRun();
  options.signal?.addEventListener('abort', abortRun, { once: true });
  try {
    const context: ExportStepContext = {
      oci: {
        client,
        layout,
        onProgress,
        signal: run.signal,
        blobLocks: new Map<string, Promise<unknown>>(),
      },
      vex: { http, layout, stateDir: join(workDir, 'vex'), env, onProgress, signal: run.signal },
      sources,
      options,
      signal: run.signal,
    };
    // One step per kind, all at the same time (their manifest, config and layer requests overlap);
    // the results keep the order of `kinds`, so the bundle does not depend on who finished first.
    const tasks = kinds.map((kind) => EXPORT_STEPS[kind].fetch(context));
    // Downloads write into the work dir: a full or read-only disk there is named as such.
    await settleAll(run, tasks).catch((error: unknown) => {
      // Layer requests already answered are dropped (their bytes are never read).
      for (const task of tasks)
        task.then(
          (items) => {
            for (const item of items) item.pendingLayer?.cancel();
          },
          () => undefined,
        );
      throw asFileSystemError(error, { where: workDir, elsewhere: OTHER_WORK_DIR });
    });
    // Every task fulfilled (settleAll threw otherwise): this await returns at once.
    const fetched = (await Promise.all(tasks)).flat();
    const summaries = fetched.map((item) => item.summary);
    const entries = bundleEntries(fetched, workDir);
    const components = fetched.map((item) => item.component);
    const createdText = created.toISOString();
    const manifest = {
      mediaType: MANIFEST_MEDIA_TYPE,
      bundleId: reproducible ? contentBundleId(createdText, components) : randomUUID(),
      created: createdText,
      expires: new Date(created.getTime() + expiresInMs).toISOString(),
      tool: { name: 'trivy-airgap', version: options.toolVersion },
      trivyVersions: sources.trivyVersions,
      components,
    } as const;
    // Layers not in the work dir stream from the registry into the bundle now (written once,
    // after manifest.json and its signature, which need only the digests and sizes).
    let bundle: WrittenBundle;
    try {
      bundle = await writeBundle({
        output,
        manifest,
        entries,
        signingKey: options.signingKey,
        mtime: created,
        ...(options.splitSize === undefined ? {} : { splitSize: options.splitSize }),
        force,
        ...(options.companions === undefined ? {} : { companions: options.companions }),
        onProgress,
        signal: run.signal,
      });
    } catch (error) {
      run.abort(error); // stops a layer still streaming (nothing will read it)
      throw error;
    } finally {
      for (const item of fetched) item.pendingLayer?.cancel();
    }
    const used = new Set<string>();
    for (const entry of entries) if ('file' in entry.source) used.add(entry.source.file);
    for (const item of fetched) for (const file of item.used) used.add(file);
    const pruned = await pruneWorkDir(workDir, used, options.now ?? new Date());
    if (pruned > 0)
      onProgress({ type: 'note', message: `removed ${pruned} unused files from the work dir ${workDir}` });
    return { bundle, manifest: bundle.manifest, components: summaries, workDir };
  } finally {
    options.signal?.removeEventListener('abort', abortRun);
    await Promise.all([client.close(), http.close()]).catch(() => undefined);
    await unlock();
  }
}

/**
 * Waits for EVERY task, so nothing is left running after a failure; the first task to fail
 * aborts the others (they then fail as cancelled) and its error is the one thrown.
 */
async function settleAll(run: AbortController, tasks: readonly Promise<unknown>[]): Promise<void> {
  let first: { error: unknown } | undefined;
  await Promise.all(
    tasks.map((task) =>
      task.catch((error: unknown) => {
        first ??= { error };
        run.abort(error);
      }),
    ),
  );
  if (first !== undefined) throw first.error;
}

const OTHER_WORK_DIR = 'pass --work-dir DIR on another disk';

function workDirError(workDir: string, cause: unknown): unknown {
  if (cause instanceof ExporterError) return cause;
  return (
    fileSystemError(cause, { where: workDir, elsewhere: OTHER_WORK_DIR }) ??
    new ExporterError('OUTPUT_FAILED', `cannot use the work dir ${workDir}: ${describe(cause)}`, {
      cause,
      path: workDir,
      hint: 'pass --work-dir DIR on a writable disk with room for the downloads',
    })
  );
}

async function assertWritableDirectory(dir: string): Promise<void> {
  const pathHint = 'create the directory first, or choose another -o path';
  let info;
  try {
    info = await stat(dir);
    await access(dir, constants.W_OK);
  } catch (cause) {
    throw asFileSystemError(cause, { where: dir, elsewhere: 'choose another -o path', pathHint });
  }
  if (!info.isDirectory()) {
    throw new ExporterError('OUTPUT_FAILED', `cannot write the bundle into ${dir}: not a directory`, {
      path: dir,
      hint: pathHint,
    });
  }
}

/**
 * Every file of the bundle besides manifest.json and its signature (docs/bundle-format.md): the
 * OCI layout's own files when there is an OCI artifact, then each component's entries in order.
 */
function bundleEntries(fetched: readonly FetchedComponent[], workDir: string): BundleEntry[] {
  const entries = new Map<string, BundleEntry>();
  const add = (entry: BundleEntry) => {
    // Artifacts may share a blob (the 2-byte OCI empty config): one entry per path.
    if (!entries.has(entry.path)) entries.set(entry.path, entry);
  };
  const indexed = fetched.flatMap((item) => (item.indexed === undefined ? [] : [item.indexed]));
  if (indexed.length > 0) {
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: indexed.map(({ mediaType, digest, size, layoutRef }) => ({
        mediaType,
        digest,
        size,
        annotations: { [REF_NAME]: layoutRef },
      })),
    };
    add(bytesEntry('oci/oci-layout', OCI_LAYOUT_BYTES));
    add(bytesEntry('oci/index.json', Buffer.from(JSON.stringify(index))));
  }
  for (const item of fetched) {
    for (const entry of item.entries) {
      const { source } = entry;
      // A layer streaming from the registry tees into the work dir: a full disk there is named.
      add(
        'stream' in source
          ? {
              ...entry,
              source: {
                stream: (write) =>
                  source.stream(write).catch((error: unknown) => {
                    throw asFileSystemError(error, { where: workDir, elsewhere: OTHER_WORK_DIR });
                  }),
              },
            }
          : entry,
      );
    }
  }
  return [...entries.values()];
}

function reportOciEvent(onProgress: ProgressListener, event: OciEvent): void {
  switch (event.type) {
    case 'retry':
      onProgress({
        type: 'note',
        message: `retrying ${event.url} in ${Math.round(event.delayMs / 100) / 10} s (${event.reason}, attempt ${event.attempt})`,
      });
      break;
    case 'resume':
      onProgress({ type: 'note', message: `resuming ${event.digest.slice(0, 19)} at byte ${event.offset}` });
      break;
    case 'range-ignored':
      onProgress({
        type: 'warning',
        message: `the registry ignored the Range request for ${event.digest.slice(0, 19)}; downloading it again`,
      });
      break;
    default:
      break;
  }
}
