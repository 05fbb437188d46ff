import { crc32, gzipSync } from 'node:zlib';

/**
 * Byte-exact archive builders for fixtures. Written by hand on purpose: hostile fixtures need
 * names and entry types (`../x`, absolute paths, symlinks, devices) that archive libraries
 * sanitize or refuse, and tests must control every header field.
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'chardev' | 'fifo';

export interface ArchiveEntry {
  readonly name: string;
  readonly body?: Buffer | string;
  readonly type?: TarEntryType;
  readonly linkname?: string;
  readonly mode?: number;
  /** Overrides the size written in the header (to build lying archives). */
  readonly headerSize?: number;
  readonly mtime?: number;
}

const TYPE_FLAGS: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  directory: '5',
  fifo: '6',
};

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, typeFlag: string, size: number, entry: ArchiveEntry): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write(octal(entry.mode ?? (typeFlag === '5' ? 0o755 : 0o644), 8), 100, 'ascii');
  block.write(octal(0, 8), 108, 'ascii');
  block.write(octal(0, 8), 116, 'ascii');
  block.write(octal(size, 12), 124, 'ascii');
  block.write(octal(entry.mtime ?? 1_700_000_000, 12), 136, 'ascii');
  block.write('        ', 148, 'ascii');
  block.write(typeFlag, 156, 'ascii');
  block.write(entry.linkname ?? '', 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 'binary');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

function padded(body: Buffer): Buffer {
  const pad = (512 - (body.length % 512)) % 512;
  return Buffer.concat([body, Buffer.alloc(pad)]);
}

/** A POSIX tar (ustar; a pax header for names over 100 bytes). */
export function makeTar(entries: readonly ArchiveEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const typeFlag = TYPE_FLAGS[entry.type ?? 'file'];
    let name = entry.name;
    if (Buffer.byteLength(name) > 100) {
      const record = paxRecord('path', name);
      blocks.push(header('PaxHeader', 'x', record.length, { name: 'PaxHeader' }), padded(record));
      name = name.slice(0, 100);
    }
    blocks.push(header(name, typeFlag, entry.headerSize ?? (typeFlag === '0' ? body.length : 0), entry));
    if (typeFlag === '0') blocks.push(padded(body));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

function paxRecord(key: string, value: string): Buffer {
  const text = ` ${key}=${value}\n`;
  const base = Buffer.byteLength(text);
  let length = base + String(base).length;
  if (String(length).length > String(base).length) length += 1; // the length counts its own digits
  return Buffer.from(`${length}${text}`);
}

export function makeTarGz(entries: readonly ArchiveEntry[], level = 6): Buffer {
  return gzipSync(makeTar(entries), { level });
}

/** A zip with stored (uncompressed) entries; directories end with `/`. */
export function makeZip(entries: readonly ArchiveEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const body = Buffer.from(entry.body ?? '');
    const crc = crc32(body);
    const isSymlink = entry.type === 'symlink';
    const data = isSymlink ? Buffer.from(entry.linkname ?? '') : body;
    const dataCrc = isSymlink ? crc32(data) : crc;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(dataCrc >>> 0, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x0314, 4); // made by Unix, so external attributes carry the mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt32LE(dataCrc >>> 0, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    const unixMode = isSymlink ? 0o120777 : entry.name.endsWith('/') ? 0o40755 : 0o100644;
    central.writeUInt32LE((unixMode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const centralSize = centrals.reduce((sum, part) => sum + part.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
