import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { dbLayer, makeTarGz, upstreamMetadata } from '@trivy-airgap/test-utils';
import { DbMetadataExtractor, parseDbMetadata } from '../src/index.js';
import { readDbLayerMetadata } from '../src/metadata.js';
import { rejectsWithCode, throwsCode } from './helpers.js';

function feed(extractor: DbMetadataExtractor, bytes: Buffer, chunkSize: number): void {
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    extractor.write(bytes.subarray(offset, offset + chunkSize));
  }
}

const UPDATED = new Date('2026-11-25T06:12:01.123Z');

describe('DbMetadataExtractor (trivy-facts: metadata.json at the layer root, read while downloading)', () => {
  for (const chunkSize of [1, 7, 512, 65_536]) {
    it(`finds metadata.json after a 1 MiB trivy.db, fed in ${chunkSize}-byte chunks`, async () => {
      const layer = dbLayer('db', {
        updatedAt: UPDATED,
        dbContents: chunkSize === 1 ? 64 * 1024 : 1024 * 1024,
      });
      const extractor = new DbMetadataExtractor('db');
      feed(extractor, layer, chunkSize);
      const result = await extractor.finish();
      assert.equal(result.metadata.Version, 2);
      assert.equal(result.metadata.UpdatedAt, UPDATED.toISOString());
      assert.equal(result.metadata.DownloadedAt, '0001-01-01T00:00:00Z');
      assert.equal(result.databaseFilePresent, true);
      assert.deepEqual(result.bytes, upstreamMetadata('db', { updatedAt: UPDATED }));
    });
  }

  it('java-db: Version 1, NextUpdate = build + 72 h, trivy-java.db seen', async () => {
    const result = await readDbLayerMetadata('java-db', [dbLayer('java-db', { updatedAt: UPDATED })]);
    assert.equal(result.metadata.Version, 1);
    assert.equal(Date.parse(result.metadata.NextUpdate) - UPDATED.getTime(), 72 * 3_600_000);
    assert.equal(result.databaseFilePresent, true);
  });

  it('keeps unknown upstream fields', async () => {
    const result = await readDbLayerMetadata('db', [dbLayer('db', { extraMetadata: { Extra: 'kept' } })]);
    assert.equal(result.metadata.Extra, 'kept');
  });

  it('works as a Writable in a pipeline', async () => {
    const extractor = new DbMetadataExtractor('db');
    const layer = dbLayer('db', { dbContents: 200_000 });
    await pipeline(Readable.from([layer.subarray(0, 1000), layer.subarray(1000)]), extractor.writable());
    assert.equal((await extractor.finish()).metadata.Version, 2);
    assert.equal(extractor.found, true);
  });

  it('accepts ./metadata.json and metadata.json before the database file', async () => {
    const layer = makeTarGz([
      { name: './metadata.json', body: upstreamMetadata('db') },
      { name: './trivy.db', body: 'db' },
    ]);
    const result = await readDbLayerMetadata('db', [layer]);
    assert.equal(result.metadata.Version, 2);
    assert.equal(result.databaseFilePresent, true);
  });

  it('METADATA_MISSING when the layer has no metadata.json at its root', async () => {
    await rejectsWithCode(
      () => readDbLayerMetadata('db', [dbLayer('db', { withoutMetadata: true })]),
      'METADATA_MISSING',
    );
    const nested = makeTarGz([
      { name: 'trivy.db', body: 'db' },
      { name: 'sub/metadata.json', body: upstreamMetadata('db') },
    ]);
    await rejectsWithCode(() => readDbLayerMetadata('db', [nested]), 'METADATA_MISSING');
  });

  it('METADATA_TOO_LARGE beyond the cap, without buffering it', async () => {
    const layer = makeTarGz([{ name: 'metadata.json', body: Buffer.alloc(200_000, 0x20) }]);
    await rejectsWithCode(() => readDbLayerMetadata('db', [layer]), 'METADATA_TOO_LARGE');
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
    it(`METADATA_INVALID for ${what} (trivy-facts: Version int, RFC 3339 dates)`, async () => {
      const layer = makeTarGz([
        { name: 'trivy.db', body: 'db' },
        { name: 'metadata.json', body },
      ]);
      await rejectsWithCode(() => readDbLayerMetadata('db', [layer]), 'METADATA_INVALID');
    });
  }

  it('LAYER_INVALID for bytes that are not a gzip tar', async () => {
    await rejectsWithCode(
      () => readDbLayerMetadata('db', [Buffer.from('this is not gzip at all'.repeat(40))]),
      'LAYER_INVALID',
    );
  });

  it('LAYER_INVALID for a truncated layer', async () => {
    const layer = dbLayer('db', { dbContents: 100_000 });
    await rejectsWithCode(
      () => readDbLayerMetadata('db', [layer.subarray(0, layer.length / 2)]),
      'LAYER_INVALID',
    );
  });
});

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
});

describe('DbMetadataExtractor stops early', () => {
  it('once metadata.json and the database file are both seen, the rest of the layer is not decompressed', async () => {
    const layer = makeTarGz([
      { name: 'metadata.json', body: upstreamMetadata('db') },
      { name: 'trivy.db', body: 'db' },
      { name: 'later.bin', body: Buffer.alloc(2 * 1024 * 1024, 1) },
    ]);
    const extractor = new DbMetadataExtractor('db');
    // Feed the head only, then bytes that are not gzip at all: they are never looked at.
    extractor.write(layer.subarray(0, 2048));
    extractor.write(Buffer.from('garbage that would fail the gzip check'));
    assert.equal(extractor.found, true);
    const result = await extractor.finish();
    assert.equal(result.databaseFilePresent, true);
  });
});
