import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { AirgapError, digestOfBytes, signBytes } from '@trivy-airgap/format';
import {
  buildBundle,
  flipTarByte,
  gzipBundle,
  makeTar,
  makeTarGz,
  makeTestKey,
  seededInt,
  seededRandom,
  testSeed,
  trivyArtifact,
  upstreamMetadata,
  type ArchiveEntry,
  type BuiltBundle,
} from '@trivy-airgap/test-utils';
import { ImporterError, inspectBundle, verifyBundle } from '../src/index.js';
import { bundleFile, trustFile, workDir, writeBytes } from './helpers.js';

const work = workDir('verify');
const pub = trustFile(work);
const ALL = [{ kind: 'db' }, { kind: 'java-db' }, { kind: 'checks' }, { kind: 'vex' }] as const;

async function verifyBytes(bytes: Buffer, extra: Partial<Parameters<typeof verifyBundle>[0]> = {}) {
  return verifyBundle({ bundle: writeBytes(work, bytes), trustFiles: [pub], ...extra });
}

async function refused(bytes: Buffer, code?: string): Promise<AirgapError> {
  let caught: unknown;
  try {
    await verifyBytes(bytes);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof AirgapError, `expected a refusal, got ${String(caught)}`);
  if (code !== undefined) assert.equal(caught.code, code, caught.message);
  else assert.equal(caught.category, 'verification', `${caught.code}: ${caught.message}`);
  return caught;
}

function hostile(edit: (entries: ArchiveEntry[]) => ArchiveEntry[]): Buffer {
  return buildBundle({ components: [{ kind: 'db' }, { kind: 'checks' }], editEntries: edit }).bytes;
}

describe('verifyBundle: a good bundle', () => {
  it('passes and lists every check performed (signature, dates, each entry, artifacts, layer contents)', async () => {
    const { path, bundle } = bundleFile(work, { components: ALL });
    const result = await verifyBundle({ bundle: path, trustFiles: [pub] });
    assert.equal(result.bundleId, bundle.bundleId);
    assert.ok(result.checks.every((check) => check.ok));
    const names = result.checks.map((check) => `${check.check}:${check.subject}`);
    for (const file of bundle.entries.slice(2)) assert.ok(names.includes(`entry:${file.name}`), file.name);
    for (const expected of [
      'signature:manifest.json.sig',
      'expiry:manifest.json',
      'layer-content:db',
      'layer-content:checks',
      'vex-archive:default',
    ]) {
      assert.ok(names.includes(expected), expected);
    }
    // Read from the layers: the manifest records no metadata.json.
    const layerMetadata = JSON.parse(upstreamMetadata('db').toString()) as { UpdatedAt: string };
    assert.equal(result.builtAt.db, layerMetadata.UpdatedAt);
  });

  it('accepts Ed25519 signatures too', async () => {
    const key = makeTestKey('ed25519');
    const keyFile = join(work, 'ed.pub');
    writeFileSync(keyFile, key.publicKeyPem);
    const { path } = bundleFile(work, { components: [{ kind: 'db' }], key });
    const result = await verifyBundle({ bundle: path, trustFiles: [keyFile] });
    assert.equal(result.signature?.algorithm, 'ed25519');
  });

  it('reads split parts joined in order (by base name or by the first part)', async () => {
    const { bundle } = bundleFile(work, { components: ALL });
    const base = join(work, 'split.tgz');
    const third = Math.ceil(bundle.bytes.length / 3);
    for (let i = 0; i < 3; i++) {
      writeFileSync(`${base}.part-00${i}`, bundle.bytes.subarray(i * third, (i + 1) * third));
    }
    assert.equal((await verifyBundle({ bundle: base, trustFiles: [pub] })).bundleId, bundle.bundleId);
    assert.equal(
      (await verifyBundle({ bundle: `${base}.part-000`, trustFiles: [pub] })).bundleId,
      bundle.bundleId,
    );
  });

  it('reads a stream (stdin for `-`)', async () => {
    const { bundle } = bundleFile(work, { components: [{ kind: 'db' }] });
    const chunks = [];
    for (let i = 0; i < bundle.bytes.length; i += 100) chunks.push(bundle.bytes.subarray(i, i + 100));
    const result = await verifyBundle({ bundle: '-', stdin: Readable.from(chunks), trustFiles: [pub] });
    assert.equal(result.bundleId, bundle.bundleId);
  });

  it('reads a path longer than 100 bytes by its pax header (docs/bundle-format.md)', async () => {
    const long = `vex/default/${'x'.repeat(150)}`;
    const body = Buffer.from('extra content');
    const bytes = buildBundle({
      components: [{ kind: 'vex' }],
      editManifest: (manifest) => {
        (manifest.files as unknown[]).push({ path: long, size: body.length, digest: digestOfBytes(body) });
      },
      editEntries: (entries) => [...entries, { name: long, body }],
    }).bytes;
    const result = await verifyBytes(bytes);
    assert.ok(result.checks.some((check) => check.subject === long));
  });

  it('trusts *.pub files of the trust directories', async () => {
    const { path } = bundleFile(work, { components: [{ kind: 'db' }] });
    assert.ok((await verifyBundle({ bundle: path, trustDirs: [work] })).signature !== null);
  });
});

