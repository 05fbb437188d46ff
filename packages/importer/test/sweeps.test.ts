import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { BUNDLE_GZIP_HEADER, MANIFEST_PATH, SIGNATURE_PATH } from '@trivy-airgap/format';
import { buildBundle, compressedOffset, seededInt, seededRandom, testSeed } from '@trivy-airgap/test-utils';
import { trustFile, workDir } from './helpers.js';
import { AttackedSite } from './refusal.js';

/**
 * Sweeps that prove the classes of issue 10, seeded and reproducible (`TRIVY_AIRGAP_SEED=<n>`
 * replays a run; the seed is printed as a test diagnostic and in every failure). Every damaged
 * bundle goes through verifyBundle AND importBundle against a cache holding a working import:
 * both refuse with the same verification code, the cache tree (files, links, modes) and the VEX
 * config stay exactly as they were, no staging is left (AttackedSite.refusedByBoth).
 */

const work = workDir('sweeps');
const pub = trustFile(work);
const site = new AttackedSite(work, pub);

/** A real multi-component bundle: DB, Java DB (incompressible filler), checks, VEX. */
const bundle = buildBundle({
  components: [
    { kind: 'db', options: { dbContents: 48 * 1024 } },
    { kind: 'java-db', options: { dbContents: 24 * 1024 } },
    { kind: 'checks' },
    { kind: 'vex' },
  ],
});

function flipped(offset: number, mask: number): Buffer {
  const copy = Buffer.from(bundle.bytes);
  copy[offset] = (copy[offset] ?? 0) ^ mask;
  return copy;
}

before(() => site.seed());

describe('sweeps over a real multi-component bundle: verify and import both refuse, the cache is untouched', () => {
  it('one flipped byte in each region (gzip header, block header, every tar header and its checksum field, manifest, signature, every blob, inside each gzip layer, padding, end marker, trailer)', async () => {
    const regions: { what: string; offset: number }[] = [];
    for (let i = 0; i < BUNDLE_GZIP_HEADER.length; i++)
      regions.push({ what: `gzip header byte ${i}`, offset: i });
    regions.push({ what: 'first stored-block header', offset: BUNDLE_GZIP_HEADER.length });
    for (const [path, at] of bundle.offsets) {
      regions.push({ what: `${path}: tar header`, offset: compressedOffset(bundle.bytes, at.header) });
      regions.push({
        what: `${path}: tar header size field`,
        offset: compressedOffset(bundle.bytes, at.header + 130),
      });
      // The one header field the checksum does not cover (node-tar reads it leniently).
      regions.push({
        what: `${path}: tar header checksum field's last byte`,
        offset: compressedOffset(bundle.bytes, at.header + 155),
      });
      if (at.size === 0) continue;
      const label = path === MANIFEST_PATH ? 'manifest' : path === SIGNATURE_PATH ? 'signature' : path;
      for (const fraction of [0, 0.5, 0.999]) {
        const offset = at.body + Math.floor(at.size * fraction);
        regions.push({
          what: `${label}: body at ${fraction}`,
          offset: compressedOffset(bundle.bytes, offset),
        });
      }
      if (at.size % 512 !== 0) {
        regions.push({
          what: `${label}: padding`,
          offset: compressedOffset(bundle.bytes, at.body + at.size),
        });
      }
    }
    regions.push({
      what: 'end-of-archive marker',
      offset: compressedOffset(bundle.bytes, bundle.tar.length - 600),
    });
    regions.push({ what: 'gzip trailer CRC', offset: bundle.bytes.length - 8 });
    regions.push({ what: 'gzip trailer size', offset: bundle.bytes.length - 3 });
    assert.ok(regions.length > 60, `${regions.length} regions`);
    for (const { what, offset } of regions) {
      for (const mask of [0x01, 0x80]) {
        await site.refusedByBoth(
          flipped(offset, mask),
          `${what} (offset ${offset}) ^ 0x${mask.toString(16)}`,
        );
      }
    }
  });

  it('300 single-byte flips at seeded random offsets', async (t) => {
    const seed = testSeed();
    t.diagnostic(`seed ${seed} (TRIVY_AIRGAP_SEED=${seed} replays this run)`);
    const random = seededRandom(seed);
    for (let i = 0; i < 300; i++) {
      const offset = seededInt(random, 0, bundle.bytes.length);
      const mask = seededInt(random, 1, 256);
      await site.refusedByBoth(
        flipped(offset, mask),
        `seed ${seed}, flip ${i}: byte ${offset} ^ 0x${mask.toString(16)}`,
      );
    }
  });

  it('truncation at 40 seeded offsets, and at both ends', async (t) => {
    const seed = testSeed();
    t.diagnostic(`seed ${seed} (TRIVY_AIRGAP_SEED=${seed} replays this run)`);
    const random = seededRandom(seed);
    const cuts = [0, 1, 9, 10, 11, bundle.bytes.length - 8, bundle.bytes.length - 1];
    for (let i = 0; i < 40; i++) cuts.push(seededInt(random, 0, bundle.bytes.length));
    for (const cut of cuts) {
      await site.refusedByBoth(
        bundle.bytes.subarray(0, cut),
        `seed ${seed}: truncated to ${cut} of ${bundle.bytes.length} bytes`,
      );
    }
  });
});
