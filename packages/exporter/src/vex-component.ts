import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  DigestHasher,
  digestHex,
  digestOfBytes,
  isDigest,
  type Digest,
  type ProgressListener,
  type VexComponent,
  formatBytes,
} from '@trivy-airgap/format';
import { redactUrl, type HttpClient, type OciLayout } from '@trivy-airgap/oci';
import {
  MAX_VEX_MANIFEST_BYTES,
  VEX_SPEC_VERSION,
  checkVexArchive,
  parseLocationUrl,
  parseVexRepositoryManifest,
  vexManifestRequest,
  type VexRepositoryManifest,
} from '@trivy-airgap/trivy';
import { ExporterError } from './errors.js';
import type { VexRepositorySpec } from './options.js';

/** A VEX archive larger than this is refused while it downloads (VEX Hub is a few MB). */
export const MAX_VEX_ARCHIVE_BYTES = 1024 * 1024 * 1024;

export interface VexFetchContext {
  readonly http: HttpClient;
  /** Where the ETag of each location's last archive is remembered (in the work dir); none when absent. */
  readonly stateDir?: string | undefined;
  /** The work dir's content-addressed blob store. */
  readonly layout: OciLayout;
  /** GITHUB_API_URL and GITHUB_TOKEN are read from here. */
  readonly env: NodeJS.ProcessEnv;
  readonly onProgress: ProgressListener;
  readonly signal?: AbortSignal | undefined;
}

export interface FetchedVexRepository {
  readonly component: VexComponent;
  readonly manifestBytes: Buffer;
  /** The archive in the work dir (verified while downloaded by this run). */
  readonly archive: { readonly file: string; readonly digest: Digest; readonly size: number };
  /** The server answered 304 Not Modified to the remembered ETag: the work dir copy was used. */
  readonly reused: boolean;
  /** The ETag record file that made (or may make) reuse possible (undefined without a stateDir). */
  readonly stateFile: string | undefined;
}

