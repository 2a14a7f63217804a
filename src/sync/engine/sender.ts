// The transmit queue. Kernel changes are queued by key; a key already
// waiting is merged so only its latest state goes out, read from the cache
// at send time. Bulk sends append their own items framed by bulk-start and
// bulk-end, so a receiver sees exactly what the bulk carried. Messages are
// packed into as few datagrams as the MTU allows.
//
// The common item (a new or update, or a bulk item, of a numeric handle: the
// daemon's record slots) is one small integer in the queue, not an object,
// and its pending position sits in a typed array indexed by handle: queuing
// 100k changes makes no garbage. Deletes (which carry the gone entry),
// expectations, control messages and string handles (simulations) are
// objects.
//
// Flow control: an optional room() callback says how many more sequenced
// messages may go out now (the reliability layer's resend queue must be able
// to hold them). At zero the flush stops where it is and the queue waits
// until the owner calls resume(). Flushes are scheduled through an
// injectable schedule() (setImmediate by default) so a simulation can drive
// them on a fake clock.
import type { EntryRecord } from '../../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../../kernel/entry.js';
import type { DatagramEncoder } from '../wire/datagram-encoder.js';
import type { WireMessage } from '../wire/types.js';
import { SlotInts } from '../../common/slot-ints.js';
import { seqAdd } from './seq.js';

export type QueueKind = 'new' | 'update' | 'delete';

/**
 * What the owner of the local table names a local entry by: the daemon's
 * internal cache hands out record slots, a simulation its own strings. The
 * engine only compares handles and gives them back to lookup().
 */
export type EntryHandle = number | string;

interface EntryItem {
  t: 'entry';
  key: EntryHandle;
  kind: QueueKind;
  /** An expectation rather than a conntrack entry. */
  exp?: true;
  /** For deletes: the tuple to name, since the cache no longer has it. */
  gone?: ConntrackEntry;
  goneExp?: ExpectEntry;
  /** Bulk items are never merged into, so a bulk always carries its whole set. */
  bulk: boolean;
  dead: boolean;
}

interface ControlItem {
  t: 'control';
  msg: (seq: number) => WireMessage;
  sequenced: boolean;
}

/**
 * A queued item: an object, or a packed new/update of a numeric handle,
 * handle * 4 + (update ? 1 : 0). Handles stay below 2^28, so the packed
 * value is a small integer V8 stores without allocating. A bulk item is
 * packed the same: only the item at a handle's pending position is ever
 * merged into, and bulk items are never given one.
 */
type Item = EntryItem | ControlItem | number;

const P_UPDATE = 1;
/** Handles packed into a queue slot; larger ones (never a record slot) go as objects. */
const MAX_PACKED_HANDLE = 0x0fff_ffff;

function packable(key: EntryHandle): key is number {
  return typeof key === 'number' && key >= 0 && key <= MAX_PACKED_HANDLE && Number.isInteger(key);
}

export interface SenderCounters {
  queued: number;
  merged: number;
  messagesSent: number;
  datagramsSent: number;
  vanished: number;
  unencodable: number;
}

export interface SyncSenderOptions {
  encoder: DatagramEncoder;
  send: (datagram: Buffer) => void;
  /**
   * The current state of a key, or undefined when it is gone. What it
   * returns is encoded at once and not kept (a view into the cache is fine)
   * when onSequencedBytes is given.
   */
  lookup: (key: EntryHandle) => ConntrackEntry | EntryRecord | undefined;
  /** The current state of an expectation, or undefined when it is gone. */
  lookupExpect?: (key: string) => ExpectEntry | undefined;
  /**
   * Called once per sequenced message with the message and its sequence
   * number. With onSequencedBytes, only for control messages (bulk markers).
   */
  onSequenced?: (msg: WireMessage) => void;
  /**
   * Called once per sequenced entry message with its sequence number and
   * its encoded bytes, buf[start, end), valid only during the call: the
   * reliability layer copies them into its resend queue, so no message
   * object outlives its encoding.
   */
  onSequencedBytes?: (seq: number, buf: Buffer, start: number, end: number) => void;
  /** Messages per flush slice before yielding to the loop. */
  sliceMessages?: number;
  firstSeq?: number;
  /** Runs a flush later; setImmediate by default. */
  schedule?: (fn: () => void) => void;
  /** How many more sequenced messages may be sent now; unlimited when absent. */
  room?: () => number;
}

/** The one ct message object the sender fills per entry when nothing keeps it. */
interface ScratchMessage {
  kind: 'ct-new' | 'ct-update';
  seq: number;
  entry: ConntrackEntry | EntryRecord;
}

