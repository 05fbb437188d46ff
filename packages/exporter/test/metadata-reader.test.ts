import assert from 'node:assert/strict';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { dbLayer, trivyArtifact } from '@trivy-airgap/test-utils';
import { TrivyError, type DbKind } from '@trivy-airgap/trivy';
import { createLayerMetadataReader } from '../src/metadata-reader.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airgap-metadata-reader-'));
});
after(() => rm(dir, { recursive: true, force: true }));

let files = 0;
/** Writes `layer` into a new file in pieces, telling the reader after each write, like a download. */
async function readWhileWriting(kind: DbKind, layer: Buffer, piece = 65_536) {
  const handle: FileHandle = await open(join(dir, `layer-${files++}`), 'a+');
  const reader = createLayerMetadataReader(kind, handle);
  try {
    for (let offset = 0; offset < layer.length; offset += piece) {
      const chunk = layer.subarray(offset, offset + piece);
      await handle.write(chunk);
      reader.advance(offset + chunk.length);
      await new Promise((resolve) => setImmediate(resolve)); // let the reader catch up now and then
    }
    return await reader.finish(layer.length);
  } finally {
    await reader.close();
    await handle.close();
  }
}

function expectCode(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof TrivyError, String(error));
    assert.equal(error.code, code);
    return true;
  };
}

describe('createLayerMetadataReader', () => {
  it(`reads metadata.json from a layer file while it is written`, async () => {
    const updatedAt = new Date('2026-11-20T06:00:00.5Z');
    const layer = dbLayer('java-db', { dbContents: 1_500_000, updatedAt });
    const found = await readWhileWriting('java-db', layer);
    assert.equal(found.metadata.UpdatedAt, updatedAt.toISOString());
    assert.equal(found.metadata.Version, 1);
    assert.equal(found.databaseFilePresent, true);
    assert.ok(Buffer.isBuffer(found.bytes));
  });

  it(`two layers at once, each with its own metadata`, async () => {
    const [db, java] = await Promise.all([
      readWhileWriting('db', dbLayer('db', { dbContents: 1_000_000, updatedAt: new Date(1e12) })),
      readWhileWriting('java-db', dbLayer('java-db', { dbContents: 500_000, updatedAt: new Date(2e12) })),
    ]);
    assert.equal(db.metadata.UpdatedAt, new Date(1e12).toISOString());
    assert.equal(db.metadata.Version, 2);
    assert.equal(java.metadata.UpdatedAt, new Date(2e12).toISOString());
  });

  it(`a plain (not gzip) tar layer is read as well`, async () => {
    const found = await readWhileWriting('db', gunzipSync(dbLayer('db')), 700);
    assert.equal(found.metadata.Version, 2);
  });

  it(`a layer without metadata.json fails with the extractor's code`, async () => {
    await assert.rejects(
      readWhileWriting('db', trivyArtifact('db', { withoutMetadata: true }).layer),
      expectCode('METADATA_MISSING'),
    );
  });

  it(`a truncated or corrupt gzip layer is LAYER_INVALID`, async () => {
    const layer = dbLayer('db', { dbContents: 300_000 });
    const corrupt = Buffer.from(layer);
    corrupt.fill(0x55, 100, 400);
    await assert.rejects(
      readWhileWriting('db', layer.subarray(0, layer.length - 5000)),
      expectCode('LAYER_INVALID'),
    );
    await assert.rejects(readWhileWriting('db', corrupt), expectCode('LAYER_INVALID'));
  });

  it(`a file shorter than the size it is finished with is LAYER_INVALID, not a hang`, async () => {
    const layer = dbLayer('db');
    const handle = await open(join(dir, `short-${files++}`), 'a+');
    try {
      await handle.write(layer.subarray(0, 100));
      const reader = createLayerMetadataReader('db', handle);
      await assert.rejects(reader.finish(layer.length), expectCode('LAYER_INVALID'));
      await reader.close();
    } finally {
      await handle.close();
    }
  });

  it(`close() while the file is still growing stops the reader`, async () => {
    const handle = await open(join(dir, `abandoned-${files++}`), 'a+');
    try {
      const reader = createLayerMetadataReader('db', handle);
      reader.advance(0);
      await reader.close(); // resolves: nothing waits for bytes that will never come
    } finally {
      await handle.close();
    }
  });
});
