import { randomInt } from 'node:crypto';

/**
 * Seeded randomness for sweeps: every run of a sampled test is reproducible from its seed, which
 * failures print. `TRIVY_AIRGAP_SEED=<n>` replays a run; without it each run draws a new seed, so
 * CI keeps exploring while any failure it finds can be replayed exactly.
 */
export function testSeed(): number {
  const fixed = process.env.TRIVY_AIRGAP_SEED;
  if (fixed !== undefined && /^\d+$/.test(fixed)) return Number(fixed);
  return randomInt(0, 2 ** 31);
}

/** mulberry32: a small, fast, seeded PRNG (not for cryptography). Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max) from a seeded generator. */
export function seededInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min));
}
