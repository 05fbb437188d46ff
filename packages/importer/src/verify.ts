import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { TrivyError, checkVexArchive } from '@trivy-airgap/trivy';
import type { BundleManifest, Digest, ProgressListener, VerifiedSignature } from '@trivy-airgap/format';
import { FileSink, checkLayerContent } from './content.js';
import { ImporterError } from './errors.js';
import { LayerUnpacker } from './layer.js';
import { readBundle, type PolicyOptions, type VerificationCheck } from './reader.js';
import type { BundleInput } from './source.js';
import { explainMissingTrust, loadTrustedKeys, type TrustOptions } from './trust.js';

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
 * Verifies a bundle completely and installs nothing: signature and policy, every entry's size and
 * digest, every OCI layer inflated and inspected in memory (DB files and metadata present and
 * matching the manifest), and VEX archives checked from a temporary copy (removed afterwards).
 * Throws the first failure (ImporterError / FormatError).
 */
export async function verifyBundle(options: VerifyBundleOptions): Promise<VerifyBundleResult> {
  const trustedKeys = await loadTrustedKeys(options);
  const unpackers: { label: string; run: () => Promise<VerificationCheck> }[] = [];
  // VEX archives (a few MB; zip needs random access) are checked from a temp copy, never the cache.
  let scratch: string | undefined;
  try {
    const result = await readBundle(options.bundle, {
      ...options,
      trustedKeys,
      openEntry: async (file, role) => {
        if (role.kind === 'vex-archive') {
          scratch ??= await mkdtemp(join(tmpdir(), 'trivy-airgap-verify-'));
          const path = join(scratch, `${role.component.name}.${role.component.archiveType}`);
          const component = role.component;
          unpackers.push({
            label: `vex ${component.name}`,
            run: async () => {
              const summary = await checkVexArchive(path, component.archiveType, component.subdir).catch(
                (error: unknown) => {
                  throw new ImporterError(
                    error instanceof TrivyError && error.code === 'VEX_ARCHIVE_UNSAFE'
                      ? 'BUNDLE_ENTRY_UNSAFE'
                      : 'BUNDLE_CONTENT_INVALID',
                    `VEX repository ${component.name}: ${error instanceof Error ? error.message : String(error)}`,
                    { cause: error, hint: 'the bundle carries a broken or hostile archive' },
                  );
                },
              );
              return {
                check: 'vex-archive',
                subject: component.name,
                ok: true,
                detail: `${summary.files.length} files below ${component.subdir === '' ? 'the root' : component.subdir}/, index.json lists ${summary.index.packages.length} packages (updated ${summary.index.updatedAt ?? 'at an unknown time'})`,
              };
            },
          });
          return new FileSink(path);
        }
        if (role.kind !== 'layer') return undefined;
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
        return unpacker;
      },
    }).catch((error: unknown) => {
      throw explainMissingTrust(error, options);
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
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}
