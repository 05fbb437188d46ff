import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  BUNDLE_GZIP_HEADER,
  MANIFEST_MEDIA_TYPE,
  digestOfBytes,
  generateKeyPair,
  loadSigningKey,
  type SigningKey,
} from '@trivy-airgap/format';
import * as tar from 'tar';
import { deterministicBytes } from '@trivy-airgap/test-utils';
import { ExporterError } from '../src/index.js';
import { writeBundle, type BundleEntry, type ManifestDraft } from '../src/bundle-writer.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-writer-'));
after(() => rmSync(work, { recursive: true, force: true }));

const ecdsaPair = generateKeyPair('ecdsa-p256');
const ecdsaKey = loadSigningKey(ecdsaPair.privateKeyPem);
const ed25519Key = loadSigningKey(generateKeyPair('ed25519').privateKeyPem);
const ecdsaPub = join(work, 'signing.pub');
writeFileSync(ecdsaPub, ecdsaPair.publicKeyPem);

const blobDir = join(work, 'blobs');
mkdirSync(blobDir);

function fileEntry(path: string, bytes: Buffer, verify = false): BundleEntry {
  const digest = digestOfBytes(bytes);
  const file = join(blobDir, digest.slice(7));
  writeFileSync(file, bytes);
  return { path, size: bytes.length, digest, source: { file }, verify };
}

function bytesEntry(path: string, bytes: Buffer): BundleEntry {
  return { path, size: bytes.length, digest: digestOfBytes(bytes), source: { bytes } };
}

// Deterministic content: the expected entry order below depends on this blob's digest.
const big = deterministicBytes(3 * 1024 * 1024 + 17, 'big blob');
const entries: BundleEntry[] = [
  fileEntry('vex/default/archive.tar.gz', randomBytes(70_000)),
  bytesEntry('oci/oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')),
  fileEntry(`oci/blobs/sha256/${digestOfBytes(big).slice(7)}`, big, true),
  bytesEntry('oci/index.json', Buffer.from('{"schemaVersion":2,"manifests":[]}')),
  bytesEntry('vex/default/vex-repository.json', Buffer.from('{"versions":[]}')),
  bytesEntry('oci/blobs/sha256/empty', Buffer.alloc(0)),
];

const draft: ManifestDraft = {
  mediaType: MANIFEST_MEDIA_TYPE,
  bundleId: '00000000-0000-4000-8000-000000000001',
  created: '2026-11-25T12:00:00Z',
  expires: '2026-12-25T12:00:00Z',
  tool: { name: 'trivy-airgap', version: '0.1.0' },
  trivyVersions: '>=0.69.0',
  components: [],
};

function run(command: string, args: string[], cwd = work) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function write(
  name: string,
  options: { key?: SigningKey | null; split?: number; force?: boolean } = {},
) {
  return writeBundle({
    output: join(work, name),
    manifest: draft,
    entries,
    signingKey: options.key === undefined ? ecdsaKey : options.key,
    mtime: new Date(1_764_000_000_000),
    ...(options.split === undefined ? {} : { splitSize: options.split }),
    ...(options.force === undefined ? {} : { force: options.force }),
  });
}

interface HeaderSeen {
  path: string;
  type: string;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  uname: string | undefined;
  gname: string | undefined;
  mtime: number | undefined;
  size: number | undefined;
}

function headersOf(bundle: Buffer): HeaderSeen[] {
  const seen: HeaderSeen[] = [];
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      seen.push({
        path: entry.path,
        type: entry.type,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        uname: entry.uname,
        gname: entry.gname,
        mtime: entry.mtime?.getTime(),
        size: entry.size,
      });
      entry.resume();
    },
  });
  parser.end(gunzipSync(bundle));
  return seen;
}

