import { isRfc3339 } from '@trivy-airgap/format';
import { ARTIFACTS, type ArtifactKind } from './components.js';
import { TrivyError } from './errors.js';
import type { DbMetadataFields } from './render.js';

/** metadata.json is ~150 bytes upstream; anything near this cap is not Trivy's. */
export const MAX_METADATA_BYTES = 64 * 1024;

function isGoInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/**
 * Parses and validates metadata.json bytes (trivy-facts.md: Version int, RFC 3339 NextUpdate,
 * UpdatedAt, DownloadedAt). `what` names the file in errors.
 */
export function parseDbMetadata(bytes: Uint8Array, what = 'metadata.json'): DbMetadataFields {
  if (bytes.byteLength > MAX_METADATA_BYTES) {
    throw new TrivyError('METADATA_TOO_LARGE', `${what} is larger than ${MAX_METADATA_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new TrivyError('METADATA_INVALID', `${what} is not valid JSON`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TrivyError('METADATA_INVALID', `${what} is not a JSON object`);
  }
  const object = value as Record<string, unknown>;
  const problems: string[] = [];
  if (object.Version !== undefined && !isGoInt(object.Version)) problems.push('Version must be an integer');
  for (const key of ['NextUpdate', 'UpdatedAt', 'DownloadedAt'] as const) {
    if (!isRfc3339(object[key])) problems.push(`${key} must be an RFC 3339 timestamp`);
  }
  if (problems.length > 0) {
    throw new TrivyError('METADATA_INVALID', `${what}: ${problems.join('; ')}`);
  }
  return object as unknown as DbMetadataFields;
}

/**
 * Why a DB's schema Version is not the one Trivy reads (trivy-facts.md: DB schema 2, Java DB
 * schema 1; a higher one fails "the version of DB schema doesn't match", a lower one "the old DB
 * schema"), or undefined when it is. The one rule the exporter and the importer both apply.
 */
export function dbSchemaProblem(
  kind: ArtifactKind,
  metadata: { readonly Version?: number },
): string | undefined {
  const expected = ARTIFACTS[kind].schemaVersion;
  const found = metadata.Version ?? 0; // Trivy omits Version when it is 0
  if (found === expected) return undefined;
  return `metadata.json has schema Version ${found}, Trivy reads exactly ${expected}`;
}
