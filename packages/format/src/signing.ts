import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto';
import { FormatError } from './errors.js';
import type { SignatureAlgorithm } from './manifest.js';

/**
 * Detached signatures over exact bytes (manifest.json, the .sha256 checksum file).
 * ECDSA P-256 with SHA-256 and DER-encoded signatures (verifiable with
 * `openssl dgst -sha256 -verify`), or Ed25519 (`openssl pkeyutl -verify -rawin`).
 * Keys are PEM: PKCS#8 private (optionally passphrase-encrypted), SPKI public.
 */

export type KeyType = 'ecdsa-p256' | 'ed25519';
export const KEY_TYPES: readonly KeyType[] = ['ecdsa-p256', 'ed25519'];

export interface SigningKey {
  readonly algorithm: SignatureAlgorithm;
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

export interface TrustedKey {
  readonly algorithm: SignatureAlgorithm;
  readonly keyId: string;
  readonly publicKey: KeyObject;
  /** Where the key came from (a file path), for messages. */
  readonly source: string;
}

export interface GeneratedKeyPair {
  readonly algorithm: SignatureAlgorithm;
  readonly keyId: string;
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
}

/** Key id: sha256 (hex) of the public key's SPKI DER encoding. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

function algorithmOf(key: KeyObject, source: string): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return 'ecdsa-p256-sha256';
  }
  const detail = key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyType ?? 'unknown';
  throw new FormatError('KEY_UNSUPPORTED', `${source}: unsupported key type ${detail}`, {
    hint: 'use an ECDSA P-256 or Ed25519 key (trivy-airgap keygen makes one)',
  });
}

export function generateKeyPair(type: KeyType = 'ecdsa-p256', passphrase?: string): GeneratedKeyPair {
  const { privateKey, publicKey } =
    type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateKeyPem =
    passphrase === undefined
      ? privateKey.export({ type: 'pkcs8', format: 'pem' })
      : privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase });
  return {
    algorithm: algorithmOf(publicKey, 'generated key'),
    keyId: keyIdOf(publicKey),
    privateKeyPem: privateKeyPem.toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----/;

/** Loads a PEM private key; `source` names it in errors (never the key material). */
export function loadSigningKey(
  pem: string,
  options: { passphrase?: string; source?: string } = {},
): SigningKey {
  const source = options.source ?? 'private key';
  const encrypted = ENCRYPTED_PEM.test(pem);
  if (encrypted && options.passphrase === undefined) {
    throw new FormatError('KEY_PASSPHRASE_REQUIRED', `${source} is encrypted and no passphrase was given`, {
      hint: 'pass --passphrase-file FILE (or set TRIVY_AIRGAP_PASSPHRASE)',
    });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(
      encrypted ? { key: pem, format: 'pem', passphrase: options.passphrase } : { key: pem, format: 'pem' },
    );
  } catch (error) {
    if (encrypted) {
      throw new FormatError(
        'KEY_PASSPHRASE_WRONG',
        `${source}: wrong passphrase (could not decrypt the key)`,
        {
          cause: error,
          hint: 'check the passphrase file',
        },
      );
    }
    throw new FormatError('KEY_INVALID', `${source} is not a PEM private key`, { cause: error });
  }
  const publicKey = createPublicKey(privateKey);
  return {
    algorithm: algorithmOf(privateKey, source),
    keyId: keyIdOf(publicKey),
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Loads a PEM public key (SPKI) to trust. */
export function loadTrustedKey(pem: string, source = 'public key'): TrustedKey {
  // createPublicKey would quietly derive the public half of a private key: refuse it instead,
  // so a signing key never gets copied around as if it were trust material.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new FormatError('KEY_INVALID', `${source} is a private key; trust the public key (.pub) instead`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new FormatError('KEY_INVALID', `${source} is not a PEM public key`, { cause: error });
  }
  return { algorithm: algorithmOf(publicKey, source), keyId: keyIdOf(publicKey), publicKey, source };
}

/** Signs exact bytes; ECDSA signatures are DER so stock openssl verifies them. */
export function signBytes(bytes: Uint8Array, key: SigningKey): Buffer {
  return key.algorithm === 'ed25519'
    ? sign(null, bytes, key.privateKey)
    : sign('sha256', bytes, key.privateKey);
}

/**
 * The stock openssl command (argv) that checks a detached signature of this algorithm, for people
 * at the gate: `openssl dgst` cannot verify Ed25519 ("Key type not supported"), and
 * `openssl pkeyutl -rawin` reads the whole file into memory (fine for the small signed files).
 */
export function opensslVerifyArgs(
  algorithm: SignatureAlgorithm,
  files: { readonly publicKey: string; readonly signature: string; readonly signed: string },
): string[] {
  return algorithm === 'ed25519'
    ? [
        'openssl',
        'pkeyutl',
        '-verify',
        '-pubin',
        '-inkey',
        files.publicKey,
        '-rawin',
        '-in',
        files.signed,
      ].concat(['-sigfile', files.signature])
    : ['openssl', 'dgst', '-sha256', '-verify', files.publicKey, '-signature', files.signature, files.signed];
}

function verifyWith(bytes: Uint8Array, signature: Uint8Array, key: TrustedKey): boolean {
  try {
    return key.algorithm === 'ed25519'
      ? verify(null, bytes, key.publicKey, signature)
      : verify('sha256', bytes, key.publicKey, signature);
  } catch {
    return false; // malformed signature bytes
  }
}

function sameKeyId(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface VerifiedSignature {
  readonly keyId: string;
  readonly algorithm: SignatureAlgorithm;
  readonly source: string;
}

/**
 * Verifies a detached signature over exact bytes against a set of trusted keys (several, for
 * rotation). When the signed document names its signer (`expectedKeyId`), only that key is
 * tried and it must be trusted; otherwise every trusted key is tried. Reports the key that matched.
 */
export function verifySignature(
  bytes: Uint8Array,
  signature: Uint8Array,
  trusted: readonly TrustedKey[],
  expectedKeyId?: string,
): VerifiedSignature {
  if (trusted.length === 0) {
    throw new FormatError('NO_TRUSTED_KEYS', 'no trusted public key was given', {
      hint: 'pass --trust signing.pub or put the key into a trusted-keys directory',
    });
  }
  const candidates =
    expectedKeyId === undefined ? trusted : trusted.filter((key) => sameKeyId(key.keyId, expectedKeyId));
  if (candidates.length === 0) {
    throw new FormatError(
      'KEY_UNTRUSTED',
      `signed by key ${expectedKeyId ?? '?'}, which is not among the trusted keys (${trusted
        .map((key) => key.keyId.slice(0, 16))
        .join(', ')})`,
      { hint: "trust the exporter's public key with --trust FILE" },
    );
  }
  for (const key of candidates) {
    if (verifyWith(bytes, signature, key)) {
      return { keyId: key.keyId, algorithm: key.algorithm, source: key.source };
    }
  }
  throw new FormatError(
    'SIGNATURE_INVALID',
    'signature does not match: the signed bytes or the signature were changed',
    {
      hint: 'the bundle was altered or damaged in transit; export it again',
    },
  );
}
