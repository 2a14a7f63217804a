// Serial-number arithmetic (RFC 1982) on the u32 message sequence numbers.
// A long-running sender wraps past 2^32 - 1 back to 0, so a plain `a < b`
// would call every message after the wrap "old". Every comparison of
// sequence numbers in ctsyncd goes through this module so that the cache's
// staleness checks and the reliability layer agree on what "before" means.

const HALF = 0x8000_0000;

/** `a + n` modulo 2^32; n may be negative. ToUint32 is exactly that reduction. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/**
 * Signed distance from a to b (b - a) in (-2^31, 2^31]. Positive when b is
 * after a. Exactly 2^31 apart is reported as +2^31; RFC 1982 leaves that
 * case undefined, and seqBefore/seqAfter treat it as neither.
 */
export function seqDiff(a: number, b: number): number {
  const d = (b - a) | 0;
  return d === -HALF ? HALF : d;
}

/** How far forward b lies from a, modulo 2^32, in [0, 2^32): (b - a) reduced, never negative. */
export function seqForward(a: number, b: number): number {
  return (b - a) >>> 0;
}

/** a comes strictly before b (0 < b - a < 2^31). */
export function seqBefore(a: number, b: number): boolean {
  const d = seqDiff(a, b);
  return d > 0 && d < HALF;
}

/** a comes strictly after b (0 < a - b < 2^31). */
export function seqAfter(a: number, b: number): boolean {
  return seqBefore(b, a);
}

/**
 * How far back a peer's records keep their own seq when the peer's stream
 * goes on in a new epoch (a rollover, see sync-node.ts): a record older
 * than `next - CARRY_SPAN` is moved up to that floor. A stream takes a new
 * epoch at most 2^30 seqs after the last (reliability.ts), so with records
 * no older than 2^29 before the rollover no two seqs the cache compares
 * are ever 2^31 apart, however many rollovers a record lives through. A
 * record moved up only stops rejecting a message sent between its own seq
 * and the floor: one 2^29 messages late, which nothing delivers.
 */
export const CARRY_SPAN = 0x2000_0000;

/** The floor for records carried into a new epoch of a stream whose next seq is `next`. */
export function carryFloor(next: number): number {
  return seqAdd(next, -CARRY_SPAN);
}

/** from <= x <= to in sequence order (the inclusive ranges of acks and NACKs). */
export function seqInRange(x: number, from: number, to: number): boolean {
  return !seqBefore(x, from) && !seqAfter(x, to);
}
