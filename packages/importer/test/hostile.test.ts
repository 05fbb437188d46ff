import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  buildBundle,
  gzipBundle,
  makeTar,
  makeTarGz,
  upstreamMetadata,
  type ArchiveEntry,
  type ArtifactOptions,
  type BuildBundleOptions,
} from '@trivy-airgap/test-utils';
import { ImporterError, importBundle, verifyBundle } from '../src/index.js';
import { trustFile, workDir, writeBytes } from './helpers.js';
import { AttackedSite } from './refusal.js';

/**
 * Hostile bundles, most of them correctly signed so that only the content lies, each run through
 * BOTH `verifyBundle` and `importBundle`: both must refuse with the same code, the cache and the
 * VEX config must be exactly as they were, no staging may be left, and nothing may appear
 * outside the cache (a canary directory beside it stays empty).
 */

const work = workDir('hostile');
const pub = trustFile(work);
const site = new AttackedSite(work, pub);
const refusedByBoth = (bytes: Buffer, what: string): Promise<string> => site.refusedByBoth(bytes, what);

function signed(options: Partial<BuildBundleOptions>): Buffer {
  return buildBundle({ components: [{ kind: 'vex' }], ...options }).bytes;
}

function editVex(edit: (vex: Record<string, unknown>) => void): (manifest: Record<string, unknown>) => void {
  return (manifest) => {
    const components = manifest.components as Record<string, unknown>[];
    const vex = components.find((component) => component.kind === 'vex');
    assert.ok(vex !== undefined);
    edit(vex);
  };
}

before(() => site.seed());

describe('a signed bundle cannot write outside the cache', () => {
  const targets = ['../../canary/x', '../../../canary-abs', ...site.canaries, '0.1/../../../../canary', '..'];
  for (const specVersion of targets) {
    it(`through a VEX specVersion of ${JSON.stringify(specVersion)}`, async () => {
      const bytes = signed({ editManifest: editVex((vex) => (vex.specVersion = specVersion)) });
      assert.equal(await refusedByBoth(bytes, `specVersion ${specVersion}`), 'MANIFEST_INVALID');
    });
  }

  it('through a VEX specVersion that is a safe name but not the one Trivy reads (no repository without 0.1/)', async () => {
    const bytes = signed({ editManifest: editVex((vex) => (vex.specVersion = '0.2')) });
    assert.equal(await refusedByBoth(bytes, 'specVersion 0.2'), 'BUNDLE_CONTENT_INVALID');
  });

  for (const [field, value] of [
    ['name', '../../canary'],
    ['subdir', '../../canary'],
    ['archivePath', '../../canary/archive.tar.gz'],
    ['manifestPath', '/etc/vex-repository.json'],
  ] as const) {
    it(`through a VEX ${field} of ${JSON.stringify(value)}`, async () => {
      const bytes = signed({ editManifest: editVex((vex) => (vex[field] = value)) });
      assert.equal(await refusedByBoth(bytes, `${field} ${value}`), 'MANIFEST_INVALID');
    });
  }
});

/** A signed bundle of the usual components with one OCI artifact replaced. */
function withArtifact(kind: 'db' | 'java-db' | 'checks', options: ArtifactOptions): Buffer {
  return buildBundle({
    components: [
      ...(['db', 'java-db', 'checks'] as const).map((k) => (k === kind ? { kind: k, options } : { kind: k })),
      { kind: 'vex' },
    ],
  }).bytes;
}