describe('verifyBundle: tampering is refused', () => {
  const bundle = buildBundle({ components: ALL });

  /** Sample positions: headers and bodies (first, middle, last byte) of every entry. */
  function samplePositions(built: BuiltBundle): { label: string; position: number }[] {
    const out: { label: string; position: number }[] = [];
    for (const [path, at] of built.offsets) {
      out.push({ label: `${path} header name`, position: at.header });
      out.push({ label: `${path} header size`, position: at.header + 130 });
      if (at.size === 0) continue;
      for (const offset of new Set([0, Math.floor(at.size / 2), at.size - 1])) {
        out.push({ label: `${path} body +${offset}`, position: at.body + offset });
      }
    }
    return out;
  }

  it('any single flipped byte in manifest, signature or any content entry (header or body)', async () => {
    const positions = samplePositions(bundle);
    assert.ok(positions.length > 40);
    for (const { label, position } of positions) {
      let caught: unknown;
      try {
        await verifyBytes(flipTarByte(bundle, position));
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof AirgapError, `flipped ${label}: not refused`);
      assert.equal(caught.category, 'verification', `flipped ${label}: ${caught.code} ${caught.message}`);
    }
  });

  it('any flipped byte of the compressed stream, gzip header included (seeded sample; TRIVY_AIRGAP_SEED replays)', async () => {
    const bytes = bundle.bytes;
    const seed = testSeed();
    const random = seededRandom(seed);
    for (let i = 0; i < 48; i++) {
      const position = seededInt(random, 0, bytes.length);
      const mask = seededInt(random, 1, 256);
      const copy = Buffer.from(bytes);
      copy[position] = (copy[position] ?? 0) ^ mask;
      let caught: unknown;
      try {
        await verifyBytes(copy);
      } catch (error) {
        caught = error;
      }
      const where = `seed ${seed}: byte ${position} of ${bytes.length} ^ 0x${mask.toString(16)}`;
      assert.ok(caught instanceof AirgapError, `${where}: expected a refusal, got ${String(caught)}`);
      assert.equal(caught.category, 'verification', `${where}: ${caught.code} ${caught.message}`);
    }
  });

  it('a truncated bundle (cut anywhere)', async () => {
    for (const fraction of [0.01, 0.2, 0.5, 0.9, 0.999]) {
      await refused(bundle.bytes.subarray(0, Math.floor(bundle.bytes.length * fraction)));
    }
    await refused(bundle.bytes.subarray(0, bundle.bytes.length - 4)); // gzip trailer cut
  });

  it('a tar without its end: truncated after the last entry', async () => {
    const tar = bundle.tar.subarray(0, bundle.tar.length - 1024 - 512);
    await refused(gzipBundle(tar));
  });

  it('a wrong key: the signer is not trusted (KEY_UNTRUSTED)', async () => {
    const other = makeTestKey();
    await refused(buildBundle({ components: [{ kind: 'db' }], key: other }).bytes, 'KEY_UNTRUSTED');
  });

  it('a signature by another key under the trusted key id (SIGNATURE_INVALID)', async () => {
    const other = makeTestKey();
    const built = buildBundle({ components: [{ kind: 'db' }] });
    const forged = buildBundle({
      components: [{ kind: 'db' }],
      bundleId: built.bundleId,
      signature: signBytes(Buffer.from('x'), other.signingKey),
    });
    await refused(forged.bytes, 'SIGNATURE_INVALID');
  });

  it('no trusted key at all (NO_TRUSTED_KEYS)', async () => {
    const { path } = bundleFile(work, { components: [{ kind: 'db' }] });
    await assert.rejects(verifyBundle({ bundle: path }), { code: 'NO_TRUSTED_KEYS' });
  });
});

