import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
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

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

function partName(base: string, index: number): string {
  return `${base}.part-${String(index).padStart(3, '0')}`;
}

/**
 * Opens a bundle for one sequential pass. A path that does not exist but has `<path>.part-000`
 * (or a path that itself ends in `.part-NNN`) is read as the concatenation of all its numbered
 * parts, in order, exactly as `cat` would join them.
 */
export async function openBundle(input: BundleInput, stdin?: Readable): Promise<OpenedBundle> {
  if (typeof input !== 'string') return { stream: input, files: [], size: undefined, label: 'stream' };
  if (input === '-') {
    if (stdin === undefined)
      throw new ImporterError('BUNDLE_NOT_FOUND', 'no standard input to read the bundle from');
    return { stream: stdin, files: [], size: undefined, label: 'stdin' };
  }
  const whole = await fileSize(input);
  if (whole !== undefined && !PART_SUFFIX.test(input)) {
    return {
      stream: createReadStream(input, { highWaterMark: 1 << 20 }),
      files: [input],
      size: whole,
      label: input,
    };
  }
  const base = PART_SUFFIX.test(input) ? input.replace(PART_SUFFIX, '') : input;
  const parts: string[] = [];
  let size = 0;
  for (let index = 0; index < 1000; index++) {
    const part = partName(base, index);
    const partSize = await fileSize(part);
    if (partSize === undefined) break;
    parts.push(part);
    size += partSize;
  }
  if (parts.length === 0) {
    throw new ImporterError('BUNDLE_NOT_FOUND', `bundle ${input} not found (nor ${partName(base, 0)})`, {
      hint: 'give the path of the .tgz, its first part, or - for standard input',
    });
  }
  async function* joined(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      for await (const chunk of createReadStream(part, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
    }
  }
  return { stream: joined(), files: parts, size, label: `${partName(base, 0)}…(${parts.length} parts)` };
}
