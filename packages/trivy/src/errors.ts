import { AirgapError, type AirgapErrorOptions, type ErrorCategory } from '@trivy-airgap/format';

/**
 * Errors of the "what Trivy expects" package, each code with its category (format/errors.ts).
 * Tests and callers switch on `code`; messages are for people and name the rule that failed
 * (trivy-facts.md wording where there is one). Content that breaks Trivy's rules is a failure
 * here; the importer reports bundle content as its own verification error.
 */
export const TRIVY_ERROR_CODES = {
  /** An OCI artifact manifest does not have exactly one layer. */
  ARTIFACT_LAYER_COUNT: 'failure',
  /** The single layer's mediaType is not the one Trivy expects for that kind. */
  ARTIFACT_MEDIA_TYPE: 'failure',
  /** The layer has no `org.opencontainers.image.title` annotation. */
  ARTIFACT_TITLE_MISSING: 'failure',
  /** The manifest bytes are not a JSON OCI image manifest at all (or a layer descriptor is malformed). */
  ARTIFACT_MANIFEST_INVALID: 'failure',
  /** `metadata.json` is not JSON, or a field breaks Trivy's rules (Version int, RFC 3339 dates). */
  METADATA_INVALID: 'failure',
  /** `metadata.json` is larger than the cap. */
  METADATA_TOO_LARGE: 'failure',
  /** A vex-repository.json breaks vex-repo-spec 0.1 (or Trivy's reading of it). */
  VEX_MANIFEST_INVALID: 'failure',
  /** A VEX repository URL or location URL cannot be used. */
  VEX_LOCATION_INVALID: 'failure',
  /** A VEX archive entry would escape, or is a link, device or otherwise not a plain file/dir. */
  VEX_ARCHIVE_UNSAFE: 'failure',
  /** A VEX archive is unreadable, lacks index.json in its subdir, or index.json lists missing files. */
  VEX_ARCHIVE_INVALID: 'failure',
  /** A VEX archive exceeds the size or entry-count bound (zip/gzip bomb protection). */
  VEX_ARCHIVE_TOO_LARGE: 'failure',
  /** An existing repository.yaml cannot be parsed or has an unexpected shape; it is left untouched. */
  REPOSITORY_YAML_INVALID: 'failure',
  /** A repository name/URL given to us is not usable (e.g. a name that is not a plain local name). */
  REPOSITORY_INVALID: 'failure',
  /** A `--trivy-version` value that is not `X.Y[.Z]`. */
  TRIVY_VERSION_INVALID: 'usage',
} as const satisfies Record<string, ErrorCategory>;

export type TrivyErrorCode = keyof typeof TRIVY_ERROR_CODES;

type ContextValue = string | number;

export class TrivyError extends AirgapError<TrivyErrorCode> {
  /**
   * Extra facts for messages and JSON output (which kind, which entry, …). `expected`, `found`
   * and `path` given here are also the error's own fields, as on every AirgapError.
   */
  readonly context: Readonly<Record<string, ContextValue>>;

  constructor(
    code: TrivyErrorCode,
    message: string,
    options: AirgapErrorOptions & { context?: Record<string, ContextValue> } = {},
  ) {
    const context = options.context ?? {};
    const path = context.path;
    super(code, TRIVY_ERROR_CODES[code], message, {
      expected: context.expected,
      found: context.found,
      ...(typeof path === 'string' ? { path } : {}),
      ...options,
    });
    this.context = context;
  }
}
