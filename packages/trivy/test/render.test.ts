import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDigest } from '@trivy-airgap/format';
import { renderDbMetadata, renderPolicyMetadata, renderVexCacheJson } from '../src/index.js';
import { formatGoTime } from '../src/render.js';

const DIGEST = parseDigest(`sha256:${'19a0'.repeat(16)}`);

describe('formatGoTime (Go RFC 3339: trailing zeros of fractional seconds dropped)', () => {
  const table: [string, string][] = [
    ['2026-08-21T09:00:00.500Z', '2026-08-21T09:00:00.5Z'],
    ['2026-08-21T09:00:00.000Z', '2026-08-21T09:00:00Z'],
    ['2026-08-21T09:00:00.120Z', '2026-08-21T09:00:00.12Z'],
    ['2026-08-21T09:00:00.123Z', '2026-08-21T09:00:00.123Z'],
    ['2026-08-21T11:00:00.001+02:00', '2026-08-21T09:00:00.001Z'],
  ];
  for (const [input, expected] of table) {
    it(`${input} → ${expected}`, () => assert.equal(formatGoTime(new Date(input)), expected));
  }
});

describe('renderDbMetadata (trivy-facts: metadata.json)', () => {
  const published = {
    Version: 2,
    NextUpdate: '2026-08-22T06:12:01.123456789Z',
    UpdatedAt: '2026-08-21T06:12:01.123456789Z',
    DownloadedAt: '0001-01-01T00:00:00Z',
  };
  it('metadata.json: DownloadedAt is rewritten, other fields kept (trivy-facts: installer MUST write a real DownloadedAt)', () => {
    const bytes = renderDbMetadata(published, new Date('2026-08-21T09:00:00.5Z'));
    assert.equal(
      bytes.toString('utf8'),
      '{"Version":2,"NextUpdate":"2026-08-22T06:12:01.123456789Z","UpdatedAt":"2026-08-21T06:12:01.123456789Z","DownloadedAt":"2026-08-21T09:00:00.5Z"}\n',
    );
  });
  it('compact JSON, keys exactly Version, NextUpdate, UpdatedAt, DownloadedAt in that order (trivy-facts example)', () => {
    const reordered = {
      DownloadedAt: published.DownloadedAt,
      UpdatedAt: published.UpdatedAt,
      NextUpdate: published.NextUpdate,
      Version: 2,
    };
    const text = renderDbMetadata(reordered, new Date('2026-08-21T09:00:00Z')).toString();
    assert.deepEqual(Object.keys(JSON.parse(text) as object), [
      'Version',
      'NextUpdate',
      'UpdatedAt',
      'DownloadedAt',
    ]);
    // Go's json.Encoder: compact, one newline at the end (what Trivy itself writes).
    assert.ok(!text.includes(' ') && text.indexOf('\n') === text.length - 1);
  });
  it('Version is omitted when 0 or absent (trivy-facts: "omitted when 0")', () => {
    for (const Version of [0, undefined]) {
      const text = renderDbMetadata({ ...published, Version }, new Date('2026-08-21T09:00:00Z')).toString();
      assert.ok(!text.includes('Version'), text);
    }
  });
  it('unknown upstream fields are kept as published, after the known ones', () => {
    const text = renderDbMetadata(
      { ...published, Extra: { a: 1 } },
      new Date('2026-08-21T09:00:00Z'),
    ).toString();
    assert.ok(text.endsWith(',"Extra":{"a":1}}\n'), text);
  });
});

describe('renderPolicyMetadata (trivy-facts: policy/metadata.json)', () => {
  it('Digest, DownloadedAt, MajorVersion; CustomBuild omitted when false', () => {
    const text = renderPolicyMetadata({
      digest: DIGEST,
      downloadedAt: new Date('2026-08-21T13:04:05.123Z'),
      version: { MajorVersion: 2 },
    }).toString();
    assert.equal(text, `{"Digest":"${DIGEST}","DownloadedAt":"2026-08-21T13:04:05.123Z","MajorVersion":2}\n`);
    const explicitFalse = renderPolicyMetadata({
      digest: DIGEST,
      downloadedAt: new Date('2026-08-21T13:04:05Z'),
      version: { MajorVersion: 2, CustomBuild: false },
    }).toString();
    assert.ok(!explicitFalse.includes('CustomBuild'));
  });
  it('CustomBuild true goes with MajorVersion 0 (missing or non-semver version annotation)', () => {
    const text = renderPolicyMetadata({
      digest: DIGEST,
      downloadedAt: new Date('2026-08-21T13:04:05Z'),
      version: { MajorVersion: 0, CustomBuild: true },
    }).toString();
    assert.equal(
      text,
      `{"Digest":"${DIGEST}","DownloadedAt":"2026-08-21T13:04:05Z","MajorVersion":0,"CustomBuild":true}\n`,
    );
  });
});

describe('renderVexCacheJson (trivy-facts: cache.json)', () => {
  it('UpdatedAt + ETags keyed by the location URL incl. //subdir', () => {
    const location = 'https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main';
    assert.equal(
      renderVexCacheJson({
        updatedAt: new Date('2026-08-21T09:00:00Z'),
        etags: { [location]: 'W/"abc"' },
      }).toString(),
      `{"UpdatedAt":"2026-08-21T09:00:00Z","ETags":{"${location}":"W/\\"abc\\""}}\n`,
    );
  });
  it('ETags may be {}', () => {
    assert.equal(
      renderVexCacheJson({ updatedAt: new Date('2026-08-21T09:00:00Z'), etags: {} }).toString(),
      '{"UpdatedAt":"2026-08-21T09:00:00Z","ETags":{}}\n',
    );
  });
});
