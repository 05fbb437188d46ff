import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TarReader, isInside, type TarReadError } from '@trivy-airgap/format';
import { crc32 } from 'node:zlib';
import type unzipper from 'unzipper';
import { COMPONENTS } from './components.js';
import { TrivyError } from './errors.js';
import { MAX_VEX_INDEX_BYTES, parseVexIndex, type VexIndex } from './vex.js';

export type VexArchiveType = 'tar.gz' | 'zip';

/** Bounds against zip/gzip bombs and inode floods (docs/security.md, "Limits"). */
export interface VexArchiveLimits {
  /** Total bytes of file contents (and, for tar.gz, of the decompressed tar stream). */
  readonly maxTotalBytes?: number;
  /** Number of entries in the whole archive. */
  readonly maxEntries?: number;
  /** Bytes of one file. */
  readonly maxFileBytes?: number;
}

/**
 * VEX Hub today is ~122 files and ~9 MB unpacked, growing by a few files a month. The caps leave
 * a wide margin (~160x the files, ~28x the bytes) and still bound what an import can leave on
 * disk: every installed generation is kept for `rollback`, so an archive of 100 000 tiny files
 * would cost 100 000 inodes per generation and one metadata write each.
 */
export const DEFAULT_VEX_ARCHIVE_LIMITS: Readonly<Required<VexArchiveLimits>> = {
  maxTotalBytes: 256 * 1024 * 1024,
  maxEntries: 20_000,
  maxFileBytes: 64 * 1024 * 1024,
};

/**
 * The key two archive names collide under on some file system: case folded (macOS, Windows) and
 * Unicode-normalized (APFS). Names equal under it are refused everywhere, so that `verify` on
 * Linux refuses what `import` on a Mac could not write.
 */
export function collisionKey(path: string): string {
  return path.normalize('NFC').toLowerCase();
}

/** What a checked or extracted VEX archive holds below its subdir. */
export interface VexArchiveSummary {
  /** The parsed `index.json` of the repository. */
  readonly index: VexIndex;
  /** Files below the subdir (relative paths, `/`-separated, sorted). */
  readonly files: readonly string[];
  /** Total bytes of the file entries read (the whole archive, counted against maxTotalBytes). */
  readonly totalBytes: number;
}

/** Durability is the caller's: the importer syncs the whole staging tree once. */
export type ExtractVexOptions = VexArchiveLimits;

/**
 * Why an archive entry name is unsafe, or undefined. Pure string checks before any I/O
 * (absolute paths, drive letters, `..`, backslashes, NUL/control characters, empty segments).
 */
export function archiveEntryProblem(name: string): string | undefined {
  if (name === '') return 'has an empty name';
  if (Buffer.byteLength(name, 'utf8') > 4096) return 'is longer than 4096 bytes';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a NUL or control character';
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/')) return 'is absolute';
  if (/^[A-Za-z]:/.test(name)) return 'starts with a drive letter';
  const segments = name.replace(/\/$/, '').split('/');
  for (const [index, segment] of segments.entries()) {
    if (segment === '..') return 'has a ".." segment';
    if (segment === '') return 'has an empty segment';
    if (segment === '.' && index !== 0) return 'has a "." segment';
    if (Buffer.byteLength(segment, 'utf8') > 255) return 'has a segment longer than 255 bytes';
  }
  return undefined;
}

/** Segments of a safe entry name with a leading `./` dropped (`./` itself → []). */
function entrySegments(name: string): string[] {
  const problem = archiveEntryProblem(name);
  if (problem !== undefined) {
    throw new TrivyError(
      'VEX_ARCHIVE_UNSAFE',
      `archive entry ${JSON.stringify(name.slice(0, 200))} ${problem}`,
      {
        context: { entry: name.slice(0, 200) },
      },
    );
  }
  const segments = name.replace(/\/$/, '').split('/');
  return segments[0] === '.' ? segments.slice(1) : segments;
}

type EntryKind = 'file' | 'directory';

interface ArchiveEntry {
  readonly name: string;
  readonly kind: EntryKind;
  /** Declared size (tar header / zip central directory). */
  readonly size: number;
  readonly body: AsyncIterable<Buffer>;
}

/** What to do with each entry below the subdir; entries elsewhere are only checked and drained. */
interface EntrySink {
  directory(relativePath: string): Promise<void>;
  file(relativePath: string, body: AsyncIterable<Buffer>): Promise<void>;
}

