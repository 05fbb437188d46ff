import type { Readable } from 'node:stream';
import type { BundleFile, ProgressListener } from '@trivy-airgap/format';
import { prepareBundle, type PreparedBundle } from '../prepare.js';
import type { PolicyOptions, TrustedBundle, VerificationCheck } from '../policy.js';
import type { EntryRole } from '../reader.js';
import type { BundleInput } from '../source.js';
import { loadTrustedKeys, type TrustOptions } from '../trust.js';

export interface VerifiedReadOptions extends PolicyOptions, TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  readonly onProgress?: ProgressListener;
  readonly signal?: AbortSignal;
  /**
   * Where to keep a verified copy of an entry (a new file), or undefined to only verify it.
   * Called once per entry, after the signature was verified and before its bytes are read.
   */
  readonly destinationOf: (file: BundleFile, role: EntryRole) => string | undefined;
  /** Runs once signature and policy passed, before the first content entry is read. */
  readonly onTrusted?: (bundle: TrustedBundle) => Promise<void>;
}

export interface VerifiedRead extends PreparedBundle {
  /** Every check, the inspected layer contents and VEX archives included. */
  readonly allChecks: readonly VerificationCheck[];
}

/**
 * The publishing read of a bundle: the importer's one verification pass (prepare.ts, exactly what
 * `verify` runs: signature, policy, every digest, layer contents, VEX archives, Trivy's rules),
 * keeping copies of the entries asked for. Copies are not fsynced: OCI blobs are work copies read
 * back verified, VEX archives are published by a rename that is synced as a whole. Nothing kept
 * may be used before this resolves.
 */
export async function readVerifiedBundle(options: VerifiedReadOptions): Promise<VerifiedRead> {
  const trustedKeys = await loadTrustedKeys(options);
  const result = await prepareBundle({ ...options, trustedKeys, copyEntry: options.destinationOf });
  return { ...result, allChecks: result.checks };
}
