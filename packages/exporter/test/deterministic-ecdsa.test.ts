import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { generateKeyPair, loadSigningKey } from '@trivy-airgap/format';
import { derSignature, signP256Deterministic, signReproducibly } from '../src/deterministic-ecdsa.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-rfc6979-'));
after(() => rmSync(work, { recursive: true, force: true }));

// RFC 6979 appendix A.2.5: ECDSA, 256 bits (prime field), SHA-256.
const X = 0xc9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721n;
const UX = '60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6';
const UY = '7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299';

describe('deterministic ECDSA P-256 (RFC 6979)', () => {
  it('matches the RFC 6979 A.2.5 test vectors for "sample" and "test"', () => {
    const sample = signP256Deterministic(Buffer.from('sample'), X);
    assert.equal(sample.r, 0xefd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716n);
    assert.equal(sample.s, 0xf7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8n);
    const test = signP256Deterministic(Buffer.from('test'), X);
    assert.equal(test.r, 0xf1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367n);
    assert.equal(test.s, 0x019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083n);
    const key = createPrivateKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: 'P-256',
        d: Buffer.from(X.toString(16), 'hex').toString('base64url'),
        x: Buffer.from(UX, 'hex').toString('base64url'),
        y: Buffer.from(UY, 'hex').toString('base64url'),
      },
    });
    assert.ok(verify('sha256', Buffer.from('sample'), key, derSignature(sample.r, sample.s)));
  });

  it('signs the same bytes to the same signature, and openssl verifies it', () => {
    const pair = generateKeyPair('ecdsa-p256');
    const key = loadSigningKey(pair.privateKeyPem);
    for (let i = 0; i < 20; i++) {
      const message = Buffer.from(`manifest ${i} ${'x'.repeat(i * 37)}`);
      const first = signReproducibly(message, key);
      assert.deepEqual(signReproducibly(message, key), first);
      assert.ok(verify('sha256', message, key.privateKey, first));
    }
    const message = Buffer.from('{"mediaType":"application/vnd.trivy-airgap.manifest.v1+json"}\n');
    writeFileSync(join(work, 'm.json'), message);
    writeFileSync(join(work, 'm.sig'), signReproducibly(message, key));
    writeFileSync(join(work, 'pub.pem'), pair.publicKeyPem);
    const checked = spawnSync(
      'openssl',
      ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'm.sig', 'm.json'],
      {
        cwd: work,
        encoding: 'utf8',
      },
    );
    assert.equal(checked.status, 0, checked.stderr);
  });
});
