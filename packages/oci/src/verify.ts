import { Transform, type TransformCallback } from 'node:stream';
import { DigestHasher, type Digest } from '@trivy-airgap/format';
import { OciError, type IntegritySide } from './errors.js';

/**
 * Passes bytes through while hashing them, and fails the stream on the first byte past the
 * declared size (trailing bytes), on a short stream, or on a digest mismatch at the end — so a
 * consumer never sees the end of a stream whose content was not the one asked for.
 */
export class VerifyingStream extends Transform {
  private readonly verifier: BlobVerifier;

  /** `onChunk` sees each chunk as it passes (for progress) without switching the stream to flowing mode. */
  constructor(
    expected: ExpectedBlob,
    side: IntegritySide,
    what: string,
    private readonly onChunk?: (chunk: Buffer) => void,
  ) {
    super();
    this.verifier = new BlobVerifier(expected, side, what);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.verifier.update(chunk);
      this.onChunk?.(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.verifier.finish();
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }
}

export interface ExpectedBlob {
  readonly digest: Digest;
  readonly size: number;
}

/** The same checks for code that loops over chunks itself: `update` throws on trailing bytes, `finish` on the rest. */
export class BlobVerifier {
  private readonly hasher = new DigestHasher();

  constructor(
    private readonly expected: ExpectedBlob,
    private readonly side: IntegritySide,
    private readonly what: string,
  ) {}

  get bytesSeen(): number {
    return this.hasher.size;
  }

  update(chunk: Uint8Array): void {
    if (this.hasher.size + chunk.byteLength > this.expected.size) {
      throw sizeMismatch(this.what, this.expected.size, this.hasher.size + chunk.byteLength, this.side, true);
    }
    this.hasher.update(chunk);
  }

  finish(): Digest {
    if (this.hasher.size !== this.expected.size) {
      throw sizeMismatch(this.what, this.expected.size, this.hasher.size, this.side, false);
    }
    const found = this.hasher.digest();
    if (found !== this.expected.digest)
      throw digestMismatch(this.what, this.expected.digest, found, this.side);
    return found;
  }
}

export function sizeMismatch(
  what: string,
  expected: number,
  found: number,
  side: IntegritySide,
  atLeast: boolean,
): OciError {
  const foundText = `${atLeast ? 'at least ' : ''}${found} bytes`;
  return new OciError('SIZE_MISMATCH', `${what}: expected ${expected} bytes, found ${foundText} (${side})`, {
    expected: `${expected} bytes`,
    found: foundText,
    side,
  });
}

export function digestMismatch(what: string, expected: Digest, found: Digest, side: IntegritySide): OciError {
  return new OciError('DIGEST_MISMATCH', `${what}: expected ${expected}, found ${found} (${side})`, {
    expected,
    found,
    side,
  });
}
