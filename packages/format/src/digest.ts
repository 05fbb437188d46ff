import { createHash, type Hash } from 'node:crypto';
import ssri from 'ssri';
import { FormatError } from './errors.js';

/**
 * A content digest, `sha256:<64 lowercase hex>`. The one digest type used at every boundary
 * (OCI descriptors, bundle file lists, install state). Only `parseDigest` and the hashing
 * helpers below make one, so a value of this type is always safe to use as a file name.
 */
export type Digest = `sha256:${string}` & { readonly __brand: 'Digest' };

const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST_PATTERN.test(value);
}

/** Validates an untrusted value as a Digest; `what` names it in the error. */
export function parseDigest(value: unknown, what = 'digest'): Digest {
  if (!isDigest(value)) {
    throw new FormatError(
      'DIGEST_INVALID',
      `${what} is not a sha256 digest (want "sha256:" + 64 lowercase hex): ${describe(value)}`,
    );
  }
  return value;
}

/** The 64 hex characters, e.g. for `blobs/sha256/<hex>`. */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function digestOfBytes(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** Incremental sha256 for streams: feed chunks, then read the digest once. */
export class DigestHasher {
  private readonly hash: Hash = createHash('sha256');
  private byteCount = 0;

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.byteCount += chunk.byteLength;
  }

  get size(): number {
    return this.byteCount;
  }

  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}` as Digest;
  }
}

// The only conversions between our Digest and ssri's integrity strings.

/** `sha256:<hex>` → `sha256-<base64>` (Subresource Integrity form used by ssri/npm). */
export function digestToIntegrity(digest: Digest): string {
  return ssri.fromHex(digestHex(digest), 'sha256').toString();
}

/** `sha256-<base64>` → `sha256:<hex>`; refuses other algorithms and multi-hash strings. */
export function digestFromIntegrity(integrity: string): Digest {
  // ssri returns null for an empty string and an empty Hash for garbage.
  const parsed = ssri.parse(integrity, { single: true }) as ssri.Hash | null;
  if (parsed === null || parsed.algorithm !== 'sha256') {
    throw new FormatError(
      'INTEGRITY_INVALID',
      `not a single sha256 integrity string: ${describe(integrity)}`,
    );
  }
  const hex = parsed.hexDigest();
  return parseDigest(`sha256:${hex}`, 'integrity');
}

export function describe(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  }
  if (value === null || value === undefined) return String(value);
  return typeof value;
}
