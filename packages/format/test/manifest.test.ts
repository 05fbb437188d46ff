import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_BUNDLE_FILES,
  parseManifest,
  parseManifestBytes,
  serializeManifest,
  type FormatError,
} from '../src/index.js';
import { sampleManifest, vexArchive, vexManifest } from './sample-manifest.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as FormatError).code;
  }
  return 'no error';
}

describe('parseManifest', () => {
  it('round-trips a valid manifest through its exact bytes', () => {
    const manifest = sampleManifest();
    const bytes = serializeManifest(manifest);
    assert.deepEqual(parseManifestBytes(bytes), manifest);
  });

  it('ignores unknown extra fields', () => {
    const parsed = parseManifest({ ...sampleManifest(), futureField: { anything: true } });
    assert.equal(parsed.bundleId, sampleManifest().bundleId);
  });

  it('accepts an unsigned manifest (signer null)', () => {
    assert.equal(parseManifest({ ...sampleManifest(), signer: null }).signer, null);
  });

  it('reports every invalid field at once', () => {
    const bad = structuredClone(sampleManifest()) as unknown as Record<string, unknown>;
    bad.created = 'yesterday';
    bad.tool = { name: 'trivy-airgap' };
    (bad.files as Record<string, unknown>[])[0]!.path = '../escape';
    (bad.files as Record<string, unknown>[])[1]!.digest = 'sha256:XYZ';
    const db = (bad.components as Record<string, unknown>[])[0]!;
    (db.layer as Record<string, unknown>).size = -1;
    (bad.components as Record<string, unknown>[])[1]!.name = '../../etc';
    try {
      parseManifest(bad);
      assert.fail('expected MANIFEST_INVALID');
    } catch (error) {
      const formatError = error as FormatError;
      assert.equal(formatError.code, 'MANIFEST_INVALID');
      const fields = formatError.issues.map((issue) => issue.field);
      for (const field of [
        'created',
        'tool.version',
        'files[0].path',
        'files[1].digest',
        'components[0].layer.size',
        'components[1].name',
      ]) {
        assert.ok(fields.includes(field), `${field} missing from ${fields.join(', ')}`);
      }
      assert.match(formatError.message, /files\[0\]\.path/);
    }
  });

  it('refuses a manifest whose component blobs are not listed in files', () => {
    const manifest = sampleManifest();
    const error = (() => {
      try {
        parseManifest({ ...manifest, files: manifest.files.slice(1) });
      } catch (caught) {
        return caught as FormatError;
      }
      return undefined;
    })();
    assert.equal(error?.code, 'MANIFEST_INVALID');
    assert.ok(error.issues.some((issue) => issue.field === 'components[0].layer.digest'));
  });

  it('refuses duplicate file paths and reserved names', () => {
    const manifest = sampleManifest();
    const file = manifest.files[0]!;
    assert.equal(
      codeOf(() => parseManifest({ ...manifest, files: [...manifest.files, file] })),
      'MANIFEST_INVALID',
    );
    assert.equal(
      codeOf(() =>
        parseManifest({ ...manifest, files: [...manifest.files, { ...file, path: 'manifest.json.sig' }] }),
      ),
      'MANIFEST_INVALID',
    );
  });

  it('refuses a foreign media type and a future major version with distinct codes', () => {
    assert.equal(
      codeOf(() =>
        parseManifest({ ...sampleManifest(), mediaType: 'application/vnd.oci.image.manifest.v1+json' }),
      ),
      'MANIFEST_MEDIA_TYPE',
    );
    assert.equal(
      codeOf(() => parseManifest({ ...sampleManifest(), mediaType: undefined })),
      'MANIFEST_MEDIA_TYPE',
    );
    assert.equal(
      codeOf(() =>
        parseManifest({ ...sampleManifest(), mediaType: 'application/vnd.trivy-airgap.manifest.v2+json' }),
      ),
      'MANIFEST_UNSUPPORTED_VERSION',
    );
  });

  it('refuses non-JSON and oversized bytes', () => {
    assert.equal(
      codeOf(() => parseManifestBytes(Buffer.from('{not json'))),
      'MANIFEST_NOT_JSON',
    );
    assert.equal(
      codeOf(() => parseManifestBytes(Buffer.alloc(5 * 1024 * 1024, 0x20))),
      'MANIFEST_TOO_LARGE',
    );
    assert.equal(
      codeOf(() => parseManifest([])),
      'MANIFEST_INVALID',
    );
  });
});

/** The manifest with one edit applied to a deep copy; returns the MANIFEST_INVALID issue fields. */
function invalidFields(edit: (manifest: Record<string, unknown>) => void): string[] {
  const copy = structuredClone(sampleManifest()) as unknown as Record<string, unknown>;
  edit(copy);
  try {
    parseManifest(copy);
  } catch (error) {
    assert.equal((error as FormatError).code, 'MANIFEST_INVALID');
    return (error as FormatError).issues.map((issue) => issue.field);
  }
  return [];
}

const db = (manifest: Record<string, unknown>) => (manifest.components as Record<string, unknown>[])[0]!;
const vex = (manifest: Record<string, unknown>) => (manifest.components as Record<string, unknown>[])[1]!;

