import {
  type Descriptor as BundleDescriptor,
  type OciComponent,
  type OciComponentKind,
  type ProgressListener,
  formatBytes,
} from '@trivy-airgap/format';
import {
  INDEX_MEDIA_TYPES,
  OciError,
  formatReference,
  parseImageManifest,
  parseReference,
  type Descriptor,
  type ImageReference,
  type ManifestResult,
  type OciLayout,
  type RegistryClient,
} from '@trivy-airgap/oci';
import {
  ARTIFACTS,
  CREATED_ANNOTATION,
  TrivyError,
  checkArtifactManifest,
  checksMajorVersion,
  normalizeRepository,
  trivyFallsBack,
  type CheckedArtifact,
} from '@trivy-airgap/trivy';
import type { BundleStream } from './bundle-writer.js';
import { ExporterError } from './errors.js';
import { happenedAgo } from './human.js';

/** What an OCI component fetch needs: a registry client, the work dir's layout, where to report. */
export interface OciFetchContext {
  readonly client: RegistryClient;
  /** The work dir's content-addressed blob store (an OCI image layout). */
  readonly layout: OciLayout;
  readonly onProgress: ProgressListener;
  readonly signal?: AbortSignal | undefined;
  /**
   * Work on one digest in progress, when several components are fetched at once: they may share
   * a blob (the 2-byte empty config), and two downloads into one partial file would clash.
   */
  readonly blobLocks?: Map<string, Promise<unknown>> | undefined;
}

/** Runs `work` once no other fetch of this context is storing the same digest. */
async function withBlobLock<T>(context: OciFetchContext, digest: string, work: () => Promise<T>): Promise<T> {
  const locks = context.blobLocks;
  if (locks === undefined) return work();
  const before = locks.get(digest) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(work);
  const tail = mine.catch(() => undefined);
  locks.set(digest, tail);
  try {
    return await mine;
  } finally {
    if (locks.get(digest) === tail) locks.delete(digest);
  }
}

/** A blob of the component as stored in the work dir; `fresh` when this run downloaded (and verified) it. */
export interface StoredBlob {
  readonly descriptor: BundleDescriptor;
  /** Its path in the work dir. */
  readonly file: string;
  readonly fresh: boolean;
}

/**
 * A layer that is not in the work dir yet: the registry has answered its request (so a blob it
 * lacks failed over to the next repository like any other fetch), and its bytes flow when the
 * bundle is written, straight into the bundle and into the work dir (for reuse and resume).
 */
export interface PendingLayer {
  readonly descriptor: BundleDescriptor;
  /** Writes the verified layer into the bundle (see BundleStream), then commits the work-dir copy. */
  readonly stream: BundleStream;
  /** Drops the held answer when the layer is not streamed after all; safe after `stream`. */
  readonly cancel: () => void;
}

