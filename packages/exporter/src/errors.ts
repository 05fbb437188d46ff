import { AirgapError, type AirgapErrorOptions, type ErrorCategory } from '@trivy-airgap/format';

/**
 * Errors of the exporter, each code with its category (format/errors.ts). Callers switch on
 * `code` or `category`; messages are for people and name the repository, file or rule that failed.
 */
export const EXPORTER_ERROR_CODES = {
  /** The output (bundle, a part, or the checksum file) exists and --force was not given. */
  OUTPUT_EXISTS: 'refused',
  /** Writing the bundle or its checksum files failed (disk full, permissions, …). */
  OUTPUT_FAILED: 'failure',
  /** An option value cannot be used (a bad size, duration, repository or VEX spec). */
  INVALID_OPTION: 'usage',
  /** Nothing was selected for export. */
  NO_COMPONENTS: 'usage',
  /** The first repository refused the artifact with a non-temporary error (no fallback, as Trivy). */
  SOURCE_FAILED: 'failure',
  /** Every repository of the list failed with a temporary error. */
  SOURCES_EXHAUSTED: 'failure',
  /** An artifact breaks a rule Trivy enforces (layer count, layer media type, title annotation). */
  ARTIFACT_INVALID: 'failure',
  /** The layer's metadata.json is missing, unreadable, or of the wrong schema version. */
  METADATA_INVALID: 'failure',
  /** `--verify-mirrors`: two registries serve different layer digests for the same artifact. */
  MIRRORS_DISAGREE: 'verification',
  /** A VEX repository manifest could not be fetched or is not vex-repo-spec 0.1. */
  VEX_MANIFEST_FAILED: 'failure',
  /** No location of a VEX repository served a usable archive. */
  VEX_ARCHIVE_FAILED: 'failure',
  /** The work dir holds bytes that do not match their content address (a damaged cache). */
  WORK_DIR_CORRUPT: 'verification',
  /** Another export is using the same work dir right now. */
  WORK_DIR_BUSY: 'failure',
  /** A bundle entry's bytes did not match the size or digest the manifest declares. */
  ENTRY_MISMATCH: 'verification',
  /** The export was cancelled through its AbortSignal. */
  ABORTED: 'cancelled',
} as const satisfies Record<string, ErrorCategory>;

export type ExporterErrorCode = keyof typeof EXPORTER_ERROR_CODES;

/** Integrity failures carry `expected` (declared) and `found`; file errors the `path`. */
export class ExporterError extends AirgapError<ExporterErrorCode> {
  constructor(code: ExporterErrorCode, message: string, options: AirgapErrorOptions = {}) {
    super(code, EXPORTER_ERROR_CODES[code], message, options);
  }
}
