import type { Digest, UpstreamDbMetadata } from '@trivy-airgap/format';
import { TrivyError } from './errors.js';

/**
 * A timestamp as Go's time.Time marshals it (RFC 3339 with nanoseconds, UTC `Z`): fractional
 * seconds lose their trailing zeros and disappear when zero (`…:00.5Z`, `…:00Z`).
 */
export function formatGoTime(date: Date): string {
  const time = date.getTime();
  if (Number.isNaN(time)) throw new TrivyError('METADATA_INVALID', 'invalid date');
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ (years 0000–9999)
  const [seconds, fraction = ''] = iso.slice(0, -1).split('.');
  const trimmed = fraction.replace(/0+$/, '');
  return `${seconds}${trimmed === '' ? '' : `.${trimmed}`}Z`;
}

/** Upstream metadata.json as published, possibly with fields we do not know (they are kept). */
export type DbMetadataFields = UpstreamDbMetadata & Readonly<Record<string, unknown>>;

const KNOWN_DB_KEYS = ['Version', 'NextUpdate', 'UpdatedAt', 'DownloadedAt'] as const;

/**
 * JSON as Go's json.Encoder writes it, which is how Trivy writes every file we render here:
 * compact, then a newline (measured: the conformance suite's differential test compares our
 * files with those the real Trivy writes, byte for byte).
 */
function goEncoderBytes(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
}

/**
 * `db/metadata.json` / `java-db/metadata.json` exactly as Trivy leaves them after a download
 * (trivy-facts.md: compact JSON, keys Version (omitted when 0), NextUpdate, UpdatedAt, DownloadedAt;
 * an installer MUST write a real DownloadedAt, keeping every other field as published).
 * Published timestamps are kept byte for byte; unknown upstream fields follow in their order.
 */
export function renderDbMetadata(upstream: DbMetadataFields, downloadedAt: Date): Buffer {
  const out: Record<string, unknown> = {};
  if (upstream.Version !== undefined && upstream.Version !== 0) out.Version = upstream.Version;
  out.NextUpdate = upstream.NextUpdate;
  out.UpdatedAt = upstream.UpdatedAt;
  out.DownloadedAt = formatGoTime(downloadedAt);
  for (const [key, value] of Object.entries(upstream)) {
    if (!(KNOWN_DB_KEYS as readonly string[]).includes(key)) out[key] = value;
  }
  return goEncoderBytes(out);
}

export interface PolicyMetadataInput {
  /** The MANIFEST digest of the exact repo:tag that was pulled. */
  readonly digest: Digest;
  readonly downloadedAt: Date;
  /** From `checksMajorVersion`; `CustomBuild` true goes with MajorVersion 0. */
  readonly version: { readonly MajorVersion: number; readonly CustomBuild?: boolean };
}

/**
 * `policy/metadata.json` (trivy-facts.md: Digest, DownloadedAt, MajorVersion, CustomBuild omitted
 * when false).
 */
export function renderPolicyMetadata(input: PolicyMetadataInput): Buffer {
  const out: Record<string, unknown> = {
    Digest: input.digest,
    DownloadedAt: formatGoTime(input.downloadedAt),
    MajorVersion: input.version.MajorVersion,
  };
  if (input.version.CustomBuild === true) out.CustomBuild = true;
  return goEncoderBytes(out);
}

export interface VexCacheInput {
  readonly updatedAt: Date;
  /** Location URL (including any `//subdir`) → ETag; may be empty. */
  readonly etags: Readonly<Record<string, string>>;
}

/** `vex/repositories/<name>/cache.json` (trivy-facts.md: `{"UpdatedAt":…,"ETags":{…}}`). */
export function renderVexCacheJson(input: VexCacheInput): Buffer {
  return goEncoderBytes({ UpdatedAt: formatGoTime(input.updatedAt), ETags: { ...input.etags } });
}