/** Bundle paths of a VEX repository's two files (docs/bundle-format.md). */
export function vexBundlePaths(name: string, archiveType: 'tar.gz' | 'zip') {
  return {
    manifestPath: `vex/${name}/vex-repository.json`,
    archivePath: `vex/${name}/archive.${archiveType}`,
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Fetches a VEX repository the way Trivy does (vex-repo-spec 0.1): the manifest from the GitHub
 * contents API for github.com (GITHUB_API_URL, GITHUB_TOKEN) or `.well-known/` elsewhere, then the
 * first location whose archive downloads AND passes checkVexArchive (index.json in the subdir,
 * every listed document present, nothing escaping). Redirects are followed; the transport drops
 * Authorization when a redirect leaves the origin.
 */
export async function fetchVexRepository(
  context: VexFetchContext,
  spec: VexRepositorySpec,
): Promise<FetchedVexRepository> {
  const task = `vex:${spec.name}`;
  context.onProgress({ type: 'task-start', task, label: `VEX repository ${spec.name}` });
  try {
    const result = await fetchRepository(context, spec, task);
    context.onProgress({
      type: 'task-done',
      task,
      summary: `${formatBytes(result.archive.size)} from ${result.component.servedBy}${
        result.component.updatedAt === undefined ? '' : `, updated ${result.component.updatedAt}`
      }${result.reused ? ' (unchanged, reused from the work dir)' : ''}`,
    });
    return result;
  } catch (error) {
    context.onProgress({ type: 'task-fail', task, reason: message(error) });
    throw error;
  }
}

async function fetchRepository(
  context: VexFetchContext,
  spec: VexRepositorySpec,
  task: string,
): Promise<FetchedVexRepository> {
  const { http, env, signal } = context;
  let request: ReturnType<typeof vexManifestRequest>;
  try {
    request = vexManifestRequest(spec.url, {
      ...(env.GITHUB_API_URL === undefined || env.GITHUB_API_URL === ''
        ? {}
        : { githubApiUrl: env.GITHUB_API_URL }),
    });
  } catch (cause) {
    throw new ExporterError('INVALID_OPTION', `VEX repository ${spec.name}: ${message(cause)}`, { cause });
  }
  const headers: Record<string, string> = { ...request.headers };
  if (request.githubApi && env.GITHUB_TOKEN !== undefined && env.GITHUB_TOKEN !== '') {
    headers.authorization = `Bearer ${env.GITHUB_TOKEN}`;
  }
  const shownManifestUrl = redactUrl(request.url);
  let manifestBytes: Buffer;
  let parsed: VexRepositoryManifest;
  try {
    const response = await http.request(request.url, { headers, signal });
    if (response.status !== 200) {
      await response.discard();
      throw new ExporterError(
        'VEX_MANIFEST_FAILED',
        `VEX repository ${spec.name}: ${shownManifestUrl} answered HTTP ${response.status}`,
        {
          hint:
            response.status === 401 || response.status === 403
              ? 'for github.com set GITHUB_TOKEN; check the repository URL'
              : 'check the repository URL (--vex-repository)',
        },
      );
    }
    manifestBytes = await response.bytes(MAX_VEX_MANIFEST_BYTES);
    parsed = parseVexRepositoryManifest(manifestBytes);
  } catch (cause) {
    if (cause instanceof ExporterError) throw cause;
    throw new ExporterError(
      'VEX_MANIFEST_FAILED',
      `VEX repository ${spec.name}: ${shownManifestUrl}: ${message(cause)}`,
      { cause },
    );
  }

  const problems: string[] = [];
  for (const location of parsed.version.locations) {
    try {
      const archive = await downloadArchive(context, location, task);
      const { component, file } = archive;
      return {
        component: {
          ...component,
          ...vexBundlePaths(spec.name, component.archiveType),
          name: spec.name,
          url: spec.url,
          repositoryManifest: parsed.raw,
        },
        manifestBytes,
        archive: { file, digest: archive.digest, size: archive.size },
        reused: archive.reused,
        stateFile: archive.stateFile,
      };
    } catch (error) {
      if (signal?.aborted === true) throw error;
      problems.push(`${location}: ${message(error)}`);
      context.onProgress({
        type: 'warning',
        message: `VEX repository ${spec.name}: location ${location} failed (${message(error)})`,
      });
    }
  }
  throw new ExporterError(
    'VEX_ARCHIVE_FAILED',
    `VEX repository ${spec.name}: no location served a usable archive (${problems.join('; ')})`,
    { hint: 'check the repository and its vex-repository.json locations' },
  );
}

interface DownloadedArchive {
  readonly component: Omit<
    VexComponent,
    'name' | 'url' | 'repositoryManifest' | 'manifestPath' | 'archivePath'
  >;
  readonly file: string;
  readonly digest: Digest;
  readonly size: number;
  readonly reused: boolean;
  readonly stateFile: string | undefined;
}

/** What is remembered per location: the ETag and the archive it named. */
interface EtagRecord {
  readonly etag: string;
  readonly digest: Digest;
  readonly size: number;
}

async function readEtagRecord(path: string): Promise<EtagRecord | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<EtagRecord>;
    if (typeof value.etag === 'string' && isDigest(value.digest) && Number.isSafeInteger(value.size)) {
      return { etag: value.etag, digest: value.digest, size: value.size as number };
    }
  } catch {
    // no record, or an unreadable one: download as usual
  }
  return undefined;
}

async function writeEtagRecord(path: string, record: EtagRecord): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, JSON.stringify(record));
  await rename(temp, path);
}

/** The archive half of a VEX component, whether the archive was downloaded now or reused. */
function archiveComponent(
  location: string,
  servedBy: string,
  etag: string | undefined,
  updatedAt: string | undefined,
) {
  const parsed = parseLocationUrl(location);
  return {
    kind: 'vex' as const,
    specVersion: VEX_SPEC_VERSION,
    location,
    servedBy: redactUrl(servedBy),
    archiveType: parsed.archiveType,
    subdir: parsed.subdir,
    ...(etag === undefined ? {} : { etag }),
    updatedAt,
  };
}

