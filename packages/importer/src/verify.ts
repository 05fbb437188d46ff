import type { Readable } from 'node:stream';
import type { BundleManifest, Digest, ProgressListener, VerifiedSignature } from '@trivy-airgap/format';
import { checkLayerContent } from './content.js';
import { LayerUnpacker } from './layer.js';
import { readBundle, type PolicyOptions, type VerificationCheck } from './reader.js';
import type { BundleInput } from './source.js';
import { loadTrustedKeys, type TrustOptions } from './trust.js';

export interface VerifyBundleOptions extends PolicyOptions, TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  readonly onProgress?: ProgressListener;
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
}

/**
 * Verifies a bundle completely and writes nothing: signature and policy, every entry's size and
 * digest, and every OCI layer inflated and inspected in memory (DB files and metadata present and
 * matching the manifest). Throws the first failure (ImporterError / FormatError).
 */
export async function verifyBundle(options: VerifyBundleOptions): Promise<VerifyBundleResult> {
  const trustedKeys = await loadTrustedKeys(options);
  const unpackers: { label: string; run: () => Promise<VerificationCheck> }[] = [];
  const result = await readBundle(options.bundle, {
    ...options,
    trustedKeys,
    openEntry: (file, role) => {
      if (role.kind !== 'layer') return Promise.resolve(undefined);
      const unpacker = new LayerUnpacker(`${role.component.kind} layer`, file.size, undefined);
      unpackers.push({
        label: role.component.kind,
        run: async () => {
          const layer = await unpacker.result();
          checkLayerContent(role.component, layer);
          return {
            check: 'layer-content',
            subject: role.component.kind,
            ok: true,
            detail: `${layer.files.length} files, ${layer.bytes} bytes unpacked; contents match the manifest`,
          };
        },
      });
      return Promise.resolve(unpacker);
    },
  });
  const checks = [...result.checks];
  for (const unpacker of unpackers) checks.push(await unpacker.run());
  return {
    bundleId: result.manifest.bundleId,
    manifest: result.manifest,
    manifestDigest: result.manifestDigest,
    signature: result.signature,
    warnings: result.warnings,
    checks,
    bytesRead: result.bytesRead,
  };
}