export class SyncSender {
  readonly counters: SenderCounters = {
    queued: 0,
    merged: 0,
    messagesSent: 0,
    datagramsSent: 0,
    vanished: 0,
    unencodable: 0,
  };
  private queue: Item[] = [];
  private head = 0;
  /** Queue positions are absolute: queue[i] is position base + i. */
  private base = 0;
  /** Pending object items by key (string handles, expectations). */
  private readonly pending = new Map<EntryHandle, EntryItem>();
  /**
   * Pending packed items by handle: absolute position + 1 (mod 2^32, kept
   * as int32 and read back with >>> 0), 0 when none. Live positions are
   * never more than the queue's length from base.
   */
  private readonly pendingAt = new SlotInts();
  private nextSeqValue: number;
  private scheduled = false;
  private readonly sliceMessages: number;
  private readonly scheduleFn: (fn: () => void) => void;
  private readonly scratch: ScratchMessage = { kind: 'ct-new', seq: 0, entry: undefined as unknown as EntryRecord };
  private readonly flushFn = (): void => {
    this.scheduled = false;
    this.flushNow();
  };

  constructor(private readonly opts: SyncSenderOptions) {
    this.nextSeqValue = opts.firstSeq ?? (Math.random() * 0xffffffff) >>> 0;
    this.sliceMessages = opts.sliceMessages ?? 4096;
    this.scheduleFn = opts.schedule ?? ((fn) => void setImmediate(fn));
  }

