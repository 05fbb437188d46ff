import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  generateKeyPair,
  loadSigningKey,
  loadTrustedKey,
  signBytes,
  verifySignature,
  type FormatError,
  type KeyType,
} from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-signing-'));
after(() => rmSync(work, { recursive: true, force: true }));

const MANIFEST = Buffer.from('{"mediaType":"application/vnd.trivy-airgap.manifest.v1+json","files":[]}\n');

function openssl(args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** Verifies with the stock openssl CLI, the way an operator would before the air gap. */
function opensslVerifies(type: KeyType, publicPem: string, data: Buffer, signature: Buffer): boolean {
  const dir = mkdtempSync(join(work, 'v-'));
  writeFileSync(join(dir, 'pub.pem'), publicPem);
  writeFileSync(join(dir, 'manifest.json'), data);
  writeFileSync(join(dir, 'manifest.json.sig'), signature);
  const args =
    type === 'ed25519'
      ? [
          'pkeyutl',
          '-verify',
          '-pubin',
          '-inkey',
          'pub.pem',
          '-rawin',
          '-in',
          'manifest.json',
          '-sigfile',
          'manifest.json.sig',
        ]
      : ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'manifest.json.sig', 'manifest.json'];
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  return result.status === 0;
}

function flipped(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[index] = copy[index]! ^ 0x01;
  return copy;
}

for (const type of ['ecdsa-p256', 'ed25519'] as const) {
  describe(`${type} signatures`, () => {
    const pair = generateKeyPair(type);
    const signing = loadSigningKey(pair.privateKeyPem);
    const trusted = loadTrustedKey(pair.publicKeyPem, 'signing.pub');

    it('key id is sha256 of the SPKI DER, the same as openssl computes', () => {
      const dir = mkdtempSync(join(work, 'id-'));
      writeFileSync(join(dir, 'pub.pem'), pair.publicKeyPem);
      const der = execFileSync('openssl', ['pkey', '-pubin', '-in', join(dir, 'pub.pem'), '-outform', 'DER']);
      const viaOpenssl = execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: der })
        .toString()
        .split(' ')[0];
      assert.equal(pair.keyId, viaOpenssl);
      assert.equal(signing.keyId, pair.keyId);
      assert.equal(trusted.keyId, pair.keyId);
    });

    it('our signature verifies with our verifier and with the openssl CLI', () => {
      const signature = signBytes(MANIFEST, signing);
      const verified = verifySignature(MANIFEST, signature, [trusted], signing.keyId);
      assert.equal(verified.keyId, pair.keyId);
      assert.equal(verified.source, 'signing.pub');
      assert.equal(opensslVerifies(type, pair.publicKeyPem, MANIFEST, signature), true);
    });

    it('one flipped byte in the manifest or the signature fails both verifiers', () => {
      const signature = signBytes(MANIFEST, signing);
      for (const [data, sig] of [
        [flipped(MANIFEST, 10), signature],
        [MANIFEST, flipped(signature, signature.length - 5)],
      ] as const) {
        assert.throws(
          () => verifySignature(data, sig, [trusted]),
          (error: FormatError) => error.code === 'SIGNATURE_INVALID',
        );
        assert.equal(opensslVerifies(type, pair.publicKeyPem, data, sig), false);
      }
    });

    it('a signature made by openssl verifies with ours', () => {
      const dir = mkdtempSync(join(work, 'o-'));
      const key = join(dir, 'key.pem');
      const gen =
        type === 'ed25519'
          ? openssl(['genpkey', '-algorithm', 'ed25519', '-out', key])
          : openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
      assert.ok(gen.ok, gen.output);
      const pub = join(dir, 'pub.pem');
      assert.ok(openssl(['pkey', '-in', key, '-pubout', '-out', pub]).ok);
      const data = join(dir, 'manifest.json');
      writeFileSync(data, MANIFEST);
      const sig = join(dir, 'manifest.json.sig');
      const signed =
        type === 'ed25519'
          ? openssl(['pkeyutl', '-sign', '-inkey', key, '-rawin', '-in', data, '-out', sig])
          : openssl(['dgst', '-sha256', '-sign', key, '-out', sig, data]);
      assert.ok(signed.ok, signed.output);
      const theirs = loadTrustedKey(readFileSync(pub, 'utf8'), pub);
      const result = verifySignature(MANIFEST, readFileSync(sig), [trusted, theirs]);
      assert.equal(result.keyId, theirs.keyId);
      assert.throws(
        () => verifySignature(flipped(MANIFEST, 3), readFileSync(sig), [theirs]),
        (error: FormatError) => error.code === 'SIGNATURE_INVALID',
      );
    });
  });
}

