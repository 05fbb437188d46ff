import { createHash, createHmac, verify, type KeyObject } from 'node:crypto';
import { signBytes, type SigningKey } from '@trivy-airgap/format';

/**
 * Deterministic ECDSA P-256/SHA-256 (RFC 6979), DER-encoded.
 *
 * Why here: packages/format's signBytes uses Node's ECDSA, whose nonce is random (OpenSSL 3.0 has
 * no deterministic mode), so two exports of the same inputs would differ in manifest.json.sig
 * and the bundle could not be reproducible byte for byte with the default key type. RFC 6979
 * derives the nonce from the key and the message instead; the signature is an ordinary ECDSA
 * signature (openssl dgst -sha256 -verify accepts it). Every signature made here is checked
 * with Node's own verify before use, and Ed25519 (deterministic by design) goes to signBytes.
 * This belongs in packages/format's signing; it lives here until it moves there.
 *
 * Limit: BigInt arithmetic is not constant-time. Signing runs a handful of times per export on
 * the operator's machine and is never reachable from the network, so timing is not observable
 * by a remote party; a shared host where others can time this process should use Ed25519 keys.
 */

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const A = P - 3n;
const G: Affine = {
  x: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  y: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
};

interface Affine {
  readonly x: bigint;
  readonly y: bigint;
}
/** Jacobian coordinates (X/Z², Y/Z³); Z = 0 is the point at infinity. */
interface Jacobian {
  readonly x: bigint;
  readonly y: bigint;
  readonly z: bigint;
}

function mod(value: bigint, m: bigint): bigint {
  const r = value % m;
  return r >= 0n ? r : r + m;
}

function modPow(base: bigint, exponent: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  let e = exponent;
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/** Inverse modulo a prime (P and N are both prime). */
function modInverse(value: bigint, m: bigint): bigint {
  return modPow(value, m - 2n, m);
}

function double(point: Jacobian): Jacobian {
  if (point.z === 0n || point.y === 0n) return { x: 0n, y: 1n, z: 0n };
  const { x, y, z } = point;
  const yy = (y * y) % P;
  const s = (4n * x * yy) % P;
  const zz = (z * z) % P;
  const m = mod(3n * x * x + A * zz * zz, P);
  const x3 = mod(m * m - 2n * s, P);
  const y3 = mod(m * (s - x3) - 8n * yy * yy, P);
  const z3 = (2n * y * z) % P;
  return { x: x3, y: y3, z: z3 };
}

function add(p1: Jacobian, p2: Jacobian): Jacobian {
  if (p1.z === 0n) return p2;
  if (p2.z === 0n) return p1;
  const z1z1 = (p1.z * p1.z) % P;
  const z2z2 = (p2.z * p2.z) % P;
  const u1 = (p1.x * z2z2) % P;
  const u2 = (p2.x * z1z1) % P;
  const s1 = (p1.y * p2.z * z2z2) % P;
  const s2 = (p2.y * p1.z * z1z1) % P;
  if (u1 === u2) return s1 === s2 ? double(p1) : { x: 0n, y: 1n, z: 0n };
  const h = mod(u2 - u1, P);
  const r = mod(s2 - s1, P);
  const hh = (h * h) % P;
  const hhh = (h * hh) % P;
  const v = (u1 * hh) % P;
  const x3 = mod(r * r - hhh - 2n * v, P);
  const y3 = mod(r * (v - x3) - s1 * hhh, P);
  const z3 = (p1.z * p2.z * h) % P;
  return { x: x3, y: y3, z: z3 };
}

function multiply(scalar: bigint, point: Affine): Affine {
  let result: Jacobian = { x: 0n, y: 1n, z: 0n };
  let addend: Jacobian = { x: point.x, y: point.y, z: 1n };
  let k = scalar;
  while (k > 0n) {
    if ((k & 1n) === 1n) result = add(result, addend);
    addend = double(addend);
    k >>= 1n;
  }
  const zInv = modInverse(result.z, P);
  const zInv2 = (zInv * zInv) % P;
  return { x: (result.x * zInv2) % P, y: (result.y * zInv2 * zInv) % P };
}

function toInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

function toOctets(value: bigint): Buffer {
  return Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
}

function hmac(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  for (const part of parts) h.update(part);
  return h.digest();
}

function derInteger(value: bigint): Buffer {
  let bytes = Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
}

/** RFC 6979 section 3.2 with HMAC-SHA256 and qlen = hlen = 256: the signature (r, s) over `message`. */
export function signP256Deterministic(message: Uint8Array, privateScalar: bigint): { r: bigint; s: bigint } {
  const h1 = createHash('sha256').update(message).digest();
  const e = toInt(h1);
  const x = toOctets(privateScalar);
  const h1Octets = toOctets(mod(e, N));
  let v: Buffer = Buffer.alloc(32, 0x01);
  let k: Buffer = Buffer.alloc(32, 0x00);
  k = hmac(k, v, Buffer.from([0x00]), x, h1Octets);
  v = hmac(k, v);
  k = hmac(k, v, Buffer.from([0x01]), x, h1Octets);
  v = hmac(k, v);
  for (;;) {
    v = hmac(k, v);
    const nonce = toInt(v);
    if (nonce >= 1n && nonce < N) {
      const r = mod(multiply(nonce, G).x, N);
      const s = mod(modInverse(nonce, N) * (e + r * privateScalar), N);
      if (r !== 0n && s !== 0n) return { r, s };
    }
    k = hmac(k, v, Buffer.from([0x00]));
    v = hmac(k, v);
  }
}

/** DER `SEQUENCE { INTEGER r, INTEGER s }`, what OpenSSL and Node produce and accept. */
export function derSignature(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

function privateScalarOf(key: KeyObject): bigint {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new Error('not a private EC key');
  return toInt(Buffer.from(jwk.d, 'base64url'));
}

/**
 * Signs exact bytes like packages/format's signBytes, but deterministically for ECDSA P-256, so
 * the same manifest signed with the same key gives the same signature bytes. Falls back to
 * signBytes if the self-check ever failed (then only reproducibility is lost, never validity).
 */
export function signReproducibly(bytes: Uint8Array, key: SigningKey): Buffer {
  if (key.algorithm !== 'ecdsa-p256-sha256') return signBytes(bytes, key);
  const { r, s } = signP256Deterministic(bytes, privateScalarOf(key.privateKey));
  const signature = derSignature(r, s);
  return verify('sha256', bytes, key.privateKey, signature) ? signature : signBytes(bytes, key);
}