describe('parseManifest: every string that becomes part of a path or a URL is validated at parse time', () => {
  for (const specVersion of ['../../somewhere/x', '/abs/x', '0.1/../..', 'a/b', '..', '.', '', 'x\ny']) {
    it(`refuses VEX specVersion ${JSON.stringify(specVersion)} (a directory name under the repository)`, () => {
      assert.ok(
        invalidFields((m) => (vex(m).specVersion = specVersion)).includes('components[1].specVersion'),
      );
    });
  }

  for (const [field, value] of [
    ['subdir', '../up'],
    ['subdir', '/abs'],
    ['subdir', 'a?b'],
    ['subdir', 'a#b'],
    ['subdir', 'a b'],
    ['subdir', 'a%2fb'],
    ['name', '../x'],
    ['name', 'a/b'],
    ['manifestPath', '../vex-repository.json'],
    ['manifestPath', 'oci/blobs/sha256/abc'],
    ['archivePath', '/etc/passwd'],
    ['archivePath', 'oci/index.json'],
    ['url', 'file:///etc/passwd'],
    ['url', 'not a url'],
    ['location', 'javascript:alert(1)'],
    ['updatedAt', 'yesterday'],
    ['etag', '"x"\u001b[2J'],
  ] as const) {
    it(`refuses VEX ${field} ${JSON.stringify(value)}`, () => {
      assert.ok(invalidFields((m) => (vex(m)[field] = value)).includes(`components[1].${field}`));
    });
  }

  for (const [field, value] of [
    ['tag', '../2'],
    ['tag', '2/evil'],
    ['tag', '-2'],
    ['tag', 'x'.repeat(129)],
    ['layoutRef', '../db'],
    ['layoutRef', 'db/'],
    ['layoutRef', 'a b'],
    ['source', 'mirror.gcr.io/x\r\nerror: forged line'],
  ] as const) {
    it(`refuses OCI component ${field} ${JSON.stringify(value)}`, () => {
      assert.ok(invalidFields((m) => (db(m)[field] = value)).includes(`components[0].${field}`));
    });
  }

  for (const title of ['../db.tar.gz', 'a/db.tar.gz', '/db.tar.gz', '..']) {
    it(`refuses layer title ${JSON.stringify(title)} (Trivy names a file after it)`, () => {
      assert.ok(
        invalidFields((m) => ((db(m).layer as Record<string, unknown>).title = title)).includes(
          'components[0].layer.title',
        ),
      );
    });
  }

  for (const bundleId of ['../x', 'a/b', 'x'.repeat(200), 'id with space']) {
    it(`refuses bundleId ${JSON.stringify(bundleId.slice(0, 20))} (part of generation names)`, () => {
      assert.ok(invalidFields((m) => (m.bundleId = bundleId)).includes('bundleId'));
    });
  }

  it('refuses control and bidi characters in any string, annotations included', () => {
    assert.ok(invalidFields((m) => (m.trivyVersions = '>=0.69\u202e')).includes('trivyVersions'));
    assert.ok(
      invalidFields((m) => (db(m).annotations = { 'org.opencontainers.image.created': 'x\u0007' })).some(
        (field) => field.startsWith('components[0].annotations'),
      ),
    );
  });

  it('accepts what the exporter writes: UUID ids, tags 2/1/latest, ref names, subdirs like vexhub-main', () => {
    for (const tag of ['2', '1', 'latest', 'v2.1_rc-1']) {
      assert.deepEqual(
        invalidFields((m) => (db(m).tag = tag)),
        [],
      );
    }
    for (const ref of ['db', 'java-db', 'mirror.gcr.io/aquasec/trivy-db:2', 'a--b']) {
      assert.deepEqual(
        invalidFields((m) => (db(m).layoutRef = ref)),
        [],
      );
    }
    for (const subdir of ['', 'vexhub-main', 'top/inner', 'repo-v1.2+build@x']) {
      assert.deepEqual(
        invalidFields((m) => (vex(m).subdir = subdir)),
        [],
      );
    }
  });
});

describe('parseManifest: one bundle path serves one role', () => {
  it('refuses a layer blob shared by two OCI components', () => {
    const fields = invalidFields((m) => {
      const javaDb = structuredClone(db(m));
      javaDb.kind = 'java-db';
      (m.components as unknown[]).push(javaDb);
    });
    assert.ok(fields.includes('components[2].layer.digest'), fields.join(', '));
  });

  it('refuses two VEX repositories on one archive', () => {
    const fields = invalidFields((m) => {
      const second = structuredClone(vex(m));
      second.name = 'second';
      second.manifestPath = 'vex/second/vex-repository.json';
      (m.files as unknown[]).push({
        path: 'vex/second/vex-repository.json',
        size: 12,
        digest: vexManifest,
      });
      (m.components as unknown[]).push(second);
    });
    assert.ok(fields.includes('components[2].archivePath'), fields.join(', '));
  });

  it('refuses a VEX manifest path equal to its own archive path', () => {
    const fields = invalidFields((m) => (vex(m).manifestPath = vex(m).archivePath));
    assert.ok(fields.includes('components[1].archivePath'), fields.join(', '));
  });

  it('refuses VEX names that differ only by case (one directory on case-insensitive file systems)', () => {
    const fields = invalidFields((m) => {
      const second = structuredClone(vex(m));
      second.name = 'Default';
      second.manifestPath = 'vex/x/vex-repository.json';
      second.archivePath = 'vex/x/archive.tar.gz';
      (m.files as unknown[]).push(
        { path: 'vex/x/vex-repository.json', size: 12, digest: vexManifest },
        { path: 'vex/x/archive.tar.gz', size: 11, digest: vexArchive },
      );
      (m.components as unknown[]).push(second);
    });
    assert.ok(fields.includes('components[2].name'), fields.join(', '));
  });
});

describe('parseManifest: bounded', () => {
  it('refuses a manifest listing more entries than a bundle may hold (MAX_BUNDLE_FILES)', () => {
    const manifest = sampleManifest();
    const file = manifest.files[0]!;
    const files = Array.from({ length: MAX_BUNDLE_FILES + 1 }, (_, i) => ({ ...file, path: `other/${i}` }));
    assert.equal(
      codeOf(() => parseManifest({ ...manifest, files: [...manifest.files, ...files] })),
      'MANIFEST_INVALID',
    );
  });
});
