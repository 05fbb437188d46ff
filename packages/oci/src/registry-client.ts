import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '@trivy-airgap/format';
import { pullScope } from './auth.js';
import { AuthSession } from './auth-session.js';
import {
  downloadBlob,
  openVerifiedBlob,
  startReadingAhead,
  type BlobDownloadContext,
  type BlobFetcher,
  type DownloadBlobOptions,
  type DownloadBlobResult,
} from './blob-download.js';
import { BlobUploader, type PushBlobOptions, type PushBlobResult } from './blob-upload.js';
import type { CredentialOptions } from './credentials.js';
import type { OciEventListener } from './events.js';
import type { Descriptor } from './manifest.js';
import {
  ManifestRequests,
  type GetManifestOptions,
  type ManifestResult,
  type PushManifestResult,
} from './manifest-requests.js';
import { formatReference, parseReference, type ImageReference } from './reference.js';
import { errorFromResponse } from './response-errors.js';
import { abandonBody, createHttpClient, type HttpClient, type TransportOptions } from './transport.js';

export type { DownloadBlobOptions, DownloadBlobResult } from './blob-download.js';
export type { PushBlobOptions, PushBlobResult } from './blob-upload.js';
export type { GetManifestOptions, ManifestResult, PushManifestResult } from './manifest-requests.js';

/** A blob download whose first request has been answered; `run` it once, or `cancel` it. */
export interface PendingBlobDownload {
  /** Downloads to the destination as RegistryClient.downloadBlob does, starting with the held answer. */
  run(options?: DownloadBlobOptions): Promise<DownloadBlobResult>;
  /** Drops the held answer (nothing is downloaded). Safe after `run`. */
  cancel(): void;
}

export interface RegistryClientOptions {
  readonly transport: TransportOptions;
  readonly credentials?: CredentialOptions | undefined;
  readonly onEvent?: OciEventListener | undefined;
  /** Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks. Default 256 MiB. */
  readonly monolithicUploadLimit?: number | undefined;
  /** Size of each PATCH chunk (held in memory while sent). Default 32 MiB. */
  readonly uploadChunkSize?: number | undefined;
}

/**
 * A client for the OCI distribution API: pulls manifests and blobs with verification and resume,
 * pushes blobs and manifests without re-uploading what is there. One transport and one auth
 * session (challenges, credentials, tokens) are shared by every request; the work itself is done
 * by the manifest, download and upload modules this class puts together.
 */
export class RegistryClient {
  private readonly http: HttpClient;
  private readonly session: AuthSession;
  private readonly manifests: ManifestRequests;
  private readonly uploads: BlobUploader;

