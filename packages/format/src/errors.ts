/**
 * Errors of the bundle format core, and the base every package's errors build on.
 *
 * Each package has one errors.ts holding one table `CODE → category`; the package's code union
 * is derived from that table, so a code cannot exist without a category and the CLI maps an
 * error to its exit code by `error.category` alone (no list of codes anywhere else). Messages
 * are for people; tests assert codes and categories.
 */

/**
 * What kind of failure an error is. The CLI's exit-code table (cli/src/exit-codes.ts, README
 * "Exit codes") maps each category to an exit code.
 */
export type ErrorCategory =
  /** The bundle, a signature or fetched content cannot be trusted: bad or missing signature,
   * untrusted key, digest or size mismatch, unsafe or unlisted entry, expired bundle. */
  | 'verification'
  /** A rule said no and the user can decide otherwise: a downgrade, overwriting an existing file. */
  | 'refused'
  /** Anything else that went wrong: I/O, network, unreadable local files, bad local state. */
  | 'failure'
  /** The command line asks for something that cannot be done (a bad option value or combination). */
  | 'usage'
  /** The user cancelled the operation (Ctrl-C, an AbortSignal). */
  | 'cancelled';

/** A package's table of error codes: every code with its category. */
export type ErrorCodeTable<Code extends string = string> = Readonly<Record<Code, ErrorCategory>>;

/**
 * Facts about what failed, shared by every error class so callers (and `--json`) read them the
 * same way whichever package threw.
 */
export interface ErrorContext {
  /** The file or directory concerned, as the user would find it. */
  readonly path?: string | undefined;
  /** The thing concerned in the user's words: a bundle entry, a reference, a component, a key. */
  readonly subject?: string | undefined;
  /** For integrity and rule failures: what was declared or required … */
  readonly expected?: string | number | undefined;
  /** … and what was actually there. */
  readonly found?: string | number | undefined;
}

export interface AirgapErrorOptions extends ErrorContext {
  readonly cause?: unknown;
  /** One line telling the user what to do about it, when there is something to do. */
  readonly hint?: string | undefined;
}

/**
 * Base of every error the project throws on purpose. Abstract: each package throws its own
 * subclass, whose constructor takes the category from the package's code table.
 */
export abstract class AirgapError<Code extends string = string> extends Error implements ErrorContext {
  readonly code: Code;
  readonly category: ErrorCategory;
  readonly hint: string | undefined;
  readonly path: string | undefined;
  readonly subject: string | undefined;
  readonly expected: string | number | undefined;
  readonly found: string | number | undefined;

  protected constructor(
    code: Code,
    category: ErrorCategory,
    message: string,
    options: AirgapErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.category = category;
    this.hint = options.hint;
    this.path = options.path;
    this.subject = options.subject;
    this.expected = options.expected;
    this.found = options.found;
  }
}

export const FORMAT_ERROR_CODES = {
  DIGEST_INVALID: 'verification',
  INTEGRITY_INVALID: 'verification',
  PATH_UNSAFE: 'verification',
  MANIFEST_NOT_JSON: 'verification',
  MANIFEST_TOO_LARGE: 'verification',
  MANIFEST_MEDIA_TYPE: 'verification',
  MANIFEST_UNSUPPORTED_VERSION: 'verification',
  MANIFEST_INVALID: 'verification',
  KEY_INVALID: 'failure',
  KEY_UNSUPPORTED: 'failure',
  KEY_PASSPHRASE_REQUIRED: 'failure',
  KEY_PASSPHRASE_WRONG: 'failure',
  KEY_UNTRUSTED: 'verification',
  NO_TRUSTED_KEYS: 'verification',
  SIGNATURE_INVALID: 'verification',
  /** A signature could not be made deterministically, or did not verify (never replaced by another). */
  SIGNING_FAILED: 'failure',
} as const satisfies Record<string, ErrorCategory>;

export type FormatErrorCode = keyof typeof FORMAT_ERROR_CODES;

/** One invalid field of a parsed document: a JSON-path-like location and what is wrong with it. */
export interface FieldIssue {
  readonly field: string;
  readonly problem: string;
}

export class FormatError extends AirgapError<FormatErrorCode> {
  /** For MANIFEST_INVALID: every invalid field, not just the first. */
  readonly issues: readonly FieldIssue[];

  constructor(
    code: FormatErrorCode,
    message: string,
    options: AirgapErrorOptions & { issues?: readonly FieldIssue[] } = {},
  ) {
    super(code, FORMAT_ERROR_CODES[code], message, options);
    this.issues = options.issues ?? [];
  }
}

/**
 * Errors of the shared tar reader (tar-reader.ts). It serves callers with different words for the
 * same failure (a bundle is "corrupt", a VEX archive "invalid"), so each caller translates these
 * codes into its own through the reader's `mapError` option; the categories here hold only for a
 * caller that does not.
 */
export const TAR_READ_ERROR_CODES = {
  /** Not a valid (gzip) tar stream: gzip or tar damage, a framing rule broken, truncation. */
  TAR_INVALID: 'verification',
  /** The stream inflates beyond the caller's limit, or an entry is larger than it may be. */
  TAR_TOO_LARGE: 'verification',
  /** An entry of a type node-tar skips (unknown types, oversized meta headers): refused, never skipped. */
  TAR_ENTRY_TYPE: 'verification',
  /** The source stream failed while being read (an I/O error, not the archive's bytes). */
  TAR_UNREADABLE: 'failure',
} as const satisfies Record<string, ErrorCategory>;

export type TarReadErrorCode = keyof typeof TAR_READ_ERROR_CODES;

/** `path` is the tar entry concerned; `expected`/`found` the limit and what was seen. */
export class TarReadError extends AirgapError<TarReadErrorCode> {
  constructor(code: TarReadErrorCode, message: string, options: AirgapErrorOptions = {}) {
    super(code, TAR_READ_ERROR_CODES[code], message, options);
  }
}
