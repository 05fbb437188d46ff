import { TrivyError } from './errors.js';
import type { VexArchiveType } from './vex-archive.js';

/** The one vex-repo-spec version Trivy reads. */
export const VEX_SPEC_VERSION = '0.1';
export const MAX_VEX_MANIFEST_BYTES = 1024 * 1024;
export const MAX_VEX_INDEX_BYTES = 64 * 1024 * 1024;

export interface VexRepositoryVersion {
  readonly specVersion: string;
  /** Location URLs in the manifest's order (try the first, then the next). */
  readonly locations: readonly string[];
  /** As written (`24h`). */
  readonly updateInterval: string;
  /** The same in milliseconds. */
  readonly updateIntervalMs: number;
}

export interface VexRepositoryManifest {
  readonly name: string;
  readonly description?: string;
  /** The version entry with spec_version "0.1" — the one Trivy uses. */
  readonly version: VexRepositoryVersion;
  /** The parsed JSON as published (goes into the bundle manifest for inspection). */
  readonly raw: unknown;
}

export interface VexIndexPackage {
  readonly id: string;
  readonly location: string;
  /** 'openvex' when absent. */
  readonly format: 'openvex' | 'csaf';
}

export interface VexIndex {
  readonly updatedAt: string;
  readonly packages: readonly VexIndexPackage[];
}

export interface VexLocation {
  /** The URL to download (without the `//subdir`; a query string is kept). */
  readonly archiveUrl: string;
  /** Sub directory inside the archive ('' when none). */
  readonly subdir: string;
  readonly archiveType: VexArchiveType;
}

export function parseVexRepositoryManifest(bytes: Uint8Array): VexRepositoryManifest {
  void bytes;
  throw new TrivyError('VEX_MANIFEST_INVALID', 'not implemented yet');
}

export function parseVexIndex(bytes: Uint8Array): VexIndex {
  void bytes;
  throw new TrivyError('VEX_ARCHIVE_INVALID', 'not implemented yet');
}

export function parseLocationUrl(url: string): VexLocation {
  void url;
  throw new TrivyError('VEX_LOCATION_INVALID', 'not implemented yet');
}

export function parseGoDuration(value: string): number {
  void value;
  throw new TrivyError('VEX_MANIFEST_INVALID', 'not implemented yet');
}

export interface VexManifestRequest {
  readonly url: string;
  /** Request headers Trivy sends for this URL (GitHub contents API: raw media type). */
  readonly headers: Readonly<Record<string, string>>;
  /** True when the URL is the GitHub contents API (GITHUB_TOKEN may be sent as Bearer). */
  readonly githubApi: boolean;
}

export function vexManifestRequest(
  repoUrl: string,
  options: { githubApiUrl?: string } = {},
): VexManifestRequest {
  void repoUrl;
  void options;
  throw new TrivyError('VEX_LOCATION_INVALID', 'not implemented yet');
}

export function vexManifestUrl(repoUrl: string, options: { githubApiUrl?: string } = {}): string {
  return vexManifestRequest(repoUrl, options).url;
}
