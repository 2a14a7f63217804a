// Epochs only increase. A node's epoch names one incarnation (a start, or a
// rollover after MAX_SEQS_PER_EPOCH seqs), and peers drop anything of an
// epoch older than the one they believe (freshness.ts): so every epoch a
// node takes must be above every epoch it used before, across restarts.
//
// The epoch is the wall clock in seconds, or one more than the last epoch
// used when that is higher (two starts within a second, a clock stepped
// back): the last epoch is kept in a small file (src/daemon/epoch-store.ts).
// With that file lost and the clock behind, a node's epoch could fall below
// one its peers believe; freshness.ts lets a challenge-response from the
// live node settle that (a node that challenges us from an older epoch is
// challenged back). Seconds in a u32 last until 2106.

/** Where epochs come from: each call returns one above every earlier one, persisted before it is returned. */
export interface EpochSource {
  take(): number;
}

/** The next epoch after `last` (undefined: none known) at wall-clock time `nowMs`. */
export function chooseEpoch(last: number | undefined, nowMs: number): number {
  const clock = Math.floor(nowMs / 1000);
  const floor = last === undefined ? 0 : last + 1;
  const e = Math.max(clock, floor, 1);
  // Past 2^32 - 1 (the year 2106, or a corrupt file) there is no higher u32: wrap to 1 and let challenges settle it.
  return e > 0xffff_ffff ? 1 : e;
}
