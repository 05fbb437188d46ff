import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AirgapError } from '@trivy-airgap/format';
import type { BuildBundleOptions } from '@trivy-airgap/test-utils';
import { LAYOUT_VERSION, cachePaths } from '../src/cache.js';
import { cacheStatus, importBundle, rollback, type ImportBundleOptions } from '../src/index.js';
import { bundleFile, treeDigest, trustFile, workDir } from './helpers.js';

// The state dir's layout is versioned like cacache's content-v2 (docs/cache-layout.md, "Layout
// versions"): unversioned = 1 and still works; a newer version is refused with nothing changed.

const work = workDir('layout-version');
const pub = trustFile(work);
let count = 0;

function dated(hour: number): BuildBundleOptions {
  return { components: [{ kind: 'db', options: { updatedAt: new Date(Date.UTC(2026, 10, 25, hour)) } }] };
}

function importOptions(bundle: string, cacheDir: string): ImportBundleOptions {
  return {
    bundle,
    trustFiles: [pub],
    cacheDir,
    vexConfigPath: join(cacheDir, '..', `vex-${count}`, 'repository.yaml'),
  };
}

function codeOf(error: unknown): string | undefined {
  if (!(error instanceof AirgapError)) return undefined;
  const code: unknown = error.code;
  return typeof code === 'string' ? code : undefined;
}

async function importedCache(): Promise<string> {
  const cacheDir = join(work, `cache-${++count}`);
  await importBundle(importOptions(bundleFile(work, dated(6)).path, cacheDir));
  return cacheDir;
}

describe('layout version of .trivy-airgap/', () => {
  it('an import records the current layout version', async () => {
    const paths = cachePaths(await importedCache());
    assert.deepEqual(JSON.parse(readFileSync(paths.layoutFile, 'utf8')), { layoutVersion: LAYOUT_VERSION });
  });

  it('migration path: a cache written before the version was recorded is read as version 1 (status, rollback, import work; the record is added)', async () => {
    const cacheDir = await importedCache();
    const paths = cachePaths(cacheDir);
    await importBundle(importOptions(bundleFile(work, dated(7)).path, cacheDir));
    rmSync(paths.layoutFile); // what every release before layout.json left behind
    const status = await cacheStatus({ cacheDir });
    assert.ok(status.state.components.db !== undefined, 'status reads the unversioned state');
    assert.equal(existsSync(paths.layoutFile), false, 'status only reads');
    const rolledBack = await rollback({ cacheDir });
    assert.deepEqual(
      rolledBack.rolledBack.map((component) => component.key),
      ['db'],
    );
    assert.deepEqual(JSON.parse(readFileSync(paths.layoutFile, 'utf8')), { layoutVersion: 1 });
    rmSync(paths.layoutFile);
    await importBundle(importOptions(bundleFile(work, dated(8)).path, cacheDir));
    assert.deepEqual(JSON.parse(readFileSync(paths.layoutFile, 'utf8')), { layoutVersion: 1 });
  });

  it('a newer layout is refused by import, rollback and status (CACHE_LAYOUT_UNSUPPORTED), the cache byte for byte unchanged', async () => {
    const cacheDir = await importedCache();
    const paths = cachePaths(cacheDir);
    await importBundle(importOptions(bundleFile(work, dated(7)).path, cacheDir));
    writeFileSync(paths.layoutFile, `${JSON.stringify({ layoutVersion: LAYOUT_VERSION + 1 })}\n`);
    const before = treeDigest(cacheDir);
    await assert.rejects(
      importBundle(importOptions(bundleFile(work, dated(9)).path, cacheDir)),
      (error: unknown) => codeOf(error) === 'CACHE_LAYOUT_UNSUPPORTED',
    );
    await assert.rejects(
      rollback({ cacheDir }),
      (error: unknown) => codeOf(error) === 'CACHE_LAYOUT_UNSUPPORTED',
    );
    await assert.rejects(
      cacheStatus({ cacheDir }),
      (error: unknown) => codeOf(error) === 'CACHE_LAYOUT_UNSUPPORTED',
    );
    assert.equal(treeDigest(cacheDir), before);
  });

  it('a damaged layout.json is CACHE_STATE_INVALID, not a guess', async () => {
    const cacheDir = await importedCache();
    writeFileSync(cachePaths(cacheDir).layoutFile, '{"layoutVersion":"one"}');
    await assert.rejects(
      importBundle(importOptions(bundleFile(work, dated(9)).path, cacheDir)),
      (error: unknown) => codeOf(error) === 'CACHE_STATE_INVALID',
    );
  });

  it('a refused first import into a fresh cache leaves no layout record behind', async () => {
    const cacheDir = join(work, `fresh-${++count}`);
    const bundle = bundleFile(work, dated(6));
    const bytes = readFileSync(bundle.path);
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] ?? 0) ^ 0xff;
    writeFileSync(bundle.path, bytes);
    // The flipped byte is in the tar padding at the end: refused after staging began.
    await assert.rejects(importBundle(importOptions(bundle.path, cacheDir)), { code: 'BUNDLE_CORRUPT' });
    assert.equal(existsSync(cachePaths(cacheDir).stateDir), false);
  });
});
