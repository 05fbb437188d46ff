import { AirgapError } from '@trivy-airgap/format';

/**
 * Errors of the importer. Bundle codes (BUNDLE_*) mean the bundle cannot be trusted and map to
 * exit code 3 in the CLI; the others are policy or local-state problems.
 */
export type ImporterErrorCode =
  | 'BUNDLE_NOT_FOUND'
  | 'TRUSTED_KEY_UNREADABLE'
  | 'BUNDLE_CORRUPT'
  | 'BUNDLE_ENTRY_UNLISTED'
  | 'BUNDLE_ENTRY_DUPLICATE'
  | 'BUNDLE_ENTRY_MISSING'
  | 'BUNDLE_ENTRY_UNSAFE'
  | 'BUNDLE_ENTRY_ORDER'
  | 'BUNDLE_SIZE_MISMATCH'
  | 'BUNDLE_DIGEST_MISMATCH'
  | 'BUNDLE_CONTENT_INVALID'
  | 'BUNDLE_UNSIGNED'
  | 'BUNDLE_EXPIRED'
  | 'BUNDLE_FROM_FUTURE'
  | 'DOWNGRADE_REFUSED'
  | 'LOCKED'
  | 'NOTHING_TO_ROLL_BACK'
  | 'CACHE_STATE_INVALID'
  | 'CACHE_WRITE_FAILED'
  | 'CONTENT_TOO_OLD'
  | 'ABORTED';

export class ImporterError extends AirgapError<ImporterErrorCode> {
  /** The bundle entry (or cache path) concerned, when there is one. */
  readonly path: string | undefined;
  /** For integrity failures: what the manifest says and what the bundle had. */
  readonly expected: string | number | undefined;
  readonly found: string | number | undefined;

  constructor(
    code: ImporterErrorCode,
    message: string,
    options: {
      cause?: unknown;
      hint?: string;
      path?: string;
      expected?: string | number;
      found?: string | number;
    } = {},
  ) {
    super(code, message, options);
    this.path = options.path;
    this.expected = options.expected;
    this.found = options.found;
  }
}

export const TAMPERED_HINT = 'the bundle was altered, damaged or truncated in transit: copy it again';

/** The caller's AbortSignal fired (Ctrl-C): the operation stopped and left nothing behind. */
export function abortedError(): ImporterError {
  return new ImporterError('ABORTED', 'cancelled; nothing was installed or changed', {
    hint: 'run the command again to finish the job',
  });
}

/** Throws ABORTED when the signal has fired: checked between entries and install steps. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortedError();
}

/** File-system errors that are about the place we write to (not about the bundle). */
const WRITE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'EMFILE', 'ENFILE']);

/** Turns "no space", "permission denied" and the like into one clear error naming the path. */
export function asWriteError(error: unknown, where: string): unknown {
  const errno = error as NodeJS.ErrnoException;
  if (error instanceof AirgapError || typeof errno.code !== 'string' || !WRITE_ERRNOS.has(errno.code))
    return error;
  const reason: Record<string, string> = {
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
  };
  return new ImporterError(
    'CACHE_WRITE_FAILED',
    `cannot write ${errno.path ?? where}: ${reason[errno.code] ?? errno.code}`,
    {
      cause: error,
      hint: `make room or fix the permissions of ${where}, then run the command again`,
    },
  );
}
