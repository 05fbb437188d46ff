import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { upstreamMetadata } from '@trivy-airgap/test-utils';
import { parseDbMetadata } from '../src/index.js';
import { throwsCode } from './helpers.js';

describe('parseDbMetadata', () => {
  it('parses the trivy-facts example', () => {
    const metadata = parseDbMetadata(
      Buffer.from(
        '{"Version":2,"NextUpdate":"2026-08-22T06:12:01.123456789Z","UpdatedAt":"2026-08-21T06:12:01.123456789Z","DownloadedAt":"2026-08-21T09:00:00.5Z"}',
      ),
    );
    assert.equal(metadata.DownloadedAt, '2026-08-21T09:00:00.5Z');
  });
  it('refuses more than the cap', () => {
    throwsCode(() => parseDbMetadata(Buffer.alloc(70_000, 0x20)), 'METADATA_TOO_LARGE');
  });
  it('keeps unknown upstream fields', () => {
    assert.equal(parseDbMetadata(upstreamMetadata('db', { extraMetadata: { Extra: 'kept' } })).Extra, 'kept');
  });

  const invalid: [string, string][] = [
    ['not JSON', '{"Version":2,'],
    ['an array', '[]'],
    [
      'a float Version',
      '{"Version":2.5,"NextUpdate":"2026-01-01T00:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z","DownloadedAt":"0001-01-01T00:00:00Z"}',
    ],
    [
      'a string Version',
      '{"Version":"2","NextUpdate":"2026-01-01T00:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z","DownloadedAt":"0001-01-01T00:00:00Z"}',
    ],
    [
      'a non-RFC 3339 UpdatedAt',
      '{"Version":2,"NextUpdate":"2026-01-01T00:00:00Z","UpdatedAt":"yesterday","DownloadedAt":"0001-01-01T00:00:00Z"}',
    ],
    [
      'a missing NextUpdate',
      '{"Version":2,"UpdatedAt":"2026-01-01T00:00:00Z","DownloadedAt":"0001-01-01T00:00:00Z"}',
    ],
  ];
  for (const [what, body] of invalid) {
    it(`METADATA_INVALID for ${what} (trivy-facts: Version int, RFC 3339 dates)`, () => {
      throwsCode(() => parseDbMetadata(Buffer.from(body)), 'METADATA_INVALID');
    });
  }
});