describe('writeBundle', () => {
  it('writes manifest.json, then its signature, then the entries sorted by path, with portable headers', async () => {
    const written = await write('plain.tgz');
    const bundle = readFileSync(written.path);
    assert.equal(written.size, bundle.length);
    assert.equal(written.digest, digestOfBytes(bundle));

    const listed = run('tar', ['-tzf', written.path]);
    assert.equal(listed.code, 0, listed.stderr);
    const names = listed.stdout.trim().split('\n');
    assert.deepEqual(names, [
      'manifest.json',
      'manifest.json.sig',
      `oci/blobs/sha256/${digestOfBytes(big).slice(7)}`,
      'oci/blobs/sha256/empty',
      'oci/index.json',
      'oci/oci-layout',
      'vex/default/archive.tar.gz',
      'vex/default/vex-repository.json',
    ]);
    for (const header of headersOf(bundle)) {
      assert.equal(header.type, 'File', header.path);
      assert.equal(header.mode, 0o644, header.path);
      assert.equal(header.uid, 0);
      assert.equal(header.gid, 0);
      assert.ok(header.uname === undefined || header.uname === '', `uname ${header.uname}`);
      assert.ok(header.gname === undefined || header.gname === '', `gname ${header.gname}`);
      assert.equal(header.mtime, 1_764_000_000_000);
    }
    // The manifest lists every other entry with size and digest, in the same order.
    const manifest = written.manifest;
    assert.deepEqual(
      manifest.files.map((file) => file.path),
      names.slice(2),
    );
    assert.deepEqual(manifest.signer, { keyId: ecdsaKey.keyId, algorithm: 'ecdsa-p256-sha256' });
  });

  it('verifies with stock tools: openssl (manifest and checksum file) and sha256sum -c', async () => {
    const written = await write('tools.tgz');
    const out = join(work, 'tools-extract');
    mkdirSync(out);
    assert.equal(run('tar', ['-xzf', written.path, '-C', out]).code, 0);
    const manifestCheck = run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      ecdsaPub,
      '-signature',
      join(out, 'manifest.json.sig'),
      join(out, 'manifest.json'),
    ]);
    assert.equal(manifestCheck.code, 0, manifestCheck.stderr);
    assert.match(manifestCheck.stdout, /Verified OK/);
    const sumCheck = run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      ecdsaPub,
      '-signature',
      `${written.path}.sha256.sig`,
      `${written.path}.sha256`,
    ]);
    assert.equal(sumCheck.code, 0, sumCheck.stderr);
    const sums = run('sha256sum', ['-c', 'tools.tgz.sha256']);
    assert.equal(sums.code, 0, sums.stderr);
    assert.match(sums.stdout, /tools\.tgz: OK/);
    // Every listed file's digest matches the extracted bytes.
    for (const file of written.manifest.files) {
      assert.equal(digestOfBytes(readFileSync(join(out, file.path))), file.digest, file.path);
    }
  });

  it('is byte-for-byte reproducible: ECDSA (RFC 6979), Ed25519 and unsigned', async () => {
    for (const [name, key] of [
      ['ecdsa', ecdsaKey],
      ['ed25519', ed25519Key],
    ] as const) {
      const a = await write(`repro-${name}-a.tgz`, { key });
      const b = await write(`repro-${name}-b.tgz`, { key });
      assert.deepEqual(readFileSync(a.path), readFileSync(b.path), name);
    }
    const c = await write('repro-c.tgz', { key: null });
    const d = await write('repro-d.tgz', { key: null });
    assert.deepEqual(readFileSync(c.path), readFileSync(d.path));
    assert.equal(c.checksumSignaturePath, null);
    assert.equal(existsSync(`${c.path}.sha256.sig`), false);
    assert.deepEqual(
      headersOf(readFileSync(c.path))
        .map((h) => h.path)
        .slice(0, 2),
      ['manifest.json', `oci/blobs/sha256/${digestOfBytes(big).slice(7)}`],
    );
  });

  it('uses a stored (level 0) outer gzip: the bundle is barely larger than its tar', async () => {
    const written = await write('level.tgz', { key: null });
    const tarBytes = gunzipSync(readFileSync(written.path));
    assert.ok(written.size >= tarBytes.length, 'level 0 never shrinks');
    assert.ok(written.size < tarBytes.length * 1.01, `${written.size} vs ${tarBytes.length}`);
  });

  it("writes the bundle's fixed gzip header whatever zlib's level and platform bytes (a reader checks every byte)", async () => {
    const written = await write('header.tgz', { key: null });
    const bytes = readFileSync(written.path);
    assert.deepEqual(bytes.subarray(0, BUNDLE_GZIP_HEADER.length), BUNDLE_GZIP_HEADER);
    // Stored blocks only: each block header byte is exactly 0x00 or 0x01 (docs/bundle-format.md).
    assert.ok(bytes[BUNDLE_GZIP_HEADER.length] === 0 || bytes[BUNDLE_GZIP_HEADER.length] === 1);
  });

  it('--split: parts rejoined with cat equal the unsplit bundle and are listed in the checksum file', async () => {
    const whole = await write('split-ref.tgz', { key: ed25519Key });
    const split = await write('split.tgz', { key: ed25519Key, split: 1024 * 1024 });
    assert.equal(existsSync(split.path), false, 'a split export writes only parts');
    assert.equal(split.files.length, Math.ceil(whole.size / (1024 * 1024)));
    assert.ok(split.files.every((file, i) => file.path.endsWith(`.part-${String(i).padStart(3, '0')}`)));
    const joined = run('sh', ['-c', 'cat split.tgz.part-* > split-joined.tgz']);
    assert.equal(joined.code, 0);
    assert.deepEqual(readFileSync(join(work, 'split-joined.tgz')), readFileSync(whole.path));
    assert.equal(split.digest, whole.digest);
    const sums = run('sha256sum', ['-c', 'split.tgz.sha256']);
    assert.equal(sums.code, 0, sums.stderr);
    assert.equal(sums.stdout.trim().split('\n').length, split.files.length);
  });

  it('refuses to overwrite without force; with force it replaces and removes stale parts', async () => {
    await write('exists.tgz', { split: 1024 * 1024 });
    const before = readdirSync(work).filter((name) => name.startsWith('exists.tgz.part-'));
    assert.ok(before.length >= 3);
    await assert.rejects(write('exists.tgz'), (error: unknown) => {
      assert.ok(error instanceof ExporterError);
      assert.equal(error.code, 'OUTPUT_EXISTS');
      return true;
    });
    const again = await write('exists.tgz', { force: true });
    assert.equal(again.files.length, 1);
    assert.deepEqual(
      readdirSync(work)
        .filter((name) => name.startsWith('exists.tgz'))
        .sort(),
      ['exists.tgz', 'exists.tgz.sha256', 'exists.tgz.sha256.sig'],
    );
  });

  it('writes a pax path record for a path over 100 bytes; GNU tar shows 0/0 and mode 0644', async () => {
    const longPath = `vex/${'n'.repeat(60)}/${'d'.repeat(60)}/archive.tar.gz`;
    const dir = join(work, 'long');
    mkdirSync(dir);
    const written = await writeBundle({
      output: join(dir, 'b.tgz'),
      manifest: draft,
      entries: [bytesEntry(longPath, Buffer.from('x'.repeat(600)))],
      signingKey: null,
      mtime: new Date(1_764_000_000_000),
    });
    const listed = run('tar', ['--numeric-owner', '-tvzf', written.path]);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    for (const line of lines) assert.match(line, /^-rw-r--r-- 0\/0 /);
    assert.ok(lines[1]?.endsWith(longPath), lines[1]);
    assert.equal(headersOf(readFileSync(written.path))[1]?.path, longPath);
  });

  it('carries companion files beside the bundle, listed in the signed checksum file', async () => {
    const dir = join(work, 'companions');
    mkdirSync(dir);
    const tool = join(work, 'trivy-airgap.mjs');
    writeFileSync(tool, '#!/usr/bin/env node\nconsole.log("importer");\n');
    const written = await writeBundle({
      output: join(dir, 'b.tgz'),
      manifest: draft,
      entries,
      signingKey: ecdsaKey,
      companions: [tool],
    });
    assert.deepEqual(readFileSync(join(dir, 'trivy-airgap.mjs')), readFileSync(tool));
    assert.equal(written.companions[0]?.digest, digestOfBytes(readFileSync(tool)));
    const sums = run('sha256sum', ['-c', 'b.tgz.sha256'], dir);
    assert.equal(sums.code, 0, sums.stderr);
    assert.match(sums.stdout, /trivy-airgap\.mjs: OK/);
    const signed = run(
      'openssl',
      ['dgst', '-sha256', '-verify', ecdsaPub, '-signature', 'b.tgz.sha256.sig', 'b.tgz.sha256'],
      dir,
    );
    assert.equal(signed.code, 0, signed.stderr);
    // An existing companion is not replaced without force.
    await assert.rejects(
      writeBundle({
        output: join(dir, 'c.tgz'),
        manifest: draft,
        entries,
        signingKey: null,
        companions: [tool],
      }),
      { code: 'OUTPUT_EXISTS' },
    );
    assert.equal(existsSync(join(dir, 'c.tgz')), false);
  });

  it('refuses a work-dir file whose bytes changed, removes that copy, and leaves no output or temp file behind', async () => {
    const bad = randomBytes(100_000);
    const entry = fileEntry('oci/blobs/sha256/bad', bad, true);
    writeFileSync((entry.source as { file: string }).file, randomBytes(100_000)); // same size, other bytes
    const dir = join(work, 'corrupt');
    mkdirSync(dir);
    await assert.rejects(
      writeBundle({ output: join(dir, 'b.tgz'), manifest: draft, entries: [entry], signingKey: null }),
      (error: unknown) => {
        assert.ok(error instanceof ExporterError);
        assert.equal(error.code, 'WORK_DIR_CORRUPT');
        assert.equal(error.expected, entry.digest);
        return true;
      },
    );
    // Removed, so the next export downloads it anew instead of failing on it again.
    assert.equal(existsSync((entry.source as { file: string }).file), false);
    const short = fileEntry('oci/blobs/sha256/short', randomBytes(5000));
    writeFileSync((short.source as { file: string }).file, randomBytes(4000));
    await assert.rejects(
      writeBundle({ output: join(dir, 'b.tgz'), manifest: draft, entries: [short], signingKey: null }),
      { code: 'WORK_DIR_CORRUPT' },
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a streamed entry gives the same bundle as the same bytes from a file, whatever its chunks', async () => {
    const bytes = deterministicBytes(700_001, 'streamed layer');
    const digest = digestOfBytes(bytes);
    const path = `oci/blobs/sha256/${digest.slice(7)}`;
    const streamed = (sizes: readonly number[]): BundleEntry => ({
      path,
      size: bytes.length,
      digest,
      source: {
        stream: async (write) => {
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const size = sizes[i % sizes.length] ?? 1;
            await write(bytes.subarray(at, at + size));
            at += size;
          }
        },
      },
    });
    const dir = join(work, 'streamed');
    mkdirSync(dir);
    const bundleOf = async (name: string, entry: BundleEntry) =>
      readFileSync(
        (
          await writeBundle({
            output: join(dir, name),
            manifest: draft,
            entries: [entry],
            signingKey: null,
            mtime: new Date(1_764_000_000_000),
          })
        ).path,
      );
    const reference = await bundleOf('file.tgz', fileEntry(path, bytes));
    assert.deepEqual(await bundleOf('odd.tgz', streamed([1, 4097, 65_536])), reference);
    assert.deepEqual(await bundleOf('whole.tgz', streamed([bytes.length])), reference);
  });

  it('refuses a streamed entry longer or shorter than declared, and a failing producer, leaving nothing behind', async () => {
    const dir = join(work, 'streamed-bad');
    mkdirSync(dir);
    const entry = (produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>): BundleEntry => ({
      path: 'oci/blobs/sha256/streamed',
      size: 1000,
      digest: digestOfBytes(Buffer.alloc(1000)),
      source: { stream: produce },
    });
    const attempt = (produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>) =>
      writeBundle({
        output: join(dir, 'b.tgz'),
        manifest: draft,
        entries: [entry(produce)],
        signingKey: null,
      });
    let stoppedProducer = false;
    await assert.rejects(
      attempt(async (write) => {
        await write(Buffer.alloc(600));
        await write(Buffer.alloc(600)).catch((error: unknown) => {
          stoppedProducer = true; // told to stop, with an error of its own
          throw error;
        });
      }),
      { code: 'ENTRY_MISMATCH' },
    );
    assert.ok(stoppedProducer);
    await assert.rejects(
      attempt(async (write) => write(Buffer.alloc(999))),
      { code: 'ENTRY_MISMATCH' },
    );
    const broken = new ExporterError('SOURCE_FAILED', 'the registry went away');
    await assert.rejects(
      attempt(async (write) => {
        await write(Buffer.alloc(10));
        throw broken;
      }),
      (error: unknown) => error === broken,
    );
    assert.deepEqual(readdirSync(dir), []);
  });
});
