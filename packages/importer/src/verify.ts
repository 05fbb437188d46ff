import type { Readable } from 'node:stream';
import type { BundleManifest, Digest, ProgressListener, VerifiedSignature } from '@trivy-airgap/format';
import { prepareBundle } from './prepare.js';
import type { PolicyOptions, VerificationCheck } from './policy.js';
import type { BundleInput } from './source.js';
import { explainMissingTrust, loadTrustedKeys, type TrustOptions } from './trust.js';

export interface VerifyBundleOptions extends PolicyOptions, TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  readonly onProgress?: ProgressListener;
  /** Stops verifying (Ctrl-C): rejects with ABORTED. */
  readonly signal?: AbortSignal;
}

export interface VerifyBundleResult {
  readonly bundleId: string;
  readonly manifest: BundleManifest;
  readonly manifestDigest: Digest;
  readonly signature: VerifiedSignature | null;
  readonly warnings: readonly string[];
  /** Every check performed, in order. */
  readonly checks: readonly VerificationCheck[];
  readonly bytesRead: number;
  /** Per DB kind (`db`, `java-db`): UpdatedAt of the metadata.json read from its layer. */
  readonly builtAt: Readonly<Partial<Record<string, string>>>;
}

/**
 * Verifies a bundle completely and installs nothing: `import` minus the writing. It is the same
 * pass (prepare.ts) with no staging directory: signature and policy, every entry's size and
 * digest, every layer unpacked and checked in memory (limits, collisions, DB schema, metadata
 * matching the manifest), every VEX archive checked from a temporary copy outside any cache.
 * Throws the first failure (ImporterError / FormatError), with the code `import` would throw.
 */
export async function verifyBundle(options: VerifyBundleOptions): Promise<VerifyBundleResult> {
  const trustedKeys = await loadTrustedKeys(options);
  const result = await prepareBundle({ ...options, trustedKeys }).catch((error: unknown) => {
    throw explainMissingTrust(error, options);
  });
  return {
    bundleId: result.manifest.bundleId,
    manifest: result.manifest,
    manifestDigest: result.manifestDigest,
    signature: result.signature,
    warnings: result.warnings,
    checks: result.checks,
    bytesRead: result.bytesRead,
    builtAt: Object.fromEntries(
      result.components.flatMap(({ key, upstream }) =>
        upstream === undefined ? [] : [[key, upstream.UpdatedAt]],
      ),
    ),
  };
}
