import { AirgapError, type AirgapErrorOptions, type ErrorCategory } from '@trivy-airgap/format';

/**
 * Errors of the scale-out paths (push to a site registry, VEX serve dir). Bundle problems keep
 * their ImporterError / FormatError codes; these are about the destination.
 */
export const PUBLISH_ERROR_CODES = {
  /** `--to-registry` is not HOST[:PORT][/PREFIX] (or names something Trivy would read otherwise). */
  TARGET_INVALID: 'failure',
  /** The registry refused the credentials (HTTP 401, also from its token server). */
  REGISTRY_UNAUTHORIZED: 'failure',
  /** The credentials are valid but may not push to the repository (HTTP 403 / DENIED). */
  REGISTRY_DENIED: 'failure',
  /** The registry refused a manifest, typically for its config, layer or artifact media type. */
  MEDIA_TYPE_REJECTED: 'failure',
  /** A tag names newer content than the bundle brings (anti-rollback); --allow-downgrade moves it. */
  DOWNGRADE_REFUSED: 'refused',
  /** Any other registry or network failure while pushing. */
  PUSH_FAILED: 'failure',
  /** `--vex-base-url` is not an http(s) URL Trivy can use. */
  BASE_URL_INVALID: 'failure',
  /** `--vex-serve-dir` exists and is not a tree this tool manages (it is never overwritten). */
  SERVE_DIR_INVALID: 'refused',
  /** Another run is publishing into the same `--vex-serve-dir` right now. */
  SERVE_DIR_BUSY: 'failure',
  /** The bundle holds nothing for the requested destination (no OCI artifact, no VEX repository). */
  NOTHING_TO_PUBLISH: 'failure',
} as const satisfies Record<string, ErrorCategory>;

export type PublishErrorCode = keyof typeof PUBLISH_ERROR_CODES;

export class PublishError extends AirgapError<PublishErrorCode> {
  /** HTTP status of the registry's answer, when there was one. */
  readonly status: number | undefined;
  /** The registry's own words (`errors[].code` + `message`), when it gave any. */
  readonly registryAnswer: string | undefined;
  /** For MEDIA_TYPE_REJECTED: the media types of the refused manifest. */
  readonly mediaTypes: readonly string[];

  constructor(
    code: PublishErrorCode,
    message: string,
    options: AirgapErrorOptions & {
      status?: number;
      registryAnswer?: string;
      mediaTypes?: readonly string[];
    } = {},
  ) {
    super(code, PUBLISH_ERROR_CODES[code], message, options);
    this.status = options.status;
    this.registryAnswer = options.registryAnswer;
    this.mediaTypes = options.mediaTypes ?? [];
  }
}
