import {
  FormatError,
  MANIFEST_PATH,
  SIGNATURE_PATH,
  digestOfBytes,
  ignoreProgress,
  verifySignature,
  type BundleManifest,
  type Digest,
  type ProgressListener,
  type TrustedKey,
  type VerifiedSignature,
} from '@trivy-airgap/format';
import { ImporterError } from './errors.js';

/**
 * The importer's policy: which bundles and which content it accepts, as pure decisions over what
 * verification established (sigstore-js keeps its policy.ts apart from verifier.ts the same way).
 * The streaming pass (reader.ts) proves what the bytes are; this module decides whether that is
 * acceptable: a trusted signer (or --allow-unsigned), the dates (expiry, clock skew), and
 * anti-rollback (nothing older than what is installed or published, unless --allow-downgrade).
 */

/** One check performed, for `verify --json`. */
export interface VerificationCheck {
  readonly check: string;
  readonly subject: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface PolicyOptions {
  /** Accept a bundle without a signature, or signed by an untrusted key (warns loudly). */
  readonly allowUnsigned?: boolean;
  /** Accept a bundle past its `expires` (warns). */
  readonly allowExpired?: boolean;
  /** The clock (tests). */
  readonly now?: Date;
  /** How far in the future `created` may be (clock skew); default one day. */
  readonly maxClockSkewMs?: number;
}

export interface TrustedBundle {
  readonly manifest: BundleManifest;
  readonly manifestBytes: Buffer;
  readonly manifestDigest: Digest;
  /** The key that verified the signature; null when accepted unsigned/untrusted by request. */
  readonly signature: VerifiedSignature | null;
  readonly warnings: readonly string[];
}

const DEFAULT_CLOCK_SKEW_MS = 24 * 3600_000;

function pass(checks: VerificationCheck[], check: string, subject: string, detail: string): void {
  checks.push({ check, subject, ok: true, detail });
}

/** Signature and date policy over the exact manifest bytes. Throws, or returns the trusted bundle. */
export function checkTrust(
  manifestBytes: Buffer,
  manifest: BundleManifest,
  signatureBytes: Buffer | undefined,
  trustedKeys: readonly TrustedKey[],
  options: PolicyOptions,
  checks: VerificationCheck[] = [],
  onProgress: ProgressListener = ignoreProgress,
): TrustedBundle {
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    onProgress({ type: 'warning', message });
  };
  let signature: VerifiedSignature | null = null;
  if (manifest.signer === null || signatureBytes === undefined) {
    if (options.allowUnsigned !== true) {
      throw new ImporterError(
        'BUNDLE_UNSIGNED',
        'the bundle is not signed, so its content cannot be trusted',
        {
          hint: 'export it with --key; to import it anyway (at your own risk) pass --allow-unsigned',
        },
      );
    }
    warn('THE BUNDLE IS NOT SIGNED: its origin is not verified (--allow-unsigned)');
    checks.push({
      check: 'signature',
      subject: SIGNATURE_PATH,
      ok: false,
      detail: 'unsigned; accepted by --allow-unsigned',
    });
  } else {
    try {
      signature = verifySignature(manifestBytes, signatureBytes, trustedKeys, manifest.signer.keyId);
      if (signature.algorithm !== manifest.signer.algorithm) {
        throw new FormatError(
          'SIGNATURE_INVALID',
          `the manifest names ${manifest.signer.algorithm}, but key ${signature.keyId} is ${signature.algorithm}`,
          { hint: 'the bundle was altered; export it again' },
        );
      }
      pass(
        checks,
        'signature',
        SIGNATURE_PATH,
        `${signature.algorithm} signature by key ${signature.keyId} (trusted from ${signature.source})`,
      );
    } catch (error) {
      const untrusted =
        error instanceof FormatError && (error.code === 'KEY_UNTRUSTED' || error.code === 'NO_TRUSTED_KEYS');
      if (!untrusted || options.allowUnsigned !== true) throw error;
      warn(
        `THE BUNDLE'S SIGNER ${manifest.signer.keyId} IS NOT TRUSTED: its origin is not verified (--allow-unsigned)`,
      );
      checks.push({
        check: 'signature',
        subject: SIGNATURE_PATH,
        ok: false,
        detail: `signer ${manifest.signer.keyId} not trusted; accepted by --allow-unsigned`,
      });
    }
  }
  const now = options.now ?? new Date();
  const created = Date.parse(manifest.created);
  if (created > now.getTime() + (options.maxClockSkewMs ?? DEFAULT_CLOCK_SKEW_MS)) {
    throw new ImporterError(
      'BUNDLE_FROM_FUTURE',
      `the bundle claims to be created at ${manifest.created}, in the future (now ${now.toISOString()})`,
      { hint: 'check the clocks of the exporting machine and of this host' },
    );
  }
  pass(checks, 'created', MANIFEST_PATH, `created ${manifest.created} is not in the future`);
  if (Date.parse(manifest.expires) < now.getTime()) {
    if (options.allowExpired !== true) {
      throw new ImporterError('BUNDLE_EXPIRED', `the bundle expired at ${manifest.expires}`, {
        hint: 'export a fresh bundle; to import this one anyway pass --allow-expired',
      });
    }
    warn(`the bundle expired at ${manifest.expires} (--allow-expired)`);
    checks.push({
      check: 'expiry',
      subject: MANIFEST_PATH,
      ok: false,
      detail: `expired ${manifest.expires}; accepted by --allow-expired`,
    });
  } else {
    pass(checks, 'expiry', MANIFEST_PATH, `expires ${manifest.expires}`);
  }
  return { manifest, manifestBytes, manifestDigest: digestOfBytes(manifestBytes), signature, warnings };
}

/** When a component was built or published: what anti-rollback compares. */
export interface ComponentAge {
  /** Upstream build time (DB metadata UpdatedAt, VEX index updated_at). */
  readonly updatedAt?: string | undefined;
  /** Checks bundle version annotation (semver). */
  readonly version?: string | undefined;
  /** org.opencontainers.image.created: the push time, differs per mirror for the same build. */
  readonly created?: string | undefined;
}

function semver(value: string | undefined): number[] | undefined {
  const match = value === undefined ? null : /^v?(\d+)\.(\d+)\.(\d+)/.exec(value);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3])];
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** Why `incoming` is older than `installed`, or undefined when it is not (or cannot be told). */
export function downgradeReason(incoming: ComponentAge, installed: ComponentAge): string | undefined {
  const older = (a: string | undefined, b: string | undefined): boolean =>
    a !== undefined && b !== undefined && Date.parse(a) < Date.parse(b);
  if (incoming.updatedAt !== undefined && installed.updatedAt !== undefined) {
    // The build time decides; the push time (created) differs per mirror for the same build.
    return older(incoming.updatedAt, installed.updatedAt)
      ? `built ${incoming.updatedAt}, the installed one ${installed.updatedAt}`
      : undefined;
  }
  const a = semver(incoming.version);
  const b = semver(installed.version);
  if (a !== undefined && b !== undefined) {
    const diff = compareVersions(a, b);
    if (diff < 0) return `version ${incoming.version ?? '?'}, the installed one ${installed.version ?? '?'}`;
    if (diff > 0) return undefined;
  }
  if (older(incoming.created, installed.created)) {
    return `published ${incoming.created ?? '?'}, the installed one ${installed.created ?? '?'}`;
  }
  return undefined;
}
