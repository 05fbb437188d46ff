import { OciError, redactUrl, type OciErrorCode } from './errors.js';
import { formatReference, type ImageReference } from './reference.js';
import type { HttpResponse } from './transport.js';

/** What a failed request was for: a 404 means a different thing for a manifest than for a token. */
export type RequestContext = 'manifest' | 'blob' | 'upload' | 'token';

const MAX_ERROR_BODY = 64 * 1024;

/**
 * Reads a registry's error answer (the JSON body, bounded) and says what happened as an OciError.
 * The classification is the registry's word, not a policy: whether to try another repository is
 * decided by the caller (Trivy's fallback rule lives in @trivy-airgap/trivy).
 */
export async function errorFromResponse(
  response: HttpResponse,
  context: RequestContext,
  ref: ImageReference | undefined,
): Promise<OciError> {
  const status = response.status;
  let registryCodes: string[] = [];
  let registryMessage: string | undefined;
  try {
    const text = response.body.readableEnded ? '' : await response.text(MAX_ERROR_BODY);
    // Go's HTTPS server answers a plain-HTTP request with exactly this 400: --plain-http
    // against a TLS registry (a plain "HTTP 400" would send the user looking at the name).
    if (status === 400 && text.includes('HTTP request to an HTTPS server')) {
      return new OciError(
        'TLS',
        `${new URL(response.url).host} serves HTTPS, but the request was plain HTTP`,
        {
          status,
          url: redactUrl(response.url),
          hint: 'leave out --plain-http (with --ca-cert FILE if its certificate comes from a private CA)',
        },
      );
    }
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(parsed.errors)) {
      registryCodes = parsed.errors.map((e) => e.code).filter((c): c is string => typeof c === 'string');
      const messages = parsed.errors.map((e) => e.message).filter((m): m is string => typeof m === 'string');
      if (messages.length > 0) registryMessage = messages.join('; ').slice(0, 500);
    }
  } catch {
    // No readable JSON error body: classify by status alone.
    await response.discard();
  }
  const code = classifyResponse(status, registryCodes, context);
  const subject = ref === undefined ? 'token request' : `${context} ${formatReference(ref)}`;
  const message = `${subject}: HTTP ${status}${registryCodes.length > 0 ? ` ${registryCodes.join(',')}` : ''}${
    registryMessage === undefined ? '' : ` (${registryMessage})`
  }`;
  return new OciError(code, message, {
    status,
    registryCodes,
    registryMessage,
    url: redactUrl(response.url),
    hint: hintFor(code),
  });
}

/** The error code for a registry's answer: its JSON error codes first, then the HTTP status. */
export function classifyResponse(
  status: number,
  registryCodes: readonly string[],
  context: RequestContext,
): OciErrorCode {
  const has = (c: string): boolean => registryCodes.includes(c);
  if (status === 401 || has('UNAUTHORIZED')) return 'UNAUTHORIZED';
  if (status === 403 || has('DENIED')) return 'DENIED';
  if (status === 429 || has('TOOMANYREQUESTS')) return 'TOO_MANY_REQUESTS';
  if (has('NAME_UNKNOWN')) return 'NAME_UNKNOWN';
  if (has('MANIFEST_UNKNOWN')) return 'MANIFEST_UNKNOWN';
  if (has('MANIFEST_BLOB_UNKNOWN')) return 'MANIFEST_INVALID';
  if (has('BLOB_UNKNOWN')) return 'BLOB_UNKNOWN';
  if (has('DIGEST_INVALID')) return 'DIGEST_MISMATCH';
  if (has('MANIFEST_INVALID') || has('SIZE_INVALID')) return 'MANIFEST_INVALID';
  if (has('UNSUPPORTED') || status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 404) {
    if (context === 'manifest') return 'MANIFEST_UNKNOWN';
    if (context === 'blob') return 'BLOB_UNKNOWN';
  }
  if (status === 408) return 'TIMEOUT';
  if (status === 503 || has('UNAVAILABLE')) return 'UNAVAILABLE';
  if (status >= 500) return 'SERVER_ERROR';
  if (context === 'upload') return 'UPLOAD_FAILED';
  return 'UNEXPECTED_STATUS';
}

function hintFor(code: OciErrorCode): string | undefined {
  switch (code) {
    case 'UNAUTHORIZED':
      return 'check the credentials (--username/--password, --registry-token or docker login)';
    case 'DENIED':
      return 'the credentials are valid but lack permission for this repository';
    case 'TOO_MANY_REQUESTS':
      return 'the registry is rate limiting: wait, log in, or use another mirror';
    default:
      return undefined;
  }
}
