import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  ignoreProgress,
  resolveInside,
  type BundleFile,
  type Component,
  type OciComponent,
  type ProgressEvent,
  type ProgressListener,
  type TrustedKey,
  type VexComponent,
} from '@trivy-airgap/format';
import {
  ARTIFACTS,
  COMPONENTS,
  TrivyError,
  VEX_SPEC_VERSION,
  checksMajorVersion,
  perKind,
  renderDbMetadata,
  type DbMetadataFields,
  renderPolicyMetadata,
  renderVexCacheJson,
  unpackVexArchive,
} from '@trivy-airgap/trivy';
import { componentKeyOf, type ComponentKey } from './cache.js';
import { FileSink, checkLayerContent } from './content.js';
import { ImporterError, abortedError } from './errors.js';
import { LayerUnpacker } from './layer.js';
import type { PolicyOptions, TrustedBundle, VerificationCheck } from './policy.js';
import { readBundle, type EntryRole, type EntrySink, type ReadBundleResult } from './reader.js';
import type { BundleInput } from './source.js';

/**
 * The ONE pass behind `verify`, `import` and `import --to-registry/--vex-serve-dir`: read and
 * verify the bundle (reader.ts), unpack and check every layer, check every VEX archive, apply
 * Trivy's rules (DB schema, spec version, index.json against the signed manifest), and — only
 * for an import — write the component directories into a staging directory. `verify` is this
 * pass with the writing switched off (no staging directory: layers are inspected in memory, VEX
 * archives go to a temporary directory outside any cache), so the two cannot disagree.
 */

export interface PrepareBundleOptions extends PolicyOptions {
  readonly bundle: BundleInput;
  readonly trustedKeys: readonly TrustedKey[];
  readonly stdin?: Readable;
  readonly onProgress?: ProgressListener;
  /** Stops the pass; it then rejects with ABORTED and leaves nothing behind. */
  readonly signal?: AbortSignal;
  /** Runs once signature and policy passed, before the first content entry is read. */
  readonly onTrusted?: (bundle: TrustedBundle) => Promise<void>;
  /**
   * Import: called after `onTrusted`, returns the (existing, empty) staging directory to write
   * the component directories into (`<stage>/<component key>/`). Absent: nothing is written.
   */
  readonly stage?: (bundle: TrustedBundle) => Promise<string>;
  /** Publish: keep a verified copy of an entry at the returned path (a new file). */
  readonly copyEntry?: (file: BundleFile, role: EntryRole) => string | undefined;
  /** DownloadedAt and VEX cache.json times of what is written (tests). */
  readonly clock?: () => Date;
  /**
   * Runs once every component passed its checks, with what the layers said (import: the final
   * anti-rollback decision), before the pass reports the bundle verified.
   */
  readonly onPrepared?: (components: readonly PreparedComponent[]) => Promise<void>;
}

export interface PreparedComponent {
  readonly component: Component;
  readonly key: ComponentKey;
  /** The finished directory in staging (import); undefined when nothing was written. */
  readonly dir: string | undefined;
  /** A DB layer's metadata.json as published (read from the layer; anti-rollback uses UpdatedAt). */
  readonly upstream?: DbMetadataFields;
}

/** What a kind's prepare step gets once the bundle pass verified every byte. */
interface PrepareInput {
  readonly verified: ReadBundleResult;
  readonly key: ComponentKey;
  /** The staging directory (import), or undefined (verify: nothing is written). */
  readonly stage: string | undefined;
  /** The component's directory in staging. */
  readonly dir: string | undefined;
  /** An OCI layer, as the pass read it. */
  readonly layer: ReadLayer | undefined;
  /** A VEX archive, where the pass saved it. */
  readonly archive: string | undefined;
  /** DownloadedAt and cache.json times. */
  readonly preparedAt: Date;
}

interface PrepareOutcome {
  readonly check: VerificationCheck;
  readonly upstream?: DbMetadataFields | undefined;
}

type PrepareStep<C extends Component> = (component: C, input: PrepareInput) => Promise<PrepareOutcome>;

