import { crc32 } from 'node:zlib';
import { BUNDLE_GZIP_HEADER, TAR_BLOCK, TAR_RECORD } from '@trivy-airgap/format';
import { ImporterError, TAMPERED_HINT } from './errors.js';

/**
 * The bytes around a bundle's content that no digest covers: the gzip member header and trailer,
 * the tar padding after each entry and the end-of-archive marker. "Every byte is checked" holds
 * only if these are checked too (docs/bundle-format.md, "Framing"):
 *
 *  - exactly ONE gzip member whose 10-byte header is BUNDLE_GZIP_HEADER (no flags, MTIME 0, the
 *    exporter's XFL and OS bytes), deflate "stored" blocks only with every header bit fixed, its
 *    CRC-32 and size trailer right, and NOTHING after it: no second member, no NUL padding, no junk;
 *  - in the tar: zero padding after every entry body, only `path` and `size` pax records (what
 *    the exporter writes), no zero block between entries, the end-of-archive marker (two zero
 *    blocks) present, and after it zeros only, at most up to one tar record (10240 bytes).
 *
 * Upstream layers are not held to this (their bytes are pinned by their digests).
 */

function corrupt(
  label: string,
  problem: string,
  extra: { expected?: string | number; found?: string | number } = {},
) {
  return new ImporterError('BUNDLE_CORRUPT', `${label}: ${problem}`, { hint: TAMPERED_HINT, ...extra });
}

/** Fixed-size fields of the gzip stream, read across chunk boundaries. */
const FIELD_BYTES = { header: BUNDLE_GZIP_HEADER.length, block: 5, trailer: 8 } as const;

/**
 * Reads a bundle's gzip stream (see the top of this file) as a pipeline stage: compressed chunks
 * in, tar bytes out. A bundle is deflate level 0, i.e. "stored" blocks only: each block is a
 * header byte that is exactly 0x00 (more blocks follow) or 0x01 (the last one) — the padding
 * bits zlib would skip must be zero — then LEN and its one's complement NLEN, then LEN bytes as
 * they are. So every bit of the compressed stream is fixed by the content or checked here, and
 * no zlib is needed: a bundle cannot be a decompression bomb. `maxCompressed` (read per chunk)
 * bounds how much input is read at all (empty blocks produce nothing).
 */
