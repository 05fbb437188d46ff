import { p256 } from '@noble/curves/nist.js';
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
  if (/-----BEGIN PUBLIC KEY-----/.test(pem)) {
    throw new FormatError('KEY_INVALID', `${source} is the public key; signing needs the private key`, {
      hint: 'pass the signing.key that keygen wrote beside it (the .pub goes to the isolated hosts)',
    });
  }
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

/**
 * Signs exact bytes. The same bytes and key always give the same signature, so an export of the
 * same inputs is the same bundle byte for byte: Ed25519 is deterministic by design (RFC 8032,
 * through node:crypto); ECDSA P-256 takes its nonce from RFC 6979 (see signEcdsaP256), because
 * Node's OpenSSL 3.0 signer draws a random one. ECDSA signatures are DER, which stock
 * `openssl dgst -sha256 -verify` needs.
 */
export function signBytes(bytes: Uint8Array, key: SigningKey): Buffer {
  const signature =
    key.algorithm === 'ed25519' ? sign(null, bytes, key.privateKey) : signEcdsaP256(bytes, key);
  // A signature that does not verify is never handed out: a fault during deterministic ECDSA
  // signing can leak the key through the bad signature, and a bundle signed wrongly is useless.
  const publicKey = createPublicKey(key.privateKey);
  if (!verify(key.algorithm === 'ed25519' ? null : 'sha256', bytes, publicKey, signature)) {
    throw new FormatError('SIGNING_FAILED', 'the new signature did not verify with the signing key', {
      hint: 'this machine computed a wrong signature; try again, and check its memory if it repeats',
    });
  }
  return signature;
}

/**
 * Deterministic ECDSA P-256/SHA-256 (RFC 6979, HMAC-SHA256 nonces) by @noble/curves, an audited
 * library; signatures are byte-identical to the RFC's vectors (no low-s normalisation, which
 * RFC 6979, OpenSSL and Node neither do nor require).
 *
 * What noble states: multiplying a point by a secret scalar (here the nonce times the base point)
 * runs a fixed sequence of point operations (fixed-window tables scanned without branching on the
 * secret) on a scalar blinded with a random multiple of the group order, checked with a
 * statistical timing harness. What it does not claim, and JS cannot give: constant-time field and
 * scalar arithmetic (BigInt; the JIT and garbage collector decide timing), and erasing secrets
 * (BigInts cannot be wiped). So we keep the exposure short: the key stays a KeyObject (outside
 * the JS heap), its scalar is copied out only inside this call into buffers zeroed before it
 * returns, and nothing falls back to a random nonce. Signing runs a few times per export on the
 * operator's machine and is never reachable from the network.
 */
function signEcdsaP256(bytes: Uint8Array, key: SigningKey): Buffer {
  const scalar = new Uint8Array(P256_SCALAR_BYTES);
  let sec1: Buffer | undefined;
  try {
    sec1 = key.privateKey.export({ type: 'sec1', format: 'der' });
    copyScalarFromSec1(sec1, scalar);
    return Buffer.from(
      p256.sign(bytes, scalar, { prehash: true, lowS: false, format: 'der', extraEntropy: false }),
    );
  } catch (error) {
    if (error instanceof FormatError) throw error;
    throw new FormatError('SIGNING_FAILED', 'deterministic ECDSA P-256 signing failed', {
      cause: error,
      hint: 'check the key file, or use an Ed25519 key (trivy-airgap keygen --type ed25519)',
    });
  } finally {
    sec1?.fill(0);
    scalar.fill(0);
  }
}

const P256_SCALAR_BYTES = 32;
/** `INTEGER 1, OCTET STRING (32 bytes)`: the start of an ECPrivateKey body (RFC 5915) for P-256. */
const EC_PRIVATE_KEY_PREFIX = Buffer.from([0x02, 0x01, 0x01, 0x04, P256_SCALAR_BYTES]);

/** Copies the private scalar out of the SEC1 `ECPrivateKey` DER that Node exports. */
function copyScalarFromSec1(der: Buffer, into: Uint8Array): void {
  // SEQUENCE with a short (< 128) or one-byte long length: an ECPrivateKey of P-256 is ~121 bytes.
  const bodyStart = der[0] !== 0x30 ? -1 : (der[1] ?? 0) < 0x80 ? 2 : der[1] === 0x81 ? 3 : -1;
  const scalarStart = bodyStart + EC_PRIVATE_KEY_PREFIX.length;
  if (
    bodyStart < 0 ||
    !der.subarray(bodyStart, scalarStart).equals(EC_PRIVATE_KEY_PREFIX) ||
    der.length < scalarStart + P256_SCALAR_BYTES
  ) {
    throw new FormatError('SIGNING_FAILED', 'the ECDSA key is not a P-256 ECPrivateKey as expected', {
      hint: 'create a key with trivy-airgap keygen',
    });
  }
  into.set(der.subarray(scalarStart, scalarStart + P256_SCALAR_BYTES));
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
