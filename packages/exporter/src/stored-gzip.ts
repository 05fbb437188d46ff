import { crc32 } from 'node:zlib';
import { BUNDLE_GZIP_HEADER } from '@trivy-airgap/format';

/** The most a deflate "stored" block holds: LEN is 16 bits (RFC 1951, 3.2.4). */
export const STORED_BLOCK_BYTES = 65_535;

/**
 * Frames content of a size known in advance as the bundle's one gzip member (docs/bundle-format.md,
 * "Framing"): BUNDLE_GZIP_HEADER, deflate stored blocks, the CRC-32 and size trailer. Stored, not
 * deflated: bundle content is gzip already, and deflating it again made it bigger and ~40x slower;
 * stored blocks also leave no bit of the stream unchecked, so the importer refuses anything else.
 *
 * Written here rather than by zlib at level 0 because stored blocks are only a 5-byte header in
 * front of bytes passed as they are: the content is handed on as the same Buffers (subarrays), not
 * copied through zlib's output buffer and its thread-pool round trips, and the block layout is a
 * function of the total size alone (full 65535-byte blocks, the last one shorter), so the same
 * content gives the same bundle whatever the chunks it arrived in. zlib still computes the CRC.
 */
export class StoredGzipFramer {
  private crc = 0;
  private framed = 0;
  /** Bytes left in the current block (its header is already out). */
  private blockLeft = 0;

  constructor(private readonly total: number) {
    if (!Number.isSafeInteger(total) || total < 0) throw new RangeError(`bad content size ${total}`);
  }

  /** The member header: the fixed bytes every reader checks. */
  header(): Buffer {
    return BUNDLE_GZIP_HEADER;
  }

  /** Content bytes → the pieces of the gzip stream that carry them (block headers and subarrays). */
  frame(chunk: Buffer): Buffer[] {
    if (this.framed + chunk.length > this.total) {
      throw new RangeError(`more than the ${this.total} content bytes planned`);
    }
    this.crc = crc32(chunk, this.crc);
    const pieces: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.blockLeft === 0) {
        const length = Math.min(STORED_BLOCK_BYTES, this.total - this.framed);
        pieces.push(blockHeader(length, this.framed + length === this.total));
        this.blockLeft = length;
      }
      const take = Math.min(this.blockLeft, chunk.length - at);
      pieces.push(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
      at += take;
      this.blockLeft -= take;
      this.framed += take;
    }
    return pieces;
  }

  /** The end of the member (after exactly `total` content bytes): CRC-32 and size, little-endian. */
  trailer(): Buffer[] {
    if (this.framed !== this.total) {
      throw new RangeError(`${this.framed} content bytes framed, ${this.total} planned`);
    }
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(this.crc >>> 0, 0);
    trailer.writeUInt32LE(this.total % 2 ** 32, 4);
    // Empty content still needs its one (final, empty) block.
    return this.total === 0 ? [blockHeader(0, true), trailer] : [trailer];
  }
}

function blockHeader(length: number, last: boolean): Buffer {
  const header = Buffer.allocUnsafe(5);
  header[0] = last ? 1 : 0; // BFINAL, BTYPE 00 (stored); the padding bits to the byte are zero
  header.writeUInt16LE(length, 1);
  header.writeUInt16LE(~length & 0xffff, 3);
  return header;
}