/**
 * Each kind's content step: checked against Trivy's rules (the component table's) and the signed
 * manifest, then — for an import — its directory written in staging. The kind's specifics; the
 * pass, staging, install and rollback around it are the same for every kind.
 */
const PREPARE_STEPS = perKind(() => prepareOci, prepareVex);

function prepareComponent(component: Component, input: PrepareInput): Promise<PrepareOutcome> {
  // The map is keyed by kind, so the step matches the component (TypeScript cannot correlate it).
  const step = PREPARE_STEPS[component.kind] as PrepareStep<Component>;
  return step(component, input);
}

export interface PreparedBundle extends ReadBundleResult {
  /** In manifest order. */
  readonly components: readonly PreparedComponent[];
  /** When the staged metadata says it was downloaded (DownloadedAt, VEX cache.json). */
  readonly preparedAt: Date;
}

export function keyOf(component: Component): ComponentKey {
  return componentKeyOf(component.kind, component.kind === 'vex' ? component.name : undefined);
}

/** Feeds one entry to several sinks (e.g. a work copy and the layer inspector). */
class TeeSink implements EntrySink {
  constructor(private readonly sinks: readonly EntrySink[]) {}

  async write(chunk: Buffer): Promise<void> {
    for (const sink of this.sinks) await sink.write(chunk);
  }

  async end(): Promise<void> {
    for (const sink of this.sinks) await sink.end();
  }

  async abort(): Promise<void> {
    for (const sink of this.sinks) await sink.abort();
  }
}

/** Trivy reads one vex-repo-spec version; a repository for another one is not installable. */
export function requireSupportedSpecVersion(component: VexComponent): void {
  if (component.specVersion === VEX_SPEC_VERSION) return;
  throw new ImporterError(
    'BUNDLE_CONTENT_INVALID',
    `VEX repository ${component.name}: spec version ${JSON.stringify(component.specVersion)} is not ${VEX_SPEC_VERSION}, the one Trivy reads`,
    { hint: 'the bundle was made by a broken exporter or edited; export it again' },
  );
}

/** A VEX archive problem is a problem of the bundle: reported with a bundle code (CLI exit 3). */
function asBundleError(error: unknown, what: string): unknown {
  if (!(error instanceof TrivyError)) return error;
  return new ImporterError(
    error.code === 'VEX_ARCHIVE_UNSAFE' ? 'BUNDLE_ENTRY_UNSAFE' : 'BUNDLE_CONTENT_INVALID',
    `${what}: ${error.message}`,
    { cause: error, hint: 'the bundle carries a broken or hostile archive; nothing was installed' },
  );
}

