import { AirgapError } from '@trivy-airgap/format';

/**
 * Errors of the OCI client and layout store. `code` is what callers switch on; `status` and
 * `registryCodes` report what the registry answered, so callers can apply their own policy (whether
 * Trivy would fall back to the next repository is decided in @trivy-airgap/trivy, not here).
 */
export type OciErrorCode =
  | 'INVALID_REFERENCE'
  | 'MANIFEST_UNKNOWN'
  | 'BLOB_UNKNOWN'
  | 'NAME_UNKNOWN'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'TOO_MANY_REQUESTS'
  | 'UNAVAILABLE'
  | 'SERVER_ERROR'
  | 'UNEXPECTED_STATUS'
  | 'NETWORK'
  | 'TIMEOUT'
  | 'TLS'
  | 'REDIRECT'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'MANIFEST_TOO_LARGE'
  | 'MANIFEST_INVALID'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NO_MATCHING_MANIFEST'
  | 'UPLOAD_FAILED'
  | 'CREDENTIALS'
  | 'LAYOUT_INVALID'
  | 'LAYOUT_REF_UNKNOWN'
  | 'ABORTED';

/** Which side of a copy an integrity failure was seen on. */
export type IntegritySide = 'source' | 'destination';

export interface OciErrorOptions {
  readonly cause?: unknown;
  readonly hint?: string;
  /** HTTP status of the response that failed, when there was one. */
  readonly status?: number;
  /** Error codes from the registry's JSON error body (`errors[].code`), e.g. `TOOMANYREQUESTS`. */
  readonly registryCodes?: readonly string[];
  /** The registry's own error text (`errors[].message`), trimmed; never carries our credentials. */
  readonly registryMessage?: string;
  /** Scheme, host and path of the request; query strings are dropped (signed URLs hold tokens). */
  readonly url?: string;
  readonly expected?: string;
  readonly found?: string;
  readonly side?: IntegritySide;
}

export class OciError extends AirgapError<OciErrorCode> {
  readonly status: number | undefined;
  readonly registryCodes: readonly string[];
  readonly registryMessage: string | undefined;
  readonly url: string | undefined;
  readonly expected: string | undefined;
  readonly found: string | undefined;
  readonly side: IntegritySide | undefined;

  constructor(code: OciErrorCode, message: string, options: OciErrorOptions = {}) {
    super(code, message, options);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
    this.registryMessage = options.registryMessage;
    this.url = options.url;
    this.expected = options.expected;
    this.found = options.found;
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
