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
  makeZip,
  upstreamMetadata,
  vexRepositoryArchive,
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

const GiB = 1024 * 1024 * 1024;

/** What a DB layer holds upstream. */
const dbLayerEntries: ArchiveEntry[] = [
  { name: 'trivy.db', body: 'db' },
  { name: 'metadata.json', body: upstreamMetadata('db') },
];

describe('layers are bounded per component kind, refused early as bundle content', () => {
  it('a checks layer of 20 001 tiny files (an inode flood) is refused (checked in memory before anything is written)', async () => {
    const entries = Array.from({ length: 20_001 }, (_, i) => ({
      name: `policies/x/${String(i).padStart(6, '0')}.rego`,
      body: 'p',
    }));
    const bytes = withArtifact('checks', { layer: makeTarGz(entries) });
    assert.equal(await refusedByBoth(bytes, '20 001 files'), 'BUNDLE_CONTENT_INVALID');
  });

  for (const kind of ['db', 'java-db'] as const) {
    it(`a ${kind} layer with more entries than a DB ever has (17: upstream ships 2)`, async () => {
      const entries = [
        { name: kind === 'db' ? 'trivy.db' : 'trivy-java.db', body: 'db' },
        { name: 'metadata.json', body: upstreamMetadata(kind) },
        ...Array.from({ length: 15 }, (_, i) => ({ name: `extra-${i}`, body: 'x' })),
      ];
      const bytes = withArtifact(kind, { layer: makeTarGz(entries) });
      assert.equal(await refusedByBoth(bytes, `${kind} with 17 entries`), 'BUNDLE_CONTENT_INVALID');
    });
  }

  it("zeros after a layer's end marker stop at the tar record: a flood of them is refused at once, not piled up", async () => {
    const padded = Buffer.concat([makeTar(dbLayerEntries), Buffer.alloc(64 * 1024 * 1024)]);
    const bytes = withArtifact('db', { layer: gzipSync(padded) });
    assert.equal(await refusedByBoth(bytes, 'zeros after the end marker'), 'BUNDLE_CORRUPT');
  });

  for (const [kind, name, claimed] of [
    ['db', 'trivy.db', 8 * GiB + 1],
    ['java-db', 'trivy-java.db', 16 * GiB + 1],
    ['checks', 'policies/huge.rego', 256 * 1024 * 1024 + 1],
  ] as const) {
    it(`a ${kind} file whose header claims more than a ${kind} layer may unpack is refused from the header, unread`, async () => {
      // 4 MiB of body follow, so the refusal cannot come from the stream's truncated end.
      const tar = makeTar([{ name, body: Buffer.alloc(4 * 1024 * 1024), headerSize: claimed }]);
      const layer = gzipSync(tar.subarray(0, tar.length - 1024));
      const bytes = withArtifact(kind, { layer });
      assert.equal(await refusedByBoth(bytes, `${kind} ${claimed} bytes`), 'BUNDLE_CONTENT_INVALID');
    });
  }
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

  for (const [what, field] of [
    ['two VEX repositories on one archive', 'archivePath'],
    ["a VEX manifest path equal to another repository's archive", 'manifestPath'],
  ] as const) {
    it(what, async () => {
      const bytes = buildBundle({
        components: [
          { kind: 'vex', name: 'one' },
          { kind: 'vex', name: 'two' },
        ],
        editManifest: (manifest) => {
          const components = manifest.components as Record<string, unknown>[];
          components[1]![field] = components[0]!.archivePath;
        },
      }).bytes;
      assert.equal(await refusedByBoth(bytes, what), 'MANIFEST_INVALID');
    });
  }

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

describe('collisions inside a VEX archive are bundle errors, never raw EEXIST', () => {
  for (const type of ['tar.gz', 'zip'] as const) {
    it(`${type}: a file x, then a directory x/`, async () => {
      const base = vexRepositoryArchive({ type });
      const entries: ArchiveEntry[] = [...base.files].map(([name, body]) => ({
        name: `${base.subdir}/${name}`,
        body,
      }));
      entries.push({ name: `${base.subdir}/x`, body: 'f' }, { name: `${base.subdir}/x/`, type: 'directory' });
      const archive = type === 'zip' ? makeZip(entries) : makeTarGz(entries);
      const bytes = buildBundle({
        components: [{ kind: 'vex', type, repository: { ...base, archive } }],
      }).bytes;
      assert.equal(await refusedByBoth(bytes, `${type} x then x/`), 'BUNDLE_ENTRY_UNSAFE');
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

  for (const [at, value, what] of [
    [148, 0x20, 'a leading space instead of a zero'],
    [154, 0x01, 'another byte instead of the NUL after the digits'],
    [155, 0x21, 'another byte instead of the final space'],
    [155, 0x00, 'a NUL instead of the final space'],
  ] as const) {
    it(`a tar header checksum field with ${what} (the field the checksum cannot cover; node-tar reads it leniently)`, async () => {
      for (const path of [
        'manifest.json',
        `oci/blobs/sha256/${built.artifacts.get('db')!.layerDigest.slice(7)}`,
      ]) {
        const tar = Buffer.from(built.tar);
        const header = built.offsets.get(path)!.header;
        assert.notEqual(tar[header + at], value);
        tar[header + at] = value;
        assert.equal(await refusedByBoth(gzipBundle(tar), `${path}: ${what}`), 'BUNDLE_CORRUPT');
      }
    });
  }

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

describe("bytes no digest covers are checked in layers too: only the framing GNU tar, Go's archive/tar and gzip write", () => {
  const tar = makeTar(dbLayerEntries);
  const entryPadding = 512 + 2; // the byte after trivy.db's 2-byte body
  const refusedLayers: [string, Buffer][] = [
    [
      'non-zero junk after the end-of-archive marker',
      Buffer.concat([tar, Buffer.from('junk'), Buffer.alloc(508)]),
    ],
    [
      'zero padding beyond the tar record after the end-of-archive marker',
      Buffer.concat([tar, Buffer.alloc(10 * 1024)]),
    ],
    ['no end-of-archive marker', tar.subarray(0, tar.length - 1024)],
    ['half an end-of-archive marker', tar.subarray(0, tar.length - 512)],
    ['padding after the marker that is not whole blocks', Buffer.concat([tar, Buffer.alloc(100)])],
    [
      'a zero block between entries (Trivy would stop reading there)',
      Buffer.concat([tar.subarray(0, 1024), Buffer.alloc(512), tar.subarray(1024)]),
    ],
    [
      'a non-zero byte in the padding after an entry body',
      Buffer.concat([tar.subarray(0, entryPadding), Buffer.from('A'), tar.subarray(entryPadding + 1)]),
    ],
  ];
  for (const [what, layerTar] of refusedLayers) {
    it(what, async () => {
      const bytes = withArtifact('db', { layer: gzipSync(layerTar) });
      assert.equal(await refusedByBoth(bytes, what), 'BUNDLE_CORRUPT');
    });
  }

  for (const [what, after] of [
    ['NUL bytes after the gzip member (zlib skips them silently)', Buffer.alloc(64)],
    ['a NUL then junk after the gzip member', Buffer.from([0, 0x1f, 0x8b, 8])],
    ['junk after the gzip member', Buffer.from('junk')],
  ] as const) {
    it(what, async () => {
      const bytes = withArtifact('db', { layer: Buffer.concat([gzipSync(tar), after]) });
      assert.equal(await refusedByBoth(bytes, what), 'BUNDLE_CORRUPT');
    });
  }

  it('accepted as upstream writes them: Go (marker only), GNU tar (zeros up to the record), gzip members one after another', async () => {
    const gnu = Buffer.concat([tar, Buffer.alloc(10240 - tar.length)]);
    const layers = [
      gzipSync(tar),
      gzipSync(gnu, { level: 9 }),
      Buffer.concat([gzipSync(gnu.subarray(0, 1000)), gzipSync(gnu.subarray(1000))]),
    ];
    for (const layer of layers) {
      const result = await verifyBundle({
        bundle: writeBytes(work, withArtifact('db', { layer })),
        trustFiles: [pub],
      });
      assert.ok(result.checks.some((check) => check.check === 'layer-content' && check.subject === 'db'));
    }
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