export async function prepareBundle(options: PrepareBundleOptions): Promise<PreparedBundle> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const clock = options.clock ?? (() => new Date());
  const signal = options.signal;
  const layers = new Map<ComponentKey, ReadLayer>();
  const archives = new Map<ComponentKey, string>();
  let stage: string | undefined;
  /** VEX archives (zip needs random access): in staging for an import, a temp dir otherwise. */
  let scratch: string | undefined;
  const scratchDir = async (): Promise<string> => {
    if (scratch === undefined) {
      if (stage === undefined) {
        scratch = await mkdtemp(join(tmpdir(), 'trivy-airgap-verify-'));
      } else {
        scratch = resolveInside(stage, 'archives', 'staging');
      }
    }
    return scratch;
  };
  // The bundle counts as verified once its content passed too: a layer refused after the last
  // byte was read must not first be reported as a verified bundle.
  let bundleVerified: ProgressEvent | undefined;
  const readProgress: ProgressListener = (event) => {
    if (event.type === 'task-done' && event.task === 'bundle') bundleVerified = event;
    else onProgress(event);
  };
  try {
    const verified = await readBundle(options.bundle, {
      ...options,
      onProgress: readProgress,
      onTrusted: async (trusted) => {
        await options.onTrusted?.(trusted);
        if (options.stage !== undefined) stage = await options.stage(trusted);
      },
      openEntry: async (file, role) => {
        const sinks: EntrySink[] = [];
        const copy = options.copyEntry?.(file, role);
        if (copy !== undefined) sinks.push(new FileSink(copy));
        if (role.kind === 'layer') {
          const key = keyOf(role.component);
          const facts = ARTIFACTS[role.component.kind];
          const limits = facts.unpackLimits;
          const later = limits.checkBeforeWriting;
          if (later !== undefined && file.size > later.maxCompressedBytes) {
            throw new ImporterError(
              'BUNDLE_CONTENT_INVALID',
              `${role.component.kind} layer: ${file.size} bytes compressed, more than the ${later.maxCompressedBytes} such a layer may have`,
              { path: file.path, expected: later.maxCompressedBytes, found: file.size },
            );
          }
          // Written while read, or (layers of many small files) checked first, written after.
          const writeNow = later === undefined ? stage : undefined;
          const unpacker = new LayerUnpacker(
            `${role.component.kind} layer`,
            file.size,
            writeNow === undefined ? undefined : layerDir(writeNow, role.component),
            limits,
            keptFile(role.component.kind),
          );
          const compressed = stage !== undefined && later !== undefined ? new MemorySink() : undefined;
          layers.set(key, { unpacker, compressed });
          sinks.push(unpacker);
          if (compressed !== undefined) sinks.push(compressed);
        } else if (role.kind === 'vex-archive') {
          const key = keyOf(role.component);
          const path = resolveInside(
            await scratchDir(),
            `${role.component.name}.${role.component.archiveType}`,
            'VEX archive',
          );
          archives.set(key, path);
          sinks.push(new FileSink(path));
        }
        return sinks.length > 1 ? new TeeSink(sinks) : sinks[0];
      },
    });

    const preparedAt = clock();
    const checks: VerificationCheck[] = [...verified.checks];
    const components: PreparedComponent[] = [];
    for (const component of verified.manifest.components) {
      if (signal?.aborted === true) throw abortedError();
      const key = keyOf(component);
      const dir = stage === undefined ? undefined : resolveInside(stage, key, 'staging');
      const { check, upstream } = await prepareComponent(component, {
        verified,
        key,
        stage,
        dir,
        layer: layers.get(key),
        archive: archives.get(key),
        preparedAt,
      });
      checks.push(check);
      components.push({ component, key, dir, ...(upstream === undefined ? {} : { upstream }) });
    }
    await options.onPrepared?.(components);
    if (bundleVerified !== undefined) onProgress(bundleVerified);
    return { ...verified, checks, components, preparedAt };
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

/** A layer as the bundle pass read it: unpacked (or inspected), and kept if it is written later. */
interface ReadLayer {
  readonly unpacker: LayerUnpacker;
  readonly compressed: MemorySink | undefined;
}

/** Keeps an entry's bytes in memory (a small layer, written once it passed every check). */
class MemorySink implements EntrySink {
  readonly chunks: Buffer[] = [];

  write(chunk: Buffer): Promise<void> {
    this.chunks.push(chunk);
    return Promise.resolve();
  }

  end(): Promise<void> {
    return Promise.resolve();
  }

  abort(): Promise<void> {
    this.chunks.length = 0;
    return Promise.resolve();
  }
}

/** Where a component's layer is unpacked in staging: the table's layer path (`policy/content/`). */
function layerDir(stage: string, component: OciComponent): string {
  const key = keyOf(component);
  const layerPath = ARTIFACTS[component.kind].layerPath;
  return resolveInside(stage, layerPath === '' ? key : `${key}/${layerPath}`, 'staging');
}

/** The file a layer of this kind carries for us to read: a DB's metadata.json (checks have none). */
function keptFile(kind: OciComponent['kind']): string | undefined {
  const facts = ARTIFACTS[kind];
  return facts.metadataFormat === 'db' ? facts.metadataFile : undefined;
}

/** A layer's content against Trivy's rules and the signed manifest; then its metadata.json. */
async function prepareOci(component: OciComponent, input: PrepareInput): Promise<PrepareOutcome> {
  const { stage, preparedAt } = input;
  const read = input.layer;
  if (read === undefined) throw new Error(`internal: no layer read for ${input.key}`);
  let layer = await read.unpacker.result();
  checkLayerContent(component, layer);
  if (stage !== undefined && read.compressed !== undefined) {
    // Every check passed in memory: now the same unpacking, writing (and checking) again.
    const writer = new LayerUnpacker(
      `${component.kind} layer`,
      component.layer.size,
      layerDir(stage, component),
      ARTIFACTS[component.kind].unpackLimits,
      keptFile(component.kind),
    );
    try {
      for (const chunk of read.compressed.chunks) await writer.write(chunk);
      await writer.end();
    } catch (error) {
      await writer.abort();
      throw error;
    }
    layer = await writer.result();
  }
  const dir = stage === undefined ? undefined : resolveInside(stage, keyOf(component), 'staging');
  const upstream = checkLayerContent(component, layer);
  const facts = ARTIFACTS[component.kind];
  // DB metadata is upstream's with a real DownloadedAt; policy metadata is ours to write.
  const metadata =
    facts.metadataFormat === 'db' && upstream !== undefined
      ? renderDbMetadata(upstream, preparedAt)
      : renderPolicyMetadata({
          digest: component.manifest.digest,
          downloadedAt: preparedAt,
          version: checksMajorVersion(component.version),
        });
  if (dir !== undefined) await writeFile(join(dir, facts.metadataFile), metadata, { mode: 0o644 });
  return {
    check: {
      check: 'layer-content',
      subject: component.kind,
      ok: true,
      detail: `${layer.files.length} files, ${layer.bytes} bytes unpacked; contents match the manifest`,
    },
    upstream,
  };
}

/** A VEX repository: spec version, the archive unpacked (or checked), index.json vs the manifest. */
async function prepareVex(component: VexComponent, input: PrepareInput): Promise<PrepareOutcome> {
  const { verified, archive, dir, preparedAt } = input;
  requireSupportedSpecVersion(component);
  const manifestBytes = verified.smallFiles.get(component.manifestPath);
  if (archive === undefined || manifestBytes === undefined) {
    throw new Error(`internal: VEX repository ${component.name} was not read`);
  }
  // The directory name is Trivy's constant, never the manifest's string.
  const files = COMPONENTS.vex.files;
  const into = dir === undefined ? undefined : resolveInside(dir, files.content, 'VEX spec version');
  const summary = await unpackVexArchive(archive, component.archiveType, component.subdir, into).catch(
    (error: unknown) => {
      throw asBundleError(error, `VEX repository ${component.name}`);
    },
  );
  // Anti-rollback compares the manifest's updatedAt: it must be what index.json says.
  if (
    component.updatedAt !== undefined &&
    Date.parse(component.updatedAt) !== Date.parse(summary.index.updatedAt ?? '')
  ) {
    throw new ImporterError(
      'BUNDLE_CONTENT_INVALID',
      `VEX repository ${component.name}: index.json updated_at is ${summary.index.updatedAt ?? 'absent'}, the signed manifest says ${component.updatedAt}`,
      { hint: 'the bundle was made by a broken exporter or edited; export it again' },
    );
  }
  if (dir !== undefined) {
    await writeFile(join(dir, files.manifest), manifestBytes, { mode: 0o644 });
    await writeFile(
      join(dir, files.cacheJson),
      renderVexCacheJson({
        updatedAt: preparedAt,
        etags: component.etag === undefined ? {} : { [component.location]: component.etag },
      }),
      { mode: 0o644 },
    );
  }
  const check: VerificationCheck = {
    check: 'vex-archive',
    subject: component.name,
    ok: true,
    detail: `${summary.files.length} files below ${component.subdir === '' ? 'the root' : component.subdir}/, index.json lists ${summary.index.packages.length} packages (updated ${summary.index.updatedAt ?? 'at an unknown time'})`,
  };
  return { check };
}
