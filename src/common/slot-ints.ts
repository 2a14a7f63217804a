// A per-slot int32 array for tables of millions of slots, in chunks that are
// never copied. An array that doubles by copying stops the daemon while it
// copies and first writes the new pages: at 2^21 slots the internal cache's
// two stamp arrays took 67 ms and the sender's pending positions 30 ms, in
// the same event-loop turn as the record table's own growth (fw1 at 40k
// entries/s for 60 s overran its 8 MiB event buffer there). Here growth
// adds one zeroed chunk of 64 KiB at a time.

const SHIFT = 14;
/** Slots per chunk. */
export const SLOT_CHUNK = 1 << SHIFT;
const MASK = SLOT_CHUNK - 1;

export class SlotInts {
  private readonly chunks: Int32Array[] = [];

  /** Slots covered now: get and set take slots below this. */
  get length(): number {
    return this.chunks.length << SHIFT;
  }

  /** Covers slots below n (adds zeroed chunks). */
  cover(n: number): void {
    while (this.chunks.length << SHIFT < n) this.chunks.push(new Int32Array(SLOT_CHUNK));
  }

  get(slot: number): number {
    return this.chunks[slot >>> SHIFT]![slot & MASK]!;
  }

  set(slot: number, v: number): void {
    this.chunks[slot >>> SHIFT]![slot & MASK] = v;
  }

  fill(v: number): void {
    for (const c of this.chunks) c.fill(v);
  }
}

/** The same for references (one of few objects per slot, e.g. a record's source), in chunks never copied. */
export class SlotRefs<T extends object> {
  private readonly chunks: (T | undefined)[][] = [];

  /** Slots covered now: get and set take slots below this. */
  get length(): number {
    return this.chunks.length << SHIFT;
  }

  /** Covers slots below n (adds chunks of undefined). */
  cover(n: number): void {
    while (this.chunks.length << SHIFT < n) this.chunks.push(new Array<T | undefined>(SLOT_CHUNK).fill(undefined));
  }

  get(slot: number): T | undefined {
    return this.chunks[slot >>> SHIFT]![slot & MASK];
  }

  set(slot: number, v: T | undefined): void {
    this.chunks[slot >>> SHIFT]![slot & MASK] = v;
  }

  /** Lets go of every reference; what is covered stays covered. */
  clear(): void {
    for (const c of this.chunks) c.fill(undefined);
  }
}
