import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { AirgapError } from '@trivy-airgap/format';
import { buildBundle, type BuildBundleOptions } from '@trivy-airgap/test-utils';
import { importBundle, verifyBundle } from '../src/index.js';
import { treeDigest, treeList, trustFile, workDir, writeBytes } from './helpers.js';

/**
 * Hostile bundles, most of them correctly signed so that only the content lies, each run through
 * BOTH `verifyBundle` and `importBundle`: both must refuse with the same code, the cache and the
 * VEX config must be exactly as they were, no staging may be left, and nothing may appear
 * outside the cache (a canary directory beside it stays empty).
 */

const work = workDir('hostile');
const pub = trustFile(work);
const cache = join(work, 'site', 'cache');
const vexConfig = join(work, 'site', 'vex', 'repository.yaml');
/** Paths a hostile bundle might aim at: beside the cache, and an absolute one. */
const canaries = [join(work, 'site', 'canary'), join(work, 'canary-abs')];

async function codeOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof AirgapError, `not a typed error: ${String(error)}`);
    return String(error.code);
  }
  return 'accepted';
}

function snapshot(): string {
  const yaml = existsSync(vexConfig) ? readFileSync(vexConfig, 'utf8') : '';
  return `${treeDigest(cache)}\n${yaml}`;
}

/**
 * Runs the bundle through verify and import; returns the common refusal code. Asserts that both
 * refuse alike and that nothing changed anywhere.
 */
export async function refusedByBoth(bytes: Buffer, what: string): Promise<string> {
  const path = writeBytes(work, bytes);
  const before = snapshot();
  const verified = await codeOf(() => verifyBundle({ bundle: path, trustFiles: [pub] }));
  const imported = await codeOf(() =>
    importBundle({ bundle: path, trustFiles: [pub], cacheDir: cache, vexConfigPath: vexConfig }),
  );
  assert.notEqual(imported, 'accepted', `${what}: import accepted it`);
  assert.equal(verified, imported, `${what}: verify said ${verified}, import said ${imported}`);
  assert.equal(snapshot(), before, `${what}: the cache changed:\n${treeList(cache).join('\n')}`);
  const staging = join(cache, '.trivy-airgap', 'staging');
  assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], `${what}: staging left`);
  for (const canary of canaries) {
    assert.deepEqual(existsSync(canary) ? readdirSync(canary) : [], [], `${what}: wrote into ${canary}`);
  }
  return imported;
}

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

before(async () => {
  for (const canary of canaries) mkdirSync(canary, { recursive: true });
  // A working cache to protect: an older import of every component.
  const seed = buildBundle({
    components: [
      { kind: 'db', options: { updatedAt: new Date('2024-01-01T00:00:00Z') } },
      { kind: 'java-db', options: { updatedAt: new Date('2024-01-01T00:00:00Z') } },
      { kind: 'checks' },
      { kind: 'vex', updatedAt: '2024-01-01T00:00:00Z' },
    ],
  });
  await importBundle({
    bundle: writeBytes(work, seed.bytes),
    trustFiles: [pub],
    cacheDir: cache,
    vexConfigPath: vexConfig,
  });
  writeFileSync(join(work, 'seeded'), 'ok');
});

describe('a signed bundle cannot write outside the cache', () => {
  const targets = [
    '../../canary/x',
    '../../../canary-abs',
    join(work, 'canary-abs'),
    join(work, 'site', 'canary'),
    '0.1/../../../../canary',
    '..',
  ];
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