  /** The sequence number the next sequenced message will carry. */
  get nextSeq(): number {
    return this.nextSeqValue;
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  /**
   * Queues a change of key; merges with a pending non-bulk change of the
   * same key. A delete ends the key's pending item: the handle may name
   * another entry from then on (a freed slot is reused), so nothing later
   * may merge into the delete.
   */
  enqueue(key: EntryHandle, kind: QueueKind, gone?: ConntrackEntry): void {
    if (packable(key)) {
      const at = key < this.pendingAt.length ? this.pendingAt.get(key) >>> 0 : 0;
      if (at !== 0) {
        const i = (at - 1 - this.base) >>> 0;
        this.counters.merged++;
        if (kind === 'delete') {
          // The pending item becomes the delete, in its place in the queue.
          this.pendingAt.set(key, 0);
          const item: EntryItem = { t: 'entry', key, kind, bulk: false, dead: false };
          if (gone) item.gone = gone;
          this.queue[i] = item;
        } else if (kind === 'new') {
          // update then new (a slot reused for the same key) goes out as new.
          this.queue[i] = key * 4;
        }
        // new then update is still new to the peer; update then update stays one.
        return;
      }
      if (kind !== 'delete') {
        this.setPending(key, (this.base + this.queue.length + 1) >>> 0);
        this.push(key * 4 + (kind === 'update' ? P_UPDATE : 0));
        return;
      }
    } else {
      const prev = this.pending.get(key);
      if (prev && !prev.dead) {
        // new then update is still new to the peer; anything then delete is a delete.
        if (!(prev.kind === 'new' && kind === 'update')) prev.kind = kind;
        if (kind === 'delete') {
          prev.gone = gone;
          this.pending.delete(key);
        }
        this.counters.merged++;
        return;
      }
    }
    const item: EntryItem = { t: 'entry', key, kind, bulk: false, dead: false };
    if (gone) item.gone = gone;
    if (kind !== 'delete') this.pending.set(key, item);
    this.push(item);
  }

  /**
   * Queues a change of an expectation. Expectations have no update message
   * on the wire: a changed one is sent whole again, as new.
   */
  enqueueExpect(key: string, kind: QueueKind, gone?: ExpectEntry): void {
    const pkey = `x|${key}`;
    const prev = this.pending.get(pkey);
    if (prev && !prev.dead) {
      prev.kind = kind === 'delete' ? 'delete' : 'new';
      if (kind === 'delete') prev.goneExp = gone;
      this.counters.merged++;
      return;
    }
    const item: EntryItem = { t: 'entry', key, kind: kind === 'delete' ? 'delete' : 'new', exp: true, bulk: false, dead: false };
    if (gone) item.goneExp = gone;
    this.pending.set(pkey, item);
    this.push(item);
  }

  /** Appends bulk items for keys (never merged), framed by the caller's markers. */
  enqueueBulk(keys: Iterable<EntryHandle>, expectations: Iterable<string> = []): number {
    let n = 0;
    for (const key of keys) {
      this.push(packable(key) ? key * 4 + P_UPDATE : { t: 'entry', key, kind: 'update', bulk: true, dead: false });
      n++;
    }
    // After every conntrack entry, so receivers hold the masters first.
    for (const key of expectations) {
      this.push({ t: 'entry', key, kind: 'new', exp: true, bulk: true, dead: false });
      n++;
    }
    return n;
  }

  /** Queues a control message; sequenced ones get the next sequence number at send time. */
  enqueueControl(msg: (seq: number) => WireMessage, sequenced: boolean): void {
    this.push({ t: 'control', msg, sequenced });
  }

  /** Schedules a flush if anything is waiting (e.g. after flow control made room). */
  resume(): void {
    if (this.head < this.queue.length) this.schedule();
  }

  /** Sends everything queued now, in slices that yield to the event loop, as far as room() allows. */
  flushNow(): void {
    const enc = this.opts.encoder;
    let sent = 0;
    let budget = this.opts.room ? this.opts.room() : Number.POSITIVE_INFINITY;
    while (this.head < this.queue.length) {
      if (sent >= this.sliceMessages) {
        this.schedule();
        break;
      }
      const next = this.queue[this.head]!;
      // Out of room: stop here; resume() continues once acks free the resend queue.
      if (budget <= 0 && this.isSequenced(next)) break;
      const pos = (this.base + this.head) >>> 0;
      this.head++;
      const ok = typeof next === 'number' ? this.sendPacked(enc, next, pos) : this.sendItem(enc, next);
      if (!ok) continue;
      if (this.isSequenced(next)) budget--;
      this.counters.messagesSent++;
      sent++;
    }
    this.emit();
    if (this.head >= this.queue.length) {
      this.base = (this.base + this.queue.length) >>> 0;
      this.queue = [];
      this.head = 0;
    } else if (this.head > 65536) {
      this.base = (this.base + this.head) >>> 0;
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** A packed new/update: the entry is read from the cache and encoded at once. */
  private sendPacked(enc: DatagramEncoder, item: number, pos: number): boolean {
    const key = item >>> 2;
    if (key < this.pendingAt.length && this.pendingAt.get(key) >>> 0 === (pos + 1) >>> 0) this.pendingAt.set(key, 0);
    const entry = this.opts.lookup(key);
    if (!entry) {
      // Deleted before it went out: the delete is queued behind it.
      this.counters.vanished++;
      return false;
    }
    const kind = (item & P_UPDATE) !== 0 ? 'ct-update' : 'ct-new';
    const seq = this.takeSeq();
    if (this.opts.onSequencedBytes) {
      const m = this.scratch;
      m.kind = kind;
      m.seq = seq;
      m.entry = entry;
      const ok = this.add(enc, m);
      m.entry = undefined as unknown as EntryRecord;
      if (ok) this.opts.onSequencedBytes(seq, enc.bytes, enc.lastStart, enc.lastEnd);
      return ok;
    }
    const msg: WireMessage = { kind, seq, entry };
    if (!this.add(enc, msg)) return false;
    this.opts.onSequenced?.(msg);
    return true;
  }

  private sendItem(enc: DatagramEncoder, item: EntryItem | ControlItem): boolean {
    const msg = this.toMessage(item);
    if (!msg || !this.add(enc, msg)) return false;
    if (!('seq' in msg) || !this.isSequenced(item)) return true;
    if (item.t === 'entry' && this.opts.onSequencedBytes) this.opts.onSequencedBytes(msg.seq, enc.bytes, enc.lastStart, enc.lastEnd);
    else this.opts.onSequenced?.(msg);
    return true;
  }

  /** An entry the wire cannot carry is counted and dropped, never allowed to stall the queue. */
  private add(enc: DatagramEncoder, msg: WireMessage): boolean {
    try {
      if (!enc.add(msg)) {
        this.emit();
        enc.add(msg);
      }
      return true;
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.counters.unencodable++;
      // Give the sequence number back: a number never sent would read as loss to every peer.
      if ('seq' in msg && seqAdd(msg.seq, 1) === this.nextSeqValue) this.nextSeqValue = msg.seq;
      return false;
    }
  }

  private isSequenced(item: Item): boolean {
    return typeof item === 'number' || item.t === 'entry' || item.sequenced;
  }

  private toMessage(item: EntryItem | ControlItem): WireMessage | undefined {
    if (item.t === 'control') {
      return item.msg(item.sequenced ? this.takeSeq() : this.nextSeqValue);
    }
    const pkey = item.exp ? `x|${item.key}` : item.key;
    if (!item.bulk && this.pending.get(pkey) === item) this.pending.delete(pkey);
    item.dead = true;
    if (item.exp) {
      if (item.kind === 'delete') {
        return item.goneExp ? { kind: 'exp-delete', seq: this.takeSeq(), entry: item.goneExp } : undefined;
      }
      const x = this.opts.lookupExpect?.(String(item.key));
      if (!x) {
        this.counters.vanished++;
        return undefined;
      }
      return { kind: 'exp-new', seq: this.takeSeq(), entry: x };
    }
    if (item.kind === 'delete') {
      if (!item.gone) return undefined;
      return { kind: 'ct-delete', seq: this.takeSeq(), entry: item.gone };
    }
    const entry = this.opts.lookup(item.key);
    if (!entry) {
      // Deleted before it went out: the delete is queued behind it.
      this.counters.vanished++;
      return undefined;
    }
    return { kind: item.kind === 'new' ? 'ct-new' : 'ct-update', seq: this.takeSeq(), entry };
  }

  private takeSeq(): number {
    const s = this.nextSeqValue;
    this.nextSeqValue = seqAdd(s, 1);
    return s;
  }

  private emit(): void {
    const buf = this.opts.encoder.flush();
    if (!buf) return;
    this.counters.datagramsSent++;
    this.opts.send(buf);
  }

  private setPending(key: number, at: number): void {
    if (key >= this.pendingAt.length) this.pendingAt.cover(key + 1);
    this.pendingAt.set(key, at);
  }

  private push(item: Item): void {
    this.queue.push(item);
    this.counters.queued++;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.scheduleFn(this.flushFn);
  }
}