async function downloadArchive(
  context: VexFetchContext,
  location: string,
  task: string,
): Promise<DownloadedArchive> {
  const { http, layout, signal } = context;
  const parsedLocation = parseLocationUrl(location);
  const stateFile =
    context.stateDir === undefined
      ? undefined
      : join(context.stateDir, `${digestHex(digestOfBytes(location))}.json`);
  const record = stateFile === undefined ? undefined : await readEtagRecord(stateFile);
  const known =
    record !== undefined &&
    (await layout.hasBlob({
      mediaType: 'application/octet-stream',
      digest: record.digest,
      size: record.size,
    }))
      ? record
      : undefined;
  // No credentials go to archive hosts: GitHub serves them from codeload.github.com anyway.
  const response = await http.request(parsedLocation.archiveUrl, {
    signal,
    ...(known === undefined ? {} : { headers: { 'if-none-match': known.etag } }),
  });
  if (response.status === 304 && known !== undefined) {
    // Unchanged upstream: use the copy from an earlier export (checked again; packing re-hashes it).
    await response.discard();
    const file = layout.blobPath(known.digest);
    const summary = await checkVexArchive(file, parsedLocation.archiveType, parsedLocation.subdir);
    return {
      component: archiveComponent(location, response.url, known.etag, summary.index.updatedAt),
      file,
      digest: known.digest,
      size: known.size,
      reused: true,
      stateFile,
    };
  }
  if (response.status !== 200) {
    await response.discard();
    throw new ExporterError(
      'VEX_ARCHIVE_FAILED',
      `${redactUrl(response.url)} answered HTTP ${response.status}`,
    );
  }
  const declared = Number(response.headers['content-length'] ?? Number.NaN);
  const total = Number.isSafeInteger(declared) ? declared : undefined;
  if (total !== undefined && total > MAX_VEX_ARCHIVE_BYTES) {
    await response.discard();
    throw new ExporterError(
      'VEX_ARCHIVE_FAILED',
      `the archive is larger than ${MAX_VEX_ARCHIVE_BYTES} bytes`,
    );
  }
  context.onProgress({ type: 'task-progress', task, done: 0, ...(total === undefined ? {} : { total }) });
  const hasher = new DigestHasher();
  const temp = `${await layout.partialBlobPath(digestOfBytes(location))}.vex-${randomBytes(4).toString('hex')}`;
  const handle = await open(temp, 'w');
  let kept = false;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      hasher.update(chunk);
      if (hasher.size > MAX_VEX_ARCHIVE_BYTES) {
        response.body.destroy();
        throw new ExporterError(
          'VEX_ARCHIVE_FAILED',
          `the archive is larger than ${MAX_VEX_ARCHIVE_BYTES} bytes`,
        );
      }
      await handle.write(chunk);
      context.onProgress({
        type: 'task-progress',
        task,
        done: hasher.size,
        ...(total === undefined ? {} : { total }),
      });
    }
    await handle.sync();
    await handle.close();
    const size = hasher.size;
    const digest = hasher.digest();
    if (total !== undefined && total !== size) {
      throw new ExporterError('VEX_ARCHIVE_FAILED', `the archive ended after ${size} of ${total} bytes`);
    }
    // Checked before it is accepted: the subdir holds index.json, every listed document exists,
    // nothing escapes (the same rules the importer applies when it unpacks).
    const summary = await checkVexArchive(temp, parsedLocation.archiveType, parsedLocation.subdir);
    const descriptor = { mediaType: 'application/octet-stream', digest, size };
    if (await layout.hasBlob(descriptor)) await rm(temp, { force: true });
    else await layout.commitBlob(descriptor, temp);
    kept = true;
    const etag = response.headers.etag;
    if (etag !== undefined && stateFile !== undefined)
      await writeEtagRecord(stateFile, { etag, digest, size });
    return {
      component: archiveComponent(location, response.url, etag, summary.index.updatedAt),
      file: layout.blobPath(digest),
      digest,
      size,
      reused: false,
      stateFile,
    };
  } finally {
    if (!kept) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
    }
  }
}
