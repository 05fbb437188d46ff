import { AirgapError } from '@trivy-airgap/format';

/**
 * Errors of the "what Trivy expects" package. Tests and the CLI switch on `code`; messages are
 * for people and name the rule that failed (trivy-facts.md wording where there is one).
 */
export type TrivyErrorCode =
  /** An OCI artifact manifest does not have exactly one layer. */
  | 'ARTIFACT_LAYER_COUNT'
  /** The single layer's mediaType is not the one Trivy expects for that kind. */
  | 'ARTIFACT_MEDIA_TYPE'
  /** The layer has no `org.opencontainers.image.title` annotation. */
  | 'ARTIFACT_TITLE_MISSING'
  /** The manifest bytes are not a JSON OCI image manifest at all (or a layer descriptor is malformed). */
  | 'ARTIFACT_MANIFEST_INVALID'
  /** No `metadata.json` at the root of a DB layer. */
  | 'METADATA_MISSING'
  /** `metadata.json` is not JSON, or a field breaks Trivy's rules (Version int, RFC 3339 dates). */
  | 'METADATA_INVALID'
  /** `metadata.json` is larger than the cap. */
  | 'METADATA_TOO_LARGE'
  /** The layer stream is not a readable gzip tar. */
  | 'LAYER_INVALID'
  /** A vex-repository.json breaks vex-repo-spec 0.1 (or Trivy's reading of it). */
  | 'VEX_MANIFEST_INVALID'
  /** A VEX repository URL or location URL cannot be used. */
  | 'VEX_LOCATION_INVALID'
  /** A VEX archive entry would escape, or is a link, device or otherwise not a plain file/dir. */
  | 'VEX_ARCHIVE_UNSAFE'
  /** A VEX archive is unreadable, lacks index.json in its subdir, or index.json lists missing files. */
  | 'VEX_ARCHIVE_INVALID'
  /** A VEX archive exceeds the size or entry-count bound (zip/gzip bomb protection). */
  | 'VEX_ARCHIVE_TOO_LARGE'
  /** An existing repository.yaml cannot be parsed or has an unexpected shape; it is left untouched. */
  | 'REPOSITORY_YAML_INVALID'
  /** A repository name/URL given to us is not usable (e.g. a name that is not a plain local name). */
  | 'REPOSITORY_INVALID'
  /** A `--trivy-version` value that is not `X.Y[.Z]`. */
  | 'TRIVY_VERSION_INVALID';

export class TrivyError extends AirgapError<TrivyErrorCode> {
  /** Extra facts for messages and JSON output: which kind, which path, expected/found values. */
  readonly context: Readonly<Record<string, string | number>>;

  constructor(
    code: TrivyErrorCode,
    message: string,
    options: { cause?: unknown; hint?: string; context?: Record<string, string | number> } = {},
  ) {
    super(code, message, options);
    this.context = options.context ?? {};
  }
}
