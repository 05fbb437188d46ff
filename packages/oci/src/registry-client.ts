import { open as openFile, stat, truncate, unlink } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { DigestHasher, digestOfBytes, isDigest, type Digest } from '@trivy-airgap/format';
import { parseAuthChallenge, repositoryScope, type AuthChallenge } from './auth.js';
import { resolveCredentials, type CredentialOptions, type ResolvedCredentials } from './credentials.js';
import { OciError, redactUrl, type OciErrorCode } from './errors.js';
import type { OciEvent, OciEventListener } from './events.js';
import {
  IMAGE_MANIFEST_MEDIA_TYPES,
  INDEX_MEDIA_TYPES,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  manifestMediaType,
  parseImageIndex,
  type Descriptor,
  type Platform,
} from './manifest.js';
import {
  formatReference,
  manifestPathPart,
  parseReference,
  registryApiHost,
  withDigest,
  withTag,
  type ImageReference,
} from './reference.js';
import {
  abandonBody,
  backoff,
  createHttpClient,
  networkError,
  retryDelayMs,
  type HttpClient,
  type HttpRequestOptions,
  type HttpResponse,
  type TransportOptions,
} from './transport.js';
import { digestMismatch, sizeMismatch, VerifyingStream } from './verify.js';

export interface RegistryClientOptions {
  readonly transport: TransportOptions;
  readonly credentials?: CredentialOptions | undefined;
  readonly onEvent?: OciEventListener | undefined;
  /** Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks. Default 256 MiB. */
  readonly monolithicUploadLimit?: number | undefined;
  /** Size of each PATCH chunk (held in memory while sent). Default 32 MiB. */
  readonly uploadChunkSize?: number | undefined;
}

/** A manifest as received: the exact bytes (their digest is the manifest digest) and how to read them. */
export interface ManifestResult {
  readonly bytes: Buffer;
  /** sha256 of `bytes`: always computed, and checked against the reference when pulled by digest. */
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** The reference with `digest` filled in. */
  readonly reference: ImageReference;
}

export interface GetManifestOptions {
  /**
   * When the reference names an index, pick one manifest from it: `true` takes the only
   * image manifest it lists (attestation entries ignored); a Platform picks by os/architecture.
   * Without it an index is returned as is.
   */
  readonly followIndex?: boolean | Platform | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface DownloadBlobOptions {
  /** Called with every byte of the blob in order, including bytes already on disk when resuming. */
  readonly onData?: ((chunk: Buffer) => void) | undefined;
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Continue from the bytes already in `destPath` (default true); false starts over. */
  readonly resume?: boolean | undefined;
}

export interface DownloadBlobResult {
  readonly digest: Digest;
  readonly size: number;
  /** Bytes that were already on disk and not downloaded again. */
  readonly resumedFrom: number;
}

export interface PushBlobOptions {
  /** Other repositories of the same registry that may hold the blob: tried as cross-repo mounts first. */
  readonly mountFrom?: readonly string[] | undefined;
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

export interface PushManifestResult {
  readonly digest: Digest;
  /** False when the registry already had these exact bytes under this tag (or digest). */
  readonly pushed: boolean;
}

interface TokenEntry {
  readonly header: string;
  readonly expiresAt: number;
}

interface RegistryState {
  challenge?: AuthChallenge;
  credentials?: Promise<ResolvedCredentials>;
  readonly tokens: Map<string, TokenEntry>;
}

type RequestContext = 'manifest' | 'blob' | 'upload' | 'token';

const MAX_ERROR_BODY = 64 * 1024;
const MAX_TOKEN_BODY = 1024 * 1024;
const TOKEN_EXPIRY_MARGIN_MS = 10_000;
const DEFAULT_TOKEN_LIFETIME_S = 60;
const READ_CHUNK = 1024 * 1024;

/**
 * A client for the OCI distribution API: pulls manifests and blobs with verification and resume,
 * pushes blobs and manifests without re-uploading what is there. Auth (anonymous or credentialed
 * Bearer tokens, Basic) is negotiated per registry from the 401 challenge.
 */
export class RegistryClient {
  private readonly http: HttpClient;
  private readonly registries = new Map<string, RegistryState>();

