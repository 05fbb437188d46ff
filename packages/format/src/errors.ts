/**
 * Errors of the bundle format core. Every package has one error class like this one:
 * a string-union `code` that callers (and the CLI's exit-code table) switch on, the
 * original `cause`, and context fields. Messages are for people; tests assert codes.
 */

/** Base of every error the project throws on purpose; the CLI maps `code` to an exit code. */
export class AirgapError<Code extends string = string> extends Error {
  readonly code: Code;
  /** One line telling the user what to do about it, when there is something to do. */
  readonly hint: string | undefined;

  constructor(code: Code, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

export type FormatErrorCode =
  | 'DIGEST_INVALID'
  | 'INTEGRITY_INVALID'
  | 'PATH_UNSAFE'
  | 'MANIFEST_NOT_JSON'
  | 'MANIFEST_TOO_LARGE'
  | 'MANIFEST_MEDIA_TYPE'
  | 'MANIFEST_UNSUPPORTED_VERSION'
  | 'MANIFEST_INVALID'
  | 'KEY_INVALID'
  | 'KEY_UNSUPPORTED'
  | 'KEY_PASSPHRASE_REQUIRED'
  | 'KEY_PASSPHRASE_WRONG'
  | 'KEY_UNTRUSTED'
  | 'NO_TRUSTED_KEYS'
  | 'SIGNATURE_INVALID';

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
    options: { cause?: unknown; hint?: string; issues?: readonly FieldIssue[] } = {},
  ) {
    super(code, message, options);
    this.issues = options.issues ?? [];
  }
}
