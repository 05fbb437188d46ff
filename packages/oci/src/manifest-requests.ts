import { digestOfBytes, isDigest, type Digest } from '@trivy-airgap/format';
import { pullScope, pushScope } from './auth.js';
import type { RegistrySession } from './auth-session.js';
import { OciError } from './errors.js';
import type { OciEventListener } from './events.js';
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
import { formatReference, manifestPathPart, withDigest, withTag, type ImageReference } from './reference.js';
import { errorFromResponse } from './response-errors.js';
import { digestMismatch, sizeMismatch } from './verify.js';

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

export interface PushManifestResult {
  readonly digest: Digest;
  /** False when the registry already had these exact bytes under this tag (or digest). */
  readonly pushed: boolean;
}

/**
 * Manifest reads and writes against registry repositories. Manifests are small and kept as exact
 * bytes: their digest is computed here, never taken from the registry's word.
 */
export class ManifestRequests {
  constructor(
    private readonly session: RegistrySession,
    private readonly onEvent?: OciEventListener | undefined,
  ) {}

  async get(ref: ImageReference, options: GetManifestOptions = {}): Promise<ManifestResult> {
    const response = await this.session.send(ref, `/manifests/${manifestPathPart(ref)}`, [pullScope(ref)], {
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
    });
    if (response.status !== 200) throw await errorFromResponse(response, 'manifest', ref);
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
    const child = await this.get(withDigest(withoutTag(ref), chosen.digest), { signal: options.signal });
    if (child.size !== chosen.size)
      throw sizeMismatch(`manifest ${chosen.digest}`, chosen.size, child.size, 'source', false);
    return { ...child, reference: withDigest(ref, child.digest) };
  }

  /** The descriptor of a manifest without downloading it; undefined when the registry does not have it. */
  async head(ref: ImageReference, signal?: AbortSignal): Promise<Descriptor | undefined> {
    const headers = await this.headers(ref, pullScope(ref), signal);
    if (headers === undefined) return undefined;
    const digest = headers['docker-content-digest'];
    const size = Number(headers['content-length']);
    const mediaType = headers['content-type']?.split(';')[0]?.trim();
    if (digest === undefined || !isDigest(digest) || !Number.isSafeInteger(size) || mediaType === undefined) {
      // Not every registry answers HEAD fully; the bytes are authoritative anyway.
      const manifest = await this.get(ref, { signal });
      return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
    }
    return { mediaType, digest, size };
  }

  /** Pushes manifest bytes as they are (their digest is kept). Skips the PUT when the registry already has them under this tag. */
  async push(
    ref: ImageReference,
    bytes: Buffer,
    mediaType?: string,
    signal?: AbortSignal,
  ): Promise<PushManifestResult> {
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
    const existing = await this.existingDigest(target, signal);
    if (existing === digest) {
      this.onEvent?.({ type: 'manifest-exists', repository: ref.repository, digest, tag: ref.tag });
      return { digest, pushed: false };
    }
    const response = await this.session.send(
      target,
      `/manifests/${manifestPathPart(target)}`,
      [pushScope(ref)],
      {
        method: 'PUT',
        headers: { 'content-type': type, 'content-length': String(bytes.byteLength) },
        body: bytes,
        signal,
      },
    );
    if (response.status !== 201 && response.status !== 200)
      throw await errorFromResponse(response, 'manifest', target);
    const stored = response.headers['docker-content-digest'];
    await response.discard();
    if (stored !== undefined && isDigest(stored) && stored !== digest) {
      throw digestMismatch(`manifest pushed to ${formatReference(target)}`, digest, stored, 'destination');
    }
    this.onEvent?.({ type: 'manifest-pushed', repository: ref.repository, digest, tag: ref.tag });
    return { digest, pushed: true };
  }

  /** Points `tagged` (a reference with a tag) at a manifest already in the same repository. */
  async tag(tagged: ImageReference, digest: Digest, signal?: AbortSignal): Promise<PushManifestResult> {
    if (tagged.tag === undefined)
      throw new OciError('INVALID_REFERENCE', `${formatReference(tagged)} has no tag to set`);
    const manifest = await this.get(withDigest(withoutTag(tagged), digest), { signal });
    return this.push(withTag(tagged, tagged.tag), manifest.bytes, manifest.mediaType, signal);
  }

  private async existingDigest(ref: ImageReference, signal?: AbortSignal): Promise<Digest | undefined> {
    const digest = (await this.headers(ref, pushScope(ref), signal))?.['docker-content-digest'];
    return digest !== undefined && isDigest(digest) ? digest : undefined;
  }

  /** A HEAD of the manifest: its response headers, or undefined when the registry does not have it. */
  private async headers(
    ref: ImageReference,
    scope: string,
    signal?: AbortSignal,
  ): Promise<Readonly<Record<string, string>> | undefined> {
    const response = await this.session.send(ref, `/manifests/${manifestPathPart(ref)}`, [scope], {
      method: 'HEAD',
      headers: { accept: MANIFEST_ACCEPT },
      signal,
    });
    await response.discard();
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await errorFromResponse(response, 'manifest', ref);
    return response.headers;
  }
}

function withoutTag(ref: ImageReference): ImageReference {
  return { registry: ref.registry, repository: ref.repository };
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
