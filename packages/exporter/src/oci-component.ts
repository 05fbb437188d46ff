import { mkdir, open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  digestHex,
  type Descriptor as BundleDescriptor,
  type OciComponent,
  type OciComponentKind,
  type ProgressListener,
  type UpstreamDbMetadata,
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
  type OciLayout,
  type RegistryClient,
} from '@trivy-airgap/oci';
import {
  ARTIFACTS,
  type DbLayerMetadata,
  TrivyError,
  checkArtifactManifest,
  checksMajorVersion,
  dbSchemaProblem,
  normalizeRepository,
  parseDbMetadata,
  trivyFallsBack,
  type CheckedArtifact,
  type DbMetadataFields,
} from '@trivy-airgap/trivy';
import { ExporterError } from './errors.js';
import { builtAgo } from './human.js';
import { createLayerMetadataReader, type LayerMetadataReader } from './metadata-reader.js';

/** What an OCI component fetch needs: a registry client, the work dir's layout, where to report. */
export interface OciFetchContext {
  readonly client: RegistryClient;
  /** The work dir's content-addressed blob store (an OCI image layout). */
  readonly layout: OciLayout;
  /** Where upstream metadata.json bytes are cached per layer digest (so reuse needs no re-read). */
  readonly metadataDir: string;
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

export interface FetchedOciComponent {
  readonly component: OciComponent;
  /** The manifest bytes exactly as the registry sent them (their sha256 is the manifest digest). */
  readonly manifestBytes: Buffer;
  /** Config and layer blobs, in the work dir's layout. */
  readonly blobs: readonly StoredBlob[];
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
 * title), and the upstream metadata.json read from the layer stream while it downloads.
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
      context.onProgress({
        type: 'task-done',
        task,
        summary: `${formatBytes(fetched.component.layer.size)}, layer ${fetched.component.layer.digest.slice(0, 19)} from ${name}${builtAgo(fetched.component.metadata?.UpdatedAt)}${
          fetched.reusedLayer ? ' (reused from the work dir)' : ''
        }`,
      });
      return fetched;
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
  const { client, layout, signal } = context;
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

  const blobs: StoredBlob[] = [];
  // The config first: tiny, and a registry that lacks it fails before the big download.
  blobs.push(await storeBlob(context, ref, parsed.config));

  const task = kind;
  context.onProgress({ type: 'task-progress', task, done: 0, total: layer.size });
  let metadata: UpstreamDbMetadata | undefined;
  let reusedLayer: boolean;
  if (kind === 'checks') {
    const stored = await storeBlob(context, ref, layer, (done) =>
      context.onProgress({ type: 'task-progress', task, done, total: layer.size }),
    );
    reusedLayer = !stored.fresh;
    blobs.push(stored);
  } else {
    const result = await storeDbLayer(context, kind, ref, layer);
    reusedLayer = !result.stored.fresh;
    blobs.push(result.stored);
    metadata = result.metadata;
  }
  // Kept in the work dir too, so the layout there is complete for skopeo or a later push.
  await layout.writeBlobBytes(manifest.bytes, manifest.mediaType);

  let version: string | undefined;
  if (kind === 'checks') {
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
    ...(metadata === undefined ? {} : { metadata }),
    ...(version === undefined ? {} : { version }),
  };
  return { component, manifestBytes: manifest.bytes, blobs, reusedLayer };
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
    onProgress: onProgress === undefined ? undefined : (done) => onProgress(done),
  });
  await layout.commitBlob(descriptor, partial);
  return { descriptor: plain(descriptor), file: layout.blobPath(descriptor.digest), fresh: true };
}

/** The four fields the bundle manifest records (extra upstream fields stay in the layer itself). */
function knownFields(metadata: DbMetadataFields): UpstreamDbMetadata {
  return {
    ...(metadata.Version === undefined ? {} : { Version: metadata.Version }),
    NextUpdate: metadata.NextUpdate,
    UpdatedAt: metadata.UpdatedAt,
    DownloadedAt: metadata.DownloadedAt,
  };
}

/**
 * Stores a DB layer and reads its metadata.json while it downloads: the inflater reads the work
 * dir's partial file behind the downloader (a resumed download's earlier bytes are in that file
 * too). A layer already in the work dir uses the metadata cached beside it; only without that
 * cache is the stored blob read.
 */
