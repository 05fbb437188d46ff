import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDigest } from '@trivy-airgap/format';
import {
  diagnoseCache,
  offlineComponents,
  mergeRepositoryYaml,
  renderDbMetadata,
  renderPolicyMetadata,
  renderVexCacheJson,
  type CacheDiagnosis,
  type ComponentDiagnosis,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'trivy-doctor-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

const NOW = new Date('2026-11-25T12:00:00Z');
const UPDATED = '2026-11-25T06:00:00Z';
const DIGEST = parseDigest(`sha256:${'ab'.repeat(32)}`);

function write(path: string, body: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body);
}

function dbMetadata(version: number, downloadedAt = new Date('2026-11-25T07:00:00Z')): Buffer {
  return renderDbMetadata(
    {
      Version: version,
      NextUpdate: '2026-11-26T06:00:00Z',
      UpdatedAt: UPDATED,
      DownloadedAt: '0001-01-01T00:00:00Z',
    },
    downloadedAt,
  );
}

/** A cache laid out the way the importer installs it (trivy-facts: cache paths), plus repository.yaml. */
function healthyCache(): { cacheDir: string; vexConfigPath: string } {
  counter += 1;
  const cacheDir = join(root, `cache-${counter}`);
  write(join(cacheDir, 'db', 'trivy.db'), 'bbolt');
  write(join(cacheDir, 'db', 'metadata.json'), dbMetadata(2));
  write(join(cacheDir, 'java-db', 'trivy-java.db'), 'sqlite');
  write(join(cacheDir, 'java-db', 'metadata.json'), dbMetadata(1));
  write(join(cacheDir, 'policy', 'content', 'policies', 'docker', 'root.rego'), 'package x');
  write(join(cacheDir, 'policy', 'content', 'specs', 'compliance', 'cis.yaml'), 'spec: {}');
  write(
    join(cacheDir, 'policy', 'metadata.json'),
    renderPolicyMetadata({
      digest: DIGEST,
      downloadedAt: new Date('2026-11-25T07:00:00Z'),
      version: { MajorVersion: 2 },
    }),
  );
  const repo = join(cacheDir, 'vex', 'repositories', 'default');
  write(join(repo, 'vex-repository.json'), '{}');
  write(
    join(repo, 'cache.json'),
    renderVexCacheJson({ updatedAt: new Date('2026-11-25T07:00:00Z'), etags: {} }),
  );
  write(
    join(repo, '0.1', 'index.json'),
    JSON.stringify({
      updated_at: '2026-11-25T01:00:00Z',
      packages: [{ id: 'pkg:golang/a', location: 'pkg/a.json' }],
    }),
  );
  write(join(repo, '0.1', 'pkg', 'a.json'), '{}');
  const vexConfigPath = join(root, `vex-${counter}`, 'repository.yaml');
  write(
    vexConfigPath,
    mergeRepositoryYaml(undefined, [{ name: 'default', url: 'https://github.com/aquasecurity/vexhub' }]),
  );
  return { cacheDir, vexConfigPath };
}

function component(diagnosis: CacheDiagnosis, kind: string, name?: string): ComponentDiagnosis {
  const found = diagnosis.components.find((c) => c.kind === kind && (name === undefined || c.name === name));
  assert.ok(found, `no ${kind} component`);
  return found;
}

