import { AirgapError } from '@trivy-airgap/format';

/**
 * Errors of the OCI client and layout store. `code` is what callers switch on; `temporary`
 * says whether Trivy would fall back to the next repository on this error (trivy-facts.md,
 * "fallback only on a temporary error"), so the exporter can mirror Trivy's behaviour.
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

// Trivy (through go-containerregistry) treats exactly these as temporary.
const TEMPORARY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
const TEMPORARY_REGISTRY_CODES = new Set(['TOOMANYREQUESTS', 'UNAVAILABLE', 'UNKNOWN', 'BLOB_UNKNOWN']);

export class OciError extends AirgapError<OciErrorCode> {
  readonly status: number | undefined;
  readonly registryCodes: readonly string[];
  readonly registryMessage: string | undefined;
  readonly url: string | undefined;
  readonly expected: string | undefined;
  readonly found: string | undefined;
  readonly side: IntegritySide | undefined;
  /** True when Trivy would try the next repository after this error (408/429/5xx, TOOMANYREQUESTS, UNAVAILABLE, UNKNOWN, BLOB_UNKNOWN). */
  readonly temporary: boolean;

  constructor(code: OciErrorCode, message: string, options: OciErrorOptions = {}) {
    super(code, message, options);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
    this.registryMessage = options.registryMessage;
    this.url = options.url;
    this.expected = options.expected;
    this.found = options.found;
    this.side = options.side;
    this.temporary = isTemporary(code, options.status, this.registryCodes);
  }
}

export function isTemporary(
  code: OciErrorCode,
  status: number | undefined,
  registryCodes: readonly string[],
): boolean {
  if (status !== undefined && TEMPORARY_STATUSES.has(status)) return true;
  if (registryCodes.some((c) => TEMPORARY_REGISTRY_CODES.has(c))) return true;
  // A blob the registry reports missing (with or without an error body) is what Trivy retries elsewhere.
  return code === 'BLOB_UNKNOWN';
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