export interface FetchedOciComponent {
  readonly component: OciComponent;
  /** The manifest bytes exactly as the registry sent them (their sha256 is the manifest digest). */
  readonly manifestBytes: Buffer;
  /** Config and (when already stored) layer blobs, in the work dir's layout. */
  readonly blobs: readonly StoredBlob[];
  /** The layer, when it is downloaded while the bundle is written. */
  readonly pendingLayer: PendingLayer | undefined;
  /** True when the layer was already in the work dir (an earlier export, unchanged digest). */
  readonly reusedLayer: boolean;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Fetches one of Trivy's OCI artifacts from the first repository of `repositories` that serves it,
 * with Trivy's rules: the tag rule for tagless references, fallback to the next repository ONLY
 * when Trivy would (`trivyFallsBack`), the artifact checks (one layer, exact media type,
 * title). Layers are hashed, not inflated: the importer reads a DB's metadata.json from the layer.
 */
export async function fetchOciComponent(
  context: OciFetchContext,
  kind: OciComponentKind,
  repositories: readonly string[],
  options: {
    expectedChecksMajor?: number | undefined;
    /** The targeted Trivy (release or range): its tag rule for a tagless repository applies. */
    trivyVersion?: string | undefined;
  } = {},
): Promise<FetchedOciComponent> {
  if (repositories.length === 0) {
    throw new ExporterError('INVALID_OPTION', `no repository given for the ${ARTIFACTS[kind].label}`);
  }
  const references = repositories.map((repository) => {
    try {
      return parseReference(normalizeRepository(kind, repository, options.trivyVersion));
    } catch (cause) {
      throw new ExporterError('INVALID_OPTION', `${repository}: ${describeError(cause)}`, { cause });
    }
  });
  const task = kind;
  context.onProgress({ type: 'task-start', task, label: ARTIFACTS[kind].label });
  const failures: string[] = [];
  for (const [index, ref] of references.entries()) {
    const name = formatReference(ref);
    try {
      const fetched = await fetchFrom(context, kind, ref, references[0] ?? ref, options);
      const summary = `${formatBytes(fetched.component.layer.size)}, layer ${fetched.component.layer.digest.slice(0, 19)} from ${name}${happenedAgo('published', fetched.component.annotations[CREATED_ANNOTATION])}`;
      if (fetched.pendingLayer === undefined) {
        context.onProgress({ type: 'task-done', task, summary: `${summary} (reused from the work dir)` });
        return fetched;
      }
      // The task ends when the layer has streamed into the bundle.
      const pending = fetched.pendingLayer;
      const stream: BundleStream = async (write) => {
        try {
          await pending.stream(write);
        } catch (error) {
          context.onProgress({ type: 'task-fail', task, reason: describeError(error) });
          throw streamFailure(kind, name, error, context.signal);
        }
        context.onProgress({ type: 'task-done', task, summary });
      };
      return { ...fetched, pendingLayer: { ...pending, stream } };
    } catch (error) {
      if (context.signal?.aborted === true) {
        context.onProgress({ type: 'task-fail', task, reason: 'cancelled' });
        throw new ExporterError('ABORTED', 'the export was cancelled', { cause: error });
      }
      const next = references[index + 1];
      if (error instanceof OciError && trivyFallsBack(error) && next !== undefined) {
        // Exactly Trivy's rule: only a failure Trivy treats as temporary moves on to the next
        // repository; anything else (a bare 404 on a blob included) stops here.
        failures.push(`${name}: ${error.message}`);
        context.onProgress({
          type: 'warning',
          message: `${name}: ${error.message}; trying ${formatReference(next)}`,
        });
        continue;
      }
      context.onProgress({ type: 'task-fail', task, reason: describeError(error) });
      if (error instanceof ExporterError) throw error;
      if (error instanceof OciError) {
        if (trivyFallsBack(error)) {
          failures.push(`${name}: ${error.message}`);
          throw new ExporterError(
            'SOURCES_EXHAUSTED',
            `${ARTIFACTS[kind].label}: every repository failed (${failures.join('; ')})`,
            { cause: error, hint: 'try again later, or name another mirror with the repository flag' },
          );
        }
        const why =
          // Only an answer from the registry raises the fallback question; DNS, refused and TLS
          // failures are named as what they are.
          index === 0 && references.length > 1 && error.status !== undefined
            ? '; not trying the next repository (Trivy falls back only on temporary errors)'
            : '';
        throw new ExporterError('SOURCE_FAILED', `${name}: ${error.message}${why}`, {
          cause: error,
          hint: error.hint ?? `check the repository name (${ARTIFACTS[kind].repositoryFlag})`,
        });
      }
      throw error;
    }
  }
  throw new ExporterError('SOURCES_EXHAUSTED', `${ARTIFACTS[kind].label}: every repository failed`);
}

/** A layer download that failed while the bundle was being written: named like any fetch failure. */
function streamFailure(
  kind: OciComponentKind,
  name: string,
  error: unknown,
  signal: AbortSignal | undefined,
): unknown {
  if (signal?.aborted === true)
    return new ExporterError('ABORTED', 'the export was cancelled', { cause: error });
  if (!(error instanceof OciError)) return error;
  return new ExporterError('SOURCE_FAILED', `${name}: ${error.message}`, {
    cause: error,
    hint:
      error.hint ??
      `export again: it resumes from the work dir (or name another mirror with ${ARTIFACTS[kind].repositoryFlag})`,
    ...(error.expected === undefined ? {} : { expected: error.expected }),
    ...(error.found === undefined ? {} : { found: error.found }),
  });
}

function checkManifest(kind: OciComponentKind, name: string, bytes: Buffer): CheckedArtifact {
  try {
    return checkArtifactManifest(kind, bytes);
  } catch (error) {
    if (error instanceof TrivyError) {
      throw new ExporterError('ARTIFACT_INVALID', `${name}: ${error.message} (rule ${error.code})`, {
        cause: error,
        hint: 'this is not an artifact Trivy would accept; check the repository and tag',
        expected: String(error.context.expected ?? ''),
        found: String(error.context.found ?? ''),
      });
    }
    throw error;
  }
}

async function fetchFrom(
  context: OciFetchContext,
  kind: OciComponentKind,
  ref: ImageReference,
  asked: ImageReference,
  options: { expectedChecksMajor?: number | undefined },
): Promise<FetchedOciComponent> {
  const { client, signal } = context;
  const name = formatReference(ref);
  const manifest = await client.getManifest(ref, { signal });
  if (INDEX_MEDIA_TYPES.has(manifest.mediaType)) {
    throw new ExporterError(
      'ARTIFACT_INVALID',
      `${name}: is an image index, Trivy requires an artifact manifest with exactly one layer`,
    );
  }
  const checked = checkManifest(kind, name, manifest.bytes);
  const parsed = parseImageManifest(manifest.bytes);
  const layer: Descriptor = parsed.layers[0] ?? checked.layer;

  const task = kind;
  context.onProgress({ type: 'task-progress', task, done: 0, total: layer.size });
  // The config, the layer's request and the work-dir copy of the manifest at once: one round trip
  // to the registry instead of three in a row before the first layer byte. The layer is only
  // hashed, never inflated: the importer reads a DB's metadata.json from the layer itself.
  const [config, prepared, copied] = await Promise.allSettled([
    storeBlob(context, ref, parsed.config),
    prepareLayer(context, ref, layer, (done) =>
      context.onProgress({ type: 'task-progress', task, done, total: layer.size }),
    ),
    // Kept in the work dir too, so the layout there is complete for skopeo or a later push.
    context.layout.writeBlobBytes(manifest.bytes, manifest.mediaType),
  ]);
  const pendingLayer =
    prepared.status === 'fulfilled' && 'stream' in prepared.value ? prepared.value : undefined;
  // A registry that lacks the (tiny) config fails with the config's error, as when it was asked first.
  const failed = [config, prepared, copied].find((result) => result.status === 'rejected');
  if (failed !== undefined || config.status !== 'fulfilled' || prepared.status !== 'fulfilled') {
    pendingLayer?.cancel(); // its bytes are never read
    throw failed?.reason;
  }
  const blobs: StoredBlob[] = [config.value];
  if (!('stream' in prepared.value)) blobs.push(prepared.value);
  try {
    return finishComponent(context, kind, ref, asked, options, {
      manifest,
      checked,
      layer,
      blobs,
      pendingLayer,
    });
  } catch (error) {
    pendingLayer?.cancel(); // refused after all: its bytes are never read
    throw error;
  }
}

function finishComponent(
  context: OciFetchContext,
  kind: OciComponentKind,
  ref: ImageReference,
  asked: ImageReference,
  options: { expectedChecksMajor?: number | undefined },
  fetched: {
    manifest: ManifestResult;
    checked: CheckedArtifact;
    layer: Descriptor;
    blobs: StoredBlob[];
    pendingLayer: PendingLayer | undefined;
  },
): FetchedOciComponent {
  const { manifest, checked, layer, blobs, pendingLayer } = fetched;
  const name = formatReference(ref);

  let version: string | undefined;
  if (ARTIFACTS[kind].metadataFormat === 'policy') {
    version = checked.version;
    const major = checksMajorVersion(version);
    if (
      options.expectedChecksMajor !== undefined &&
      major.CustomBuild !== true &&
      major.MajorVersion !== options.expectedChecksMajor
    ) {
      throw new ExporterError(
        'METADATA_INVALID',
        `${name}: checks bundle version ${version ?? '?'} has major ${major.MajorVersion}, the targeted Trivy needs ${options.expectedChecksMajor}`,
        { expected: String(options.expectedChecksMajor), found: String(major.MajorVersion) },
      );
    }
    if (major.CustomBuild === true) {
      context.onProgress({
        type: 'warning',
        message: `${name}: no semver org.opencontainers.image.version annotation; Trivy will treat it as a custom build`,
      });
    }
  }

  const component: OciComponent = {
    kind,
    source: formatReference(asked),
    servedBy: name,
    tag: ref.tag ?? ARTIFACTS[kind].taglessTag,
    layoutRef: kind,
    manifest: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size },
    layer: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, title: checked.title },
    annotations: checked.annotations,
    ...(version === undefined ? {} : { version }),
  };
  return {
    component,
    manifestBytes: manifest.bytes,
    blobs,
    pendingLayer,
    reusedLayer: pendingLayer === undefined,
  };
}

