import { AirgapError } from '@trivy-airgap/format';

/**
 * The exit-code table (README "Exit codes"). Libraries throw errors with string codes;
 * this is the one place that turns them into process exit codes.
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_VERIFICATION = 3;

/** Codes that mean "the bundle (or its signature) cannot be trusted": exit 3. */
const VERIFICATION_CODES = new Set<string>([
  // packages/format
  'DIGEST_INVALID',
  'PATH_UNSAFE',
  'MANIFEST_NOT_JSON',
  'MANIFEST_TOO_LARGE',
  'MANIFEST_MEDIA_TYPE',
  'MANIFEST_UNSUPPORTED_VERSION',
  'MANIFEST_INVALID',
  'KEY_UNTRUSTED',
  'NO_TRUSTED_KEYS',
  'SIGNATURE_INVALID',
  // packages/importer (bundle reading and policy)
  'BUNDLE_UNSIGNED',
  'BUNDLE_CORRUPT',
  'BUNDLE_ENTRY_UNLISTED',
  'BUNDLE_ENTRY_DUPLICATE',
  'BUNDLE_ENTRY_MISSING',
  'BUNDLE_ENTRY_UNSAFE',
  'BUNDLE_ENTRY_ORDER',
  'BUNDLE_SIZE_MISMATCH',
  'BUNDLE_DIGEST_MISMATCH',
  'BUNDLE_EXPIRED',
  'BUNDLE_FROM_FUTURE',
  'BUNDLE_CONTENT_INVALID',
  'CHECKSUM_MISMATCH',
  // packages/exporter: independent mirrors disagree on an upstream layer (--verify-mirrors),
  // or the work dir's copy of a blob no longer matches its content address
  'MIRRORS_DISAGREE',
  'WORK_DIR_CORRUPT',
]);

/** Codes that mean the command line itself was wrong: exit 2. */
const USAGE_CODES = new Set<string>(['USAGE']);

export function exitCodeFor(error: unknown): number {
  if (error instanceof ReportedFailure) return error.exitCode;
  if (error instanceof AirgapError) {
    const code = (error as AirgapError).code;
    if (USAGE_CODES.has(code)) return EXIT_USAGE;
    if (VERIFICATION_CODES.has(code)) return EXIT_VERIFICATION;
  }
  return EXIT_FAILURE;
}

/** Thrown by commands for argument combinations yargs cannot express. */
export class UsageError extends AirgapError<'USAGE'> {
  constructor(message: string, hint?: string) {
    super('USAGE', message, hint === undefined ? {} : { hint });
  }
}

/**
 * Thrown by a command that already printed its full result but must still exit non-zero
 * (e.g. `status --max-age` on stale content): run() reports nothing more.
 */
export class ReportedFailure extends AirgapError<'REPORTED_FAILURE'> {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super('REPORTED_FAILURE', message);
  }
}