const unsafe = (name: string, problem: string): TrivyError =>
  new TrivyError('VEX_ARCHIVE_UNSAFE', `archive entry ${JSON.stringify(name.slice(0, 200))} ${problem}`, {
    context: { entry: name.slice(0, 200) },
  });

const tooLarge = (message: string, context: Record<string, string | number>): TrivyError =>
  new TrivyError('VEX_ARCHIVE_TOO_LARGE', message, {
    context,
    hint: 'a VEX repository is a few MB; this archive looks like a zip/gzip bomb',
  });

/** Walks the entries in archive order, applying the path, type, count and size rules. */
class ArchiveWalker {
  private readonly limits: Required<VexArchiveLimits>;
  private readonly subdirSegments: string[];
  private entryCount = 0;
  private fileBytes = 0;
  readonly files = new Set<string>();
  /** What each collision key below the subdir is: a file or a directory. */
  private readonly kinds = new Map<string, EntryKind>();
  subdirSeen = false;

  constructor(
    subdir: string,
    limits: VexArchiveLimits,
    private readonly sink: EntrySink,
  ) {
    this.limits = { ...DEFAULT_VEX_ARCHIVE_LIMITS, ...limits };
    this.subdirSegments = subdir === '' ? [] : entrySegments(subdir);
  }

  get totalBytes(): number {
    return this.fileBytes;
  }

  get maxTotalBytes(): number {
    return this.limits.maxTotalBytes;
  }

  /** Called for every entry header, in order, before its body is read. */
  countEntry(): void {
    this.entryCount += 1;
    if (this.entryCount > this.limits.maxEntries) {
      throw tooLarge(`archive has more than ${this.limits.maxEntries} entries`, {
        expected: this.limits.maxEntries,
      });
    }
  }

  /** Relative path below the subdir, '' for the subdir itself, undefined when outside it. */
  private below(segments: readonly string[]): string | undefined {
    if (segments.length < this.subdirSegments.length) return undefined;
    for (const [index, segment] of this.subdirSegments.entries()) {
      if (segments[index] !== segment) return undefined;
    }
    return segments.slice(this.subdirSegments.length).join('/');
  }

  private reserve(name: string, size: number): void {
    if (size > this.limits.maxFileBytes) {
      throw tooLarge(
        `archive entry ${JSON.stringify(name)} is ${size} bytes, more than ${this.limits.maxFileBytes}`,
        {
          entry: name,
          found: size,
          expected: this.limits.maxFileBytes,
        },
      );
    }
    if (this.fileBytes + size > this.limits.maxTotalBytes) {
      throw tooLarge(`archive unpacks to more than ${this.limits.maxTotalBytes} bytes`, {
        expected: this.limits.maxTotalBytes,
      });
    }
    this.fileBytes += size;
  }

  /** Counts a body while it is read and refuses more bytes than declared (zip sizes can lie). */
  private async *bounded(name: string, declared: number, body: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    let seen = 0;
    for await (const chunk of body) {
      seen += chunk.length;
      if (seen > declared) {
        throw tooLarge(
          `archive entry ${JSON.stringify(name)} holds more bytes than its declared ${declared}`,
          {
            entry: name,
            expected: declared,
          },
        );
      }
      yield chunk;
    }
    if (seen !== declared) {
      throw new TrivyError(
        'VEX_ARCHIVE_INVALID',
        `archive entry ${JSON.stringify(name)} holds ${seen} bytes, its header says ${declared}`,
        { context: { entry: name, expected: declared, found: seen } },
      );
    }
  }

  async visit(entry: ArchiveEntry): Promise<void> {
    const segments = entrySegments(entry.name);
    const relativePath = this.below(segments);
    // State is updated before the first await: tar emits the next entry as soon as this body ends.
    if (entry.kind === 'directory') {
      if (relativePath === '') this.subdirSeen = true;
      const inside = relativePath !== undefined && relativePath !== '';
      if (inside) this.claim(entry.name, relativePath, 'directory');
      await drain(entry.body);
      if (inside) await this.sink.directory(relativePath);
      return;
    }
    this.reserve(entry.name, entry.size);
    const body = this.bounded(entry.name, entry.size, entry.body);
    if (relativePath === undefined) {
      await drain(body);
      return;
    }
    if (relativePath === '') throw unsafe(entry.name, 'is a file where the subdir should be');
    this.subdirSeen = true;
    this.claim(entry.name, relativePath, 'file');
    this.files.add(relativePath);
    await this.sink.file(relativePath, body);
  }

