// The flow log's queue when its writer runs on a thread of its own
// (thread.ts, worker.ts): the same ring of raw ctnetlink messages as
// queue.ts, in a SharedArrayBuffer, with one producer (the event path on
// the daemon's thread) and one consumer (the writer thread). Each side owns
// its own position; the bytes in use and the message count are the only
// words both change, with Atomics, and the producer's Atomics.add after
// copying a message is what makes its bytes visible to the consumer.
// Queuing an event stays a copy and a few word operations: no object, no
// message to the other thread. The writer sleeps on a word the producer
// wakes only when the writer said it sleeps (Atomics.waitAsync, so the
// writer's own timers and messages go on meanwhile).
//
// Each read's events carry the time they were read (push's `time`): the
// producer writes a time marker before the first message of a new time,
// and the consumer keeps the last one it passed (`time`). A writer that
// idles through a burst and catches up seconds later still stamps each
// line with when its event arrived, not when it was written.
import type { EventType } from '../kernel/conntrack-events.js';

const KINDS: readonly EventType[] = ['new', 'update', 'destroy'];
const KIND_CODE: { readonly [K in EventType]: number } = { new: 0, update: 1, destroy: 2 };
/** The header's kind of a time marker: a float64 of milliseconds follows. Not a message: not counted, not shifted. */
const TIME_CODE = 0xfe;
/** A marker's bytes: its header and the float64. */
const MARK = 12;
/** A header word that sends the reader back to the start of the ring. */
const WRAP = 0xffffffff;
const HEADER = 4;
/** Length in the header's low 24 bits: a netlink event is far below 16 MiB. */
const LEN_MASK = 0xffffff;

/** Words of the control block: Int32 each. */
const USED = 0;
const COUNT = 1;
/** AWAKE, or the consumer about to sleep (CHECKING) or asleep (ASLEEP): the producer's wake() then wakes it. */
const SLEEP = 2;
const AWAKE = 0;
const CHECKING = 1;
const ASLEEP = 2;
/** RESET_ASKED by the consumer when it emptied the queue; RESET_DONE by the producer once it wrote at 0. */
const RESET = 3;
const RESET_NONE = 0;
const RESET_ASKED = 1;
const RESET_DONE = 2;
const CONTROL_WORDS = 4;

const align4 = (n: number): number => (n + 3) & ~3;

/** Atomics.waitAsync (ES2024, in Node since 16): the lib this project compiles against predates it. */
type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** What both ends are made from: hand it to the other thread (workerData). */
export interface SharedQueueMemory {
  readonly control: SharedArrayBuffer;
  readonly ring: SharedArrayBuffer;
}

export class SharedEventQueue {
  readonly capacity: number;
  private readonly ctl: Int32Array;
  private readonly ring: Buffer;
  /** The producer's position (only the producer reads or writes it). */
  private tail = 0;
  /** The consumer's position (only the consumer reads or writes it). */
  private head = 0;
  /** The producer's last time marker (only the producer reads or writes it). */
  private lastTime = Number.NaN;
  /** Consumer: the time of the last marker passed (ms since the epoch); NaN before the first. */
  time = Number.NaN;

  /** A new queue of `capacity` bytes (rounded up to 4). */
  static create(capacity: number): SharedEventQueue {
    return new SharedEventQueue(SharedEventQueue.allocate(capacity));
  }

  /** The memory of a queue of `capacity` bytes (rounded up to 4). */
  static allocate(capacity: number): SharedQueueMemory {
    const size = align4(capacity);
    if (size < 8 || size > 0x7ffffffc) throw new RangeError(`flow log queue of ${capacity} bytes`);
    return { control: new SharedArrayBuffer(CONTROL_WORDS * 4), ring: new SharedArrayBuffer(size) };
  }

  /** The other end of a queue made by create() (on another thread). */
  constructor(readonly memory: SharedQueueMemory) {
    this.ctl = new Int32Array(memory.control);
    this.ring = Buffer.from(memory.ring);
    this.capacity = this.ring.length;
  }

  /** Messages waiting. */
  get length(): number {
    return Atomics.load(this.ctl, COUNT);
  }

  /** Bytes taken, the padding skipped at a wrap included: `capacity` exactly when full. */
  get bytes(): number {
    return Atomics.load(this.ctl, USED);
  }

