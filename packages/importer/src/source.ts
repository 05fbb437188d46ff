import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { ImporterError } from './errors.js';

/** Where a bundle is read from: a file, its split parts, or a stream (stdin for `-`). */
export type BundleInput = string | Readable;

export interface OpenedBundle {
  /** The bytes, in order (parts joined). */
  readonly stream: Readable | AsyncIterable<Buffer>;
  /** The files read, in order (empty for a stream). */
  readonly files: readonly string[];
  /** Total compressed size when known. */
  readonly size: number | undefined;
  /** For messages: the path, `stdin` or `<path>.part-000…`. */
  readonly label: string;
}

const PART_SUFFIX = /\.part-\d{3}$/;

type PathKind = 'file' | 'fifo' | 'directory' | 'character device' | 'block device' | 'socket' | 'other';

/** What is at `path` (following links), or undefined when nothing is. */
async function kindOf(path: string): Promise<{ kind: PathKind; size: number } | undefined> {
  let info;
  try {
    info = await stat(path);
  } catch {
    return undefined;
  }
  const kind: PathKind = info.isFile()
    ? 'file'
    : info.isFIFO()
      ? 'fifo'
      : info.isDirectory()
        ? 'directory'
        : info.isCharacterDevice()
          ? 'character device'
          : info.isBlockDevice()
            ? 'block device'
            : info.isSocket()
              ? 'socket'
              : 'other';
  return { kind, size: info.size };
}

function partName(base: string, index: number): string {
  return `${base}.part-${String(index).padStart(3, '0')}`;
}

const EXPECTED = 'give the bundle file (.tgz), its first split part (.part-000), or - for standard input';

/** The numbers of every `<base>.part-NNN` in base's directory, sorted. */
async function partNumbers(base: string): Promise<number[]> {
  const prefix = `${basename(base)}.part-`;
  const names = await readdir(dirname(base)).catch(() => [] as string[]);
  return names
    .filter((name) => name.startsWith(prefix) && PART_SUFFIX.test(name))
    .map((name) => Number(name.slice(prefix.length)))
    .sort((a, b) => a - b);
}

/**
 * Opens a bundle for one sequential pass. A path that does not exist but has `<path>.part-000`
 * (or a path that itself ends in `.part-NNN`) is read as the concatenation of all its numbered
 * parts, in order, exactly as `cat` would join them; a gap in the numbers is named, not read as a
 * truncated bundle. A named pipe (`import <(cat parts…)`) is read as a stream.
 */
export async function openBundle(input: BundleInput, stdin?: Readable): Promise<OpenedBundle> {
  if (typeof input !== 'string') return { stream: input, files: [], size: undefined, label: 'stream' };
  if (input === '-') {
    if (stdin === undefined)
      throw new ImporterError('BUNDLE_NOT_FOUND', 'no standard input to read the bundle from');
    return { stream: stdin, files: [], size: undefined, label: 'stdin' };
  }
  const found = await kindOf(input);
  if (found?.kind === 'fifo') {
    return {
      stream: createReadStream(input, { highWaterMark: 1 << 20 }),
      files: [],
      size: undefined,
      label: input,
    };
  }
  if (found !== undefined && found.kind !== 'file') {
    throw new ImporterError('BUNDLE_NOT_A_FILE', `${input} is a ${found.kind}, not a bundle file`, {
      path: input,
      hint: EXPECTED,
    });
  }
  if (found !== undefined && !PART_SUFFIX.test(input)) {
    return {
      stream: createReadStream(input, { highWaterMark: 1 << 20 }),
      files: [input],
      size: found.size,
      label: input,
    };
  }
  const base = PART_SUFFIX.test(input) ? input.replace(PART_SUFFIX, '') : input;
  const numbers = await partNumbers(base);
  if (numbers.length === 0) {
    throw new ImporterError('BUNDLE_NOT_FOUND', `bundle ${input} not found (nor ${partName(base, 0)})`, {
      path: input,
      hint: EXPECTED,
    });
  }
  const missing: string[] = [];
  for (let index = 0, next = 0; next < numbers.length; index++) {
    if (numbers[next] === index) next += 1;
    else missing.push(partName(base, index));
  }
  if (missing.length > 0) {
    throw new ImporterError(
      'BUNDLE_PART_MISSING',
      `split part ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''} of ${base} ${missing.length === 1 ? 'is' : 'are'} missing (found ${numbers.length} of ${(numbers.at(-1) ?? 0) + 1} parts)`,
      {
        path: missing[0] ?? base,
        hint: 'copy every part of the bundle (and check them with sha256sum -c), then run again',
      },
    );
  }
  const parts: string[] = [];
  let size = 0;
  for (const index of numbers) {
    const part = partName(base, index);
    const info = await kindOf(part);
    if (info?.kind !== 'file') {
      throw new ImporterError(
        'BUNDLE_NOT_A_FILE',
        `${part} is ${info === undefined ? 'gone' : `a ${info.kind}`}, not a bundle part`,
        {
          path: part,
          hint: EXPECTED,
        },
      );
    }
    parts.push(part);
    size += info.size;
  }
  async function* joined(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      for await (const chunk of createReadStream(part, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
    }
  }
  const count = `${parts.length} part${parts.length === 1 ? '' : 's'}`;
  return { stream: joined(), files: parts, size, label: `${partName(base, 0)}… (${count})` };
}
