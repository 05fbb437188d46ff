import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trivyArtifact } from '@trivy-airgap/test-utils';
import {
  ARTIFACTS,
  checkArtifactManifest,
  checksMajorVersion,
  defaultSources,
  normalizeRepository,
} from '../src/index.js';
import { lowestTrivyVersion } from '../src/artifacts.js';
import { artifactCachePaths } from '../src/components.js';
import { throwsCode } from './helpers.js';

describe('artifact facts (trivy-facts: "The three OCI artifacts" table)', () => {
  it('layer media types, titles, cache paths and schema/major per kind', () => {
    assert.equal(ARTIFACTS.db.layerMediaType, 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip');
    assert.equal(
      ARTIFACTS['java-db'].layerMediaType,
      'application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip',
    );
    assert.equal(ARTIFACTS.checks.layerMediaType, 'application/vnd.cncf.openpolicyagent.layer.v1.tar+gzip');
    assert.deepEqual(
      [ARTIFACTS.db.title, ARTIFACTS['java-db'].title, ARTIFACTS.checks.title],
      ['db.tar.gz', 'javadb.tar.gz', 'bundle.tar.gz'],
    );
    assert.deepEqual(artifactCachePaths('db'), { content: 'db/trivy.db', metadata: 'db/metadata.json' });
    assert.deepEqual(artifactCachePaths('java-db'), {
      content: 'java-db/trivy-java.db',
      metadata: 'java-db/metadata.json',
    });
    assert.deepEqual(artifactCachePaths('checks'), {
      content: 'policy/content',
      metadata: 'policy/metadata.json',
    });
    assert.deepEqual(
      [ARTIFACTS.db.schemaVersion, ARTIFACTS['java-db'].schemaVersion, ARTIFACTS.checks.schemaVersion],
      [2, 1, 2],
    );
  });
});

describe('defaultSources (trivy-facts: checks tag history; ghcr.io-only DBs before 0.58; trivy-policies before 0.51)', () => {
  const MIRRORS_DB = ['mirror.gcr.io/aquasec/trivy-db:2', 'ghcr.io/aquasecurity/trivy-db:2'];
  const MIRRORS_JAVA = ['mirror.gcr.io/aquasec/trivy-java-db:1', 'ghcr.io/aquasecurity/trivy-java-db:1'];
  const GHCR_DB = ['ghcr.io/aquasecurity/trivy-db:2'];
  const GHCR_JAVA = ['ghcr.io/aquasecurity/trivy-java-db:1'];
  // version, range recorded in the bundle, db, java-db, checks, VEX repositories usable
  const table: [string | undefined, string, string[], string[], string, boolean][] = [
    [undefined, '>=0.69.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:2', true],
    ['0.76.0', '>=0.69.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:2', true],
    ['0.69.0', '>=0.69.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:2', true],
    ['1.0.0', '>=0.69.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:2', true],
    ['0.68.2', '>=0.63.0 <0.69.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:1', true],
    ['0.63.0', '>=0.63.0 <0.69.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:1', true],
    ['0.62.1', '>=0.58.0 <0.63.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:1', true],
    ['v0.58.0', '>=0.58.0 <0.63.0', MIRRORS_DB, MIRRORS_JAVA, 'mirror.gcr.io/aquasec/trivy-checks:1', true],
    ['0.57.1', '>=0.56.0 <0.58.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-checks:1', true],
    ['0.56', '>=0.56.0 <0.58.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-checks:1', true],
    ['0.55.2', '>=0.54.0 <0.56.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-checks:0', true],
    ['0.54.0', '>=0.54.0 <0.56.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-checks:0', true],
    ['0.53.0', '>=0.51.0 <0.54.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-checks:0', false],
    ['0.51.0', '>=0.51.0 <0.54.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-checks:0', false],
    ['0.50.4', '<0.51.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-policies:0', false],
    ['0.45.0-rc1', '<0.51.0', GHCR_DB, GHCR_JAVA, 'ghcr.io/aquasecurity/trivy-policies:0', false],
  ];
  for (const [version, range, db, javaDb, checks, vex] of table) {
    it(`Trivy ${version ?? '(latest)'} → ${range}: ${checks}${vex ? '' : ', no VEX repositories'}`, () => {
      const sources = defaultSources(version);
      assert.equal(sources.trivyVersions, range);
      assert.deepEqual(sources.db, db);
      assert.deepEqual(sources['java-db'], javaDb);
      assert.deepEqual(sources.checks, [checks]);
      assert.deepEqual(
        sources.vex,
        vex ? [{ name: 'default', url: 'https://github.com/aquasecurity/vexhub' }] : [],
      );
      // The range a bundle records names the release row it was made for.
      assert.deepEqual(defaultSources(version === undefined ? undefined : version), sources);
    });
  }
  for (const bad of ['latest', '', '0', 'x.y.z', '0.57.1.2']) {
    it(`refuses --trivy-version ${JSON.stringify(bad)} with TRIVY_VERSION_INVALID`, () => {
      throwsCode(() => defaultSources(bad), 'TRIVY_VERSION_INVALID');
    });
  }
});

describe('lowestTrivyVersion (a release, or a bundle manifest range → its oldest release)', () => {
  const table: [string, [number, number, number]][] = [
    ['0.57.1', [0, 57, 1]],
    ['v0.58', [0, 58, 0]],
    ['>=0.69.0', [0, 69, 0]],
    ['>=0.58.0 <0.63.0', [0, 58, 0]],
    ['<0.51.0', [0, 0, 0]],
  ];
  for (const [target, [major, minor, patch]] of table) {
    it(`${target} → ${major}.${minor}.${patch}`, () => {
      assert.deepEqual(lowestTrivyVersion(target), { major, minor, patch });
    });
  }
  it('refuses a range with a clause that is not a version', () => {
    throwsCode(() => lowestTrivyVersion('>=latest'), 'TRIVY_VERSION_INVALID');
  });
});

describe('normalizeRepository (trivy-facts: a tagless repo flag gets :2 / :1 / :latest)', () => {
  const table: [Parameters<typeof normalizeRepository>[0], string, string][] = [
    ['db', 'internal.example/trivy-db', 'internal.example/trivy-db:2'],
    ['java-db', 'internal.example/trivy-java-db', 'internal.example/trivy-java-db:1'],
    ['checks', 'internal.example/trivy-checks', 'internal.example/trivy-checks:latest'],
    ['db', 'localhost:5000/aquasec/trivy-db', 'localhost:5000/aquasec/trivy-db:2'],
    ['db', 'localhost:5000/aquasec/trivy-db:nightly', 'localhost:5000/aquasec/trivy-db:nightly'],
    ['checks', 'ghcr.io/aquasecurity/trivy-checks:1', 'ghcr.io/aquasecurity/trivy-checks:1'],
    [
      'db',
      `internal.example/trivy-db@sha256:${'a'.repeat(64)}`,
      `internal.example/trivy-db@sha256:${'a'.repeat(64)}`,
    ],
  ];
  for (const [kind, input, expected] of table) {
    it(`${kind}: ${input} → ${expected}`, () => assert.equal(normalizeRepository(kind, input), expected));
  }
  // Trivy 0.50 and older appended the DB schema tag only when the string had no ':' at all
  // (pkg/db NewClient, pkg/javadb); 0.51 parses the reference. Checks always get :latest.
  const legacy: [Parameters<typeof normalizeRepository>[0], string, string, string][] = [
    ['db', 'localhost:5000/aquasec/trivy-db', '0.50.4', 'localhost:5000/aquasec/trivy-db:latest'],
    ['java-db', 'localhost:5000/trivy-java-db', '<0.51.0', 'localhost:5000/trivy-java-db:latest'],
    ['db', 'internal.example/trivy-db', '0.50.4', 'internal.example/trivy-db:2'],
    ['db', 'localhost:5000/aquasec/trivy-db', '0.51.0', 'localhost:5000/aquasec/trivy-db:2'],
    ['db', 'localhost:5000/aquasec/trivy-db', '>=0.51.0 <0.54.0', 'localhost:5000/aquasec/trivy-db:2'],
    ['checks', 'localhost:5000/trivy-checks', '0.50.4', 'localhost:5000/trivy-checks:latest'],
  ];
  for (const [kind, input, version, expected] of legacy) {
    it(`Trivy ${version}, ${kind}: ${input} → ${expected}`, () =>
      assert.equal(normalizeRepository(kind, input, version), expected));
  }
  it('refuses an empty reference', () => {
    throwsCode(() => normalizeRepository('db', ' '), 'REPOSITORY_INVALID');
  });
});

describe('checkArtifactManifest (trivy-facts: one layer, exact mediaType, title annotation)', () => {
  for (const kind of ['db', 'java-db', 'checks'] as const) {
    it(`accepts a ${kind} artifact as published and returns its layer and title`, () => {
      const artifact = trivyArtifact(kind);
      const checked = checkArtifactManifest(kind, artifact.manifest);
      assert.equal(checked.layer.digest, artifact.layerDigest);
      assert.equal(checked.layer.size, artifact.layer.length);
      assert.equal(checked.layer.mediaType, ARTIFACTS[kind].layerMediaType);
      assert.equal(checked.title, ARTIFACTS[kind].title);
      assert.equal(checked.annotations['org.opencontainers.image.created'], '2026-11-25T06:20:00Z');
      assert.equal(checked.version, kind === 'checks' ? '2.2.0' : undefined);
    });
  }
  it('ignores the config and artifactType (legacy trivy config media type accepted)', () => {
    const artifact = trivyArtifact('db', { legacyConfig: true });
    assert.equal(checkArtifactManifest('db', artifact.manifest).title, 'db.tar.gz');
  });
  it('refuses two layers with ARTIFACT_LAYER_COUNT', () => {
    const error = throwsCode(
      () => checkArtifactManifest('db', trivyArtifact('db', { extraLayer: true }).manifest),
      'ARTIFACT_LAYER_COUNT',
    );
    assert.equal(error.context.found, 2);
  });
  it('refuses zero layers with ARTIFACT_LAYER_COUNT', () => {
    throwsCode(() => checkArtifactManifest('db', '{"schemaVersion":2,"layers":[]}'), 'ARTIFACT_LAYER_COUNT');
  });
  it('refuses the wrong layer mediaType with ARTIFACT_MEDIA_TYPE (a db layer offered as java-db)', () => {
    const error = throwsCode(
      () => checkArtifactManifest('java-db', trivyArtifact('db').manifest),
      'ARTIFACT_MEDIA_TYPE',
    );
    assert.equal(error.context.found, ARTIFACTS.db.layerMediaType);
  });
  it('refuses a generic tar+gzip layer with ARTIFACT_MEDIA_TYPE', () => {
    const manifest = trivyArtifact('checks', {
      layerMediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    }).manifest;
    throwsCode(() => checkArtifactManifest('checks', manifest), 'ARTIFACT_MEDIA_TYPE');
  });
  it('refuses a layer without the title annotation with ARTIFACT_TITLE_MISSING', () => {
    throwsCode(
      () => checkArtifactManifest('db', trivyArtifact('db', { omitTitle: true }).manifest),
      'ARTIFACT_TITLE_MISSING',
    );
  });
  it('refuses non-JSON and malformed descriptors with ARTIFACT_MANIFEST_INVALID', () => {
    throwsCode(() => checkArtifactManifest('db', 'not json'), 'ARTIFACT_MANIFEST_INVALID');
    throwsCode(() => checkArtifactManifest('db', '[]'), 'ARTIFACT_MANIFEST_INVALID');
    throwsCode(
      () =>
        checkArtifactManifest(
          'db',
          JSON.stringify({
            layers: [{ mediaType: ARTIFACTS.db.layerMediaType, digest: 'sha256:../x', size: 1 }],
          }),
        ),
      'ARTIFACT_MANIFEST_INVALID',
    );
  });
});

describe('checksMajorVersion (trivy-facts: semver major → MajorVersion; else 0 + CustomBuild)', () => {
  const table: [string | undefined, { MajorVersion: number; CustomBuild?: true }][] = [
    ['2.2.0', { MajorVersion: 2 }],
    ['1.12.3', { MajorVersion: 1 }],
    ['v2.0.0', { MajorVersion: 2 }],
    ['2.0.0-rc.1', { MajorVersion: 2 }],
    ['0.9.0', { MajorVersion: 0 }],
    [undefined, { MajorVersion: 0, CustomBuild: true }],
    ['', { MajorVersion: 0, CustomBuild: true }],
    ['latest', { MajorVersion: 0, CustomBuild: true }],
    ['2.2', { MajorVersion: 0, CustomBuild: true }],
  ];
  for (const [annotation, expected] of table) {
    it(`${JSON.stringify(annotation)} → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(checksMajorVersion(annotation), expected);
    });
  }
});
