/**
 * A minimal writer of the tar headers docs/bundle-format.md requires: regular files only,
 * ustar, mode 0644, uid/gid 0, empty uname/gname, a fixed mtime, and a pax header only for a
 * path over 100 bytes (or a size over 8 GiB).
 *
 * Why not archiver (the library first chosen for this): its headers (through tar-stream 3) are
 * right, but its failure paths are not usable for a streaming exporter. `archive.abort()` throws
 * a TypeError from archiver's Tar.unpipe (tar-stream 3 streams have no `unpipe`), and destroying
 * the archive mid-entry makes tar-stream emit the error again on an internal entry stream that
 * has no listener, i.e. an uncaught exception that kills the process. A read or integrity error
 * mid-export must be an ordinary rejected promise; 60 lines of header code give us that and
 * byte-level control of the format.
 */

const BLOCK = 512;
const MAX_OCTAL_SIZE = 0o77777777777; // what fits the 11 octal digits of the size field

function writeOctal(block: Buffer, value: number, offset: number, width: number): void {
  // width - 1 octal digits followed by NUL, as GNU tar writes them
  block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

function ustarHeader(name: string, size: number, mtimeSeconds: number, typeFlag: string): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  writeOctal(block, 0o644, 100, 8);
  writeOctal(block, 0, 108, 8); // uid
  writeOctal(block, 0, 116, 8); // gid
  writeOctal(block, size, 124, 12);
  writeOctal(block, mtimeSeconds, 136, 12);
  block.write('        ', 148, 8, 'ascii'); // checksum is computed over 8 spaces
  block.write(typeFlag, 156, 1, 'ascii');
  block.write('ustar\u000000', 257, 8, 'binary'); // magic "ustar\0", version "00"
  // uname (265) and gname (297) stay empty; devmajor/devminor as zeros
  writeOctal(block, 0, 329, 8);
  writeOctal(block, 0, 337, 8);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

/** One pax record: `<length> <key>=<value>\n`, where the length counts its own digits. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body, 'utf8');
  let length = bodyLength + String(bodyLength).length;
  if (String(length).length !== String(bodyLength).length) length = bodyLength + String(length).length;
  return `${length}${body}`;
}

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

/** The header block(s) of a regular file `name` of `size` bytes. */
export function tarFileHeader(name: string, size: number, mtime: Date): Buffer {
  const mtimeSeconds = Math.floor(mtime.getTime() / 1000);
  const records: string[] = [];
  let shortName = name;
  if (Buffer.byteLength(name, 'utf8') > 100) {
    records.push(paxRecord('path', name));
    shortName = Buffer.from(name, 'utf8')
      .subarray(0, 100)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
  }
  if (size > MAX_OCTAL_SIZE) records.push(paxRecord('size', String(size)));
  const header = ustarHeader(shortName, size > MAX_OCTAL_SIZE ? 0 : size, mtimeSeconds, '0');
  if (records.length === 0) return header;
  const pax = Buffer.from(records.join(''), 'utf8');
  return Buffer.concat([
    ustarHeader('PaxHeader', pax.length, mtimeSeconds, 'x'),
    pax,
    tarPadding(pax.length),
    header,
  ]);
}

/** Bytes a regular-file entry of `size` takes in the tar (header, data, padding; no pax). */
export function tarEntrySize(name: string, size: number): number {
  return tarFileHeader(name, size, new Date(0)).length + size + tarPadding(size).length;
}
