// The transmit queue. Kernel changes are queued by key; a key already
// waiting is merged so only its latest state goes out, read from the cache
// at send time. Bulk sends append their own items framed by bulk-start and
// bulk-end, so a receiver sees exactly what the bulk carried. Messages are
// packed into as few datagrams as the MTU allows.
//
// Flow control: an optional room() callback says how many more sequenced
// messages may go out now (the reliability layer's resend queue must be able
// to hold them). At zero the flush stops where it is and the queue waits
// until the owner calls resume(). Flushes are scheduled through an
// injectable schedule() (setImmediate by default) so a simulation can drive
// them on a fake clock.
import type { ConntrackEntry, ExpectEntry } from '../../kernel/entry.js';
import type { DatagramEncoder } from '../wire/datagram-encoder.js';
import type { WireMessage } from '../wire/types.js';
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

type Item = EntryItem | ControlItem;

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
  /** The current state of a key, or undefined when it is gone. */
  lookup: (key: EntryHandle) => ConntrackEntry | undefined;
  /** The current state of an expectation, or undefined when it is gone. */
  lookupExpect?: (key: string) => ExpectEntry | undefined;
  /** Called once per sequenced message with the message and its sequence number. */
  onSequenced?: (msg: WireMessage) => void;
  /** Messages per flush slice before yielding to the loop. */
  sliceMessages?: number;
  firstSeq?: number;
  /** Runs a flush later; setImmediate by default. */
  schedule?: (fn: () => void) => void;
  /** How many more sequenced messages may be sent now; unlimited when absent. */
  room?: () => number;
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
  private readonly pending = new Map<EntryHandle, EntryItem>();
  private nextSeqValue: number;
  private scheduled = false;
  private readonly sliceMessages: number;
  private readonly scheduleFn: (fn: () => void) => void;

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
      this.push({ t: 'entry', key, kind: 'update', bulk: true, dead: false });
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
      const sequenced = this.isSequenced(next);
      // Out of room: stop here; resume() continues once acks free the resend queue.
      if (sequenced && budget <= 0) break;
      this.head++;
      const msg = this.toMessage(next);
      if (!msg) continue;
      if (!this.add(enc, msg)) continue;
      if (sequenced && 'seq' in msg) {
        budget--;
        this.opts.onSequenced?.(msg);
      }
      this.counters.messagesSent++;
      sent++;
    }
    this.emit();
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 65536) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
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
    return item.t === 'entry' || item.sequenced;
  }

  private toMessage(item: Item): WireMessage | undefined {
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

  private push(item: Item): void {
    this.queue.push(item);
    this.counters.queued++;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.scheduleFn(() => {
      this.scheduled = false;
      this.flushNow();
    });
  }
}
