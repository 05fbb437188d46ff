import { AirgapError, type ErrorCategory } from '@trivy-airgap/format';

/**
 * The exit-code table (README "Exit codes"). Every error the project throws on purpose carries
 * its category (format/errors.ts); this is the one place that turns categories into exit codes.
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_VERIFICATION = 3;
export const EXIT_CANCELLED = 130;

/** A Record, so TypeScript refuses a category without an exit code. */
export const EXIT_CODE_OF_CATEGORY: Readonly<Record<ErrorCategory, number>> = {
  verification: EXIT_VERIFICATION,
  // A policy refusal (downgrade, existing output) is a failure to the shell, as the README says;
  // its own category lets --json readers and tests tell it apart.
  refused: EXIT_FAILURE,
  failure: EXIT_FAILURE,
  usage: EXIT_USAGE,
  // 128 + SIGINT, as shells report a command stopped by Ctrl-C; SIGTERM cancels with it too, so
  // every cancelled command exits the same way (cancel.ts).
  cancelled: EXIT_CANCELLED,
};

export function exitCodeFor(error: unknown): number {
  return error instanceof AirgapError ? EXIT_CODE_OF_CATEGORY[error.category] : EXIT_FAILURE;
}
