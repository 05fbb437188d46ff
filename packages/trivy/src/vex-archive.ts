import { TrivyError } from './errors.js';
import type { VexIndex } from './vex.js';

export type VexArchiveType = 'tar.gz' | 'zip';

/** Bounds against zip/gzip bombs. VEX Hub is ~122 files and ~9 MB unpacked. */
export interface VexArchiveLimits {
  /** Total bytes of file contents (and, for tar.gz, of the decompressed stream). Default 1 GiB. */
  readonly maxTotalBytes?: number;
  /** Number of entries in the whole archive. Default 100 000. */
  readonly maxEntries?: number;
  /** Bytes of one file. Default 256 MiB. */
  readonly maxFileBytes?: number;
}

export const DEFAULT_VEX_ARCHIVE_LIMITS: Required<VexArchiveLimits> = {
  maxTotalBytes: 1024 * 1024 * 1024,
  maxEntries: 100_000,
  maxFileBytes: 256 * 1024 * 1024,
};

/** What a checked or extracted VEX archive holds below its subdir. */
export interface VexArchiveSummary {
  /** The parsed `index.json` of the repository. */
  readonly index: VexIndex;
  /** Files below the subdir (relative paths, `/`-separated, sorted). */
  readonly files: readonly string[];
  /** Total bytes of those files. */
  readonly totalBytes: number;
}

/**
 * Exporter side: checks a downloaded VEX archive before it is accepted (subdir holds index.json,
 * every `location` of index.json exists inside the subdir, no entry escapes, no links/devices).
 */
export async function checkVexArchive(
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  limits: VexArchiveLimits = {},
): Promise<VexArchiveSummary> {
  void archivePath;
  void type;
  void subdir;
  void limits;
  await Promise.resolve();
  throw new TrivyError('VEX_ARCHIVE_INVALID', 'not implemented yet');
}

/**
 * Importer side: unpacks ONLY the subdir's contents into `destDir` (the future `0.1/`), subdir
 * stripped. `destDir` must not exist or be empty. Same checks as `checkVexArchive`, plus
 * containment of every written path; owner and mode bits from the archive are ignored.
 */
export async function extractVexArchive(
  archivePath: string,
  type: VexArchiveType,
  subdir: string,
  destDir: string,
  limits: VexArchiveLimits = {},
): Promise<VexArchiveSummary> {
  void archivePath;
  void type;
  void subdir;
  void destDir;
  void limits;
  await Promise.resolve();
  throw new TrivyError('VEX_ARCHIVE_INVALID', 'not implemented yet');
}
