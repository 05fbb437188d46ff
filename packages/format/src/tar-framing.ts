import { crc32 } from 'node:zlib';
import { TarReadError } from './errors.js';
import { BUNDLE_GZIP_HEADER, TAR_BLOCK, TAR_RECORD } from './framing.js';

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
 *    blocks) present, and after it zeros only, marker included at most one tar record (10240 bytes).
 *
 * Upstream layers (`'layer'` framing) are written by GNU tar + gzip (trivy-db, trivy-java-db:
 * `tar czf`) or Go's archive/tar + compress/gzip (oras, trivy-checks), so what is canonical for
 * them is what both write: zero padding after every body, no zero block between entries (Go's
 * reader, i.e. Trivy, refuses one), the end-of-archive marker, and after it zeros only up to the
 * next tar record boundary (GNU tar pads to a record, Go writes nothing more). Any pax record,
 * GNU long names and global headers are allowed (both write them). The gzip side is checked in
 * tar-reader.ts: every compressed byte belongs to a gzip member zlib inflates and checks (CRC-32,
 * size) — consecutive members are one gzip file (RFC 1952), and Go's reader reads them all too —
 * and nothing follows the last one (zlib itself skips NUL-led bytes there).
 */

/** How a tar stream's framing is held: a bundle (our exporter's exact bytes) or an upstream layer. */
export type TarFraming = 'bundle' | 'layer';

function corrupt(
  label: string,
  problem: string,
  extra: { expected?: string | number; found?: string | number } = {},
) {
  return new TarReadError('TAR_INVALID', `${label}: ${problem}`, extra);
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
 * reads the entries): it never decides what an entry is, and any disagreement with the parser
 * ends in a refusal, never in acceptance. It refuses the bytes the parser skips unchecked, held
 * to the rules of its framing (see the top of this file). Nothing after the end-of-archive marker
 * is handed to the parser: node-tar keeps whatever follows it in one growing buffer (a copy per
 * chunk), so padding after the marker would otherwise cost memory and quadratic time.
 */
export class TarFramingAudit {
  private readonly header = Buffer.alloc(TAR_BLOCK);
  private fill = 0;
  private state: 'header' | 'body' | 'padding' | 'end' = 'header';
  private remaining = 0;
  private padding = 0;
  private pax: Buffer[] | undefined;
  private paxSize: number | undefined;
  /** A global pax header's size (layers only: a bundle never has one). */
  private globalSize: number | undefined;
  private paxIsGlobal = false;
  private zeroBlocks = 0;
  /** Where the bytes after the end-of-archive marker must stop (a tar record boundary). */
  private allowedEnd = 0;
  private offset = 0;
  private readonly strict: boolean;

  constructor(
    private readonly label: string,
    framing: TarFraming,
  ) {
    this.strict = framing === 'bundle';
  }

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
            if (this.ended) {
              archive = at;
              // A bundle: marker and padding fit one record. A layer: padding up to the record
              // boundary the marker ends in (GNU tar), or none (Go).
              this.allowedEnd = this.strict
                ? this.offset - 2 * TAR_BLOCK + TAR_RECORD
                : Math.ceil(this.offset / TAR_RECORD) * TAR_RECORD;
            }
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
          this.requireZeros(chunk, at, take, 'padding after an entry');
          this.padding -= take;
          this.offset += take;
          at += take;
          if (this.padding === 0) this.state = 'header';
          break;
        }
        case 'end': {
          const take = chunk.length - at;
          this.requireZeros(chunk, at, take, 'data after the end-of-archive marker');
          this.offset += take;
          at += take;
          if (this.offset > this.allowedEnd) {
            throw corrupt(
              this.label,
              `${this.offset - this.allowedEnd} bytes of padding beyond the tar record after the end-of-archive marker`,
              { expected: this.allowedEnd, found: this.offset },
            );
          }
          break;
        }
      }
    }
    return archive;
  }

  /** After the last byte: the end-of-archive marker must have been there, block-aligned. */
  end(): void {
    if (this.state !== 'end' || this.fill !== 0 || this.offset % TAR_BLOCK !== 0) {
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
      if (this.zeroBlocks === 2) this.state = 'end';
      return;
    }
    if (this.zeroBlocks > 0) {
      // node-tar reads on after a single zero block; Go's archive/tar (Trivy) refuses it.
      throw corrupt(this.label, `a zero block inside the archive at tar offset ${this.offset - TAR_BLOCK}`);
    }
    if (this.strict) this.requireCanonicalChecksum(block);
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

  /**
   * The checksum field is the one header field the checksum does not cover, and node-tar reads it
   * leniently (a leading space, anything after the NUL, junk after the digits): in a bundle it must
   * be exactly what the exporter writes, six octal digits, NUL, space.
   */
  private requireCanonicalChecksum(block: Buffer): void {
    let sum = 0;
    for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    const expected = `${sum.toString(8).padStart(6, '0')}\0 `;
    const found = block.subarray(148, 156);
    if (!found.equals(Buffer.from(expected, 'ascii'))) {
      throw corrupt(
        this.label,
        `a tar header at tar offset ${this.offset} has a checksum field other than the exporter writes`,
        {
          expected: JSON.stringify(expected),
          found: JSON.stringify(found.toString('latin1')),
        },
      );
    }
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
