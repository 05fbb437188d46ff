import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { TarReadError, TarReader, type TarReaderOptions } from '../src/index.js';

// A tar built by hand (test-utils depends on this package): ustar headers, zero padding, the
// end-of-archive marker padded to one record, as GNU tar writes it.
function header(name: string, typeFlag: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write('0000644\0', 100, 'ascii');
  block.write('0000000\0', 108, 'ascii');
  block.write('0000000\0', 116, 'ascii');
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  block.write('14524676000\0', 136, 'ascii');
  block.write('        ', 148, 'ascii');
  block.write(typeFlag, 156, 'ascii');
  block.write('ustar\u000000', 257, 'binary');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

function tar(entries: readonly { name: string; body?: Buffer | string; type?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    blocks.push(header(entry.name, entry.type ?? '0', body.length), body);
    blocks.push(Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  const archive = Buffer.concat([...blocks, Buffer.alloc(1024)]);
  return Buffer.concat([archive, Buffer.alloc((10240 - (archive.length % 10240)) % 10240)]);
}

function reader(bytes: Buffer, options: Partial<TarReaderOptions> = {}): TarReader {
  return new TarReader(Readable.from([bytes]), {
    framing: 'layer',
    label: 'test layer',
    limit: () => 1 << 30,
    ...options,
  });
}

/** Every entry's path and body, in order; throws the reader's failure. */
async function readAll(tarReader: TarReader): Promise<[string, string][]> {
  const seen: [string, string][] = [];
  for (let entry = await tarReader.next(); entry !== undefined; entry = await tarReader.next()) {
    seen.push([entry.path, (await tarReader.readAll(entry, 1 << 20)).toString()]);
  }
  return seen;
}

async function failsWith(tarReader: TarReader, code: string): Promise<unknown> {
  let caught: unknown;
  await readAll(tarReader).catch((error: unknown) => (caught = error));
  assert.ok(caught instanceof TarReadError, `a TarReadError, not ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

const twoFiles = tar([
  { name: 'trivy.db', body: 'x'.repeat(3000) },
  { name: 'metadata.json', body: '{"Version":2}' },
]);

describe('TarReader: the one pull-style reader of gzip tar streams', () => {
  for (const framing of ['layer', 'plain'] as const) {
    it(`${framing}: entries one at a time, in archive order, with their bytes`, async () => {
      const tarReader = reader(gzipSync(twoFiles), { framing });
      assert.deepEqual(await readAll(tarReader), [
        ['trivy.db', 'x'.repeat(3000)],
        ['metadata.json', '{"Version":2}'],
      ]);
      assert.equal(tarReader.bytes, twoFiles.length);
    });

    it(`${framing}: an entry type node-tar would skip unseen (unknown type flag) is refused, never skipped`, async () => {
      const bytes = tar([{ name: 'hidden', body: 'payload', type: 'Z' }, { name: 'metadata.json' }]);
      const error = await failsWith(reader(gzipSync(bytes), { framing }), 'TAR_ENTRY_TYPE');
      assert.equal((error as TarReadError).path, 'hidden');
    });

    it(`${framing}: a gzip bomb stops at the caller's limit (TAR_TOO_LARGE, expected and found)`, async () => {
      const bomb = gzipSync(tar([{ name: 'bomb', body: Buffer.alloc(4 << 20) }]), { level: 9 });
      const error = (await failsWith(
        reader(bomb, { framing, limit: () => 1 << 20 }),
        'TAR_TOO_LARGE',
      )) as TarReadError;
      assert.equal(error.expected, 1 << 20);
      assert.ok(Number(error.found) > 1 << 20);
    });

    it(`${framing}: a truncated gzip stream is TAR_INVALID, never a short archive`, async () => {
      const bytes = gzipSync(twoFiles);
      await failsWith(reader(bytes.subarray(0, bytes.length - 20), { framing }), 'TAR_INVALID');
    });
  }

  it('layer: bytes after the last gzip member are refused (zlib would skip NULs there unseen)', async () => {
    const bytes = Buffer.concat([gzipSync(twoFiles), Buffer.alloc(64)]);
    await failsWith(reader(bytes, { framing: 'layer' }), 'TAR_INVALID');
  });

  it('layer: non-zero bytes in the padding after an entry are refused (the framing audit)', async () => {
    const bytes = Buffer.from(twoFiles);
    bytes[512 + 3000 + 7] = 0x41;
    await failsWith(reader(gzipSync(bytes), { framing: 'layer' }), 'TAR_INVALID');
  });

  it("mapError turns the reader's failures into the caller's; an error the caller fails with is thrown as it is", async () => {
    class CallerError extends Error {}
    const bytes = tar([{ name: 'hidden', type: 'Z' }]);
    const mapped = reader(gzipSync(bytes), { mapError: (error) => new CallerError(error.code) });
    await assert.rejects(readAll(mapped), (error: unknown) => {
      return error instanceof CallerError && error.message === 'TAR_ENTRY_TYPE';
    });

    const stopped = reader(gzipSync(twoFiles), { mapError: () => new Error('not this one') });
    const first = await stopped.next();
    assert.ok(first !== undefined);
    const own = new CallerError('cancelled');
    stopped.fail(own);
    await assert.rejects(stopped.readAll(first, 1 << 20), (error: unknown) => error === own);
    await assert.rejects(stopped.next(), (error: unknown) => error === own);
  });

  it('readAll refuses an entry larger than the caller allows before reading it', async () => {
    const tarReader = reader(gzipSync(twoFiles));
    const first = await tarReader.next();
    assert.ok(first !== undefined);
    await assert.rejects(
      tarReader.readAll(first, 100),
      (error: unknown) => error instanceof TarReadError && error.code === 'TAR_TOO_LARGE',
    );
    tarReader.close();
  });
});
