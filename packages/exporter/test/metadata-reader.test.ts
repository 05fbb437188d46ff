import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dbLayer, trivyArtifact } from '@trivy-airgap/test-utils';
import { TrivyError } from '@trivy-airgap/trivy';
import { createLayerMetadataReader } from '../src/metadata-reader.js';

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) out.push(bytes.subarray(offset, offset + size));
  return out;
}

describe('createLayerMetadataReader', () => {
  for (const inline of [false, true]) {
    const mode = inline ? 'inline' : 'worker thread';
    it(`${mode}: reads metadata.json from a layer fed in chunks`, async () => {
      const updatedAt = new Date('2026-11-20T06:00:00.5Z');
      const layer = dbLayer('java-db', { dbContents: 1_500_000, updatedAt });
      const reader = createLayerMetadataReader('java-db', { inline });
      try {
        for (const chunk of chunks(layer, 65_536)) reader.write(chunk);
        const found = await reader.finish();
        assert.equal(found.metadata.UpdatedAt, updatedAt.toISOString());
        assert.equal(found.metadata.Version, 1);
        assert.equal(found.databaseFilePresent, true);
        assert.ok(Buffer.isBuffer(found.bytes));
      } finally {
        await reader.close();
      }
    });

    it(`${mode}: a layer without metadata.json fails with the extractor's code`, async () => {
      const reader = createLayerMetadataReader('db', { inline });
      try {
        reader.write(trivyArtifact('db', { withoutMetadata: true }).layer);
        await assert.rejects(reader.finish(), (error: unknown) => {
          assert.ok(error instanceof TrivyError);
          assert.equal(error.code, 'METADATA_MISSING');
          return true;
        });
      } finally {
        await reader.close();
      }
    });
  }
});
