import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { Parser } from 'tar';
import { TAR_END, tarEntrySize, tarFileHeader, tarPadding } from '../src/tar-writer.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-tar-writer-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Entry {
  readonly name: string;
  readonly data: Buffer;
}

interface Parsed {
  readonly path: string;
  readonly type: string;
  readonly size: number | undefined;
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly uname: string | undefined;
  readonly gname: string | undefined;
  readonly mtime: number | undefined;
  readonly data: Buffer;
}

/** An archive exactly as the bundle writer lays it out: header, data, padding per file, then the end. */
function archive(entries: readonly Entry[], mtime: Date): Buffer {
  const parts: Buffer[] = [];
  for (const { name, data } of entries)
    parts.push(tarFileHeader(name, data.length, mtime), data, tarPadding(data.length));
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

/** Reads an archive with node-tar's Parser in strict mode (any warning is an error). */
function parse(bytes: Buffer): Parsed[] {
  const parsed: Parsed[] = [];
  const warnings: string[] = [];
  const parser = new Parser({
    strict: true,
    onwarn: (code, message) => warnings.push(`${code}: ${message}`),
    onReadEntry: (entry) => {
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () =>
        parsed.push({
          path: entry.path,
          type: entry.type,
          size: entry.size,
          mode: entry.mode,
          uid: entry.uid,
          gid: entry.gid,
          uname: entry.uname,
          gname: entry.gname,
          mtime: entry.mtime?.getTime(),
          data: Buffer.concat(chunks),
        }),
      );
    },
  });
  parser.end(bytes);
  assert.deepEqual(warnings, []);
  return parsed;
}

// Path segments as bundle paths have them: plain names, and names in other scripts whose UTF-8
// bytes (2–4 per character) fall on either side of the 100-byte ustar name field.
const plainSegment = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$/);
const wideSegment = fc
  .array(fc.constantFrom('é', 'ß', 'Ж', '漢', '字', '🙂', 'a', '-'), { minLength: 1, maxLength: 30 })
  .map((chars) => chars.join(''));
const name = fc
  .array(fc.oneof(plainSegment, wideSegment), { minLength: 1, maxLength: 8 })
  .map((segments) => segments.join('/'));
// Block boundaries and their neighbours, plus anything up to a few blocks.
const size = fc.oneof(
  fc.constantFrom(0, 1, 511, 512, 513, 1023, 1024, 1025),
  fc.integer({ min: 0, max: 3 * 512 + 7 }),
);
const entry = fc.record({
  name,
  data: size.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((bytes) => Buffer.from(bytes)),
});
const entries = fc.uniqueArray(entry, { minLength: 1, maxLength: 6, selector: (e) => e.name });
const mtime = fc.integer({ min: 0, max: 2 ** 33 - 1 }).map((seconds) => new Date(seconds * 1000));

describe('tar-writer: headers read back by node-tar and GNU tar', () => {
  it('round trip through node-tar Parser: every name (long ones through pax), size, content, mtime, 0644 0/0', () => {
    fc.assert(
      fc.property(entries, mtime, (files, when) => {
        const parsed = parse(archive(files, when));
        assert.equal(parsed.length, files.length);
        files.forEach((file, i) => {
          const seen = parsed[i]!;
          assert.equal(seen.path, file.name);
          assert.equal(seen.type, 'File');
          assert.equal(seen.size, file.data.length);
          assert.deepEqual(seen.data, file.data);
          assert.equal(seen.mode, 0o644);
          assert.equal(seen.uid, 0);
          assert.equal(seen.gid, 0);
          assert.ok(!seen.uname && !seen.gname, 'no user or group names');
          assert.equal(seen.mtime, when.getTime());
        });
      }),
      { numRuns: 200 },
    );
  });

  it('tarEntrySize is the bytes a file takes in the archive', () => {
    fc.assert(
      fc.property(entry, mtime, (file, when) => {
        const alone = archive([file], when).length - TAR_END.length;
        assert.equal(tarEntrySize(file.name, file.data.length), alone);
        assert.equal(alone % 512, 0);
      }),
    );
  });

  it('the ustar name field holds at most 100 bytes and never a split character', () => {
    // Wide characters placed so that byte 100 falls at every offset inside them.
    const nearTheCut = fc
      .tuple(fc.integer({ min: 94, max: 100 }), wideSegment)
      .map(([n, wide]) => `${'a'.repeat(n)}${wide}`);
    fc.assert(
      fc.property(fc.oneof(name, nearTheCut), (path) => {
        const header = tarFileHeader(path, 0, new Date(0));
        const long = Buffer.byteLength(path) > 100;
        // A long name gets a pax header first: then the file's own header is the last block.
        assert.equal(header.length > 512, long);
        const own = header.subarray(header.length - 512);
        const field = own.subarray(0, 100);
        const end = field.indexOf(0);
        const stored = field.subarray(0, end === -1 ? 100 : end).toString('utf8');
        assert.ok(!stored.includes('\uFFFD'), 'no replacement character from a cut multi-byte sequence');
        assert.ok(path.startsWith(stored));
      }),
    );
  });

  it('a size over 8 GiB goes into a pax size record (the ustar field holds 11 octal digits)', () => {
    const big = 2 ** 33 + 1;
    const sizes: (number | undefined)[] = [];
    const parser = new Parser({
      onReadEntry: (e) => {
        sizes.push(e.size);
        e.resume();
      },
    });
    // Only the header: the Parser reports the entry before its body arrives.
    parser.write(tarFileHeader('db/trivy.db', big, new Date(0)));
    assert.deepEqual(sizes, [big]);
  });

  it('GNU tar lists and extracts a sample of generated archives byte for byte', () => {
    // A file and a directory of the same name cannot both be extracted: leave such samples out.
    const extractable = entries.filter((files) =>
      files.every((a) => files.every((b) => !b.name.startsWith(`${a.name}/`))),
    );
    const samples = fc.sample(fc.tuple(extractable, mtime), { numRuns: 8, seed: 13 });
    samples.forEach(([files, when], i) => {
      const path = join(work, `sample-${i}.tar`);
      const dir = mkdtempSync(join(work, `out-${i}-`));
      writeFileSync(path, archive(files, when));
      const listed = spawnSync('tar', ['--numeric-owner', '--full-time', '-tvf', path], { encoding: 'utf8' });
      assert.equal(listed.status, 0, listed.stderr);
      const lines = listed.stdout.trim().split('\n');
      assert.equal(lines.length, files.length);
      for (const line of lines) assert.match(line, /^-rw-r--r-- 0\/0 /);
      const extracted = spawnSync('tar', ['-xf', path, '-C', dir], { encoding: 'utf8' });
      assert.equal(extracted.status, 0, extracted.stderr);
      for (const file of files) assert.deepEqual(readFileSync(join(dir, file.name)), file.data, file.name);
    });
  });
});
