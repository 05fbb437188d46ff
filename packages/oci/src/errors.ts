import { AirgapError, type AirgapErrorOptions, type ErrorCategory } from '@trivy-airgap/format';

/**
 * Errors of the OCI client and layout store. `code` is what callers switch on; `temporary`
 * says whether Trivy would fall back to the next repository on this error (trivy-facts.md,
 * "fallback only on a temporary error"), so the exporter can mirror Trivy's behaviour.
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

// Trivy (through go-containerregistry) treats exactly these as temporary.
const TEMPORARY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
const TEMPORARY_REGISTRY_CODES = new Set(['TOOMANYREQUESTS', 'UNAVAILABLE', 'UNKNOWN', 'BLOB_UNKNOWN']);

export class OciError extends AirgapError<OciErrorCode> {
  readonly status: number | undefined;
  readonly registryCodes: readonly string[];
  readonly registryMessage: string | undefined;
  readonly url: string | undefined;
  declare readonly expected: string | undefined;
  declare readonly found: string | undefined;
  readonly side: IntegritySide | undefined;
  /** True when Trivy would try the next repository after this error (408/429/5xx, TOOMANYREQUESTS, UNAVAILABLE, UNKNOWN, BLOB_UNKNOWN). */
  readonly temporary: boolean;

  constructor(code: OciErrorCode, message: string, options: OciErrorOptions = {}) {
    super(code, OCI_ERROR_CODES[code], message, options);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
    this.registryMessage = options.registryMessage;
    this.url = options.url;
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
