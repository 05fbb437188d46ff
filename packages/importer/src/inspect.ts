import type { Readable } from 'node:stream';
import {
  FormatError,
  digestOfBytes,
  verifySignature,
  type BundleManifest,
  type Digest,
  type SignatureAlgorithm,
} from '@trivy-airgap/format';
import { CREATED_ANNOTATION } from '@trivy-airgap/trivy';
import { readBundleHead } from './reader.js';
import type { BundleInput } from './source.js';
import { loadTrustedKeys, type TrustOptions } from './trust.js';

export interface InspectBundleOptions extends TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  readonly now?: Date;
}

/** One component as `inspect` shows it. */
export interface ComponentSummary {
  readonly kind: string;
  readonly name?: string;
  /** Asked-for reference (OCI) or repository URL (VEX). */
  readonly source: string;
  /** The mirror or URL that actually served it. */
  readonly servedBy: string;
  readonly manifestDigest?: string;
  readonly layerDigest?: string;
  readonly size?: number;
  readonly version?: string;
  /** Upstream build time and its age at `now`. */
  readonly updatedAt?: string;
  readonly ageMs?: number;
  readonly nextUpdate?: string;
  /**
   * OCI artifacts: when it was pushed (`org.opencontainers.image.created`). Shown instead of the
   * build time for DBs whose manifest does not record their metadata.json (the layer has it).
   */
  readonly published?: string;
  readonly location?: string;
}

/**
 * `verified` by a trusted key; `untrusted` signer unknown here; `invalid` signature does not
 * match (tampered); `unsigned`; `not-checked` when no trusted key is configured.
 */
export type SignatureStatus = 'verified' | 'untrusted' | 'invalid' | 'unsigned' | 'not-checked';

export interface InspectBundleResult {
  readonly label: string;
  readonly size?: number;
  readonly bundleId: string;
  readonly manifestDigest: Digest;
  readonly created: string;
  readonly expires: string;
  readonly expired: boolean;
  readonly tool: { readonly name: string; readonly version: string };
  readonly trivyVersions: string;
  readonly signer: { readonly keyId: string; readonly algorithm: SignatureAlgorithm } | null;
  readonly signature: SignatureStatus;
  /** The trusted key file that verified it. */
  readonly verifiedBy?: string;
  readonly components: readonly ComponentSummary[];
  readonly fileCount: number;
  readonly contentBytes: number;
  readonly manifest: BundleManifest;
}

/**
 * Shows what a bundle holds from its manifest alone (reads only the first two entries). No key is
 * needed; when trusted keys are configured the signature status is reported, never enforced.
 * Nothing here is verified content: `verify` does that.
 */
export async function inspectBundle(options: InspectBundleOptions): Promise<InspectBundleResult> {
  const head = await readBundleHead(options.bundle, options.stdin);
  const manifest = head.manifest;
  const now = (options.now ?? new Date()).getTime();
  let signature: SignatureStatus = 'unsigned';
  let verifiedBy: string | undefined;
  if (manifest.signer !== null && head.signatureBytes !== undefined) {
    const keys = await loadTrustedKeys(options).catch(() => []);
    if (keys.length === 0) {
      signature = 'not-checked';
    } else {
      try {
        verifiedBy = verifySignature(
          head.manifestBytes,
          head.signatureBytes,
          keys,
          manifest.signer.keyId,
        ).source;
        signature = 'verified';
      } catch (error) {
        signature =
          error instanceof FormatError && error.code === 'SIGNATURE_INVALID' ? 'invalid' : 'untrusted';
      }
    }
  }
  const components = manifest.components.map((component): ComponentSummary => {
    if (component.kind === 'vex') {
      const updatedAt = component.updatedAt;
      return {
        kind: 'vex',
        name: component.name,
        source: component.url,
        servedBy: component.servedBy,
        location: component.location,
        ...(updatedAt === undefined ? {} : { updatedAt, ageMs: now - Date.parse(updatedAt) }),
      };
    }
    const updatedAt = component.metadata?.UpdatedAt;
    const published = component.annotations[CREATED_ANNOTATION];
    return {
      kind: component.kind,
      source: component.source,
      servedBy: component.servedBy,
      manifestDigest: component.manifest.digest,
      layerDigest: component.layer.digest,
      size: component.layer.size,
      ...(component.version === undefined ? {} : { version: component.version }),
      ...(updatedAt === undefined ? {} : { updatedAt, ageMs: now - Date.parse(updatedAt) }),
      ...(component.metadata === undefined ? {} : { nextUpdate: component.metadata.NextUpdate }),
      ...(published === undefined ? {} : { published }),
    };
  });
  return {
    label: head.label,
    ...(head.size === undefined ? {} : { size: head.size }),
    bundleId: manifest.bundleId,
    manifestDigest: digestOfBytes(head.manifestBytes),
    created: manifest.created,
    expires: manifest.expires,
    expired: Date.parse(manifest.expires) < now,
    tool: manifest.tool,
    trivyVersions: manifest.trivyVersions,
    signer: manifest.signer,
    signature,
    ...(verifiedBy === undefined ? {} : { verifiedBy }),
    components,
    fileCount: manifest.files.length,
    contentBytes: manifest.files.reduce((sum, file) => sum + file.size, 0),
    manifest,
  };
}