  /**
   * Records a path below the subdir and its parents, refusing collisions by string rules before
   * any file-system call (so checking and extracting refuse alike): a file twice, a file and a
   * directory of one name, anything below a file, names equal but for case or normalization.
   */
  private claim(name: string, relativePath: string, kind: EntryKind): void {
    const parts = relativePath.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = collisionKey(parts.slice(0, i).join('/'));
      if (this.kinds.get(parent) === 'file') {
        throw unsafe(name, `is below ${JSON.stringify(parts.slice(0, i).join('/'))}, which is a file`);
      }
      this.kinds.set(parent, 'directory');
    }
    const key = collisionKey(relativePath);
    const existing = this.kinds.get(key);
    if (existing === 'file') {
      throw unsafe(
        name,
        kind === 'directory'
          ? 'is a directory with the name of a file'
          : this.files.has(relativePath)
            ? 'appears twice'
            : 'collides with another file (names equal but for case or Unicode form)',
      );
    }
    if (existing === 'directory' && kind === 'file')
      throw unsafe(name, 'is a file with the name of a directory');
    this.kinds.set(key, kind);
  }
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  for await (const _chunk of body) {
    // discard
  }
}

function readError(error: unknown, what: string): TrivyError {
  if (error instanceof TrivyError) return error;
  return new TrivyError('VEX_ARCHIVE_INVALID', `${what} is not a readable archive: ${String(error)}`, {
    cause: error,
  });
}

const TAR_FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/**
 * The shared tar reader's failures in this package's words: a limit is the bomb guard, an entry
 * type node-tar would skip is not a plain file or directory, anything else is an unreadable archive.
 */
function fromTarReadError(error: TarReadError, archivePath: string): TrivyError {
  if (error.code === 'TAR_TOO_LARGE') {
    return tooLarge(error.message, error.expected === undefined ? {} : { expected: error.expected });
  }
  if (error.code === 'TAR_ENTRY_TYPE') {
    return unsafe(error.path ?? '', 'has a tar entry type that is not a plain file or directory');
  }
  return new TrivyError('VEX_ARCHIVE_INVALID', error.message, {
    cause: error.cause ?? error,
    context: { path: archivePath },
  });
}

async function walkTarGz(archivePath: string, walker: ArchiveWalker): Promise<void> {
  const tar = new TarReader(createReadStream(archivePath), {
    // Fetched from the repository the user named: held to node-tar's strict parser and the
    // walker's rules, not to the byte-exact framing of bundles and layers.
    framing: 'plain',
    label: `archive ${archivePath}`,
    limit: () => walker.maxTotalBytes,
    limitReason: 'the bound on a VEX archive',
    mapError: (error) => fromTarReadError(error, archivePath),
  });
  try {
    for (let entry = await tar.next(); entry !== undefined; entry = await tar.next()) {
      walker.countEntry();
      let kind: EntryKind;
      if (TAR_FILE_TYPES.has(entry.type)) kind = 'file';
      else if (entry.type === 'Directory') kind = 'directory';
      else throw unsafe(entry.path, `is a ${entry.type}, not a plain file or directory`);
      await walker.visit({ name: entry.path, kind, size: entry.size, body: tar.chunks(entry) });
    }
  } finally {
    tar.close();
  }
}

const ZIP_UNIX_TYPE_MASK = 0o170000;
const ZIP_UNIX_FILE = 0o100000;
const ZIP_UNIX_DIRECTORY = 0o040000;

async function walkZip(archivePath: string, walker: ArchiveWalker): Promise<void> {
  let directory: unzipper.CentralDirectory;
  try {
    // Loaded on first use: most commands never read a zip, and unzipper is slow to load.
    const { default: zip } = await import('unzipper');
    directory = await zip.Open.file(archivePath);
  } catch (error) {
    throw readError(error, archivePath);
  }
  // Every header is checked before any body is read (the central directory lists them all).
  for (const file of directory.files) {
    walker.countEntry();
    const unixType = (file.externalFileAttributes >>> 16) & ZIP_UNIX_TYPE_MASK;
    const madeByUnix = file.versionMadeBy >> 8 === 3;
    if (madeByUnix && unixType !== 0 && unixType !== ZIP_UNIX_FILE && unixType !== ZIP_UNIX_DIRECTORY) {
      throw unsafe(
        file.path,
        unixType === 0o120000 ? 'is a symbolic link' : 'is not a plain file or directory',
      );
    }
    if ((file.flags & 0x1) !== 0) throw unsafe(file.path, 'is encrypted');
    if (file.compressionMethod !== 0 && file.compressionMethod !== 8) {
      throw new TrivyError(
        'VEX_ARCHIVE_INVALID',
        `archive entry ${JSON.stringify(file.path)} uses compression method ${file.compressionMethod} (only stored and deflate are read)`,
      );
    }
    entrySegments(file.path);
  }
  for (const file of directory.files) {
    const isDirectory = file.path.endsWith('/');
    if (isDirectory) {
      await walker.visit({ name: file.path, kind: 'directory', size: 0, body: emptyBody() });
      continue;
    }
    const body = checkedZipBody(file);
    await walker.visit({ name: file.path, kind: 'file', size: file.uncompressedSize, body });
  }
}

