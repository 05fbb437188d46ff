import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AirgapError, isInside } from '@trivy-airgap/format';
import { makeTarGz, type ArchiveEntry } from '@trivy-airgap/test-utils';
import { ARTIFACTS, unpackVexArchive } from '@trivy-airgap/trivy';
import { writeFileSync } from 'node:fs';
import { LayerUnpacker } from '../src/layer.js';
import { workDir } from './helpers.js';

/**
 * Property tests for the path rules of archives inside a bundle (layers, VEX archives): generated
 * entry names and types. Whatever they are, unpacking refuses with a typed error or writes only
 * inside its destination, and checking (verify, nothing written) and unpacking (import) reach the
 * same verdict — the same code path with the writing switched off.
 */

const work = workDir('properties');
let counter = 0;

const segment = fc.constantFrom(
  '..',
  '.',
  '',
  'a',
  'A',
  'b',
  'x.rego',
  'é',
  'e\u0301',
  '\\',
  'C:',
  '\u0000',
  ' ',
  '~',
);
const name = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));
const entry = fc.record({
  name: fc.oneof(
    name,
    name.map((n) => `./${n}`),
    name.map((n) => `/${n}`),
    name.map((n) => `${n}/`),
  ),
  type: fc.constantFrom<ArchiveEntry['type']>('file', 'file', 'file', 'directory', 'symlink', 'hardlink'),
});
const entries = fc.array(entry, { minLength: 1, maxLength: 6 }).map((list) =>
  list.map((e) => ({
    ...e,
    body: 'x',
    ...(e.type === 'symlink' || e.type === 'hardlink' ? { linkname: '../../escape' } : {}),
  })),
);

/** Every path under `root` that is not inside `dest` (nothing may be written there). */
function outside(root: string, dest: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entryName of readdirSync(dir)) {
      const path = join(dir, entryName);
      if (path !== dest && !isInside(dest, path) && !isInside(path, dest)) found.push(relative(root, path));
      if (lstatSync(path).isDirectory() && !lstatSync(path).isSymbolicLink()) walk(path);
    }
  };
  walk(root);
  return found;
}

async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'accepted';
  } catch (error) {
    assert.ok(error instanceof AirgapError, `not a typed error: ${String(error)}`);
    return String(error.code);
  }
}

async function unpackLayer(layer: Buffer, dest: string | undefined): Promise<void> {
  const unpacker = new LayerUnpacker('checks layer', layer.length, dest, ARTIFACTS.checks.unpackLimits);
  try {
    await unpacker.write(layer);
    await unpacker.end();
  } catch (error) {
    await unpacker.abort();
    throw error;
  }
}

describe('archive path properties', () => {
  it('layers: typed refusal or files only inside the destination; checking and unpacking agree', async () => {
    await fc.assert(
      fc.asyncProperty(entries, async (list) => {
        const root = join(work, `layer-${++counter}`);
        const dest = join(root, 'stage', 'policy', 'content');
        mkdirSync(root, { recursive: true });
        const layer = makeTarGz(list);
        const checked = await outcome(() => unpackLayer(layer, undefined));
        const unpacked = await outcome(() => unpackLayer(layer, dest));
        assert.equal(
          checked,
          unpacked,
          `check said ${checked}, unpack said ${unpacked}: ${JSON.stringify(list)}`,
        );
        assert.deepEqual(outside(root, dest), [], JSON.stringify(list));
        rmSync(root, { recursive: true, force: true });
      }),
      { numRuns: 200 },
    );
  });

  it('VEX archives: typed refusal or files only inside 0.1/; checking and extracting agree', async () => {
    await fc.assert(
      fc.asyncProperty(entries, async (list) => {
        const root = join(work, `vex-${++counter}`);
        const dest = join(root, 'vex', 'default', '0.1');
        mkdirSync(root, { recursive: true });
        const archive = join(root, 'archive.tar.gz');
        const index = { name: 'index.json', body: '{"updated_at":"2026-11-25T00:00:00Z","packages":[]}' };
        writeFileSync(archive, makeTarGz([index, ...list]));
        const checked = await outcome(() => unpackVexArchive(archive, 'tar.gz', '', undefined));
        const extracted = await outcome(() => unpackVexArchive(archive, 'tar.gz', '', dest));
        assert.equal(
          checked,
          extracted,
          `check said ${checked}, extract said ${extracted}: ${JSON.stringify(list)}`,
        );
        assert.deepEqual(
          outside(root, dest).filter((path) => path !== 'archive.tar.gz'),
          [],
          JSON.stringify(list),
        );
        rmSync(root, { recursive: true, force: true });
      }),
      { numRuns: 200 },
    );
  });
});
