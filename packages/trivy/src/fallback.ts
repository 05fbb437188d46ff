/**
 * When Trivy tries the next repository of `--db-repository`/`--java-db-repository` after a failed
 * pull (trivy pkg/oci `shouldTryOtherRepo` over go-containerregistry's `transport.Error`). The OCI
 * client only reports what happened; this is the one place that decides what Trivy would do.
 */

/** What a registry answered, as the OCI client reports it (OciError has these fields). */
export interface RegistryFailure {
  /** HTTP status of the failed response; undefined when no response came (network, TLS, timeout). */
  readonly status?: number | undefined;
  /** `errors[].code` of the registry's JSON error body; empty when the body had none. */
  readonly registryCodes: readonly string[];
}

/**
 * Statuses go-containerregistry retries and, once the retries are spent, marks temporary whatever
 * the body says (transport `retryError`; remote `defaultRetryStatusCodes`, 499/522 included).
 */
const RETRIED_STATUSES: ReadonlySet<number> = new Set([408, 429, 499, 500, 502, 503, 504, 522]);
/** transport `temporaryErrorCodes`: a body is temporary only when EVERY code in it is one of these. */
const TEMPORARY_CODES: ReadonlySet<string> = new Set([
  'BLOB_UPLOAD_INVALID',
  'TOOMANYREQUESTS',
  'UNKNOWN',
  'UNAVAILABLE',
]);

/**
 * True when Trivy would fall back to the next repository after this failure: a retried status;
 * or a JSON body whose codes are all temporary; or a body that names BLOB_UNKNOWN (Trivy's own
 * exception for GCR). Not: a bare 404 on a blob (no body, no code), 401/403/404 with their codes,
 * or a failure without a response (network, TLS), which go-containerregistry does not classify.
 */
export function trivyFallsBack(failure: RegistryFailure): boolean {
  const codes = failure.registryCodes;
  if (failure.status !== undefined && RETRIED_STATUSES.has(failure.status)) return true;
  if (codes.includes('BLOB_UNKNOWN')) return true;
  return codes.length > 0 && codes.every((code) => TEMPORARY_CODES.has(code));
}
