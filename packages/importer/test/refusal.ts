import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AirgapError } from '@trivy-airgap/format';
import { buildBundle, treeDigest, treeList } from '@trivy-airgap/test-utils';
import { importBundle, verifyBundle } from '../src/index.js';
import { writeBytes } from './helpers.js';

/**
 * A site to attack: a cache with a working import of every component, its repository.yaml, and
 * canary directories beside it. `refusedByBoth` runs a bundle through verifyBundle AND
 * importBundle and asserts what issue 10 asks of every hostile bundle: both refuse, with the same
 * code, of the verification category (CLI exit 3); the cache tree (files, links, modes) and the
 * VEX config are exactly as they were; no staging is left; nothing appeared in the canaries.
 */
export class AttackedSite {
  readonly cache: string;
  readonly vexConfig: string;
  readonly canaries: readonly string[];

  constructor(
    readonly work: string,
    private readonly trust: string,
  ) {
    this.cache = join(work, 'site', 'cache');
    this.vexConfig = join(work, 'site', 'vex', 'repository.yaml');
    this.canaries = [join(work, 'site', 'canary'), join(work, 'canary-abs')];
  }

  /** Imports an older bundle of every component, so that "unchanged" means something. */
  async seed(): Promise<void> {
    for (const canary of this.canaries) mkdirSync(canary, { recursive: true });
    const old = new Date('2024-01-01T00:00:00Z');
    const seed = buildBundle({
      components: [
        { kind: 'db', options: { updatedAt: old } },
        { kind: 'java-db', options: { updatedAt: old } },
        { kind: 'checks' },
        { kind: 'vex', updatedAt: old.toISOString() },
      ],
    });
    await importBundle({
      bundle: writeBytes(this.work, seed.bytes),
      trustFiles: [this.trust],
      cacheDir: this.cache,
      vexConfigPath: this.vexConfig,
    });
  }

  snapshot(): string {
    const yaml = existsSync(this.vexConfig) ? readFileSync(this.vexConfig, 'utf8') : '';
    return `${treeDigest(this.cache)}\n${yaml}`;
  }

  async refusedByBoth(bytes: Buffer, what: string): Promise<string> {
    const path = writeBytes(this.work, bytes);
    const before = this.snapshot();
    const verified = await codeOf(() => verifyBundle({ bundle: path, trustFiles: [this.trust] }));
    const imported = await codeOf(() =>
      importBundle({
        bundle: path,
        trustFiles: [this.trust],
        cacheDir: this.cache,
        vexConfigPath: this.vexConfig,
      }),
    );
    assert.notEqual(imported.code, 'accepted', `${what}: import accepted it`);
    assert.equal(
      verified.code,
      imported.code,
      `${what}: verify said ${verified.code}, import said ${imported.code}`,
    );
    assert.equal(
      imported.category,
      'verification',
      `${what}: ${imported.code} is not a verification refusal`,
    );
    assert.equal(this.snapshot(), before, `${what}: the cache changed:\n${treeList(this.cache).join('\n')}`);
    const staging = join(this.cache, '.trivy-airgap', 'staging');
    assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], `${what}: staging left`);
    for (const canary of this.canaries) {
      assert.deepEqual(existsSync(canary) ? readdirSync(canary) : [], [], `${what}: wrote into ${canary}`);
    }
    return imported.code;
  }
}

async function codeOf(run: () => Promise<unknown>): Promise<{ code: string; category: string }> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof AirgapError, `not a typed error: ${String(error)}`);
    return { code: String(error.code), category: error.category };
  }
  return { code: 'accepted', category: 'none' };
}