function plain(descriptor: Descriptor): BundleDescriptor {
  return { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
}

/** Downloads a blob into the layout unless it is there already (resuming a partial download). */
async function storeBlob(
  context: OciFetchContext,
  ref: ImageReference,
  descriptor: Descriptor,
  onProgress?: (done: number) => void,
): Promise<StoredBlob> {
  return withBlobLock(context, descriptor.digest, () => storeBlobNow(context, ref, descriptor, onProgress));
}

/**
 * The layer as stored in the work dir, or (not there yet) a PendingLayer: its request is sent now,
 * so a registry that lacks it fails here, where Trivy's fallback still applies.
 */
async function prepareLayer(
  context: OciFetchContext,
  ref: ImageReference,
  layer: Descriptor,
  onProgress: (done: number) => void,
): Promise<StoredBlob | PendingLayer> {
  const { client, layout, signal } = context;
  if (await layout.hasBlob(layer)) {
    onProgress(layer.size);
    return { descriptor: plain(layer), file: layout.blobPath(layer.digest), fresh: false };
  }
  const partial = await layout.partialBlobPath(layer.digest);
  const download = await client.prepareBlobDownload(ref, layer, partial, signal);
  return {
    descriptor: plain(layer),
    stream: async (write) => {
      // No fsync of the work-dir copy: every later use of it re-checks its digest (see bundleEntries).
      await download.run({ onData: write, onProgress: (done) => onProgress(done), signal, sync: false });
      await layout.commitBlob(layer, partial);
    },
    cancel: () => download.cancel(),
  };
}

async function storeBlobNow(
  context: OciFetchContext,
  ref: ImageReference,
  descriptor: Descriptor,
  onProgress?: (done: number) => void,
): Promise<StoredBlob> {
  const { client, layout, signal } = context;
  if (await layout.hasBlob(descriptor)) {
    onProgress?.(descriptor.size);
    return { descriptor: plain(descriptor), file: layout.blobPath(descriptor.digest), fresh: false };
  }
  const partial = await layout.partialBlobPath(descriptor.digest);
  await client.downloadBlob(ref, descriptor, partial, {
    signal,
    sync: false, // the work dir is a cache: see OciLayout.open's `durable`
    onProgress: onProgress === undefined ? undefined : (done) => onProgress(done),
  });
  await layout.commitBlob(descriptor, partial);
  return { descriptor: plain(descriptor), file: layout.blobPath(descriptor.digest), fresh: true };
}

/**
 * `--verify-mirrors`: asks every other repository of the list for the same artifact and compares
 * the LAYER digest (manifest digests differ per push; the layer of one build is identical
 * everywhere). Refuses when one disagrees or when no second registry could confirm.
 */
export async function verifyWithMirrors(
  context: OciFetchContext,
  kind: OciComponentKind,
  component: OciComponent,
  repositories: readonly string[],
): Promise<string[]> {
  const confirmedBy: string[] = [];
  const problems: string[] = [];
  for (const repository of repositories) {
    const ref = parseReference(normalizeRepository(kind, repository));
    const name = formatReference(ref);
    if (name === component.servedBy) continue;
    try {
      const manifest = await context.client.getManifest(ref, { signal: context.signal });
      const checked = checkArtifactManifest(kind, manifest.bytes);
      if (checked.layer.digest !== component.layer.digest) {
        throw new ExporterError(
          'MIRRORS_DISAGREE',
          `${ARTIFACTS[kind].label}: ${component.servedBy} serves layer ${component.layer.digest}, ${name} serves ${checked.layer.digest}`,
          {
            expected: component.layer.digest,
            found: checked.layer.digest,
            hint: 'a mirror is stale (a rebuild in progress) or tampered with; retry later and compare again',
          },
        );
      }
      confirmedBy.push(name);
    } catch (error) {
      if (error instanceof ExporterError) throw error;
      problems.push(`${name}: ${describeError(error)}`);
    }
  }
  if (confirmedBy.length === 0) {
    throw new ExporterError(
      'MIRRORS_DISAGREE',
      `${ARTIFACTS[kind].label}: no second registry confirmed layer ${component.layer.digest}${
        problems.length > 0 ? ` (${problems.join('; ')})` : ''
      }`,
      {
        hint: `--verify-mirrors needs at least two reachable repositories (${ARTIFACTS[kind].repositoryFlag})`,
      },
    );
  }
  return confirmedBy;
}
