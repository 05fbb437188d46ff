import { AirgapError, type AirgapErrorOptions, type ErrorCategory } from '@trivy-airgap/format';

/**
 * Errors of the OCI client and layout store. `code` is what callers switch on; `status` and
 * `registryCodes` report what the registry answered, so callers can apply their own policy (whether
 * Trivy would fall back to the next repository is decided in @trivy-airgap/trivy, not here).
 */
export const OCI_ERROR_CODES = {
  INVALID_REFERENCE: 'failure',
  MANIFEST_UNKNOWN: 'failure',
  BLOB_UNKNOWN: 'failure',
  NAME_UNKNOWN: 'failure',
  UNAUTHORIZED: 'failure',
  DENIED: 'failure',
  TOO_MANY_REQUESTS: 'failure',
  UNAVAILABLE: 'failure',
  SERVER_ERROR: 'failure',
  UNEXPECTED_STATUS: 'failure',
  NETWORK: 'failure',
  /** The registry's (or proxy's) host name does not resolve. */
  DNS: 'failure',
  /** Nothing listens at the registry's (or proxy's) host and port, or it cannot be reached. */
  CONNECTION_REFUSED: 'failure',
  TIMEOUT: 'failure',
  TLS: 'failure',
  REDIRECT: 'failure',
  DIGEST_MISMATCH: 'verification',
  SIZE_MISMATCH: 'verification',
  MANIFEST_TOO_LARGE: 'failure',
  MANIFEST_INVALID: 'failure',
  UNSUPPORTED_MEDIA_TYPE: 'failure',
  NO_MATCHING_MANIFEST: 'failure',
  UPLOAD_FAILED: 'failure',
  CREDENTIALS: 'failure',
  LAYOUT_INVALID: 'failure',
  LAYOUT_REF_UNKNOWN: 'failure',
  ABORTED: 'cancelled',
} as const satisfies Record<string, ErrorCategory>;

export type OciErrorCode = keyof typeof OCI_ERROR_CODES;

/** Which side of a copy an integrity failure was seen on. */
export type IntegritySide = 'source' | 'destination';

export interface OciErrorOptions extends AirgapErrorOptions {
  /** HTTP status of the response that failed, when there was one. */
  readonly status?: number;
  /** Error codes from the registry's JSON error body (`errors[].code`), e.g. `TOOMANYREQUESTS`. */
  readonly registryCodes?: readonly string[];
  /** The registry's own error text (`errors[].message`), trimmed; never carries our credentials. */
  readonly registryMessage?: string;
  /** Scheme, host and path of the request; query strings are dropped (signed URLs hold tokens). */
  readonly url?: string;
  readonly expected?: string | undefined;
  readonly found?: string | undefined;
  readonly side?: IntegritySide;
}

export class OciError extends AirgapError<OciErrorCode> {
  readonly status: number | undefined;
  readonly registryCodes: readonly string[];
  readonly registryMessage: string | undefined;
  readonly url: string | undefined;
  declare readonly expected: string | undefined;
  declare readonly found: string | undefined;
  readonly side: IntegritySide | undefined;

  constructor(code: OciErrorCode, message: string, options: OciErrorOptions = {}) {
    super(code, OCI_ERROR_CODES[code], message, options);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
    this.registryMessage = options.registryMessage;
    this.url = options.url;
    this.side = options.side;
  }
}

/** `https://host/path` of a URL, without query, fragment or userinfo: safe for messages and events. */
export function redactUrl(url: string | URL): string {
  try {
    const parsed = typeof url === 'string' ? new URL(url) : url;
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
