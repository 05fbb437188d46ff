import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import ssri from 'ssri';
import {
  DigestHasher,
  digestFromIntegrity,
  digestHex,
  digestOfBytes,
  digestToIntegrity,
  isDigest,
  parseDigest,
  type FormatError,
} from '../src/index.js';

const HELLO = `sha256:${createHash('sha256').update('hello').digest('hex')}`;

describe('Digest', () => {
  it('accepts sha256 with 64 lowercase hex', () => {
    assert.equal(parseDigest(HELLO), HELLO);
    assert.equal(digestHex(parseDigest(HELLO)).length, 64);
  });

  for (const bad of [
    HELLO.toUpperCase(),
    HELLO.replace('sha256:', 'sha512:'),
    HELLO.slice(0, -1),
    `${HELLO}0`,
    `${HELLO}\n`,
    'sha256:../../etc/passwd',
    '',
    42,
    null,
  ]) {
    it(`refuses ${JSON.stringify(bad)} with DIGEST_INVALID`, () => {
      assert.equal(isDigest(bad), false);
      assert.throws(
        () => parseDigest(bad),
        (error: FormatError) => error.code === 'DIGEST_INVALID',
      );
    });
  }

  it('hashes bytes and streams to the same digest', () => {
    const hasher = new DigestHasher();
    hasher.update(Buffer.from('hel'));
    hasher.update(Buffer.from('lo'));
    assert.equal(hasher.digest(), HELLO);
    assert.equal(hasher.size, 5);
    assert.equal(digestOfBytes('hello'), HELLO);
  });

  it('converts to and from ssri integrity strings losslessly', () => {
    const digest = parseDigest(HELLO);
    const integrity = digestToIntegrity(digest);
    assert.equal(integrity, ssri.fromData('hello', { algorithms: ['sha256'] }).toString());
    assert.equal(digestFromIntegrity(integrity), digest);
  });

  it('refuses integrity strings that are not one sha256', () => {
    const sha512 = ssri.fromData('hello', { algorithms: ['sha512'] }).toString();
    assert.throws(
      () => digestFromIntegrity(sha512),
      (error: FormatError) => error.code === 'INTEGRITY_INVALID',
    );
    assert.throws(
      () => digestFromIntegrity('not an integrity'),
      (error: FormatError) => error.code === 'INTEGRITY_INVALID',
    );
  });
});
