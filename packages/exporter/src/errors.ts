import { AirgapError } from '@trivy-airgap/format';

/**
 * Errors of the exporter. Callers (the CLI's exit-code table, tests) switch on `code`;
 * messages are for people and name the repository, file or rule that failed.
 */
export type ExporterErrorCode =
  /** The output (bundle, a part, or the checksum file) exists and --force was not given. */
  | 'OUTPUT_EXISTS'
  /** Writing the bundle or its checksum files failed (disk full, permissions, …). */
  | 'OUTPUT_FAILED'
  /** An option value cannot be used (a bad size, duration, repository or VEX spec). */
  | 'INVALID_OPTION'
  /** Nothing was selected for export. */
  | 'NO_COMPONENTS'
  /** The first repository refused the artifact with a non-temporary error (no fallback, as Trivy). */
  | 'SOURCE_FAILED'
  /** Every repository of the list failed with a temporary error. */
  | 'SOURCES_EXHAUSTED'
  /** An artifact breaks a rule Trivy enforces (layer count, layer media type, title annotation). */
  | 'ARTIFACT_INVALID'
  /** The layer's metadata.json is missing, unreadable, or of the wrong schema version. */
  | 'METADATA_INVALID'
  /** `--verify-mirrors`: two registries serve different layer digests for the same artifact. */
  | 'MIRRORS_DISAGREE'
  /** A VEX repository manifest could not be fetched or is not vex-repo-spec 0.1. */
  | 'VEX_MANIFEST_FAILED'
  /** No location of a VEX repository served a usable archive. */
  | 'VEX_ARCHIVE_FAILED'
  /** The work dir holds bytes that do not match their content address (a damaged cache). */
  | 'WORK_DIR_CORRUPT'
  /** Another export is using the same work dir right now. */
  | 'WORK_DIR_BUSY'
  /** A bundle entry's bytes did not match the size or digest the manifest declares. */
  | 'ENTRY_MISMATCH'
  /** The export was cancelled through its AbortSignal. */
  | 'ABORTED';

export class ExporterError extends AirgapError<ExporterErrorCode> {
  /** For integrity failures: what was declared and what was found. */
  readonly expected: string | undefined;
  readonly found: string | undefined;

  constructor(
    code: ExporterErrorCode,
    message: string,
    options: { cause?: unknown; hint?: string; expected?: string; found?: string } = {},
  ) {
    super(code, message, options);
    this.expected = options.expected;
    this.found = options.found;
  }
}
