// How many cases a property (or a measurement loop) runs. FC_RUNS_SCALE (a number in (0, 1]) shrinks
// every count made with runs(), and every "at least so many of this kind"
// bound derived from one, by the same factor: mutation testing sets it,
// because a surviving mutant pays a property's whole run count, and the
// instrumented code is many times slower. Unset, counts are as written. The
// property still fails on the case that breaks it; it only tries fewer.
const raw = process.env.FC_RUNS_SCALE;
const scale = raw === undefined ? 1 : Number(raw);
if (!(scale > 0 && scale <= 1)) throw new Error(`FC_RUNS_SCALE=${raw}: expected a number in (0, 1]`);

/** n scaled by FC_RUNS_SCALE, at least 1; n itself when unset. */
export function runs(n: number): number {
  return Math.max(1, Math.ceil(n * scale));
}

/** A lower bound on a tally taken over runs(n) cases: scaled the same way, rounded down. */
export function atLeast(n: number): number {
  return Math.floor(n * scale);
}
