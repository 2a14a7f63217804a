// The bounded queue between the event path and the flow log's writer: raw
// ctnetlink messages copied into one preallocated ring of bytes. Queuing an
// event is a copy and no object; decoding and formatting happen later, off
// the event path. What does not fit is refused and counted by the caller:
// the event path never waits for the writer.
import type { EventType } from '../kernel/conntrack-events.js';

const KINDS: readonly EventType[] = ['new', 'update', 'destroy'];
const KIND_CODE: { readonly [K in EventType]: number } = { new: 0, update: 1, destroy: 2 };
/** A header word that sends the reader back to the start of the ring. */
const WRAP = 0xffffffff;
const HEADER = 4;
/** Length in the header's low 24 bits: a netlink event is far below 16 MiB. */
const LEN_MASK = 0xffffff;

const align4 = (n: number): number => (n + 3) & ~3;

export class EventQueue {
  private readonly ring: Buffer;
  private head = 0;
  private tail = 0;
  /** Bytes taken, the padding skipped at a wrap included: `capacity` exactly when full. */
  private used = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.ring = Buffer.allocUnsafe(align4(capacity));
  }

  get length(): number {
    return this.count;
  }

  get bytes(): number {
    return this.used;
  }

  /** Copies `src[start, start + len)`; false (nothing kept) when it does not fit. */
  push(kind: EventType, src: Buffer, start: number, len: number): boolean {
    const need = HEADER + align4(len);
    const cap = this.ring.length;
    if (len > LEN_MASK || need > cap) return false;
    if (this.used === 0) this.head = this.tail = 0;
    let at = this.tail;
    if (this.used > 0 && at === this.head) return false;
    if (at >= this.head) {
      // Free: [tail, cap) and [0, head).
      if (cap - at < need) {
        if (this.head < need) return false;
        if (cap - at >= HEADER) this.ring.writeUInt32LE(WRAP, at);
        this.used += cap - at;
        at = 0;
      }
    } else if (this.head - at < need) {
      return false;
    }
    this.ring.writeUInt32LE((len | (KIND_CODE[kind] << 24)) >>> 0, at);
    src.copy(this.ring, at + HEADER, start, start + len);
    this.tail = at + need === cap ? 0 : at + need;
    this.used += need;
    this.count++;
    return true;
  }

  /**
   * Hands the oldest message to `f` (its bytes valid only during the call)
   * and frees it; false when the queue is empty.
   */
  shift(f: (kind: EventType, buf: Buffer, start: number, len: number) => void): boolean {
    if (this.count === 0) return false;
    const cap = this.ring.length;
    if (cap - this.head < HEADER || this.ring.readUInt32LE(this.head) === WRAP) {
      this.used -= cap - this.head;
      this.head = 0;
    }
    const word = this.ring.readUInt32LE(this.head);
    const len = word & LEN_MASK;
    const at = this.head;
    const need = HEADER + align4(len);
    this.head = at + need === cap ? 0 : at + need;
    this.used -= need;
    this.count--;
    // Freed before the call: nothing pushed meanwhile can reach these bytes, as f runs synchronously.
    f(KINDS[word >>> 24]!, this.ring, at + HEADER, len);
    return true;
  }
}