describe('layers are bounded per component kind, refused early as bundle content', () => {
  it('a checks layer of 20 001 tiny files (an inode flood) is refused (checked in memory before anything is written)', async () => {
    const entries = Array.from({ length: 20_001 }, (_, i) => ({
      name: `policies/x/${String(i).padStart(6, '0')}.rego`,
      body: 'p',
    }));
    const bytes = withArtifact('checks', { layer: makeTarGz(entries) });
    assert.equal(await refusedByBoth(bytes, '20 001 files'), 'BUNDLE_CONTENT_INVALID');
  });

  it('a DB layer with more entries than a DB ever has', async () => {
    const entries = [
      { name: 'trivy.db', body: 'db' },
      { name: 'metadata.json', body: upstreamMetadata('db') },
      ...Array.from({ length: 20 }, (_, i) => ({ name: `extra-${i}`, body: 'x' })),
    ];
    const bytes = withArtifact('db', { layer: makeTarGz(entries) });
    assert.equal(await refusedByBoth(bytes, 'db with 22 entries'), 'BUNDLE_CONTENT_INVALID');
  });

  it("zeros after a layer's end marker are not piled up by the tar parser; beyond the inflation limit they are refused", async () => {
    const entries = [
      { name: 'trivy.db', body: 'db' },
      { name: 'metadata.json', body: upstreamMetadata('db') },
    ];
    const padded = (zeros: number): Buffer =>
      gzipSync(Buffer.concat([makeTar(entries), Buffer.alloc(zeros)]));
    // Within the limit (16 MiB for a small layer): accepted, upstream bytes are pinned by digest.
    const within = withArtifact('db', { layer: padded(8 * 1024 * 1024) });
    const result = await verifyBundle({ bundle: writeBytes(work, within), trustFiles: [pub] });
    assert.ok(result.checks.some((check) => check.check === 'layer-content' && check.subject === 'db'));
    // Beyond it: stopped at the limit.
    const beyond = withArtifact('db', { layer: padded(64 * 1024 * 1024) });
    assert.equal(await refusedByBoth(beyond, 'zeros beyond the limit'), 'BUNDLE_CORRUPT');
  });

  it('a checks file whose header claims more than the layer may unpack is refused from the header', async () => {
    const tar = makeTar([{ name: 'policies/huge.rego', headerSize: 300 * 1024 * 1024 }]);
    const bytes = withArtifact('checks', { layer: gzipSync(tar) });
    const code = await refusedByBoth(bytes, 'huge checks file');
    assert.ok(['BUNDLE_CONTENT_INVALID', 'BUNDLE_CORRUPT'].includes(code), code);
  });
});

describe('impossible DB metadata is never installed over a working DB', () => {
  for (const [kind, version] of [
    ['db', 999],
    ['db', 1],
    ['db', 0],
    ['java-db', 2],
    ['java-db', 999],
  ] as const) {
    it(`${kind} schema Version ${version}, signed and agreeing with the manifest`, async () => {
      const bytes = withArtifact(kind, { version });
      assert.equal(await refusedByBoth(bytes, `${kind} Version ${version}`), 'BUNDLE_CONTENT_INVALID');
    });
  }

  it('layer metadata.json that disagrees with the signed manifest', async () => {
    const bytes = buildBundle({
      components: [
        {
          kind: 'db',
          metadata: JSON.parse(
            upstreamMetadata('db', { updatedAt: new Date('2026-12-01T00:00:00Z') }).toString(),
          ) as Record<string, unknown>,
        },
        { kind: 'vex' },
      ],
    }).bytes;
    assert.equal(await refusedByBoth(bytes, 'metadata disagrees'), 'BUNDLE_CONTENT_INVALID');
  });
});

describe('one bundle path used by two components is refused in the manifest', () => {
  it('a layer blob shared by the DB and the Java DB', async () => {
    const bytes = buildBundle({
      components: [{ kind: 'db' }, { kind: 'java-db' }],
      editManifest: (manifest) => {
        const components = manifest.components as Record<string, Record<string, unknown>>[];
        const db = components[0]!;
        const javaDb = components[1]!;
        javaDb.layer = {
          ...(db.layer as object),
          mediaType: (javaDb.layer as { mediaType: string }).mediaType,
        };
      },
    }).bytes;
    assert.equal(await refusedByBoth(bytes, 'shared layer'), 'MANIFEST_INVALID');
  });

  it('two VEX repositories on one archive', async () => {
    const bytes = buildBundle({
      components: [
        { kind: 'vex', name: 'one' },
        { kind: 'vex', name: 'two' },
      ],
      editManifest: (manifest) => {
        const components = manifest.components as Record<string, unknown>[];
        components[1]!.archivePath = components[0]!.archivePath;
      },
    }).bytes;
    assert.equal(await refusedByBoth(bytes, 'shared archive'), 'MANIFEST_INVALID');
  });

  it('a VEX manifest path equal to an OCI blob (the VEX repository would install without its manifest)', async () => {
    const built = buildBundle({ components: [{ kind: 'db' }, { kind: 'vex' }] });
    const blob = `oci/blobs/sha256/${built.artifacts.get('db')!.configDigest.slice(7)}`;
    const bytes = buildBundle({
      components: [{ kind: 'db' }, { kind: 'vex' }],
      editManifest: editVex((vex) => (vex.manifestPath = blob)),
    }).bytes;
    assert.equal(await refusedByBoth(bytes, 'vex manifest on a blob'), 'MANIFEST_INVALID');
  });
});