describe('verifyBundle: policy', () => {
  it('an unsigned bundle is refused (BUNDLE_UNSIGNED) unless --allow-unsigned, then it warns', async () => {
    const bytes = buildBundle({ components: [{ kind: 'db' }], key: null }).bytes;
    await refused(bytes, 'BUNDLE_UNSIGNED');
    const result = await verifyBytes(bytes, { allowUnsigned: true });
    assert.equal(result.signature, null);
    assert.match(result.warnings.join('\n'), /NOT SIGNED/);
  });

  it('an untrusted signer is accepted only with --allow-unsigned, loudly', async () => {
    const bytes = buildBundle({ components: [{ kind: 'db' }], key: makeTestKey() }).bytes;
    const result = await verifyBytes(bytes, { allowUnsigned: true });
    assert.equal(result.signature, null);
    assert.match(result.warnings.join('\n'), /NOT TRUSTED/);
  });

  it('an expired bundle is refused (BUNDLE_EXPIRED) unless --allow-expired', async () => {
    const created = new Date(Date.now() - 40 * 86_400_000);
    const bytes = buildBundle({
      components: [{ kind: 'db' }],
      created,
      expires: new Date(Date.now() - 86_400_000),
    }).bytes;
    await refused(bytes, 'BUNDLE_EXPIRED');
    const result = await verifyBytes(bytes, { allowExpired: true });
    assert.match(result.warnings.join('\n'), /expired/);
  });

  it('a manifest dated far in the future is refused (BUNDLE_FROM_FUTURE)', async () => {
    const created = new Date(Date.now() + 3 * 86_400_000);
    await refused(buildBundle({ components: [{ kind: 'db' }], created }).bytes, 'BUNDLE_FROM_FUTURE');
  });

  it('a manifest of another media type is refused before anything else', async () => {
    const bytes = buildBundle({
      components: [{ kind: 'db' }],
      editManifest: (manifest) => {
        manifest.mediaType = 'application/vnd.trivy-airgap.manifest.v2+json';
      },
    }).bytes;
    await refused(bytes, 'MANIFEST_UNSUPPORTED_VERSION');
  });
});