async function storeDbLayer(
  context: OciFetchContext,
  kind: 'db' | 'java-db',
  ref: ImageReference,
  layer: Descriptor,
): Promise<{ stored: StoredBlob; metadata: UpstreamDbMetadata }> {
  return withBlobLock(context, `db-layer ${layer.digest}`, () => storeDbLayerNow(context, kind, ref, layer));
}

async function storeDbLayerNow(
  context: OciFetchContext,
  kind: 'db' | 'java-db',
  ref: ImageReference,
  layer: Descriptor,
): Promise<{ stored: StoredBlob; metadata: UpstreamDbMetadata }> {
  const name = formatReference(ref);
  const cachePath = join(context.metadataDir, `${digestHex(layer.digest)}.json`);
  const progress = (done: number) =>
    context.onProgress({ type: 'task-progress', task: kind, done, total: layer.size });
  let stored: StoredBlob;
  let fields: DbMetadataFields;
  try {
    if (await context.layout.hasBlob(layer)) {
      const cached = await readFile(cachePath).catch(() => undefined);
      if (cached !== undefined) {
        fields = parseDbMetadata(cached, `${kind} metadata.json (work dir cache)`);
      } else {
        const blob = context.layout.blobPath(layer.digest);
        const found = await readMetadataFrom(kind, blob, 'r', (reader) => reader.finish(layer.size));
        requireDatabaseFile(kind, name, found.databaseFilePresent);
        await writeCache(context.metadataDir, cachePath, found.bytes);
        fields = found.metadata;
      }
      progress(layer.size);
      stored = { descriptor: plain(layer), file: context.layout.blobPath(layer.digest), fresh: false };
    } else {
      // The inflater reads the partial download behind the downloader; opened here (created when
      // missing) so it keeps reading the same file after the commit renames it.
      const partial = await context.layout.partialBlobPath(layer.digest);
      let downloaded: StoredBlob | undefined;
      const found = await readMetadataFrom(kind, partial, 'a+', async (reader) => {
        downloaded = await storeBlob(context, ref, layer, (done) => {
          progress(done);
          reader.advance(done);
        });
        return reader.finish(layer.size);
      });
      stored = downloaded as StoredBlob;
      requireDatabaseFile(kind, name, found.databaseFilePresent);
      await writeCache(context.metadataDir, cachePath, found.bytes);
      fields = found.metadata;
    }
  } catch (error) {
    if (error instanceof TrivyError) {
      throw new ExporterError('METADATA_INVALID', `${name}: ${error.message}`, { cause: error });
    }
    throw error;
  }
  const schemaProblem = dbSchemaProblem(kind, fields);
  if (schemaProblem !== undefined) {
    throw new ExporterError('METADATA_INVALID', `${name}: ${schemaProblem}`, {
      expected: String(ARTIFACTS[kind].schemaVersion),
      found: String(fields.Version ?? 0),
    });
  }
  return { stored, metadata: knownFields(fields) };
}

/** Opens `path` (creating it empty when missing), runs `use` with a reader of it, closes both. */
async function readMetadataFrom(
  kind: 'db' | 'java-db',
  path: string,
  flags: 'r' | 'a+',
  use: (reader: LayerMetadataReader) => Promise<DbLayerMetadata>,
): Promise<DbLayerMetadata> {
  const file: FileHandle = await open(path, flags);
  try {
    const reader = createLayerMetadataReader(kind, file);
    try {
      return await use(reader);
    } finally {
      await reader.close();
    }
  } finally {
    await file.close();
  }
}

/** Trivy's --skip-db-update needs the database file itself next to metadata.json. */
function requireDatabaseFile(kind: 'db' | 'java-db', name: string, present: boolean): void {
  if (!present) {
    throw new ExporterError(
      'METADATA_INVALID',
      `${name}: the layer has no ${ARTIFACTS[kind].databaseFile ?? 'database file'} at its root`,
    );
  }
}

async function writeCache(dir: string, path: string, bytes: Buffer): Promise<void> {
  await mkdir(dir, { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, bytes);
  await rename(temp, path);
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