describe('collisions inside a layer are bundle content errors, never raw EEXIST', () => {
  const cases: [string, ArchiveEntry[], string][] = [
    [
      'a file x, then a directory x/',
      [
        { name: 'policies/x', body: 'f' },
        { name: 'policies/x/', type: 'directory' },
      ],
      'BUNDLE_CONTENT_INVALID',
    ],
    [
      'a directory x/, then a file x',
      [
        { name: 'policies/x/', type: 'directory' },
        { name: 'policies/x', body: 'f' },
      ],
      'BUNDLE_CONTENT_INVALID',
    ],
    [
      'a file x, then a file below x',
      [
        { name: 'policies/x', body: 'f' },
        { name: 'policies/x/y.rego', body: 'g' },
      ],
      'BUNDLE_CONTENT_INVALID',
    ],
    [
      'a file below x, then a file x',
      [
        { name: 'policies/x/y.rego', body: 'g' },
        { name: 'policies/x', body: 'f' },
      ],
      'BUNDLE_CONTENT_INVALID',
    ],
    [
      'the same file twice',
      [
        { name: 'policies/a.rego', body: 'f' },
        { name: 'policies/a.rego', body: 'g' },
      ],
      'BUNDLE_ENTRY_DUPLICATE',
    ],
    [
      'the same file twice, once with ./',
      [
        { name: 'policies/a.rego', body: 'f' },
        { name: './policies/a.rego', body: 'g' },
      ],
      'BUNDLE_ENTRY_DUPLICATE',
    ],
    [
      'names equal but for case (one file on macOS)',
      [
        { name: 'policies/A.rego', body: 'f' },
        { name: 'policies/a.rego', body: 'g' },
      ],
      'BUNDLE_ENTRY_DUPLICATE',
    ],
    [
      'names equal but for Unicode form',
      [
        { name: 'policies/\u00e9.rego', body: 'f' },
        { name: 'policies/e\u0301.rego', body: 'g' },
      ],
      'BUNDLE_ENTRY_DUPLICATE',
    ],
  ];
  for (const [what, entries, code] of cases) {
    it(what, async () => {
      const bytes = withArtifact('checks', { layer: makeTarGz(entries) });
      assert.equal(await refusedByBoth(bytes, what), code);
    });
  }
});

describe('verify refuses what import refuses: content checked against the signed manifest', () => {
  it("a VEX manifest whose updatedAt differs from index.json's updated_at", async () => {
    const bytes = signed({
      editManifest: editVex((vex) => (vex.updatedAt = '2026-12-31T00:00:00Z')),
    });
    assert.equal(await refusedByBoth(bytes, 'updatedAt differs'), 'BUNDLE_CONTENT_INVALID');
  });
});