  constructor(private readonly options: RegistryClientOptions) {
    this.http = createHttpClient({ ...options.transport, onEvent: options.onEvent });
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  // ---- pull ----

  async getManifest(
    input: ImageReference | string,
    options: GetManifestOptions = {},
  ): Promise<ManifestResult> {
    const ref = toReference(input);
    const response = await this.send(ref, `/manifests/${manifestPathPart(ref)}`, [pullScope(ref)], {
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
    });
    if (response.status !== 200) throw await this.errorFrom(response, 'manifest', ref);
    const bytes = await response.bytes(MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE');
    const digest = digestOfBytes(bytes);
    const what = `manifest of ${formatReference(ref)}`;
    if (ref.digest !== undefined && ref.digest !== digest)
      throw digestMismatch(what, ref.digest, digest, 'source');
    const announced = response.headers['docker-content-digest'];
    if (announced !== undefined && isDigest(announced) && announced !== digest) {
      throw digestMismatch(what, announced, digest, 'source');
    }
    const contentType = response.headers['content-type']?.split(';')[0]?.trim();
    const mediaType = manifestMediaType(bytes, contentType);
    if (!IMAGE_MANIFEST_MEDIA_TYPES.has(mediaType) && !INDEX_MEDIA_TYPES.has(mediaType)) {
      throw new OciError(
        'UNSUPPORTED_MEDIA_TYPE',
        `${what} has unsupported media type ${JSON.stringify(mediaType)}`,
        {
          found: mediaType,
        },
      );
    }
    const result: ManifestResult = {
      bytes,
      digest,
      mediaType,
      size: bytes.byteLength,
      reference: withDigest(ref, digest),
    };
    if (
      !INDEX_MEDIA_TYPES.has(mediaType) ||
      options.followIndex === undefined ||
      options.followIndex === false
    ) {
      return result;
    }
    const chosen = chooseFromIndex(parseImageIndex(bytes).manifests, options.followIndex, what);
    const child = await this.getManifest(withDigest(withoutTag(ref), chosen.digest), {
      signal: options.signal,
    });
    if (child.size !== chosen.size)
      throw sizeMismatch(`manifest ${chosen.digest}`, chosen.size, child.size, 'source', false);
    return { ...child, reference: withDigest(ref, child.digest) };
  }

  /** The descriptor of a manifest without downloading it; undefined when the registry does not have it. */
  async headManifest(input: ImageReference | string, signal?: AbortSignal): Promise<Descriptor | undefined> {
    const ref = toReference(input);
    const response = await this.send(ref, `/manifests/${manifestPathPart(ref)}`, [pullScope(ref)], {
      method: 'HEAD',
      headers: { accept: MANIFEST_ACCEPT },
      signal,
    });
    await response.discard();
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await this.errorFrom(response, 'manifest', ref);
    const digest = response.headers['docker-content-digest'];
    const size = Number(response.headers['content-length']);
    const mediaType = response.headers['content-type']?.split(';')[0]?.trim();
    if (digest === undefined || !isDigest(digest) || !Number.isSafeInteger(size) || mediaType === undefined) {
      // Not every registry answers HEAD fully; the bytes are authoritative anyway.
      const manifest = await this.getManifest(ref, { signal });
      return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
    }
    return { mediaType, digest, size };
  }

  /**
   * Downloads a blob to `destPath`, continuing from what is already there (Range request), and
   * verifies size and sha256 while it streams. On an integrity failure the file is removed, so
   * a retry starts clean. The file is fsynced; renaming it into place is the caller's job
   * (see OciLayout.partialBlobPath / commitBlob).
   */
  async downloadBlob(
    input: ImageReference | string,
    descriptor: Descriptor,
    destPath: string,
    options: DownloadBlobOptions = {},
  ): Promise<DownloadBlobResult> {
    const ref = toReference(input);
    const { digest: expectedDigest, size } = descriptor;
    const what = `blob ${expectedDigest} of ${formatReference(ref)}`;
    const hasher = new DigestHasher();
    let offset = 0;
    const existing = options.resume === false ? undefined : await stat(destPath).catch(() => undefined);
    if (existing !== undefined && existing.size > size) await truncate(destPath, 0);
    else if (existing !== undefined && existing.size > 0) {
      // The caller sees every byte in order, so replay what is on disk before asking for the rest.
      for await (const chunk of createReadStream(destPath, {
        highWaterMark: READ_CHUNK,
      }) as AsyncIterable<Buffer>) {
        hasher.update(chunk);
        options.onData?.(chunk);
      }
      offset = hasher.size;
      this.emit({ type: 'resume', digest: expectedDigest, offset });
    }
    const resumedFrom = offset;
    const file = await openFile(destPath, offset === 0 ? 'w' : 'a');
    let integrityFailed = false;
    try {
      const retry = this.options.transport.retry;
      const maxFailures = Math.max(1, retry?.maxAttempts ?? 5);
      let failures = 0;
      while (offset < size) {
        const response = await this.send(ref, `/blobs/${expectedDigest}`, [pullScope(ref)], {
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          signal: options.signal,
        });
        let skip = 0;
        if (response.status === 206 && offset > 0) {
          const start = /^bytes (\d+)-/.exec(response.headers['content-range'] ?? '')?.[1];
          if (start === undefined || Number(start) !== offset) {
            await response.discard();
            throw new OciError(
              'UNEXPECTED_STATUS',
              `${what}: the server answered a different range than asked`,
              {
                status: 206,
                url: redactUrl(response.url),
              },
            );
          }
        } else if (response.status === 200) {
          if (offset > 0) this.emit({ type: 'range-ignored', digest: expectedDigest, offset });
          skip = offset;
        } else {
          throw await this.errorFrom(response, 'blob', ref);
        }
        const declared = response.headers['content-length'];
        const remaining = size - offset + skip;
        if (declared !== undefined && Number(declared) > remaining) {
          await response.discard();
          integrityFailed = true;
          throw sizeMismatch(what, size, Number(declared) - skip + offset, 'source', false);
        }
        const before = offset;
        // Only reading the body may fail as "network"; errors from onData or the disk propagate as they are.
        let networkFailure: unknown;
        const chunks = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        try {
          for (;;) {
            let next: IteratorResult<Buffer>;
            try {
              next = await chunks.next();
            } catch (cause) {
              networkFailure = cause;
              break;
            }
            if (next.done === true) break;
            let chunk = next.value;
            if (skip > 0) {
              const dropped = Math.min(skip, chunk.byteLength);
              skip -= dropped;
              chunk = chunk.subarray(dropped);
              if (chunk.byteLength === 0) continue;
            }
            if (offset + chunk.byteLength > size) {
              integrityFailed = true;
              throw sizeMismatch(what, size, offset + chunk.byteLength, 'source', true);
            }
            hasher.update(chunk);
            options.onData?.(chunk);
            await file.write(chunk);
            offset += chunk.byteLength;
            options.onProgress?.(offset, size);
          }
        } finally {
          if (!response.body.readableEnded) abandonBody(response.body);
        }
        if (networkFailure !== undefined) {
          const error = networkError(networkFailure, response.url);
          if (error.code === 'ABORTED' || options.signal?.aborted === true) throw error;
          failures = offset > before ? 1 : failures + 1;
          if (failures >= maxFailures) throw error;
          const delay = retryDelayMs(failures, retry);
          this.emit({
            type: 'retry',
            url: redactUrl(response.url),
            attempt: failures,
            delayMs: delay,
            reason: error.code,
          });
          await backoff(delay, response.url, options.signal);
          continue;
        }
        if (offset < size) {
          integrityFailed = true;
          throw sizeMismatch(what, size, offset, 'source', false);
        }
      }
      const found = hasher.digest();
      if (found !== expectedDigest) {
        integrityFailed = true;
        throw digestMismatch(what, expectedDigest, found, 'source');
      }
      await file.sync();
      return { digest: found, size, resumedFrom };
    } finally {
      await file.close();
      if (integrityFailed) await unlink(destPath).catch(() => undefined);
    }
  }

  /** A stream of the blob's bytes that fails instead of ending if the size or digest is wrong. */
  async openBlob(
    input: ImageReference | string,
    descriptor: Descriptor,
    signal?: AbortSignal,
  ): Promise<Readable> {
    const ref = toReference(input);
    const response = await this.send(ref, `/blobs/${descriptor.digest}`, [pullScope(ref)], { signal });
    if (response.status !== 200) throw await this.errorFrom(response, 'blob', ref);
    const verifier = new VerifyingStream(
      descriptor,
      'source',
      `blob ${descriptor.digest} of ${formatReference(ref)}`,
    );
    response.body.on('error', (cause: unknown) => verifier.destroy(networkError(cause, response.url)));
    return response.body.pipe(verifier);
  }

  // ---- push ----

  async blobExists(input: ImageReference | string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const ref = toReference(input);
    const response = await this.send(ref, `/blobs/${digest}`, [pushScope(ref)], { method: 'HEAD', signal });
    await response.discard();
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.errorFrom(response, 'blob', ref);
  }

  /** Cross-repository mount; false when the registry would not mount (the blob is then uploaded normally). */
  async mountBlob(
    input: ImageReference | string,
    digest: Digest,
    fromRepository: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const ref = toReference(input);
    const query = new URLSearchParams({ mount: digest, from: fromRepository });
    const response = await this.send(
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
        await this.send(ref, new URL(location, response.url).toString(), [pushScope(ref)], {
          method: 'DELETE',
          retry: false,
        })
          .then((r) => r.discard())
          .catch(() => undefined);
      }
      return false;
    }
    throw await this.errorFrom(response, 'upload', ref);
  }

  /**
   * Uploads a blob unless the registry has it (or can mount it). `open` is called for each attempt
   * and must return the blob's bytes from the start; they are verified against `descriptor` on
   * the way out, so a corrupt source never becomes a pushed blob.
   */
  async pushBlob(
    input: ImageReference | string,
    descriptor: Descriptor,
    open: () => Readable,
    options: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    const ref = toReference(input);
    const { digest, size } = descriptor;
    if (await this.blobExists(ref, digest, options.signal)) {
      this.emit({ type: 'blob-exists', repository: ref.repository, digest });
      return 'exists';
    }
    for (const from of options.mountFrom ?? []) {
      if (from !== ref.repository && (await this.mountBlob(ref, digest, from, options.signal)))
        return 'mounted';
    }
    const what = `blob ${digest} for ${formatReference(ref)}`;
    const verified = (): Readable => {
      const source = open();
      let done = 0;
      const verifier = new VerifyingStream(descriptor, 'source', what, (chunk) => {
        done += chunk.byteLength;
        options.onProgress?.(done, size);
      });
      source.on('error', (cause) => verifier.destroy(cause));
      return source.pipe(verifier);
    };
    let location = await this.startUpload(ref, options.signal);
    if (size <= (this.options.monolithicUploadLimit ?? 256 * 1024 * 1024)) {
      location = withDigestParam(location, digest);
      const response = await this.send(ref, location, [pushScope(ref)], {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: verified,
        signal: options.signal,
      });
      if (response.status !== 201) throw await this.errorFrom(response, 'upload', ref);
      await response.discard();
    } else {
      location = await this.uploadChunks(ref, location, verified(), options.signal);
      const response = await this.send(ref, withDigestParam(location, digest), [pushScope(ref)], {
        method: 'PUT',
        headers: { 'content-length': '0' },
        signal: options.signal,
      });
      if (response.status !== 201) throw await this.errorFrom(response, 'upload', ref);
      await response.discard();
    }
    this.emit({ type: 'blob-uploaded', repository: ref.repository, digest, size });
    return 'uploaded';
  }

  /** Pushes manifest bytes as they are (their digest is kept). Skips the PUT when the registry already has them under this tag. */
  async pushManifest(
    input: ImageReference | string,
    bytes: Buffer,
    mediaType?: string,
    signal?: AbortSignal,
  ): Promise<PushManifestResult> {
    const ref = toReference(input);
    const digest = digestOfBytes(bytes);
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw new OciError(
        'MANIFEST_TOO_LARGE',
        `manifest ${digest} is larger than ${MAX_MANIFEST_BYTES} bytes`,
      );
    }
    if (ref.digest !== undefined && ref.digest !== digest) {
      throw digestMismatch(`manifest for ${formatReference(ref)}`, ref.digest, digest, 'source');
    }
    const target: ImageReference = ref.tag !== undefined ? withTag(ref, ref.tag) : withDigest(ref, digest);
    const type = mediaType ?? manifestMediaType(bytes);
    const existing = await this.existingManifestDigest(target, signal);
    if (existing === digest) {
      this.emit({ type: 'manifest-exists', repository: ref.repository, digest, tag: ref.tag });
      return { digest, pushed: false };
    }
    const response = await this.send(target, `/manifests/${manifestPathPart(target)}`, [pushScope(ref)], {
      method: 'PUT',
      headers: { 'content-type': type, 'content-length': String(bytes.byteLength) },
      body: bytes,
      signal,
    });
    if (response.status !== 201 && response.status !== 200)
      throw await this.errorFrom(response, 'manifest', target);
    const stored = response.headers['docker-content-digest'];
    await response.discard();
    if (stored !== undefined && isDigest(stored) && stored !== digest) {
      throw digestMismatch(`manifest pushed to ${formatReference(target)}`, digest, stored, 'destination');
    }
    this.emit({ type: 'manifest-pushed', repository: ref.repository, digest, tag: ref.tag });
    return { digest, pushed: true };
  }