export function storedGzipMember(
  label: string,
  maxCompressed: () => number,
): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* readStoredMember(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let state: 'header' | 'block' | 'data' | 'trailer' | 'done' = 'header';
    let field = Buffer.alloc(0);
    let remaining = 0;
    let last = false;
    let crc = 0;
    let size = 0;
    let total = 0;
    for await (const chunk of source) {
      total += chunk.length;
      if (total > maxCompressed()) {
        throw corrupt(label, `more compressed bytes than the manifest allows (${maxCompressed()})`, {
          expected: maxCompressed(),
          found: total,
        });
      }
      let at = 0;
      while (at < chunk.length) {
        if (state === 'data') {
          const take = Math.min(remaining, chunk.length - at);
          const piece = chunk.subarray(at, at + take);
          crc = crc32(piece, crc);
          size += take;
          remaining -= take;
          at += take;
          if (remaining === 0) state = last ? 'trailer' : 'block';
          yield piece;
          continue;
        }
        if (state === 'done') {
          throw corrupt(label, 'there are bytes after the end of the gzip stream (a second member or junk)');
        }
        const need = FIELD_BYTES[state] - field.length;
        field = Buffer.concat([field, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (field.length < FIELD_BYTES[state]) break;
        const complete = field;
        field = Buffer.alloc(0);
        if (state === 'header') {
          if (!complete.equals(BUNDLE_GZIP_HEADER)) {
            throw corrupt(
              label,
              `the gzip header is ${complete.toString('hex')}, a bundle's is ${BUNDLE_GZIP_HEADER.toString('hex')}`,
              { expected: BUNDLE_GZIP_HEADER.toString('hex'), found: complete.toString('hex') },
            );
          }
          state = 'block';
        } else if (state === 'block') {
          const flags = complete[0];
          const length = complete.readUInt16LE(1);
          if ((flags !== 0 && flags !== 1) || (length ^ 0xffff) !== complete.readUInt16LE(3)) {
            throw corrupt(
              label,
              `invalid deflate block header ${complete.toString('hex')} (a bundle holds stored blocks only)`,
            );
          }
          last = flags === 1;
          remaining = length;
          state = length > 0 ? 'data' : last ? 'trailer' : 'block';
        } else {
          const expectedCrc = complete.readUInt32LE(0);
          const expectedSize = complete.readUInt32LE(4);
          if (expectedCrc !== crc >>> 0 || expectedSize !== size % 2 ** 32) {
            throw corrupt(label, 'the gzip trailer (CRC-32 and size) does not match the content', {
              expected: `${expectedCrc.toString(16)}/${expectedSize}`,
              found: `${(crc >>> 0).toString(16)}/${size % 2 ** 32}`,
            });
          }
          state = 'done';
        }
      }
    }
    if (state !== 'done') throw corrupt(label, 'the gzip stream is truncated');
  };
}

const META_TYPES = new Set(['x', 'g', 'L', 'K']);
/** A pax header is small; node-tar's own cap on meta entries is 1 MiB. */
const MAX_PAX_BYTES = 64 * 1024;
/** pax keys the exporter writes (docs/bundle-format.md); any other is a byte nobody checks. */
const ALLOWED_PAX_KEYS = new Set(['path', 'size']);

function parseTarSize(block: Buffer): number {
  const field = block.subarray(124, 136);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    // base-256 (GNU): big-endian, sign bit set on the first byte
    let value = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    return value;
  }
  const text = field
    .toString('ascii')
    .replace(/[\0 ]+$/, '')
    .trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/**
 * Walks the tar framing of the inflated stream, block by block, beside node-tar's parser (which
 * reads the entries): it never decides what an entry is. `strict` (a bundle) refuses the bytes the
 * parser skips unchecked; any disagreement with the parser ends in a refusal, never in acceptance.
 * Lenient (an upstream layer, pinned by its digest) only finds the end-of-archive marker, after
 * which nothing more is handed to the parser: node-tar keeps whatever follows it in one growing
 * buffer (a copy per chunk), so a layer of zeros after its end marker would cost memory and
 * quadratic time up to the inflation limit.
 */
export class TarFramingAudit {
  private readonly header = Buffer.alloc(TAR_BLOCK);
  private fill = 0;
  private state: 'header' | 'body' | 'padding' | 'end' = 'header';
  private remaining = 0;
  private padding = 0;
  private pax: Buffer[] | undefined;
  private paxSize: number | undefined;
  /** A global pax header's size (lenient only: a bundle never has one). */
  private globalSize: number | undefined;
  private paxIsGlobal = false;
  private zeroBlocks = 0;
  /** Bytes from the first block of the end-of-archive marker on. */
  private trailing = 0;
  private offset = 0;

  constructor(
    private readonly label: string,
    private readonly strict = true,
  ) {}

  /** The end-of-archive marker has been seen: what follows is no entry. */
  get ended(): boolean {
    return this.state === 'end';
  }

  /**
   * Takes the next bytes of the stream; returns how many of them belong to the archive, i.e. come
   * before the end of its end-of-archive marker (all of them until the marker is seen).
   */
  write(chunk: Buffer): number {
    let at = 0;
    let archive = this.state === 'end' ? 0 : chunk.length;
    while (at < chunk.length) {
      switch (this.state) {
        case 'header': {
          const take = Math.min(TAR_BLOCK - this.fill, chunk.length - at);
          chunk.copy(this.header, this.fill, at, at + take);
          this.fill += take;
          at += take;
          if (this.fill === TAR_BLOCK) {
            this.fill = 0;
            this.onHeader();
            this.offset += TAR_BLOCK;
            if (this.ended) archive = at;
          }
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - at);
          if (this.pax !== undefined) this.pax.push(Buffer.from(chunk.subarray(at, at + take)));
          this.remaining -= take;
          this.offset += take;
          at += take;
          if (this.remaining === 0) this.endBody();
          break;
        }
        case 'padding': {
          const take = Math.min(this.padding, chunk.length - at);
          if (this.strict) this.requireZeros(chunk, at, take, 'padding after an entry');
          this.padding -= take;
          this.offset += take;
          at += take;
          if (this.padding === 0) this.state = 'header';
          break;
        }
        case 'end': {
          const take = chunk.length - at;
          if (!this.strict) return archive;
          this.requireZeros(chunk, at, take, 'data after the end-of-archive marker');
          this.trailing += take;
          this.offset += take;
          at += take;
          if (this.trailing > TAR_RECORD) {
            throw corrupt(this.label, `more than ${TAR_RECORD} bytes after the last entry (a tar record)`, {
              expected: TAR_RECORD,
              found: this.trailing,
            });
          }
          break;
        }
      }
    }
    return archive;
  }

  /** After the last byte: the end-of-archive marker must have been there, block-aligned. */
  end(): void {
    // A layer may lack the marker (node-tar accepts that, and its digest pins it).
    if (!this.strict) return;
    if (this.state !== 'end' || this.fill !== 0 || this.trailing % TAR_BLOCK !== 0) {
      throw corrupt(this.label, 'the tar stream ends without its end-of-archive marker (truncated)');
    }
  }

  private requireZeros(chunk: Buffer, at: number, length: number, what: string): void {
    for (let i = at; i < at + length; i++) {
      if (chunk[i] !== 0) {
        throw corrupt(this.label, `non-zero byte in the ${what} at tar offset ${this.offset + (i - at)}`);
      }
    }
  }

  private onHeader(): void {
    const block = this.header;
    if (block.every((byte) => byte === 0)) {
      this.zeroBlocks += 1;
      this.trailing += TAR_BLOCK;
      if (this.zeroBlocks === 2) this.state = 'end';
      return;
    }
    if (this.zeroBlocks > 0) {
      if (this.strict) {
        throw corrupt(this.label, `a zero block inside the archive at tar offset ${this.offset - TAR_BLOCK}`);
      }
      // node-tar reads on after a single zero block.
      this.zeroBlocks = 0;
      this.trailing = 0;
    }
    const type = String.fromCharCode(block[156] ?? 0);
    if (this.strict && META_TYPES.has(type) && type !== 'x') {
      throw corrupt(this.label, `a tar header of type ${JSON.stringify(type)}, which bundles never use`);
    }
    const isPax = type === 'x' || type === 'g';
    let size = parseTarSize(block);
    // As node-tar: a local pax size over a global one, for the next headers until an entry.
    if (!isPax) size = this.paxSize ?? this.globalSize ?? size;
    if (!META_TYPES.has(type)) this.paxSize = undefined;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw corrupt(this.label, 'a tar header with an invalid size');
    }
    if (isPax) {
      if (size > MAX_PAX_BYTES) throw corrupt(this.label, `a pax header of ${size} bytes`);
      this.pax = [];
      this.paxIsGlobal = type === 'g';
    }
    this.remaining = size;
    this.padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
    if (size === 0) this.endBody();
    else this.state = 'body';
  }

  private endBody(): void {
    if (this.pax !== undefined) {
      const size = this.readPax(Buffer.concat(this.pax));
      if (this.paxIsGlobal) this.globalSize = size ?? this.globalSize;
      else this.paxSize = size ?? this.paxSize;
      this.pax = undefined;
    }
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  /** Checks the records of a pax header; returns its `size` when it has one. */
  private readPax(bytes: Buffer): number | undefined {
    let size: number | undefined;
    let at = 0;
    while (at < bytes.length) {
      const space = bytes.indexOf(0x20, at);
      const length = space < 0 ? NaN : Number(bytes.subarray(at, space).toString('ascii'));
      if (
        !Number.isSafeInteger(length) ||
        length <= 0 ||
        at + length > bytes.length ||
        bytes[at + length - 1] !== 0x0a
      ) {
        throw corrupt(this.label, 'a malformed pax record');
      }
      const record = bytes.subarray(space + 1, at + length - 1).toString('utf8');
      const equals = record.indexOf('=');
      const key = equals < 0 ? record : record.slice(0, equals);
      if (this.strict && !ALLOWED_PAX_KEYS.has(key)) {
        throw corrupt(
          this.label,
          `a pax record ${JSON.stringify(key.slice(0, 40))}, which bundles never use`,
        );
      }
      if (key === 'size') size = Number(record.slice(equals + 1));
      at += length;
    }
    return size;
  }
}
