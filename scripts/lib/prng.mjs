// A small seeded PRNG (mulberry32): the same seed gives the same run, so a
// failing simulation or soak can be replayed exactly. Plain JavaScript so
// the scripts (the soak) and the TypeScript tests (test/unit/prng.ts) share
// one copy.

/** Uniform in [0, 1), from a 32-bit seed. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