  /** Points `tagged` (a reference with a tag) at a manifest already in the same repository. */
  async tagManifest(
    tagged: ImageReference | string,
    digest: Digest,
    signal?: AbortSignal,
  ): Promise<PushManifestResult> {
    const ref = toReference(tagged);
    if (ref.tag === undefined)
      throw new OciError('INVALID_REFERENCE', `${formatReference(ref)} has no tag to set`);
    const manifest = await this.getManifest(withDigest(withoutTag(ref), digest), { signal });
    return this.pushManifest(withTag(ref, ref.tag), manifest.bytes, manifest.mediaType, signal);
  }

  // ---- internals ----

  private async existingManifestDigest(
    ref: ImageReference,
    signal?: AbortSignal,
  ): Promise<Digest | undefined> {
    const response = await this.send(ref, `/manifests/${manifestPathPart(ref)}`, [pushScope(ref)], {
      method: 'HEAD',
      headers: { accept: MANIFEST_ACCEPT },
      signal,
    });
    await response.discard();
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await this.errorFrom(response, 'manifest', ref);
    const digest = response.headers['docker-content-digest'];
    return digest !== undefined && isDigest(digest) ? digest : undefined;
  }

  private async startUpload(ref: ImageReference, signal?: AbortSignal): Promise<string> {
    const response = await this.send(ref, '/blobs/uploads/', [pushScope(ref)], {
      method: 'POST',
      headers: { 'content-length': '0' },
      signal,
    });
    if (response.status !== 202) throw await this.errorFrom(response, 'upload', ref);
    await response.discard();
    return this.uploadLocation(response, ref);
  }

