import { AirgapError } from '@trivy-airgap/format';

/**
 * Errors of the scale-out paths (push to a site registry, VEX serve dir). Bundle problems keep
 * their ImporterError / FormatError codes; these are about the destination.
 */
export type PublishErrorCode =
  /** `--to-registry` is not HOST[:PORT][/PREFIX] (or names something Trivy would read otherwise). */
  | 'TARGET_INVALID'
  /** The registry refused the credentials (HTTP 401, also from its token server). */
  | 'REGISTRY_UNAUTHORIZED'
  /** The credentials are valid but may not push to the repository (HTTP 403 / DENIED). */
  | 'REGISTRY_DENIED'
  /** The registry refused a manifest, typically for its config, layer or artifact media type. */
  | 'MEDIA_TYPE_REJECTED'
  /** A tag names newer content than the bundle brings (anti-rollback); --allow-downgrade moves it. */
  | 'DOWNGRADE_REFUSED'
  /** Any other registry or network failure while pushing. */
  | 'PUSH_FAILED'
  /** `--vex-base-url` is not an http(s) URL Trivy can use. */
  | 'BASE_URL_INVALID'
  /** `--vex-serve-dir` exists and is not a tree this tool manages (it is never overwritten). */
  | 'SERVE_DIR_INVALID'
  /** The bundle holds nothing for the requested destination (no OCI artifact, no VEX repository). */
  | 'NOTHING_TO_PUBLISH';

export class PublishError extends AirgapError<PublishErrorCode> {
  /** The reference or path concerned. */
  readonly subject: string | undefined;
  /** HTTP status of the registry's answer, when there was one. */
  readonly status: number | undefined;
  /** The registry's own words (`errors[].code` + `message`), when it gave any. */
  readonly registryAnswer: string | undefined;
  /** For MEDIA_TYPE_REJECTED: the media types of the refused manifest. */
  readonly mediaTypes: readonly string[];

  constructor(
    code: PublishErrorCode,
    message: string,
    options: {
      cause?: unknown;
      hint?: string;
      subject?: string;
      status?: number;
      registryAnswer?: string;
      mediaTypes?: readonly string[];
    } = {},
  ) {
    super(code, message, options);
    this.subject = options.subject;
    this.status = options.status;
    this.registryAnswer = options.registryAnswer;
    this.mediaTypes = options.mediaTypes ?? [];
  }
}