describe('verifyBundle: hostile entries (named after what they prevent)', () => {
  it('path traversal: an entry named ../evil is refused', async () => {
    await refused(
      hostile((e) => [...e, { name: '../evil', body: 'x' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
  });

  it('absolute path: an entry named /etc/cron.d/evil is refused', async () => {
    await refused(
      hostile((e) => [...e, { name: '/etc/cron.d/evil', body: 'x' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
  });

  it('link following: a symlink entry is refused', async () => {
    await refused(
      hostile((e) => [...e, { name: 'oci/x', type: 'symlink', linkname: '/etc/passwd' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
  });

  it('hard links are refused', async () => {
    await refused(
      hostile((e) => [...e, { name: 'oci/x', type: 'hardlink', linkname: 'manifest.json' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
  });

  it('device files: a character device entry is refused', async () => {
    await refused(
      hostile((e) => [...e, { name: 'oci/zero', type: 'chardev' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
  });

  it('FIFOs and directories are refused', async () => {
    await refused(
      hostile((e) => [...e, { name: 'oci/fifo', type: 'fifo' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
    await refused(
      hostile((e) => [...e, { name: 'oci/dir/', type: 'directory' }]),
      'BUNDLE_ENTRY_UNSAFE',
    );
  });

  it('smuggling: an unlisted extra file is refused', async () => {
    await refused(
      hostile((e) => [...e, { name: 'zzz-extra', body: 'not in the manifest' }]),
      'BUNDLE_ENTRY_UNLISTED',
    );
  });

  it('shadowing: a duplicate entry (second copy of a listed file) is refused', async () => {
    await refused(
      hostile((e) => [...e, { ...e[e.length - 1]!, body: 'other' }]),
      'BUNDLE_ENTRY_DUPLICATE',
    );
    await refused(
      hostile((e) => [...e, { ...e[e.length - 1]! }]),
      'BUNDLE_ENTRY_DUPLICATE',
    );
  });

  it('a second manifest.json later in the stream is refused', async () => {
    await refused(
      hostile((e) => [...e, { name: 'manifest.json', body: e[0]!.body ?? '' }]),
      'BUNDLE_ENTRY_DUPLICATE',
    );
  });

  it('withholding: a listed entry that is missing is refused', async () => {
    await refused(
      hostile((e) => e.filter((_, i) => i !== 3)),
      'BUNDLE_ENTRY_MISSING',
    );
  });

  it('reordered content entries are refused', async () => {
    await refused(
      hostile((e) => [e[0]!, e[1]!, e[3]!, e[2]!, ...e.slice(4)]),
      'BUNDLE_ENTRY_ORDER',
    );
  });

  it('content before the manifest is refused (manifest.json must be first)', async () => {
    await refused(
      hostile((e) => [e[2]!, e[0]!, e[1]!, ...e.slice(3)]),
      'BUNDLE_ENTRY_ORDER',
    );
  });

  it('a lying header size is refused before the body is read', async () => {
    await refused(
      hostile((e) =>
        e.map((entry, i) =>
          i === 2 ? { ...entry, headerSize: Buffer.from(entry.body ?? '').length + 512 } : entry,
        ),
      ),
    );
    const err = await refused(
      hostile((e) =>
        e.map((entry, i) =>
          i === 2 ? { ...entry, headerSize: Buffer.from(entry.body ?? '').length - 1 } : entry,
        ),
      ),
    );
    assert.ok(['BUNDLE_SIZE_MISMATCH', 'BUNDLE_CORRUPT'].includes(err.code));
  });

  it('gzip bomb: a bundle is stored deflate blocks only, so compressed blocks are refused before any is inflated', async () => {
    const built = buildBundle({ components: [{ kind: 'db' }] });
    const bomb = gzipBundle(Buffer.concat([built.tar, Buffer.alloc(64 * 1024 * 1024)]), 9);
    const started = Date.now();
    await refused(bomb, 'BUNDLE_CORRUPT');
    assert.ok(Date.now() - started < 5000);
  });

  it('zeros appended inside the tar: stopped soon after the declared sizes (a stored-block bomb)', async () => {
    const built = buildBundle({ components: [{ kind: 'db' }] });
    const padded = gzipBundle(Buffer.concat([built.tar, Buffer.alloc(64 * 1024 * 1024)]));
    const error = await refused(padded, 'BUNDLE_CORRUPT');
    assert.ok(error instanceof ImporterError);
  });

  it('gzip bomb in the manifest slot: an oversized manifest.json header is refused unread', async () => {
    const tar = buildBundle({
      components: [{ kind: 'db' }],
      editEntries: (e) => [{ ...e[0]!, headerSize: 64 * 1024 * 1024 }, ...e.slice(1)],
    }).tar;
    await refused(gzipBundle(tar), 'BUNDLE_CORRUPT');
  });

  it('gzip bomb inside a layer: inflation stops at a bounded ratio of the layer size', async () => {
    const zeros = 300 * 1024 * 1024;
    const header = makeTar([{ name: 'trivy.db', headerSize: zeros }]).subarray(0, 512);
    const gzip = createGzip({ level: 9 });
    const parts: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => parts.push(chunk));
    const ended = new Promise((resolve) => gzip.on('end', resolve));
    gzip.write(header);
    const block = Buffer.alloc(1024 * 1024);
    for (let written = 0; written < zeros; written += block.length) {
      if (!gzip.write(block)) await new Promise((resolve) => gzip.once('drain', resolve));
    }
    gzip.end(makeTar([{ name: 'metadata.json', body: upstreamMetadata('db') }]));
    await ended;
    const layer = Buffer.concat(parts);
    const metadata = JSON.parse(upstreamMetadata('db').toString()) as Record<string, unknown>;
    const bytes = buildBundle({
      components: [{ kind: 'db', artifact: trivyArtifact('db', { layer }), metadata }],
    }).bytes;
    const started = Date.now();
    const error = await refused(bytes, 'BUNDLE_CORRUPT');
    assert.ok(error instanceof ImporterError);
    assert.ok(
      typeof error.found === 'number' && error.found < 100 * 1024 * 1024,
      `inflated ${String(error.found)}`,
    );
    assert.ok(Date.now() - started < 5000);
  });

  it('a layer whose inner tar escapes (../) or links is refused (inner extraction hardening)', async () => {
    const metadata = JSON.parse(upstreamMetadata('db').toString()) as Record<string, unknown>;
    for (const extra of [
      { name: '../../evil', body: 'x' },
      { name: 'link', type: 'symlink' as const, linkname: '/etc/passwd' },
      { name: 'dev', type: 'chardev' as const },
    ]) {
      const layer = makeTarGz([
        { name: 'trivy.db', body: 'db' },
        { name: 'metadata.json', body: upstreamMetadata('db') },
        extra,
      ]);
      const bytes = buildBundle({
        components: [{ kind: 'db', artifact: trivyArtifact('db', { layer }), metadata }],
      }).bytes;
      await refused(bytes, 'BUNDLE_ENTRY_UNSAFE');
    }
  });

  it('a VEX archive that escapes its directory is refused by verify too', async () => {
    const repository = {
      archive: makeTarGz([
        {
          name: 'vexhub-main/index.json',
          body: JSON.stringify({ updated_at: '2026-11-25T01:00:00Z', packages: [] }),
        },
        { name: 'vexhub-main/../../escaped', body: 'x' },
      ]),
      files: new Map([['index.json', Buffer.from('{}')]]),
      subdir: 'vexhub-main',
    };
    await refused(buildBundle({ components: [{ kind: 'vex', repository }] }).bytes, 'BUNDLE_ENTRY_UNSAFE');
  });

  it('a DB layer whose metadata.json disagrees with the signed manifest is refused', async () => {
    const bytes = buildBundle({
      components: [
        {
          kind: 'db',
          metadata: {
            ...(JSON.parse(upstreamMetadata('db').toString()) as Record<string, unknown>),
            UpdatedAt: '2030-01-01T00:00:00Z',
          },
        },
      ],
    }).bytes;
    await refused(bytes, 'BUNDLE_CONTENT_INVALID');
  });

  it('a DB layer without trivy.db is refused (Trivy: "--skip-db-update cannot be specified on the first run")', async () => {
    const layer = makeTarGz([{ name: 'metadata.json', body: upstreamMetadata('db') }]);
    const metadata = JSON.parse(upstreamMetadata('db').toString()) as Record<string, unknown>;
    const bytes = buildBundle({
      components: [{ kind: 'db', artifact: trivyArtifact('db', { layer }), metadata }],
    }).bytes;
    await refused(bytes, 'BUNDLE_CONTENT_INVALID');
  });

  it('an artifact with a wrong layer media type is refused (trivy-facts: the layer mediaType equal to the expected one)', async () => {
    const bytes = buildBundle({
      components: [
        {
          kind: 'db',
          artifact: trivyArtifact('db', { layerMediaType: 'application/octet-stream' }),
          metadata: JSON.parse(upstreamMetadata('db').toString()) as Record<string, unknown>,
        },
      ],
    }).bytes;
    await refused(bytes, 'BUNDLE_CONTENT_INVALID');
  });
});

describe('verifyBundle: memory', () => {
  it('stays flat: verifying a 96 MiB DB grows the peak RSS by far less than the DB', () => {
    const size = 96 * 1024 * 1024;
    const db = Buffer.alloc(size);
    for (let offset = 0, n = 0; offset < size; n++) {
      offset += db.write(
        `{"id":"CVE-2026-${n}","pkg":"example.com/module${n % 977}","fixed":"1.${n % 50}.${n % 7}"}\n`,
        offset,
      );
    }
    const path = writeBytes(
      work,
      buildBundle({ components: [{ kind: 'db', options: { dbContents: db } }] }).bytes,
    );
    const importer = fileURLToPath(new URL('../src/index.js', import.meta.url));
    const script = `const { verifyBundle } = await import(${JSON.stringify(importer)});
const before = process.resourceUsage().maxRSS;
await verifyBundle({ bundle: ${JSON.stringify(path)}, trustFiles: [${JSON.stringify(pub)}] });
console.log(JSON.stringify({ before, after: process.resourceUsage().maxRSS }));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const { before, after } = JSON.parse(child.stdout) as { before: number; after: number };
    const grownMiB = (after - before) / 1024;
    assert.ok(grownMiB < 64, `peak RSS grew by ${grownMiB.toFixed(0)} MiB`);
  });
});

describe('inspectBundle', () => {
  it('shows components, sources, digests, ages, expiry and signer without a key', async () => {
    const { path, bundle } = bundleFile(work, { components: ALL });
    const result = await inspectBundle({ bundle: path, trustDirs: [] });
    assert.equal(result.bundleId, bundle.bundleId);
    assert.equal(result.signature, 'not-checked');
    assert.equal(result.signer?.keyId, (bundle.manifest.signer as { keyId: string }).keyId);
    assert.deepEqual(
      result.components.map((c) => c.kind),
      ['db', 'java-db', 'checks', 'vex'],
    );
    const db = result.components[0]!;
    assert.equal(db.source, 'mirror.gcr.io/aquasec/trivy-db:2');
    assert.match(db.manifestDigest ?? '', /^sha256:/);
    assert.equal(db.published, '2026-11-25T06:20:00Z', 'the OCI created annotation');
    assert.equal(
      db.updatedAt,
      undefined,
      'the manifest records no metadata.json: only verify reads the layer',
    );
    assert.equal(result.expired, false);
  });

  it('shows the build time a manifest of an earlier exporter records', async () => {
    const { path } = bundleFile(work, { components: [{ kind: 'db', metadata: 'from-layer' }] });
    const db = (await inspectBundle({ bundle: path, trustDirs: [] })).components[0]!;
    assert.match(db.updatedAt ?? '', /^\d{4}-/);
    assert.ok(typeof db.ageMs === 'number');
  });

  it('reports the signature status when keys are given', async () => {
    const { path } = bundleFile(work, { components: [{ kind: 'db' }] });
    assert.equal((await inspectBundle({ bundle: path, trustFiles: [pub] })).signature, 'verified');
    const other = join(work, 'other.pub');
    writeFileSync(other, makeTestKey().publicKeyPem);
    assert.equal((await inspectBundle({ bundle: path, trustFiles: [other] })).signature, 'untrusted');
  });
});
