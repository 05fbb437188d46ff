import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { BUNDLE_GZIP_HEADER } from '@trivy-airgap/format';
import { deterministicBytes } from '@trivy-airgap/test-utils';
import { STORED_BLOCK_BYTES, StoredGzipFramer } from '../src/stored-gzip.js';

/** The whole gzip stream of `content`, fed to the framer in pieces of the given sizes (cycled). */
function framed(content: Buffer, pieceSizes: readonly number[]): Buffer {
  const framer = new StoredGzipFramer(content.length);
  const out: Buffer[] = [framer.header()];
  let at = 0;
  for (let i = 0; at < content.length; i++) {
    const size = pieceSizes[i % pieceSizes.length] ?? 1;
    out.push(...framer.frame(content.subarray(at, at + size)));
    at += size;
  }
  out.push(...framer.trailer());
  return Buffer.concat(out);
}

/** Block lengths of a stored-only deflate stream, checking each header the way the importer does. */
function storedBlocks(gzip: Buffer): number[] {
  assert.deepEqual(gzip.subarray(0, BUNDLE_GZIP_HEADER.length), BUNDLE_GZIP_HEADER);
  const lengths: number[] = [];
  let at = BUNDLE_GZIP_HEADER.length;
  for (;;) {
    const flags = gzip[at];
    assert.ok(flags === 0 || flags === 1, `block header byte ${flags}`);
    const length = gzip.readUInt16LE(at + 1);
    assert.equal(gzip.readUInt16LE(at + 3), ~length & 0xffff, 'NLEN is the complement of LEN');
    lengths.push(length);
    at += 5 + length;
    if (flags === 1) break;
  }
  assert.equal(gzip.length - at, 8, 'only the trailer follows the last block');
  return lengths;
}

describe('StoredGzipFramer (the bundle gzip member)', () => {
  it('is a gzip stream every reader inflates back to the content, for sizes around the block limit', () => {
    for (const size of [0, 1, 511, STORED_BLOCK_BYTES, STORED_BLOCK_BYTES + 1, 3 * STORED_BLOCK_BYTES + 7]) {
      const content = deterministicBytes(size, `stored ${size}`);
      const gzip = framed(content, [4096]);
      assert.deepEqual(gunzipSync(gzip), content, `size ${size}`);
      const blocks = storedBlocks(gzip);
      // Full blocks, then the rest; empty content is one empty final block.
      const full = Math.floor(size / STORED_BLOCK_BYTES);
      const expected = [...Array<number>(full).fill(STORED_BLOCK_BYTES)];
      if (size % STORED_BLOCK_BYTES !== 0 || size === 0) expected.push(size % STORED_BLOCK_BYTES);
      assert.deepEqual(blocks, expected, `size ${size}`);
    }
  });

  it('gives the same bytes whatever chunks the content arrives in (reproducible bundles)', () => {
    const content = deterministicBytes(5 * STORED_BLOCK_BYTES + 1234, 'chunking');
    const reference = framed(content, [content.length]);
    for (const pieces of [[1], [7, 65_536, 3], [16_384], [1_048_576], [65_535, 1]]) {
      assert.deepEqual(framed(content.subarray(), pieces), reference, `pieces ${pieces.join(',')}`);
    }
  });

  it('refuses content longer or shorter than planned (the trailer would lie)', () => {
    const longer = new StoredGzipFramer(3);
    assert.throws(() => longer.frame(Buffer.alloc(4)), RangeError);
    const shorter = new StoredGzipFramer(3);
    shorter.frame(Buffer.alloc(2));
    assert.throws(() => shorter.trailer(), RangeError);
  });
});
