import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  makeTarGz,
  runNode,
  seedRegistryWithSkopeo,
  startRegistry,
  trivyArtifact,
  type ProcessRun,
  type TestRegistry,
} from '@trivy-airgap/test-utils';

/**
 * What adding a component kind costs a maintainer (issue 13): the kind's name in format's kind
 * list and its row in the component table, nothing else, for a kind fetched and installed like
 * the artifacts before it. The CLI is bundled (as scripts/build-single-file.mjs does) with exactly
 * those two edits applied to the built workspace — a hypothetical "SBOM DB" shaped like the Java
 * DB — and then exports, verifies, imports and reports it through its ordinary commands: the
 * flags, the per-kind steps, the unpack limits, the cache path, the doctor and the printed Trivy
 * command all come from the row. If code anywhere still spelled the kinds out, this kind would be
 * missing there and a step below would fail.
 */

const root = fileURLToPath(new URL('../../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'airgap-fifth-kind-'));
const cli = join(work, 'trivy-airgap-sbom.mjs');

/** The one edit in @trivy-airgap/format: the kind's name in THE list of kinds. */
const KIND_LIST = "OCI_COMPONENT_KINDS = ['db', 'java-db', 'checks']";
/** The one edit in @trivy-airgap/trivy: its row, inserted at the top of the table. */
const TABLE_START = 'export const COMPONENTS = {';
const ROW = `
  'sbom-db': {
    kind: 'sbom-db',
    label: 'SBOM DB',
    perRepository: false,
    layerMediaType: 'application/vnd.example.trivy.sbomdb.layer.v1.tar+gzip',
    title: 'sbomdb.tar.gz',
    cachePath: 'sbom-db',
    layerPath: '',
    metadataFile: 'metadata.json',
    metadataFormat: 'db',
    databaseFile: 'trivy-sbom.db',
    schemaVersion: 1,
    taglessTag: '1',
    repositoryFlag: '--sbom-db-repository',
    repositoryList: true,
    unpackLimits: { maxEntries: 4, maxBytes: 1024 * 1024 },
    repositoryOption: [{ from: 0, value: { flag: '--sbom-db-repository', key: 'db.sbom-repository' } }],
    repositoryName: 'trivy-sbom-db',
    repositories: [{ from: 0, value: ['registry.invalid/example/trivy-sbom-db:1'] }],
    alsoPublishedAt: [],
    offline: [{ from: 0, value: { flags: ['--skip-sbom-db-update'], config: { 'db.sbom-skip-update': true }, group: 'update' } }],
    status: { skipNeedsDatabaseFile: false, missing: 'warning', missingEffect: 'SBOM lookups fail offline', schemaMismatch: 'warning' },
  },`;

interface EsbuildPlugin {
  name: string;
  setup(build: {
    onLoad(
      options: { filter: RegExp },
      callback: (args: { path: string }) => Promise<{ contents: string; loader: 'js' }>,
    ): void;
  }): void;
}

/** Replaces `find` (which must occur exactly once) in the built file whose path matches. */
function patch(filter: RegExp, find: string, replace: string): EsbuildPlugin {
  return {
    name: `patch ${filter.source}`,
    setup(build) {
      build.onLoad({ filter }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const count = source.split(find).length - 1;
        if (count !== 1)
          throw new Error(`${args.path}: expected ${JSON.stringify(find)} once, found ${count}`);
        return { contents: source.replace(find, replace), loader: 'js' };
      });
    },
  };
}

function run(args: readonly string[]): Promise<ProcessRun> {
  return runNode(cli, args, {
    cwd: work,
    env: { ...process.env, NO_COLOR: '1', HOME: work, XDG_CONFIG_HOME: join(work, 'config') },
  });
}

const SBOM_MEDIA_TYPE = 'application/vnd.example.trivy.sbomdb.layer.v1.tar+gzip';
const database = Buffer.from('SQLite format 3\0 an SBOM database, as far as this test cares\n');
const metadata = Buffer.from(
  JSON.stringify({
    Version: 1,
    NextUpdate: '2026-12-03T00:00:00Z',
    UpdatedAt: '2026-11-29T00:00:00Z',
    DownloadedAt: '0001-01-01T00:00:00Z',
  }),
);
let registry: TestRegistry;

before(async () => {
  const { buildSingleFile } = (await import(join(root, 'scripts/build-single-file.mjs'))) as {
    buildSingleFile: (options: { outfile: string; plugins: EsbuildPlugin[] }) => Promise<void>;
  };
  await buildSingleFile({
    outfile: cli,
    plugins: [
      patch(/packages\/format\/dist\/src\/manifest\.js$/, KIND_LIST, `${KIND_LIST.slice(0, -1)}, 'sbom-db']`),
      patch(/packages\/trivy\/dist\/src\/components\.js$/, TABLE_START, `${TABLE_START}${ROW}`),
    ],
  });
  registry = await startRegistry({ mode: 'plain' });
  const artifact = (files: { name: string; body: Buffer }[]) =>
    trivyArtifact('java-db', { layer: makeTarGz(files), layerMediaType: SBOM_MEDIA_TYPE });
  await seedRegistryWithSkopeo(registry, {
    'example/trivy-sbom-db:1': artifact([
      { name: 'trivy-sbom.db', body: database },
      { name: 'metadata.json', body: metadata },
    ]),
    // One file more than the row's unpackLimits allow (4 entries).
    'example/trivy-sbom-db:too-many': artifact([
      { name: 'trivy-sbom.db', body: database },
      { name: 'metadata.json', body: metadata },
      ...['a', 'b', 'c'].map((name) => ({ name: `extra/${name}`, body: Buffer.from(name) })),
    ]),
  });
});

after(async () => {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
});

async function exportSbom(tag: string, output: string): Promise<ProcessRun> {
  return run([
    'export',
    '--sbom-db',
    '--sbom-db-repository',
    `${registry.host}/example/trivy-sbom-db:${tag}`,
    '--plain-http',
    '--unsigned',
    '--work-dir',
    join(work, 'export-work'),
    '-o',
    join(work, output),
  ]);
}

describe('a fifth component kind is a name in the kind list and a row in the table', () => {
  it('export --help offers the flags the row names', async () => {
    const help = await run(['export', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /--sbom-db\s+the SBOM DB/);
    assert.match(help.stdout, /--sbom-db-repository\s+SBOM DB repositories, in fallback order/);
  });

  it('export → verify → import installs it where the row says; status and the printed command know it', async () => {
    const exported = await exportSbom('1', 'sbom.tgz');
    assert.equal(exported.code, 0, exported.stderr);
    const bundle = join(work, 'sbom.tgz');
    const verified = await run(['verify', bundle, '--allow-unsigned', '--json']);
    assert.equal(verified.code, 0, verified.stderr);

    const cacheDir = join(work, 'cache');
    const imported = await run(['import', bundle, '--allow-unsigned', '--cache-dir', cacheDir]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.deepEqual(readFileSync(join(cacheDir, 'sbom-db', 'trivy-sbom.db')), database);
    const installed = JSON.parse(readFileSync(join(cacheDir, 'sbom-db', 'metadata.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(installed.Version, 1);
    assert.notEqual(installed.DownloadedAt, '0001-01-01T00:00:00Z', 'DownloadedAt is set at import');
    assert.match(imported.stdout + imported.stderr, /--skip-sbom-db-update/);

    const status = await run(['status', '--cache-dir', cacheDir, '--json']);
    const report = JSON.parse(status.stdout) as {
      diagnosis: { components: { kind: string; installed: boolean }[] };
      state: { components: Record<string, unknown> };
    };
    assert.deepEqual(
      report.diagnosis.components.filter((c) => c.kind === 'sbom-db').map((c) => c.installed),
      [true],
    );
    assert.ok('sbom-db' in report.state.components, 'recorded as installed by trivy-airgap');
  });

  it("the row's unpack limits apply: a layer with more entries is refused (exit 3), the cache unchanged", async () => {
    const exported = await exportSbom('too-many', 'too-many.tgz');
    assert.equal(exported.code, 0, exported.stderr);
    // A cache of its own: this test does not depend on the one before it.
    const cacheDir = join(work, 'cache-refused');
    const imported = await run([
      'import',
      join(work, 'too-many.tgz'),
      '--allow-unsigned',
      '--cache-dir',
      cacheDir,
    ]);
    assert.equal(imported.code, 3, imported.stderr);
    assert.equal(existsSync(cacheDir), false, 'a refused import leaves no cache dir behind');
  });
});