describe('diagnoseCache replays Trivy offline rules (trivy-facts.md)', () => {
  it('a complete cache: every component ok with the offline flags', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    const diagnosis = await diagnoseCache(cacheDir, { vexConfigPath, now: NOW });
    assert.equal(diagnosis.verdict, 'ok', JSON.stringify(diagnosis, null, 2));
    const db = component(diagnosis, 'db');
    assert.equal(db.summary, '--skip-db-update will work');
    assert.equal(db.version, 2);
    assert.equal(db.updatedAt, UPDATED);
    assert.equal(db.ageMs, 6 * 3_600_000);
    assert.equal(db.downloadedAt, '2026-11-25T07:00:00Z');
    assert.equal(component(diagnosis, 'java-db').verdict, 'ok');
    const checks = component(diagnosis, 'checks');
    assert.equal(checks.verdict, 'ok');
    assert.equal(checks.version, 2);
    assert.equal(checks.digest, DIGEST);
    const vex = component(diagnosis, 'vex', 'default');
    assert.equal(vex.verdict, 'ok');
    assert.equal(vex.updatedAt, '2026-11-25T01:00:00Z');
    assert.deepEqual(vex.flags, ['--vex', 'repo', '--skip-vex-repo-update']);
  });

  it('db: missing files → fail ("--skip-db-update cannot be specified on the first run")', async () => {
    const { cacheDir } = healthyCache();
    rmSync(join(cacheDir, 'db', 'trivy.db'));
    const db = component(await diagnoseCache(cacheDir, { now: NOW }), 'db');
    assert.equal(db.verdict, 'fail');
    assert.match(db.summary, /first run/);
  });

  it('db: metadata.json Version 1 < 2 → fail (old schema)', async () => {
    const { cacheDir } = healthyCache();
    write(join(cacheDir, 'db', 'metadata.json'), dbMetadata(1));
    const db = component(await diagnoseCache(cacheDir, { now: NOW }), 'db');
    assert.equal(db.verdict, 'fail');
    assert.match(db.summary, /Version 1 < 2 \(old schema\)/);
  });

  it("db: metadata.json Version 3 > 2 → fail (schema doesn't match: Trivy too old)", async () => {
    const { cacheDir } = healthyCache();
    write(join(cacheDir, 'db', 'metadata.json'), dbMetadata(3));
    const diagnosis = await diagnoseCache(cacheDir, { now: NOW });
    assert.match(component(diagnosis, 'db').summary, /doesn't match/);
    assert.equal(diagnosis.verdict, 'fail');
  });

  it('db: unparseable metadata.json → fail', async () => {
    const { cacheDir } = healthyCache();
    write(join(cacheDir, 'db', 'metadata.json'), '{"Version":2,');
    assert.equal(component(await diagnoseCache(cacheDir, { now: NOW }), 'db').verdict, 'fail');
  });

  it('db: zero DownloadedAt is reported (without the skip flag Trivy says "may be corrupted")', async () => {
    const { cacheDir } = healthyCache();
    write(
      join(cacheDir, 'db', 'metadata.json'),
      `{"Version":2,"NextUpdate":"2026-11-26T06:00:00Z","UpdatedAt":"${UPDATED}","DownloadedAt":"0001-01-01T00:00:00Z"}`,
    );
    const db = component(await diagnoseCache(cacheDir, { now: NOW }), 'db');
    assert.equal(db.verdict, 'ok', 'dates are ignored with --skip-db-update');
    assert.ok(db.reasons.some((reason) => reason.includes('may be corrupted')));
  });

  it('db: past NextUpdate is reported (without the skip flag an offline download is fatal)', async () => {
    const { cacheDir } = healthyCache();
    const later = new Date('2026-11-28T00:00:00Z');
    const db = component(await diagnoseCache(cacheDir, { now: later }), 'db');
    assert.equal(db.verdict, 'ok');
    assert.ok(db.reasons.some((reason) => reason.includes('fatal offline')));
  });

  it('java-db: only metadata.json is checked with the skip flag; missing trivy-java.db → warning', async () => {
    const { cacheDir } = healthyCache();
    rmSync(join(cacheDir, 'java-db', 'trivy-java.db'));
    const javaDb = component(await diagnoseCache(cacheDir, { now: NOW }), 'java-db');
    assert.equal(javaDb.verdict, 'warning');
    assert.match(javaDb.summary, /JAR/);
  });

  it('java-db: invalid JSON in metadata.json is fatal even with --skip-java-db-update', async () => {
    const { cacheDir } = healthyCache();
    write(join(cacheDir, 'java-db', 'metadata.json'), 'not json');
    assert.equal(component(await diagnoseCache(cacheDir, { now: NOW }), 'java-db').verdict, 'fail');
  });

  it('checks: an EMPTY policy/content means zero checks run → fail', async () => {
    const { cacheDir } = healthyCache();
    rmSync(join(cacheDir, 'policy', 'content'), { recursive: true });
    mkdirSync(join(cacheDir, 'policy', 'content'));
    const checks = component(await diagnoseCache(cacheDir, { now: NOW }), 'checks');
    assert.equal(checks.verdict, 'fail');
    assert.match(checks.summary, /ZERO checks/);
  });

  it('checks: metadata without MajorVersion (Trivy ≤ 0.68) → warning, re-download without the skip flag', async () => {
    const { cacheDir } = healthyCache();
    write(
      join(cacheDir, 'policy', 'metadata.json'),
      `{"Digest":"${DIGEST}","DownloadedAt":"2026-11-25T07:00:00Z"}`,
    );
    const checks = component(await diagnoseCache(cacheDir, { now: NOW }), 'checks');
    assert.equal(checks.verdict, 'warning');
    assert.ok(checks.reasons.some((reason) => reason.includes('re-downloads')));
  });

  it('checks: not installed → warning, Trivy uses its embedded checks', async () => {
    const { cacheDir } = healthyCache();
    rmSync(join(cacheDir, 'policy'), { recursive: true });
    const checks = component(await diagnoseCache(cacheDir, { now: NOW }), 'checks');
    assert.equal(checks.present, false);
    assert.match(checks.summary, /embedded/);
  });

  it('vex: a repository directory reached through a symlink (an installer generation) is diagnosed', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    const repo = join(cacheDir, 'vex', 'repositories', 'default');
    const generation = join(cacheDir, 'generation-of-default');
    renameSync(repo, generation);
    symlinkSync(generation, repo);
    const vex = component(await diagnoseCache(cacheDir, { vexConfigPath, now: NOW }), 'vex', 'default');
    assert.equal(vex.verdict, 'ok');
    assert.equal(vex.updatedAt, '2026-11-25T01:00:00Z');
  });

  it('vex: cached but disabled in repository.yaml → warning (--vex repo ignores it)', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    write(
      vexConfigPath,
      'repositories:\n  - name: default\n    url: https://github.com/aquasecurity/vexhub\n    enabled: false\n',
    );
    const vex = component(await diagnoseCache(cacheDir, { vexConfigPath, now: NOW }), 'vex', 'default');
    assert.equal(vex.verdict, 'warning');
    assert.match(vex.summary, /disabled/);
  });

  it('vex: 0.1/index.json missing → fail', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    rmSync(join(cacheDir, 'vex', 'repositories', 'default', '0.1'), { recursive: true });
    const vex = component(await diagnoseCache(cacheDir, { vexConfigPath, now: NOW }), 'vex', 'default');
    assert.equal(vex.verdict, 'fail');
    assert.match(vex.summary, /index\.json/);
  });

  it('vex: a document listed in index.json is missing → fail', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    rmSync(join(cacheDir, 'vex', 'repositories', 'default', '0.1', 'pkg', 'a.json'));
    assert.equal(
      component(await diagnoseCache(cacheDir, { vexConfigPath, now: NOW }), 'vex', 'default').verdict,
      'fail',
    );
  });

  it('vex: invalid repository.yaml → fail', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    write(vexConfigPath, 'repositories: [unclosed\n');
    const diagnosis = await diagnoseCache(cacheDir, { vexConfigPath, now: NOW });
    assert.equal(component(diagnosis, 'vex').verdict, 'fail');
  });

  it('checks and VEX without the DB → fail overall: no scan runs offline without the vulnerability DB', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    rmSync(join(cacheDir, 'db'), { recursive: true });
    rmSync(join(cacheDir, 'java-db'), { recursive: true });
    const diagnosis = await diagnoseCache(cacheDir, { vexConfigPath, now: NOW });
    assert.equal(component(diagnosis, 'checks').verdict, 'ok');
    assert.equal(diagnosis.verdict, 'fail');
    assert.deepEqual(offlineComponents(diagnosis), ['checks', 'vex']);
  });

  it('offlineComponents: what the skip flags need is there (an empty policy/content and a disabled VEX repository are not)', async () => {
    const { cacheDir, vexConfigPath } = healthyCache();
    assert.deepEqual(offlineComponents(await diagnoseCache(cacheDir, { vexConfigPath, now: NOW })), [
      'db',
      'java-db',
      'checks',
      'vex',
    ]);
    rmSync(join(cacheDir, 'policy', 'content'), { recursive: true });
    mkdirSync(join(cacheDir, 'policy', 'content'));
    rmSync(join(cacheDir, 'java-db', 'metadata.json'));
    write(
      vexConfigPath,
      'repositories:\n  - name: default\n    url: https://github.com/aquasecurity/vexhub\n    enabled: false\n',
    );
    assert.deepEqual(offlineComponents(await diagnoseCache(cacheDir, { vexConfigPath, now: NOW })), ['db']);
  });

  it('an empty cache dir → fail overall, nothing present', async () => {
    counter += 1;
    const cacheDir = join(root, `empty-${counter}`);
    mkdirSync(cacheDir);
    const diagnosis = await diagnoseCache(cacheDir, { now: NOW });
    assert.equal(diagnosis.verdict, 'fail');
    assert.ok(diagnosis.components.every((c) => !c.present));
  });
});