  private uploadLocation(response: HttpResponse, ref: ImageReference): string {
    const location = response.headers.location;
    if (location === undefined) {
      throw new OciError(
        'UPLOAD_FAILED',
        `the registry gave no upload location for ${formatReference(ref)}`,
        {
          status: response.status,
        },
      );
    }
    return new URL(location, response.url).toString();
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
      const response = await this.send(ref, location, [pushScope(ref)], {
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
      if (response.status !== 202) throw await this.errorFrom(response, 'upload', ref);
      await response.discard();
      location = this.uploadLocation(response, ref);
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

  private state(registry: string): RegistryState {
    let state = this.registries.get(registry);
    if (state === undefined) {
      state = { tokens: new Map() };
      this.registries.set(registry, state);
    }
    return state;
  }

  private baseUrl(registry: string): string {
    return `${this.options.transport.plainHttp === true ? 'http' : 'https'}://${registryApiHost(registry)}`;
  }

  private credentials(registry: string): Promise<ResolvedCredentials> {
    const state = this.state(registry);
    state.credentials ??= resolveCredentials(registry, this.options.credentials).then((resolved) => {
      this.emit({ type: 'credentials', registry, source: resolved.source });
      return resolved;
    });
    return state.credentials;
  }

  /**
   * Sends one registry request with auth: uses what is known about the registry's challenge,
   * and on a 401 learns the challenge, gets a token for the scopes and tries once more.
   * `path` is relative to `/v2/<repository>` or an absolute URL (upload locations).
   */
  private async send(
    ref: ImageReference,
    path: string,
    scopes: string[],
    options: HttpRequestOptions,
  ): Promise<HttpResponse> {
    const url = /^https?:\/\//.test(path)
      ? path
      : `${this.baseUrl(ref.registry)}/v2/${ref.repository}${path}`;
    // Upload locations may point elsewhere (a storage host): registry credentials go only to the registry.
    if (new URL(url).host !== registryApiHost(ref.registry)) return this.http.request(url, options);
    const first = await this.authorization(ref.registry, scopes, false, options.signal);
    const response = await this.http.request(url, withAuthorization(options, first));
    if (response.status !== 401) return response;
    const challenge = parseAuthChallenge(response.headers['www-authenticate']);
    if (challenge === undefined) return response;
    await response.discard();
    const state = this.state(ref.registry);
    state.challenge = challenge;
    const allScopes = challenge.scheme === 'bearer' ? [...new Set([...scopes, ...challenge.scopes])] : scopes;
    const second = await this.authorization(ref.registry, allScopes, true, options.signal);
    if (second === undefined || second === first) {
      const { credentials } = await this.credentials(ref.registry);
      throw new OciError('UNAUTHORIZED', `${formatReference(ref)}: the registry requires authentication`, {
        status: 401,
        url: redactUrl(url),
        hint:
          credentials === undefined
            ? 'log in (docker login) or pass --username/--password or --registry-token'
            : 'check the credentials (--username/--password, --registry-token or docker login)',
      });
    }
    return this.http.request(url, withAuthorization(options, second));
  }

  private async authorization(
    registry: string,
    scopes: string[],
    refresh: boolean,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const state = this.state(registry);
    const { credentials } = await this.credentials(registry);
    if (credentials?.kind === 'bearer') return `Bearer ${credentials.token}`;
    const challenge = state.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      if (credentials === undefined) return undefined;
      if (refresh) this.emit({ type: 'auth', registry, scheme: 'basic' });
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    const key = [...scopes].sort().join(' ');
    const cached = state.tokens.get(key);
    if (!refresh && cached !== undefined && cached.expiresAt > Date.now()) return cached.header;
    const token = await this.fetchToken(registry, challenge, scopes, signal);
    state.tokens.set(key, token);
    this.emit({ type: 'auth', registry, scheme: 'bearer', scope: key });
    return token.header;
  }

  private async fetchToken(
    registry: string,
    challenge: Extract<AuthChallenge, { scheme: 'bearer' }>,
    scopes: string[],
    signal: AbortSignal | undefined,
  ): Promise<TokenEntry> {
    const { credentials } = await this.credentials(registry);
    const url = new URL(challenge.realm);
    if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    if (credentials?.kind === 'basic') {
      headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    const response = await this.http.request(url, { headers, signal });
    if (response.status !== 200) {
      const error = await this.errorFrom(response, 'token', undefined);
      throw error;
    }
    const text = await response.text(MAX_TOKEN_BODY);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new OciError('UNAUTHORIZED', `the token server at ${redactUrl(url)} did not answer JSON`, {
        url: redactUrl(url),
      });
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new OciError('UNAUTHORIZED', `the token server at ${redactUrl(url)} gave no token`, {
        url: redactUrl(url),
      });
    }
    const lifetime =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + lifetime * 1000 - TOKEN_EXPIRY_MARGIN_MS };
  }

  /** Reads the registry's JSON error body (bounded) and classifies the failure. */
  private async errorFrom(
    response: HttpResponse,
    context: RequestContext,
    ref: ImageReference | undefined,
  ): Promise<OciError> {
    const status = response.status;
    let registryCodes: string[] = [];
    let registryMessage: string | undefined;
    try {
      const text = response.body.readableEnded ? '' : await response.text(MAX_ERROR_BODY);
      // Go's HTTPS server answers a plain-HTTP request with exactly this 400: --plain-http
      // against a TLS registry (a plain "HTTP 400" would send the user looking at the name).
      if (status === 400 && text.includes('HTTP request to an HTTPS server')) {
        return new OciError(
          'TLS',
          `${new URL(response.url).host} serves HTTPS, but the request was plain HTTP`,
          {
            status,
            url: redactUrl(response.url),
            hint: 'leave out --plain-http (with --ca-cert FILE if its certificate comes from a private CA)',
          },
        );
      }
      const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
      if (Array.isArray(parsed.errors)) {
        registryCodes = parsed.errors.map((e) => e.code).filter((c): c is string => typeof c === 'string');
        const messages = parsed.errors
          .map((e) => e.message)
          .filter((m): m is string => typeof m === 'string');
        if (messages.length > 0) registryMessage = messages.join('; ').slice(0, 500);
      }
    } catch {
      // No readable JSON error body: classify by status alone.
      await response.discard();
    }
    const code = classify(status, registryCodes, context);
    const subject = ref === undefined ? 'token request' : `${context} ${formatReference(ref)}`;
    const message = `${subject}: HTTP ${status}${registryCodes.length > 0 ? ` ${registryCodes.join(',')}` : ''}${
      registryMessage === undefined ? '' : ` (${registryMessage})`
    }`;
    return new OciError(code, message, {
      status,
      registryCodes,
      registryMessage,
      url: redactUrl(response.url),
      hint: hintFor(code),
    });
  }
}

function classify(status: number, codes: readonly string[], context: RequestContext): OciErrorCode {
  const has = (c: string): boolean => codes.includes(c);
  if (status === 401 || has('UNAUTHORIZED')) return 'UNAUTHORIZED';
  if (status === 403 || has('DENIED')) return 'DENIED';
  if (status === 429 || has('TOOMANYREQUESTS')) return 'TOO_MANY_REQUESTS';
  if (has('NAME_UNKNOWN')) return 'NAME_UNKNOWN';
  if (has('MANIFEST_UNKNOWN')) return 'MANIFEST_UNKNOWN';
  if (has('MANIFEST_BLOB_UNKNOWN')) return 'MANIFEST_INVALID';
  if (has('BLOB_UNKNOWN')) return 'BLOB_UNKNOWN';
  if (has('DIGEST_INVALID')) return 'DIGEST_MISMATCH';
  if (has('MANIFEST_INVALID') || has('SIZE_INVALID')) return 'MANIFEST_INVALID';
  if (has('UNSUPPORTED') || status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 404) {
    if (context === 'manifest') return 'MANIFEST_UNKNOWN';
    if (context === 'blob') return 'BLOB_UNKNOWN';
  }
  if (status === 408) return 'TIMEOUT';
  if (status === 503 || has('UNAVAILABLE')) return 'UNAVAILABLE';
  if (status >= 500) return 'SERVER_ERROR';
  if (context === 'upload') return 'UPLOAD_FAILED';
  return 'UNEXPECTED_STATUS';
}

function hintFor(code: OciErrorCode): string | undefined {
  switch (code) {
    case 'UNAUTHORIZED':
      return 'check the credentials (--username/--password, --registry-token or docker login)';
    case 'DENIED':
      return 'the credentials are valid but lack permission for this repository';
    case 'TOO_MANY_REQUESTS':
      return 'the registry is rate limiting: wait, log in, or use another mirror';
    default:
      return undefined;
  }
}

function withAuthorization(
  options: HttpRequestOptions,
  authorization: string | undefined,
): HttpRequestOptions {
  if (authorization === undefined) return options;
  return { ...options, headers: { ...options.headers, authorization } };
}

function withDigestParam(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

function toReference(input: ImageReference | string): ImageReference {
  return typeof input === 'string' ? parseReference(input) : input;
}

function withoutTag(ref: ImageReference): ImageReference {
  return { registry: ref.registry, repository: ref.repository };
}

function pullScope(ref: ImageReference): string {
  return repositoryScope(ref.repository, 'pull');
}

function pushScope(ref: ImageReference): string {
  return repositoryScope(ref.repository, 'pull,push');
}

function chooseFromIndex(
  manifests: readonly Descriptor[],
  follow: true | Platform,
  what: string,
): Descriptor {
  const images = manifests.filter(
    (m) => IMAGE_MANIFEST_MEDIA_TYPES.has(m.mediaType) && m.platform?.os !== 'unknown',
  );
  const matching =
    follow === true
      ? images
      : images.filter(
          (m) =>
            m.platform?.os === follow.os &&
            m.platform.architecture === follow.architecture &&
            (follow.variant === undefined || m.platform.variant === follow.variant),
        );
  if (matching.length !== 1 || matching[0] === undefined) {
    throw new OciError(
      'NO_MATCHING_MANIFEST',
      `${what} is an index with ${matching.length} matching manifests (want exactly one)`,
    );
  }
  return matching[0];
}