describe('bytes no digest covers are checked: gzip framing and tar padding', () => {
  const built = buildBundle({ components: [{ kind: 'db' }, { kind: 'vex' }] });
  const endOfEntries = built.tar.length - 1024;

  it('non-zero junk after the tar end-of-archive marker', async () => {
    const tar = Buffer.concat([built.tar, Buffer.from('junk'), Buffer.alloc(508)]);
    assert.equal(await refusedByBoth(gzipBundle(tar), 'junk after EOA'), 'BUNDLE_CORRUPT');
  });

  it('zero padding beyond one tar record after the end-of-archive marker', async () => {
    const tar = Buffer.concat([built.tar, Buffer.alloc(20 * 512)]);
    assert.equal(await refusedByBoth(gzipBundle(tar), 'too much padding'), 'BUNDLE_CORRUPT');
  });

  it('a tar that ends without its end-of-archive marker', async () => {
    const tar = built.tar.subarray(0, endOfEntries);
    assert.equal(await refusedByBoth(gzipBundle(tar), 'no EOA'), 'BUNDLE_CORRUPT');
  });

  it('a non-zero byte in the padding after an entry body', async () => {
    const entry = built.offsets.get('manifest.json')!;
    const tar = Buffer.from(built.tar);
    const pad = entry.body + entry.size;
    assert.ok(pad % 512 !== 0, 'the manifest is not block aligned');
    tar[pad] = 0x41;
    assert.equal(await refusedByBoth(gzipBundle(tar), 'padding byte'), 'BUNDLE_CORRUPT');
  });

  it('NUL bytes after the gzip member', async () => {
    const bytes = Buffer.concat([built.bytes, Buffer.alloc(64)]);
    assert.equal(await refusedByBoth(bytes, 'NULs after gzip'), 'BUNDLE_CORRUPT');
  });

  it('a second gzip member', async () => {
    const bytes = Buffer.concat([built.bytes, gzipBundle(Buffer.alloc(1024))]);
    assert.equal(await refusedByBoth(bytes, 'second member'), 'BUNDLE_CORRUPT');
  });

  for (const [at, value, what] of [
    [3, 0x08, 'FNAME flag'],
    [3, 0x01, 'FTEXT flag'],
    [4, 0x01, 'MTIME'],
    [8, 0x02, 'XFL'],
    [9, 0x13, 'OS (macOS)'],
  ] as const) {
    it(`a gzip header with another ${what} byte`, async () => {
      const bytes = Buffer.from(built.bytes);
      bytes[at] = value;
      assert.equal(await refusedByBoth(bytes, what), 'BUNDLE_CORRUPT');
    });
  }

  it('compressed deflate blocks (a bundle is stored blocks only)', async () => {
    assert.equal(await refusedByBoth(gzipBundle(built.tar, 6), 'level 6'), 'BUNDLE_CORRUPT');
  });

  it('padding bits set in a stored block header (zlib itself would skip them)', async () => {
    const bytes = Buffer.from(built.bytes);
    bytes[10] = (bytes[10] ?? 0) | 0x80;
    assert.equal(await refusedByBoth(bytes, 'block padding bits'), 'BUNDLE_CORRUPT');
  });

  it('zero padding up to one tar record, as GNU tar writes it, is accepted', async () => {
    const tar = Buffer.concat([built.tar, Buffer.alloc(18 * 512)]);
    const result = await verifyBundle({ bundle: writeBytes(work, gzipBundle(tar)), trustFiles: [pub] });
    assert.equal(result.bundleId, built.bundleId);
  });
});

describe('a cancelled import (AbortSignal, Ctrl-C) leaves nothing behind', () => {
  const big = buildBundle({
    components: [{ kind: 'db', options: { dbContents: 3 * 1024 * 1024 } }, { kind: 'vex' }],
  });

  for (const moment of ['before reading', 'mid-stream'] as const) {
    it(`aborted ${moment}: ABORTED (category cancelled), the cache untouched, no staging, the lock released`, async () => {
      const path = writeBytes(work, big.bytes);
      const before = site.snapshot();
      const controller = new AbortController();
      if (moment === 'before reading') controller.abort();
      const error = await importBundle({
        bundle: path,
        trustFiles: [pub],
        cacheDir: site.cache,
        vexConfigPath: site.vexConfig,
        signal: controller.signal,
        onProgress: (event) => {
          if (event.type === 'task-progress' && event.done > 0) controller.abort();
        },
      }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      assert.ok(error instanceof ImporterError, String(error));
      assert.equal(error.code, 'ABORTED');
      assert.equal(error.category, 'cancelled');
      assert.equal(site.snapshot(), before);
      assert.deepEqual(readdirSync(join(site.cache, '.trivy-airgap', 'staging')), []);
      assert.ok(!existsSync(join(site.cache, '.trivy-airgap', 'lock')));
      const verifying = new AbortController();
      verifying.abort();
      await assert.rejects(
        verifyBundle({ bundle: path, trustFiles: [pub], signal: verifying.signal }),
        (caught: ImporterError) => caught.code === 'ABORTED',
      );
    });
  }
});