  constructor(private readonly options: RegistryClientOptions) {
    this.http = createHttpClient({ ...options.transport, onEvent: options.onEvent });
    this.session = new AuthSession(this.http, {
      credentials: options.credentials,
      plainHttp: options.transport.plainHttp,
      onEvent: options.onEvent,
    });
    this.manifests = new ManifestRequests(this.session, options.onEvent);
    this.uploads = new BlobUploader(this.session, options);
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  // ---- pull ----

  getManifest(input: ImageReference | string, options: GetManifestOptions = {}): Promise<ManifestResult> {
    return this.manifests.get(toReference(input), options);
  }

  /** The descriptor of a manifest without downloading it; undefined when the registry does not have it. */
  headManifest(input: ImageReference | string, signal?: AbortSignal): Promise<Descriptor | undefined> {
    return this.manifests.head(toReference(input), signal);
  }

  /**
   * Downloads a blob to `destPath`, continuing from what is already there, verified while it
   * streams (see blob-download.ts). Renaming it into place is the caller's job
   * (OciLayout.partialBlobPath / commitBlob).
   */
  downloadBlob(
    input: ImageReference | string,
    descriptor: Descriptor,
    destPath: string,
    options: DownloadBlobOptions = {},
  ): Promise<DownloadBlobResult> {
    const ref = toReference(input);
    return downloadBlob(
      this.blobFetcher(ref),
      descriptor,
      destPath,
      this.downloadContext(ref, descriptor),
      options,
    );
  }

  /**
   * Asks the registry for the blob now and returns a download that reads that answer later (see
   * PendingBlobDownload): a blob the registry does not serve fails here, before the caller commits
   * to anything, while the bytes flow only when `run` is called (TCP holds them back until then).
   */
  async prepareBlobDownload(
    input: ImageReference | string,
    descriptor: Descriptor,
    destPath: string,
    signal?: AbortSignal,
  ): Promise<PendingBlobDownload> {
    const ref = toReference(input);
    const fetcher = this.blobFetcher(ref);
    // The offset downloadBlob will resume from (a longer file is started over).
    const onDisk = (await stat(destPath).catch(() => undefined))?.size ?? 0;
    const offset = onDisk > descriptor.size ? 0 : onDisk;
    let first = offset < descriptor.size ? await fetcher.fetchBlob(descriptor, offset, signal) : undefined;
    // Answered but not run yet: its bytes are read ahead meanwhile (bounded), so the link stays busy.
    if (first !== undefined) startReadingAhead(first.body);
    const primed: BlobFetcher = {
      fetchBlob: (target, at, retrySignal) => {
        const answer = first;
        first = undefined;
        if (answer !== undefined && at === offset) return Promise.resolve(answer);
        if (answer !== undefined) abandonBody(answer.body);
        return fetcher.fetchBlob(target, at, retrySignal);
      },
    };
    return {
      run: (options = {}) =>
        downloadBlob(primed, descriptor, destPath, this.downloadContext(ref, descriptor), options),
      cancel: () => {
        if (first !== undefined) abandonBody(first.body);
        first = undefined;
      },
    };
  }

  /** A stream of the blob's bytes that fails instead of ending if the size or digest is wrong. */
  openBlob(input: ImageReference | string, descriptor: Descriptor, signal?: AbortSignal): Promise<Readable> {
    const ref = toReference(input);
    return openVerifiedBlob(this.blobFetcher(ref), descriptor, blobName(ref, descriptor.digest), signal);
  }

  // ---- push ----

  blobExists(input: ImageReference | string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return this.uploads.exists(toReference(input), digest, signal);
  }

  /** Cross-repository mount; false when the registry would not mount (the blob is then uploaded normally). */
  mountBlob(
    input: ImageReference | string,
    digest: Digest,
    fromRepository: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    return this.uploads.mount(toReference(input), digest, fromRepository, signal);
  }

  /**
   * Uploads a blob unless the registry has it (or can mount it). `open` is called for each attempt
   * and must return the blob's bytes from the start; they are verified against `descriptor` on
   * the way out, so a corrupt source never becomes a pushed blob.
   */
  pushBlob(
    input: ImageReference | string,
    descriptor: Descriptor,
    open: () => Readable,
    options: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    return this.uploads.push(toReference(input), descriptor, open, options);
  }

  /** Pushes manifest bytes as they are (their digest is kept). Skips the PUT when the registry already has them under this tag. */
  pushManifest(
    input: ImageReference | string,
    bytes: Buffer,
    mediaType?: string,
    signal?: AbortSignal,
  ): Promise<PushManifestResult> {
    return this.manifests.push(toReference(input), bytes, mediaType, signal);
  }

  /** Points `tagged` (a reference with a tag) at a manifest already in the same repository. */
  tagManifest(
    tagged: ImageReference | string,
    digest: Digest,
    signal?: AbortSignal,
  ): Promise<PushManifestResult> {
    return this.manifests.tag(toReference(tagged), digest, signal);
  }

  private downloadContext(ref: ImageReference, descriptor: Descriptor): BlobDownloadContext {
    return {
      name: blobName(ref, descriptor.digest),
      retry: this.options.transport.retry,
      onEvent: this.options.onEvent,
    };
  }

  private blobFetcher(ref: ImageReference): BlobFetcher {
    return {
      fetchBlob: async (target, offset, signal) => {
        const response = await this.session.send(ref, `/blobs/${target.digest}`, [pullScope(ref)], {
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          signal,
        });
        if (response.status === 200 || (response.status === 206 && offset > 0)) return response;
        throw await errorFromResponse(response, 'blob', ref);
      },
    };
  }
}

function blobName(ref: ImageReference, digest: Digest): string {
  return `blob ${digest} of ${formatReference(ref)}`;
}

function toReference(input: ImageReference | string): ImageReference {
  return typeof input === 'string' ? parseReference(input) : input;
}
