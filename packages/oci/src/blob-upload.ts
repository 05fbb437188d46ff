import type { Readable } from 'node:stream';
import type { Digest } from '@trivy-airgap/format';
import { pushScope, repositoryScope } from './auth.js';
import type { RegistrySession } from './auth-session.js';
import { OciError } from './errors.js';
import type { OciEvent, OciEventListener } from './events.js';
import type { Descriptor } from './manifest.js';
import { formatReference, type ImageReference } from './reference.js';
import { errorFromResponse } from './response-errors.js';
import type { HttpResponse } from './transport.js';
import { VerifyingStream } from './verify.js';

export interface PushBlobOptions {
  /** Other repositories of the same registry that may hold the blob: tried as cross-repo mounts first. */
  readonly mountFrom?: readonly string[] | undefined;
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

export interface BlobUploadOptions {
  /** Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks. Default 256 MiB. */
  readonly monolithicUploadLimit?: number | undefined;
  /** Size of each PATCH chunk (held in memory while sent). Default 32 MiB. */
  readonly uploadChunkSize?: number | undefined;
  readonly onEvent?: OciEventListener | undefined;
}

/**
 * Blob writes to registry repositories (oras-go's Pusher, plus Exists and Mount): nothing is sent
 * that the registry has or can mount, and what is sent is verified against its descriptor on the
 * way out. distribution ignores a monolithic POST with a body, so an upload is always POST then
 * PUT (or PATCH chunks then PUT).
 */
export class BlobUploader {
  constructor(
    private readonly session: RegistrySession,
    private readonly options: BlobUploadOptions = {},
  ) {}

  async exists(ref: ImageReference, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const response = await this.session.send(ref, `/blobs/${digest}`, [pushScope(ref)], {
      method: 'HEAD',
      signal,
    });
    await response.discard();
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await errorFromResponse(response, 'blob', ref);
  }

  /** Cross-repository mount; false when the registry would not mount (the blob is then uploaded normally). */
  async mount(
    ref: ImageReference,
    digest: Digest,
    fromRepository: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const query = new URLSearchParams({ mount: digest, from: fromRepository });
    const response = await this.session.send(
      ref,
      `/blobs/uploads/?${query.toString()}`,
      [pushScope(ref), repositoryScope(fromRepository, 'pull')],
      { method: 'POST', headers: { 'content-length': '0' }, signal },
    );
    await response.discard();
    if (response.status === 201) {
      this.emit({ type: 'blob-mounted', repository: ref.repository, digest, from: fromRepository });
      return true;
    }
    if (response.status === 202) {
      // The registry opened an ordinary upload instead; close it so it does not linger.
      const location = response.headers.location;
      if (location !== undefined) {
        await this.session
          .send(ref, new URL(location, response.url).toString(), [pushScope(ref)], {
            method: 'DELETE',
            retry: false,
          })
          .then((r) => r.discard())
          .catch(() => undefined);
      }
      return false;
    }
    throw await errorFromResponse(response, 'upload', ref);
  }

  /**
   * Uploads a blob unless the registry has it (or can mount it). `open` is called for each attempt
   * and must return the blob's bytes from the start; they are verified against `expected` on the
   * way out, so a corrupt source never becomes a pushed blob.
   */
  async push(
    ref: ImageReference,
    expected: Descriptor,
    open: () => Readable,
    options: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    const { digest, size } = expected;
    if (await this.exists(ref, digest, options.signal)) {
      this.emit({ type: 'blob-exists', repository: ref.repository, digest });
      return 'exists';
    }
    for (const from of options.mountFrom ?? []) {
      if (from !== ref.repository && (await this.mount(ref, digest, from, options.signal))) return 'mounted';
    }
    const what = `blob ${digest} for ${formatReference(ref)}`;
    const verified = (): Readable => {
      const source = open();
      let done = 0;
      const verifier = new VerifyingStream(expected, 'source', what, (chunk) => {
        done += chunk.byteLength;
        options.onProgress?.(done, size);
      });
      source.on('error', (cause) => verifier.destroy(cause));
      return source.pipe(verifier);
    };
    let location = await this.startUpload(ref, options.signal);
    if (size <= (this.options.monolithicUploadLimit ?? 256 * 1024 * 1024)) {
      location = withDigestParam(location, digest);
      const response = await this.session.send(ref, location, [pushScope(ref)], {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: verified,
        signal: options.signal,
      });
      if (response.status !== 201) throw await errorFromResponse(response, 'upload', ref);
      await response.discard();
    } else {
      location = await this.uploadChunks(ref, location, verified(), options.signal);
      const response = await this.session.send(ref, withDigestParam(location, digest), [pushScope(ref)], {
        method: 'PUT',
        headers: { 'content-length': '0' },
        signal: options.signal,
      });
      if (response.status !== 201) throw await errorFromResponse(response, 'upload', ref);
      await response.discard();
    }
    this.emit({ type: 'blob-uploaded', repository: ref.repository, digest, size });
    return 'uploaded';
  }

  private async startUpload(ref: ImageReference, signal?: AbortSignal): Promise<string> {
    const response = await this.session.send(ref, '/blobs/uploads/', [pushScope(ref)], {
      method: 'POST',
      headers: { 'content-length': '0' },
      signal,
    });
    if (response.status !== 202) throw await errorFromResponse(response, 'upload', ref);
    await response.discard();
    return uploadLocation(response, ref);
  }

  private async uploadChunks(
    ref: ImageReference,
    start: string,
    source: Readable,
    signal?: AbortSignal,
  ): Promise<string> {
    const chunkSize = this.options.uploadChunkSize ?? 32 * 1024 * 1024;
    let location = start;
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingSize = 0;
    const flush = async (): Promise<void> => {
      if (pendingSize === 0) return;
      const chunk = Buffer.concat(pending, pendingSize);
      pending = [];
      pendingSize = 0;
      const response = await this.session.send(ref, location, [pushScope(ref)], {
        method: 'PATCH',
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(chunk.byteLength),
          'content-range': `${offset}-${offset + chunk.byteLength - 1}`,
        },
        body: chunk,
        // A repeated PATCH could append twice; the upload is restarted by the caller instead.
        retry: false,
        signal,
      });
      if (response.status !== 202) throw await errorFromResponse(response, 'upload', ref);
      await response.discard();
      location = uploadLocation(response, ref);
      offset += chunk.byteLength;
    };
    for await (const data of source as AsyncIterable<Buffer>) {
      let rest = data;
      while (rest.byteLength > 0) {
        const take = Math.min(rest.byteLength, chunkSize - pendingSize);
        pending.push(rest.subarray(0, take));
        pendingSize += take;
        rest = rest.subarray(take);
        if (pendingSize === chunkSize) await flush();
      }
    }
    await flush();
    return location;
  }

  private emit(event: OciEvent): void {
    this.options.onEvent?.(event);
  }
}

function uploadLocation(response: HttpResponse, ref: ImageReference): string {
  const location = response.headers.location;
  if (location === undefined) {
    throw new OciError('UPLOAD_FAILED', `the registry gave no upload location for ${formatReference(ref)}`, {
      status: response.status,
    });
  }
  return new URL(location, response.url).toString();
}

function withDigestParam(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}
