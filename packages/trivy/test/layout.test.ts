import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { isVexRepositoryName, parseDigest } from '@trivy-airgap/format';
import { ARTIFACTS, type ArtifactKind } from '../src/artifacts.js';
import { diagnoseCache, type ComponentDiagnosis } from '../src/doctor.js';
import { COMPONENTS, COMPONENT_KINDS, artifactCachePaths, componentCachePath } from '../src/components.js';
import { renderDbMetadata, renderPolicyMetadata, renderVexCacheJson } from '../src/render.js';
import { mergeRepositoryYaml } from '../src/repository-yaml.js';

const root = mkdtempSync(join(tmpdir(), 'trivy-layout-'));
after(() => rmSync(root, { recursive: true, force: true }));

const NOW = new Date('2026-11-25T12:00:00Z');
const DOWNLOADED = new Date('2026-11-25T07:00:00Z');
/** Each kind's directory as the table gives it (a VEX kind's: the parent of its repositories). */
const LAYOUT_DIR = Object.fromEntries(
  COMPONENT_KINDS.map((kind) => [kind, COMPONENTS[kind].cachePath]),
) as Record<ArtifactKind | 'vex', string>;
/** Trivy's scan cache (trivy-facts.md, "Cache directory"): nothing of ours may touch it. */
const SCAN_CACHE = 'fanal';
const VEX_FILES = COMPONENTS.vex.files;
const checks = ARTIFACTS.checks;

function write(path: string, body: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body);
}

function dbMetadata(version: number): Buffer {
  return renderDbMetadata(
    {
      Version: version,
      NextUpdate: '2026-11-26T06:00:00Z',
      UpdatedAt: '2026-11-25T06:00:00Z',
      DownloadedAt: '0001-01-01T00:00:00Z',
    },
    DOWNLOADED,
  );
}

/** A cache written only from the table's names (no path spelled out here), like an installer would. */
function cacheFromLayout(name: string): { cacheDir: string; vexConfigPath: string } {
  const cacheDir = join(root, name);
  for (const kind of ['db', 'java-db'] as const) {
    const dir = join(cacheDir, LAYOUT_DIR[kind]);
    write(join(dir, ARTIFACTS[kind].databaseFile!), 'database bytes');
    write(join(dir, 'metadata.json'), dbMetadata(ARTIFACTS[kind].schemaVersion));
  }
  write(join(cacheDir, checks.cachePath, checks.layerPath, 'policies', 'docker', 'root.rego'), 'package x');
  write(
    join(cacheDir, checks.cachePath, checks.metadataFile),
    renderPolicyMetadata({
      digest: parseDigest(`sha256:${'ab'.repeat(32)}`),
      downloadedAt: DOWNLOADED,
      version: { MajorVersion: ARTIFACTS.checks.schemaVersion },
    }),
  );
  const repo = join(cacheDir, componentCachePath('vex', 'default'));
  write(join(repo, VEX_FILES.manifest), '{}');
  write(join(repo, VEX_FILES.cacheJson), renderVexCacheJson({ updatedAt: DOWNLOADED, etags: {} }));
  write(
    join(repo, VEX_FILES.index),
    JSON.stringify({
      updated_at: '2026-11-25T01:00:00Z',
      packages: [{ id: 'pkg:golang/a', location: 'a.json' }],
    }),
  );
  write(join(repo, VEX_FILES.content, 'a.json'), '{}');
  const vexConfigPath = join(root, `${name}-repository.yaml`);
  write(
    vexConfigPath,
    mergeRepositoryYaml(undefined, [{ name: 'default', url: 'https://example.invalid/vex' }]),
  );
  return { cacheDir, vexConfigPath };
}

function under(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

describe('cache layout (trivy-facts: subdirectories and the VEX cache layout)', () => {
  it("a cache written from the layout's names is what Trivy's offline checks (the doctor) accept", async () => {
    const { cacheDir, vexConfigPath } = cacheFromLayout('complete');
    const diagnosis = await diagnoseCache(cacheDir, { vexConfigPath, now: NOW });
    assert.equal(diagnosis.verdict, 'ok', JSON.stringify(diagnosis, null, 2));
    const kinds = diagnosis.components.map((c: ComponentDiagnosis) => c.kind);
    assert.deepEqual(kinds, ['db', 'java-db', 'checks', 'vex']);
    for (const component of diagnosis.components) {
      assert.ok(component.installed, `${component.kind} installed`);
      // Every file the doctor reads lies in the directory the layout gives its component.
      for (const path of component.paths) {
        assert.ok(under(join(cacheDir, LAYOUT_DIR[component.kind]), path), `${component.kind}: ${path}`);
      }
    }
  });

  it('each artifact fact names cache paths inside its layout directory, never the scan cache', () => {
    for (const kind of ['db', 'java-db', 'checks'] as const) {
      for (const path of Object.values(artifactCachePaths(kind))) {
        assert.ok(under(LAYOUT_DIR[kind], path), `${kind}: ${path}`);
        assert.ok(!under(SCAN_CACHE, path), `${kind} must not touch ${SCAN_CACHE}/`);
      }
    }
  });

  it('a component moved out of its layout directory is not found', async () => {
    const { cacheDir, vexConfigPath } = cacheFromLayout('moved');
    // The same files one level off: <cache>/elsewhere/db/, <cache>/elsewhere/java-db/.
    const moved = join(cacheDir, 'elsewhere');
    mkdirSync(moved);
    for (const dir of [LAYOUT_DIR.db, LAYOUT_DIR['java-db']])
      renameSync(join(cacheDir, dir), join(moved, dir));
    const diagnosis = await diagnoseCache(cacheDir, { vexConfigPath, now: NOW });
    for (const kind of ['db', 'java-db']) {
      const component = diagnosis.components.find((c) => c.kind === kind);
      assert.equal(component?.installed, false, kind);
    }
    assert.equal(diagnosis.verdict, 'fail');
  });

  it('a VEX repository name the manifest rules accept is exactly one directory below vex/repositories', () => {
    const cacheDir = join(root, 'names');
    const repositories = join(cacheDir, LAYOUT_DIR.vex);
    for (const name of ['..', '.', '../x', 'a/b', 'a\\b', '', '.hidden', '/abs', 'a\0b', 'x/../..']) {
      assert.equal(isVexRepositoryName(name), false, JSON.stringify(name));
    }
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9._\\/-]{0,12}$/)), (name) => {
        if (!isVexRepositoryName(name)) return true;
        const dir = join(cacheDir, componentCachePath('vex', name));
        // Accepted: exactly one path segment, the name itself, directly below vex/repositories.
        return (
          dirname(dir) === repositories &&
          basename(dir) === name &&
          !name.includes(sep) &&
          !name.startsWith('.')
        );
      }),
      { numRuns: 500 },
    );
  });
});