async function* emptyBody(): AsyncIterable<Buffer> {
  // A directory has no body.
}

/** A zip entry's bytes with its CRC-32 checked at the end (unzipper does not check it). */
async function* checkedZipBody(file: unzipper.File): AsyncIterable<Buffer> {
  const stream = file.stream();
  const chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let crc = 0;
  try {
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        // unzipper's own failures (FILE_ENDED on a damaged entry …) are archive problems.
        throw readError(error, `archive entry ${JSON.stringify(file.path)}`);
      }
      if (next.done === true) break;
      crc = crc32(next.value, crc);
      yield next.value;
    }
  } finally {
    stream.destroy();
  }
  if (crc >>> 0 !== file.crc32 >>> 0) {
    throw new TrivyError(
      'VEX_ARCHIVE_INVALID',
      `archive entry ${JSON.stringify(file.path)} fails its CRC-32 check`,
      {
        context: { entry: file.path },
      },
    );
  }
}

async function walkArchive(
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  limits: VexArchiveLimits,
  sink: EntrySink,
): Promise<ArchiveWalker> {
  const walker = new ArchiveWalker(subdir, limits, sink);
  if (type === 'zip') await walkZip(archivePath, walker);
  else await walkTarGz(archivePath, walker);
  return walker;
}

/** index.json present and every location it lists present (trivy-facts.md: index.json + the documents it lists). */
function summarize(walker: ArchiveWalker, indexBytes: Buffer | undefined, subdir: string): VexArchiveSummary {
  const where = subdir === '' ? 'the archive root' : `subdir ${JSON.stringify(subdir)}`;
  if (!walker.subdirSeen && subdir !== '') {
    throw new TrivyError('VEX_ARCHIVE_INVALID', `the archive has no ${where}`, {
      context: { subdir },
      hint: 'the location URL needs the right //subdir (the archive top folder)',
    });
  }
  if (indexBytes === undefined) {
    throw new TrivyError('VEX_ARCHIVE_INVALID', `the archive has no index.json in ${where}`, {
      context: { subdir },
      hint: 'the location URL needs the right //subdir (the folder holding index.json)',
    });
  }
  const index = parseVexIndex(indexBytes);
  const missing = index.packages
    .map((entry) => entry.location)
    .filter((location) => !walker.files.has(location));
  if (missing.length > 0) {
    const shown = missing
      .slice(0, 5)
      .map((location) => JSON.stringify(location))
      .join(', ');
    throw new TrivyError(
      'VEX_ARCHIVE_INVALID',
      `index.json lists ${missing.length} document(s) missing from ${where}: ${shown}`,
      { context: { subdir, missing: missing.length } },
    );
  }
  return { index, files: [...walker.files].sort(), totalBytes: walker.totalBytes };
}

/**
 * Checks a VEX archive without writing anything (exporter: a downloaded archive before it is
 * accepted; importer: `verify`). The same pass as `extractVexArchive` with the writing off:
 * index.json in the subdir, every `location` it lists present, nothing escaping, no links or
 * devices anywhere in the archive, no colliding names, entry count and sizes bounded.
 */
export async function checkVexArchive(
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  limits: VexArchiveLimits = {},
): Promise<VexArchiveSummary> {
  return unpackVexArchive(archivePath, type, subdir, undefined, limits);
}