  /**
   * Producer: copies `src[start, start + len)`; false (nothing kept) when it
   * does not fit. `time` (ms), when given and not the last one given, goes
   * before it as a marker, and only together with it.
   */
  push(kind: EventType, src: Buffer, start: number, len: number, time = Number.NaN): boolean {
    const mark = time === time && time !== this.lastTime ? MARK : 0;
    const need = mark + HEADER + align4(len);
    const cap = this.capacity;
    if (len > LEN_MASK || need > cap) return false;
    const free = cap - Atomics.load(this.ctl, USED);
    let at = this.tail;
    let pad = 0;
    // Emptied, the consumer asked for both ends to start again at 0 (RESET):
    // the bytes in use then stay at the start of the ring, so only as much
    // of it is ever touched (resident) as the longest backlog needed.
    if (free === cap && at !== 0 && Atomics.load(this.ctl, RESET) === RESET_ASKED) {
      at = 0;
      Atomics.store(this.ctl, RESET, RESET_DONE);
    }
    // The free bytes run from `tail` on, wrapping: the message fits at `tail`, or after skipping to 0.
    if (cap - at < need) {
      pad = cap - at;
      if (free < pad + need) return false;
      if (pad >= HEADER) this.ring.writeUInt32LE(WRAP, at);
      at = 0;
    } else if (free < need) {
      return false;
    }
    if (mark !== 0) {
      this.ring.writeUInt32LE((8 | (TIME_CODE << 24)) >>> 0, at);
      this.ring.writeDoubleLE(time, at + HEADER);
      this.lastTime = time;
    }
    this.ring.writeUInt32LE((len | (KIND_CODE[kind] << 24)) >>> 0, at + mark);
    src.copy(this.ring, at + mark + HEADER, start, start + len);
    this.tail = at + need === cap ? 0 : at + need;
    // Published: the consumer reads USED and COUNT before the bytes.
    Atomics.add(this.ctl, COUNT, 1);
    Atomics.add(this.ctl, USED, pad + need);
    return true;
  }

  /**
   * Consumer: hands the oldest message to `f` (its bytes valid only during
   * the call) and frees it; false when the queue is empty.
   */
  shift(f: (kind: EventType, buf: Buffer, start: number, len: number) => void): boolean {
    // USED, which the producer adds to last: above 0, a whole message is there.
    if (Atomics.load(this.ctl, USED) === 0) return false;
    // The producer started again at 0 (it stored RESET_DONE before USED).
    if (Atomics.load(this.ctl, RESET) === RESET_DONE) {
      this.head = 0;
      Atomics.store(this.ctl, RESET, RESET_NONE);
    }
    const cap = this.capacity;
    if (cap - this.head < HEADER || this.ring.readUInt32LE(this.head) === WRAP) {
      Atomics.sub(this.ctl, USED, cap - this.head);
      this.head = 0;
    }
    let at = this.head;
    let word = this.ring.readUInt32LE(at);
    // A time marker: kept, and its message follows it in the same write (push never splits them).
    if (word >>> 24 === TIME_CODE) {
      this.time = this.ring.readDoubleLE(at + HEADER);
      at += MARK;
      Atomics.sub(this.ctl, USED, MARK);
      word = this.ring.readUInt32LE(at);
    }
    const len = word & LEN_MASK;
    const need = HEADER + align4(len);
    this.head = at + need === cap ? 0 : at + need;
    f(KINDS[word >>> 24]!, this.ring, at + HEADER, len);
    // Freed after the call: the producer may write these bytes as soon as they are.
    Atomics.sub(this.ctl, COUNT, 1);
    // Emptied (and not at 0 already): ask the producer to start again at 0 with its next message.
    if (Atomics.sub(this.ctl, USED, need) === need && this.head !== 0) Atomics.compareExchange(this.ctl, RESET, RESET_NONE, RESET_ASKED);
    return true;
  }

  /** Producer, after pushing: wakes the consumer if it sleeps. One load when it does not. */
  wake(): void {
    if (Atomics.load(this.ctl, SLEEP) === AWAKE) return;
    Atomics.store(this.ctl, SLEEP, AWAKE);
    Atomics.notify(this.ctl, SLEEP);
  }

  /** Whether the consumer is asleep: it found the queue empty and waits for wake() (tests and stats). */
  get consumerAsleep(): boolean {
    return Atomics.load(this.ctl, SLEEP) === ASLEEP;
  }

  /**
   * Consumer: resolves when there is something to shift, at once if there
   * is already. The producer's wake() ends the wait; a message pushed
   * between the check and the wait is seen by the check after SLEEP is set.
   */
  whenNotEmpty(): Promise<void> {
    Atomics.store(this.ctl, SLEEP, CHECKING);
    // USED, not COUNT: the producer adds to USED last, just before it looks at SLEEP.
    if (this.bytes > 0) {
      Atomics.store(this.ctl, SLEEP, AWAKE);
      return Promise.resolve();
    }
    // Asleep from here, unless a wake() came since the check (it set AWAKE): then there is something to shift.
    if (Atomics.compareExchange(this.ctl, SLEEP, CHECKING, ASLEEP) !== CHECKING) return Promise.resolve();
    const w = waitAsync(this.ctl, SLEEP, ASLEEP);
    return w.async ? w.value.then(() => undefined) : Promise.resolve();
  }

  /** Consumer, shutting down: ends a pending whenNotEmpty(). */
  interrupt(): void {
    Atomics.store(this.ctl, SLEEP, AWAKE);
    Atomics.notify(this.ctl, SLEEP);
  }
}
