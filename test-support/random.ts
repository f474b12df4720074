// Seeded randomness for tests: every randomized test prints its seed, and ADMQ_SEED
// replays it.

/** mulberry32: a small seeded PRNG, the same sequence on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** ADMQ_SEED when set, else a fresh seed. */
export function seedFromEnv(): number {
  const env = process.env.ADMQ_SEED;
  return env !== undefined && env !== '' ? Number(env) >>> 0 : (Date.now() ^ (process.pid << 8)) >>> 0;
}