/** Makes sure destDir is an empty directory; returns true when it had to create it. */
async function assertEmptyDirectory(destDir: string): Promise<boolean> {
  let stats;
  try {
    stats = await lstat(destDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      await mkdir(destDir, { recursive: true, mode: 0o755 });
      return true;
    }
    throw error;
  }
  if (!stats.isDirectory()) {
    throw new TrivyError('VEX_ARCHIVE_UNSAFE', `${destDir} exists and is not a plain directory`, {
      context: { path: destDir },
    });
  }
  if ((await readdir(destDir)).length > 0) {
    throw new TrivyError(
      'VEX_ARCHIVE_UNSAFE',
      `${destDir} is not empty; VEX archives unpack into a fresh directory`,
      {
        context: { path: destDir },
      },
    );
  }
  return false;
}

/**
 * `root/relativePath` for a path the walker already accepted (its rules decide what is allowed,
 * for checking and extracting alike); refuses anything that would still resolve outside root
 * (containment by path.relative and root + sep, defense in depth).
 */
function containedPath(root: string, relativePath: string): string {
  const target = resolve(root, ...relativePath.split('/'));
  if (!isInside(root, target))
    throw unsafe(relativePath, 'would be written outside the destination directory');
  return target;
}

/**
 * Importer side: unpacks ONLY the subdir's contents into `destDir` (the future `0.1/`, subdir
 * stripped: trivy-facts.md "0.1/ — the unpacked repository"). `destDir` must not exist or be
 * empty. Files are created exclusively (never through an existing path) with mode 0644,
 * directories 0755; owner and mode bits of the archive are ignored. Same checks as
 * `checkVexArchive`. On failure `destDir` is left as it was found (absent or empty). Nothing is
 * fsynced here: the importer syncs its whole staging tree once.
 */
export async function extractVexArchive(
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  destDir: string,
  options: ExtractVexOptions = {},
): Promise<VexArchiveSummary> {
  return unpackVexArchive(archivePath, type, subdir, destDir, options);
}

/** The one pass behind checkVexArchive and extractVexArchive: `destDir` undefined writes nothing. */
export async function unpackVexArchive(
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  destDir: string | undefined,
  limits: VexArchiveLimits = {},
): Promise<VexArchiveSummary> {
  if (destDir === undefined) return unpackInto(undefined, archivePath, type, subdir, limits);
  const root = resolve(destDir);
  const created = await assertEmptyDirectory(root);
  try {
    return await unpackInto(root, archivePath, type, subdir, limits);
  } catch (error) {
    // Leave destDir as it was (absent or empty): it held nothing before we started.
    if (created) await rm(root, { recursive: true, force: true });
    else {
      for (const name of await readdir(root)) await rm(join(root, name), { recursive: true, force: true });
    }
    throw error;
  }
}

async function unpackInto(
  root: string | undefined,
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  limits: VexArchiveLimits,
): Promise<VexArchiveSummary> {
  const createdDirectories = new Set<string>(root === undefined ? [] : [root]);
  const ensureDirectory = async (relativePath: string): Promise<void> => {
    if (root === undefined) return;
    const target = containedPath(root, relativePath);
    if (createdDirectories.has(target)) return;
    await mkdir(target, { recursive: true, mode: 0o755 });
    createdDirectories.add(target);
  };
  let indexBytes: Buffer | undefined;
  const walker = await walkArchive(archivePath, type, subdir, limits, {
    directory: ensureDirectory,
    file: async (relativePath, body) => {
      const isIndex = relativePath === COMPONENTS.vex.files.indexFile;
      const chunks: Buffer[] = [];
      let indexSize = 0;
      let handle: FileHandle | undefined;
      if (root !== undefined) {
        const target = containedPath(root, relativePath);
        const parent = relativePath.split('/').slice(0, -1).join('/');
        if (parent !== '') await ensureDirectory(parent);
        // 'wx': create exclusively, so an existing file or link at the target is never followed.
        handle = await open(target, 'wx', 0o644);
      }
      try {
        for await (const chunk of body) {
          if (isIndex) {
            indexSize += chunk.length;
            if (indexSize > MAX_VEX_INDEX_BYTES) {
              throw tooLarge(`index.json is larger than ${MAX_VEX_INDEX_BYTES} bytes`, {
                entry: relativePath,
              });
            }
            chunks.push(chunk);
          }
          if (handle !== undefined) await handle.write(chunk);
        }
      } finally {
        await handle?.close();
      }
      if (isIndex) indexBytes = Buffer.concat(chunks);
    },
  });
  return summarize(walker, indexBytes, subdir);
}

/** Joins a `/`-separated relative path under a directory (for callers listing `files`). */
export function vexFilePath(root: string, relativePath: string): string {
  return join(root, ...relativePath.split('/'));
}
