import {
  AirgapError,
  type AirgapErrorOptions,
  type ErrorCategory,
  type TarReadError,
} from '@trivy-airgap/format';

/**
 * Errors of the importer, each code with its category (format/errors.ts): BUNDLE_* mean the
 * bundle cannot be trusted (verification, exit 3); the others are policy or local-state problems.
 */
export const IMPORTER_ERROR_CODES = {
  BUNDLE_NOT_FOUND: 'failure',
  /** The bundle path names a directory, a device, …: not a file (nor a named pipe). */
  BUNDLE_NOT_A_FILE: 'failure',
  /** A split part between the first and the last one is missing. */
  BUNDLE_PART_MISSING: 'failure',
  BUNDLE_CORRUPT: 'verification',
  BUNDLE_ENTRY_UNLISTED: 'verification',
  BUNDLE_ENTRY_DUPLICATE: 'verification',
  BUNDLE_ENTRY_MISSING: 'verification',
  BUNDLE_ENTRY_UNSAFE: 'verification',
  BUNDLE_ENTRY_ORDER: 'verification',
  BUNDLE_SIZE_MISMATCH: 'verification',
  BUNDLE_DIGEST_MISMATCH: 'verification',
  BUNDLE_CONTENT_INVALID: 'verification',
  BUNDLE_UNSIGNED: 'verification',
  BUNDLE_EXPIRED: 'verification',
  BUNDLE_FROM_FUTURE: 'verification',
  /** The bundle is older than what is installed (anti-rollback); --allow-downgrade overrides. */
  DOWNGRADE_REFUSED: 'refused',
  LOCKED: 'failure',
  NOTHING_TO_ROLL_BACK: 'failure',
  CACHE_STATE_INVALID: 'failure',
  /** `.trivy-airgap/` has a layout version newer than this release knows; nothing was changed. */
  CACHE_LAYOUT_UNSUPPORTED: 'failure',
  /** The caller's AbortSignal fired (Ctrl-C) before the commit point; nothing was changed. */
  ABORTED: 'cancelled',
} as const satisfies Record<string, ErrorCategory>;

export type ImporterErrorCode = keyof typeof IMPORTER_ERROR_CODES;

/** `path` is the bundle entry or cache path concerned; `expected`/`found` what the manifest says and what the bundle had. */
export class ImporterError extends AirgapError<ImporterErrorCode> {
  constructor(code: ImporterErrorCode, message: string, options: AirgapErrorOptions = {}) {
    super(code, IMPORTER_ERROR_CODES[code], message, options);
  }
}

export const TAMPERED_HINT = 'the bundle was altered, damaged or truncated in transit: copy it again';

/**
 * The shared tar reader's failures in the importer's words (its `mapError`): a bundle or layer
 * that is not what its manifest says was altered in transit, whatever the tar-level reason.
 */
export function fromTarReadError(error: TarReadError): ImporterError {
  return new ImporterError(
    error.code === 'TAR_ENTRY_TYPE' ? 'BUNDLE_ENTRY_UNSAFE' : 'BUNDLE_CORRUPT',
    error.message,
    {
      cause: error.cause ?? error,
      path: error.path,
      expected: error.expected,
      found: error.found,
      hint: TAMPERED_HINT,
    },
  );
}

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
