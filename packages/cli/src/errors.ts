import { AirgapError, type AirgapErrorOptions, type ErrorCategory } from '@trivy-airgap/format';

/** Errors the CLI itself raises (the command line, files it reads for a command), each with its category. */
export const CLI_ERROR_CODES = {
  /** The command line is wrong: an unknown flag, a missing argument, flags that do not go together. */
  USAGE: 'usage',
  /** keygen's --passphrase-file is missing, or a passphrase file is empty (other read errors are FS_*). */
  PASSPHRASE_FILE: 'failure',
  /** --with-tool asks for the single-file build, which was not built. */
  TOOL_MISSING: 'failure',
  /** keygen would overwrite an existing key. */
  OUTPUT_EXISTS: 'refused',
  /** Ctrl-C or SIGTERM stopped the command; what it had staged was removed. */
  CANCELLED: 'cancelled',
  /** A command printed its full result and still fails (e.g. `status` on stale content). */
  REPORTED_FAILURE: 'failure',
} as const satisfies Record<string, ErrorCategory>;

export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

export class CliError extends AirgapError<CliErrorCode> {
  constructor(code: CliErrorCode, message: string, options: AirgapErrorOptions = {}) {
    super(code, CLI_ERROR_CODES[code], message, options);
  }
}

/** Thrown by commands for argument combinations yargs cannot express. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super('USAGE', message, { hint });
  }
}

/**
 * Thrown by a command that already printed its full result but must still exit non-zero
 * (e.g. `status --max-age` on stale content): run() reports nothing more.
 */
export class ReportedFailure extends CliError {
  constructor(message: string) {
    super('REPORTED_FAILURE', message);
  }
}