describe('deterministic signatures (reproducible bundles)', () => {
  // RFC 6979 appendix A.2.5: ECDSA, 256 bits (prime field), SHA-256. The expected signatures are
  // the RFC's (r, s) written out as DER by hand: SEQUENCE { INTEGER r, INTEGER s }, with a 0x00
  // before an integer whose top bit is set.
  const rfcKey = createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'EC',
      crv: 'P-256',
      d: Buffer.from('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721', 'hex').toString(
        'base64url',
      ),
      x: Buffer.from('60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6', 'hex').toString(
        'base64url',
      ),
      y: Buffer.from('7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299', 'hex').toString(
        'base64url',
      ),
    },
  });
  const rfcSigning = loadSigningKey(rfcKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
    source: 'rfc6979.key',
  });
  const rfcVectors = [
    [
      'sample',
      '3046' +
        '022100efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716' +
        '022100f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8',
    ],
    [
      'test',
      '3045' +
        '022100f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367' +
        '0220019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083',
    ],
  ] as const;

  it('ECDSA P-256 signs the RFC 6979 A.2.5 vectors byte for byte, and openssl verifies them', () => {
    const rfcPublicPem = createPublicKeyPem(rfcKey);
    for (const [message, der] of rfcVectors) {
      const signature = signBytes(Buffer.from(message), rfcSigning);
      assert.equal(signature.toString('hex'), der, message);
      assert.equal(opensslVerifies('ecdsa-p256', rfcPublicPem, Buffer.from(message), signature), true);
    }
  });

  for (const type of ['ecdsa-p256', 'ed25519'] as const) {
    it(`${type}: the same bytes give the same signature, other bytes another`, () => {
      const key = loadSigningKey(generateKeyPair(type).privateKeyPem);
      for (let i = 0; i < 10; i++) {
        const message = Buffer.from(`manifest ${i} ${'x'.repeat(i * 37)}`);
        assert.deepEqual(signBytes(message, key), signBytes(message, key));
        assert.notDeepEqual(
          signBytes(message, key),
          signBytes(Buffer.concat([message, Buffer.from('!')]), key),
        );
      }
    });
  }

  it('a key openssl made (SEC1 "EC PRIVATE KEY" PEM) signs deterministically and openssl verifies', () => {
    const dir = mkdtempSync(join(work, 'sec1-'));
    const key = join(dir, 'key.pem');
    assert.ok(openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]).ok);
    const pem = readFileSync(key, 'utf8');
    assert.match(pem, /BEGIN EC PRIVATE KEY/);
    const signing = loadSigningKey(pem);
    const signature = signBytes(MANIFEST, signing);
    assert.deepEqual(signBytes(MANIFEST, signing), signature);
    assert.equal(opensslVerifies('ecdsa-p256', signing.publicKeyPem, MANIFEST, signature), true);
  });

  it('never falls back to a random nonce: a key that cannot sign deterministically is SIGNING_FAILED', () => {
    const ed25519 = loadSigningKey(generateKeyPair('ed25519').privateKeyPem);
    const mislabelled = { ...ed25519, algorithm: 'ecdsa-p256-sha256' as const };
    assert.throws(
      () => signBytes(MANIFEST, mislabelled),
      (error: FormatError) => error.code === 'SIGNING_FAILED' && error.category === 'failure',
    );
  });
});

function createPublicKeyPem(privateKey: ReturnType<typeof createPrivateKey>): string {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
}

describe('trusted key sets', () => {
  const oldPair = generateKeyPair('ecdsa-p256');
  const newPair = generateKeyPair('ed25519');
  const trustedSet = [
    loadTrustedKey(oldPair.publicKeyPem, 'old.pub'),
    loadTrustedKey(newPair.publicKeyPem, 'new.pub'),
  ];

  it('reports which of several trusted keys matched (key rotation)', () => {
    const signature = signBytes(MANIFEST, loadSigningKey(newPair.privateKeyPem));
    assert.equal(verifySignature(MANIFEST, signature, trustedSet).source, 'new.pub');
    assert.equal(verifySignature(MANIFEST, signature, trustedSet, newPair.keyId).source, 'new.pub');
  });

  it('refuses a signer that is not trusted, and an empty trust set', () => {
    const stranger = generateKeyPair('ecdsa-p256');
    const signature = signBytes(MANIFEST, loadSigningKey(stranger.privateKeyPem));
    assert.throws(
      () => verifySignature(MANIFEST, signature, trustedSet, stranger.keyId),
      (error: FormatError) => error.code === 'KEY_UNTRUSTED',
    );
    assert.throws(
      () => verifySignature(MANIFEST, signature, trustedSet),
      (error: FormatError) => error.code === 'SIGNATURE_INVALID',
    );
    assert.throws(
      () => verifySignature(MANIFEST, signature, []),
      (error: FormatError) => error.code === 'NO_TRUSTED_KEYS',
    );
  });

  it('refuses a private key offered as a trusted key', () => {
    assert.throws(
      () => loadTrustedKey(oldPair.privateKeyPem, 'signing.key'),
      (error: FormatError) => error.code === 'KEY_INVALID',
    );
  });
});

describe('encrypted private keys', () => {
  const pair = generateKeyPair('ecdsa-p256', 'correct horse');

  it('load with the right passphrase and sign', () => {
    assert.match(pair.privateKeyPem, /BEGIN ENCRYPTED PRIVATE KEY/);
    const key = loadSigningKey(pair.privateKeyPem, { passphrase: 'correct horse' });
    assert.equal(key.keyId, pair.keyId);
  });

  it('refuse a wrong or missing passphrase with distinct codes', () => {
    assert.throws(
      () => loadSigningKey(pair.privateKeyPem, { passphrase: 'wrong' }),
      (error: FormatError) => error.code === 'KEY_PASSPHRASE_WRONG' && !error.message.includes('wrong"'),
    );
    assert.throws(
      () => loadSigningKey(pair.privateKeyPem),
      (error: FormatError) => error.code === 'KEY_PASSPHRASE_REQUIRED',
    );
  });

  it('refuse other curves with KEY_UNSUPPORTED', () => {
    const dir = mkdtempSync(join(work, 'curve-'));
    const key = join(dir, 'p384.pem');
    assert.ok(
      openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', key]).ok,
    );
    assert.throws(
      () => loadSigningKey(readFileSync(key, 'utf8')),
      (error: FormatError) => error.code === 'KEY_UNSUPPORTED',
    );
  });
});
