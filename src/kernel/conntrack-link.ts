// Operations on the kernel's conntrack and expectation tables over ctnetlink:
// dump, get, batched create/update/delete, flush. Batches put many messages
// in one sendmsg and match every ACK to its entry by sequence number.
import {
  AF_INET,
  AF_UNSPEC,
  CTA,
  CTA_EXPECT,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  IPCTNL_MSG_CT_NEW,
  IPCTNL_MSG_EXP_DELETE,
  IPCTNL_MSG_EXP_GET,
  IPCTNL_MSG_EXP_NEW,
  IPS,
  NFNL_SUBSYS_CTNETLINK,
  NFNL_SUBSYS_CTNETLINK_EXP,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
} from './constants.js';
import {
  AS_IS,
  decodeConntrack,
  decodeExpect,
  encodeExpect,
  encodeRequest,
  encodeRequestRecord,
  encodeTuple,
  type RequestForm,
} from './ct-codec.js';
import { decodeConntrackRecord, EntryRecord, REC_OK, type RecordBuf, recordBuf, W_HEAD } from './ct-record.js';
import type { ConntrackEntry, ExpectEntry, Family } from './entry.js';
import { KernelOpError } from './errors.js';
import { type DecodeError, hostU16, type NlMessage, nlMessageObject, NlWriter } from './netlink-codec.js';
import { NetlinkSocket } from './netlink-socket.js';
import { type PendingOp, RequestChannel } from './request-channel.js';
import type { NetlinkTransport, TransportFactory } from './transport.js';

/**
 * create: only if absent (EEXIST otherwise), with the NAT mapping and master
 * the entry carries. update: only if present (ENOENT otherwise); the kernel
 * refuses NAT and master changes, so neither is sent. upsert: either, sent
 * like an update. delete: by original tuple and zone. timeout: sets only the
 * timeout of an existing entry (ENOENT otherwise).
 */
export type KernelOp = 'create' | 'update' | 'upsert' | 'delete' | 'timeout';

export interface BatchItem {
  op: KernelOp;
  entry: ConntrackEntry;
}

/**
 * A batch given by index (see batchOf): item i is op(i) on entry(i). Lets a
 * caller with its entries at hand batch them without an object per item.
 */
export interface BatchSource {
  readonly length: number;
  op(i: number): KernelOp;
  /**
   * An entry, or a record (src/kernel/ct-record.ts) that creates and updates
   * encode without making the entry; null skips the item (nothing is sent,
   * its errno is BATCH_SKIPPED). Called once per item, in order, while its
   * chunk is encoded, so a record view re-pointed by the next call is fine.
   */
  entry(i: number): ConntrackEntry | EntryRecord | null;
}

/** A chunk of a batch, encoded and waiting for (or in) the kernel: items [first, first + n). */
interface Chunk {
  first: number;
  n: number;
  /** Sequence number of item first; the barrier's is lo + n. */
  lo: number;
  /** Per item: its answer is in (or it was skipped). */
  answered: Uint8Array;
  remaining: number;
}

/** The errno of an item its source skipped (entry(i) gave null): not a failure. */
export const BATCH_SKIPPED = -1;

export interface BatchResult {
  /** errno per item, 0 for success, in the order given. */
  errnos: Int32Array;
  ok: number;
  failed: number;
  /** Items the source skipped (BATCH_SKIPPED). */
  skipped: number;
  /** failures by errno name, e.g. { EEXIST: 3 } */
  failures: Record<string, number>;
  durationMs: number;
}

export interface BatchOptions {
  /** Messages per sendmsg. Their ACKs must fit the receive buffer at once. */
  chunkSize?: number;
  /** Called between chunks (e.g. to drain our own event socket first). */
  betweenChunks?: () => void;
  /**
   * Ask for an ACK per message. By default only failures are answered and a
   * trailing NLMSG_NOOP with NLM_F_ACK marks the end of each chunk: the kernel
   * handles a chunk in order inside one sendmsg, so every failure of the chunk
   * is queued before that final ACK, and the kernel skips a third of its work.
   */
  ackEach?: boolean;
  /**
   * How creates, updates and upserts write their entries (e.g. commit's
   * form), applied while encoding instead of on a copy of each entry.
   * CONFIRMED is always set on top.
   */
  form?: RequestForm;
}

export interface DumpOptions {
  family?: Family | 0;
}

export interface LinkCounters {
  batches: number;
  batchMessages: number;
  batchFailures: number;
  dumps: number;
  dumpEntries: number;
  decodeErrors: number;
  timeouts: number;
}

export interface ConntrackLinkOptions {
  netns?: string | undefined;
  transportFactory?: TransportFactory;
  /** Receive buffer for request replies (ACKs of a whole chunk land at once). */
  receiveBufferBytes?: number;
  /** How long an acked request may stay unanswered (a dump: without a message; seen within twice that). */
  replyTimeoutMs?: number;
  now?: () => number;
}

const ETIMEDOUT = 110;
const EPROTO = 71;
const DEFAULT_CHUNK = 1024;

/**
 * Bytes of a dump decoded per event-loop turn: ~600 entries, a few ms, so
 * the control socket and the sync channels answer while a large table is
 * read (a starting daemon's ping waited for the whole initial dump before).
 * A whole batch's acks (36 bytes each with NETLINK_CAP_ACK) still fit in
 * one read.
 */
const DUMP_BATCH_BYTES = 128 * 1024;

const defaultFactory: TransportFactory = (opts) => new NetlinkSocket(opts);

const msgType = (subsys: number, msg: number) => (subsys << 8) | msg;

/** A dump's message decoded as an entry object for onEntry; its decode error otherwise. */
function asEntries(onEntry: (e: ConntrackEntry) => void): (msg: NlMessage) => DecodeError | undefined {
  return (msg) => {
    const r = decodeConntrack(msg);
    if (!r.ok) return r.error;
    onEntry(r.value);
    return undefined;
  };
}
/** What a conntrack dump answers with, one per entry. */
const CT_NEW_TYPE = msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW);

export class ConntrackLink {
  readonly counters: LinkCounters = {
    batches: 0,
    batchMessages: 0,
    batchFailures: 0,
    dumps: 0,
    dumpEntries: 0,
    decodeErrors: 0,
    timeouts: 0,
  };
  readonly lastDecodeErrors: DecodeError[] = [];
  private readonly channel: RequestChannel;
  private readonly writer = new NlWriter();
  /**
   * Writers for batch chunks, apart from `writer`: a chunk's bytes are read
   * by the kernel on a pool thread after batchOf has moved on, so neither a
   * request made meanwhile (a dump, a get) nor another batch running at
   * the same time (a commit beside the injector) may write into them. Each
   * batch takes two and gives them back when it ends.
   */
  private readonly batchWriters: NlWriter[] = [];
  private readonly replyTimeoutMs: number;
  /** Where dumpRecords() decodes each entry; made on its first use. */
  private dumpRecord: RecordBuf | undefined;
  private readonly now: () => number;
  private closed = false;

  constructor(opts: ConntrackLinkOptions = {}) {
    const factory = opts.transportFactory ?? defaultFactory;
    const transport = factory({
      netns: opts.netns,
      receiveBufferBytes: opts.receiveBufferBytes ?? 8 * 1024 * 1024,
      sendBufferBytes: 8 * 1024 * 1024,
      batchBytes: DUMP_BATCH_BYTES,
    });
    this.channel = new RequestChannel(transport, (e) => this.noteDecodeError(e));
    this.replyTimeoutMs = opts.replyTimeoutMs ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Our socket's port id: kernel events caused by our requests carry it. */
  get portid(): number {
    return this.channel.transport.portid;
  }

  get transport(): NetlinkTransport {
    return this.channel.transport;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.failAll(9);
    this.channel.transport.close();
  }

  /** Streams the conntrack table to onEntry; resolves with the number of entries. */
  dump(onEntry: (e: ConntrackEntry) => void, opts: DumpOptions = {}): Promise<number> {
    return this.runDump(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET), opts.family ?? AF_UNSPEC, asEntries(onEntry));
  }

  /**
   * dump() with the entries of the common shape decoded straight into a
   * record (the event socket's decoder, decodeConntrackRecord), handed to
   * onRecord at word 0 of a buffer reused for the next one; the others, as
   * objects, to onEntry. A 100k-entry initial dump builds no object per entry.
   */
  dumpRecords(
    onRecord: (r: RecordBuf, at: number) => void,
    onEntry: (e: ConntrackEntry) => void,
    opts: DumpOptions = {},
  ): Promise<number> {
    const rec = (this.dumpRecord ??= recordBuf(1));
    const asObject = asEntries(onEntry);
    return this.runDump(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET), opts.family ?? AF_UNSPEC, asObject, (buf, pos, len) => {
      // In place, as the event socket decodes: no message object, no entry object.
      if (hostU16(buf, pos + 4) === CT_NEW_TYPE && decodeConntrackRecord(buf, rec, 0, pos + NLMSG_HDRLEN, pos + len) === REC_OK) {
        onRecord(rec, 0);
        return undefined;
      }
      return asObject(nlMessageObject(buf, pos, len));
    });
  }

  dumpExpectations(onEntry: (e: ExpectEntry) => void, opts: DumpOptions = {}): Promise<number> {
    return this.runDump(msgType(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET), opts.family ?? AF_UNSPEC, (msg) => {
      const r = decodeExpect(msg);
      if (!r.ok) return r.error;
      onEntry(r.value);
      return undefined;
    });
  }

  /** Convenience for tests and small tables. */
  async list(opts: DumpOptions = {}): Promise<ConntrackEntry[]> {
    const out: ConntrackEntry[] = [];
    await this.dump((e) => out.push(e), opts);
    return out;
  }

  /** Looks one entry up by its original tuple (and zone); null if absent. */
  async get(key: Pick<ConntrackEntry, 'family' | 'orig' | 'zone'>): Promise<ConntrackEntry | null> {
    const w = this.writer;
    w.reset();
    const seq = this.channel.allocSeq(1);
    w.begin(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_ACK, seq, key.family);
    writeLookup(w, key);
    w.end();
    let found: ConntrackEntry | null = null;
    let decodeError: DecodeError | undefined;
    const errno = await this.singleRequest(w.finish(), seq, (msg) => {
      const r = decodeConntrack(msg);
      if (r.ok) found = r.value;
      else decodeError = r.error;
    });
    if (decodeError) {
      this.noteDecodeError(decodeError);
      throw new KernelOpError('get', EPROTO, decodeError.reason);
    }
    if (errno === 2) return null; // ENOENT
    if (errno !== 0) throw new KernelOpError('get', errno);
    return found;
  }

  /** Deletes every conntrack entry (of one family, or all). */
  async flush(family: Family | 0 = AF_UNSPEC): Promise<void> {
    await this.flushTable(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE), family, 'flush');
  }

  /**
   * Deletes every expectation (of one family, or all), or with `helper` only
   * those whose master connection has that helper: the kernel takes an
   * EXP_DELETE carrying CTA_EXPECT_HELP_NAME and no tuple as "all of this
   * helper" (ctnetlink_del_expect).
   */
  async flushExpectations(family: Family | 0 = AF_UNSPEC, helper?: string): Promise<void> {
    await this.flushTable(
      msgType(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE),
      family,
      'flush-expect',
      helper === undefined ? undefined : (w) => w.string(CTA_EXPECT.HELP_NAME, helper),
    );
  }

  async createExpectation(e: ExpectEntry): Promise<number> {
    const w = this.writer;
    w.reset();
    const seq = this.channel.allocSeq(1);
    w.begin(
      msgType(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_NEW),
      NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
      seq,
      e.family,
    );
    encodeExpect(w, e);
    w.end();
    return this.singleRequest(w.finish(), seq, () => {});
  }

  /**
   * Applies many operations, chunkSize messages per sendmsg. Never throws for
   * a failing entry: each one's errno is reported in order.
   */
  batch(items: readonly BatchItem[], opts: BatchOptions = {}): Promise<BatchResult> {
    return this.batchOf(
      { length: items.length, op: (i) => items[i]!.op, entry: (i) => items[i]!.entry },
      opts,
    );
  }

  /**
   * batch() over a BatchSource. Chunk k+1 is encoded while the kernel
   * handles chunk k (inside its sendmsg, on a pool thread: sendAsync), so a
   * long batch takes about the kernel's time alone instead of the kernel's
   * plus the encoder's. Two writers take turns, so the chunk in flight is
   * never written to. Waiting for each chunk goes through the event loop,
   * so other work runs between chunks without a slice timer.
   */
  async batchOf(items: BatchSource, opts: BatchOptions = {}): Promise<BatchResult> {
    const started = this.now();
    const chunkSize = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK);
    const errnos = new Int32Array(items.length);
    const base = opts.form ?? AS_IS;
    const form: RequestForm = { ...base, statusSet: base.statusSet | IPS.CONFIRMED };
    const ackEach = opts.ackEach ?? false;
    let inFlight: Promise<void> | undefined;
    this.counters.batches++;
    const writers = [this.batchWriters.pop() ?? new NlWriter(), this.batchWriters.pop() ?? new NlWriter()] as const;
    try {
      for (let first = 0, k = 0; first < items.length; first += chunkSize, k++) {
        const last = Math.min(items.length, first + chunkSize);
        const w = writers[k & 1];
        const chunk = this.encodeChunk(w, items, first, last, errnos, ackEach, form);
        if (inFlight !== undefined) {
          await inFlight;
          inFlight = undefined;
          opts.betweenChunks?.();
        }
        if (chunk !== undefined) inFlight = this.dispatchChunk(w, chunk, errnos);
      }
      if (inFlight !== undefined) await inFlight;
      inFlight = undefined;
    } finally {
      // Not while a chunk is still in flight (a source that threw leaves one sending): those two are dropped.
      if (inFlight === undefined) this.batchWriters.push(...writers);
    }
    const failures: Record<string, number> = {};
    let failed = 0;
    let skipped = 0;
    for (let i = 0; i < errnos.length; i++) {
      const e = errnos[i]!;
      if (e === BATCH_SKIPPED) skipped++;
      else if (e !== 0) {
        failed++;
        const name = errnoLabel(e);
        failures[name] = (failures[name] ?? 0) + 1;
      }
    }
    this.counters.batchFailures += failed;
    return { errnos, ok: items.length - failed - skipped, failed, skipped, failures, durationMs: this.now() - started };
  }

  /**
   * Writes items [first, last) into w, with sequence numbers of their own
   * and, unless each message asks for an ACK, a trailing NLMSG_NOOP that
   * asks for one (the barrier: the kernel handles a sendmsg's messages in
   * order, so every failure of the chunk is queued before its ACK).
   * undefined when the source skipped every item.
   */
  private encodeChunk(
    w: NlWriter,
    items: BatchSource,
    first: number,
    last: number,
    errnos: Int32Array,
    ackEach: boolean,
    form: RequestForm,
  ): Chunk | undefined {
    const n = last - first;
    w.reset();
    // One more sequence number than messages: the barrier's.
    const lo = this.channel.allocSeq(n + 1);
    const ackFlag = ackEach ? NLM_F_ACK : 0;
    const answered = new Uint8Array(n);
    let remaining = n;
    for (let i = first; i < last; i++) {
      const item = items.entry(i);
      if (item === null) {
        answered[i - first] = 1;
        errnos[i] = BATCH_SKIPPED;
        remaining--;
      } else writeOp(w, items.op(i), item, lo + (i - first), ackFlag, form);
    }
    this.counters.batchMessages += remaining;
    if (remaining === 0) return undefined;
    if (!ackEach) {
      w.begin(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, lo + n, 0);
      w.end();
    }
    return { first, n, lo, answered, remaining };
  }

  /** Sends an encoded chunk; resolves once every item has its answer and the writer is free again. */
  private dispatchChunk(w: NlWriter, c: Chunk, errnos: Int32Array): Promise<void> {
    const { first, n, lo, answered } = c;
    const barrier = lo + n;
    const transport = this.channel.transport;
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      // Both must hold before the chunk is done: every answer read, and the
      // send returned on its pool thread, since w is written to next.
      let sending = false;
      const maybeDone = () => {
        if (c.remaining > 0 || sending) return;
        if (timer) clearTimeout(timer);
        timer = undefined;
        this.channel.unregister(pending);
        resolve();
      };
      const settle = (seq: number, errno: number) => {
        const idx = seq - lo;
        if (answered[idx]) return;
        answered[idx] = 1;
        errnos[first + idx] = errno;
        if (--c.remaining === 0) maybeDone();
      };
      const failRest = (errno: number) => {
        for (let i = 0; i < n; i++) if (!answered[i]) settle(lo + i, errno);
      };
      const pending: PendingOp = {
        lo,
        hi: barrier + 1,
        onMessage: () => {},
        onAck: (seq, errno) => {
          if (seq !== barrier) settle(seq, errno);
          // Everything of the chunk not reported as failed before the barrier succeeded.
          else failRest(errno);
        },
        onDone: () => {},
        onFail: failRest,
      };
      const sent = (err: number) => {
        sending = false;
        if (err !== 0) failRest(err);
        else {
          // The kernel handled the chunk inside sendmsg, so the answers are
          // normally queued already: read them now instead of waiting for poll.
          transport.drain();
          if (c.remaining > 0 && timer === undefined) {
            timer = setTimeout(() => {
              this.counters.timeouts++;
              failRest(ETIMEDOUT);
            }, this.replyTimeoutMs);
          }
        }
        maybeDone();
      };
      this.channel.register(pending);
      sending = true;
      transport.sendAsync(w.finish(), sent);
    });
  }

  private async flushTable(
    type: number,
    family: Family | 0,
    op: string,
    attrs?: (w: NlWriter) => void,
  ): Promise<void> {
    const w = this.writer;
    w.reset();
    const seq = this.channel.allocSeq(1);
    w.begin(type, NLM_F_REQUEST | NLM_F_ACK, seq, family);
    attrs?.(w);
    w.end();
    const errno = await this.singleRequest(w.finish(), seq, () => {});
    if (errno !== 0) throw new KernelOpError(op, errno);
  }

  /** Sends one acked request; resolves with its errno (0 = success). */
  private singleRequest(data: Buffer, seq: number, onMessage: (msg: NlMessage) => void): Promise<number> {
    return new Promise<number>((resolve) => {
      const timer: { t?: NodeJS.Timeout; settled: boolean } = { settled: false };
      const done = (errno: number) => {
        if (timer.settled) return;
        timer.settled = true;
        clearTimeout(timer.t);
        this.channel.unregister(pending);
        resolve(errno);
      };
      const pending: PendingOp = {
        lo: seq,
        hi: seq + 1,
        onMessage,
        onAck: (_s, errno) => done(errno),
        onDone: () => done(0),
        onFail: done,
      };
      this.channel.register(pending);
      const err = this.channel.transport.send(data);
      if (err !== 0) {
        done(err);
        return;
      }
      this.channel.transport.drain();
      // The answer is usually read synchronously above; arm the timeout only if not.
      if (!timer.settled) {
        timer.t = setTimeout(() => {
          this.counters.timeouts++;
          done(ETIMEDOUT);
        }, this.replyTimeoutMs);
      }
    });
  }

  /** A dump; with `raw`, its data messages are handled in place (PendingOp.onRawMessage) instead of by `handle`. */
  private runDump(
    type: number,
    family: number,
    handle: (msg: NlMessage) => DecodeError | undefined,
    raw?: (buf: Buffer, pos: number, len: number) => DecodeError | undefined,
  ): Promise<number> {
    return this.channel.serialise(
      () =>
        new Promise<number>((resolve, reject) => {
          const w = new NlWriter(64);
          const seq = this.channel.allocSeq(1);
          w.begin(type, NLM_F_REQUEST | NLM_F_DUMP, seq, family);
          w.end();
          let count = 0;
          // One timer per dump, not one per message (a 100k dump re-armed a
          // timer 100k times): it fails the dump once a whole interval went
          // by without a message, so a stall is seen after one to two
          // replyTimeoutMs, the first message after exactly one.
          let seen = 0;
          let seenAtCheck = 0;
          /** One dumped message handled: counted, or its decode error noted. */
          const took = (err: DecodeError | undefined) => {
            seen++;
            if (err) this.noteDecodeError(err);
            else count++;
          };
          let timer: NodeJS.Timeout | undefined;
          const check = () => {
            if (seen === seenAtCheck) {
              this.counters.timeouts++;
              fail(ETIMEDOUT);
              return;
            }
            seenAtCheck = seen;
            timer = setTimeout(check, this.replyTimeoutMs);
          };
          const finish = () => {
            if (timer) clearTimeout(timer);
            this.channel.unregister(pending);
          };
          const fail = (errno: number) => {
            finish();
            reject(new KernelOpError('dump', errno));
          };
          const pending: PendingOp = {
            lo: seq,
            hi: seq + 1,
            onMessage: (msg) => took(handle(msg)),
            ...(raw && { onRawMessage: (buf: Buffer, pos: number, len: number) => took(raw(buf, pos, len)) }),
            onAck: (_s, errno) => {
              if (errno !== 0) fail(errno);
            },
            onDone: () => {
              finish();
              this.counters.dumps++;
              this.counters.dumpEntries += count;
              resolve(count);
            },
            onFail: fail,
          };
          this.channel.register(pending);
          const err = this.channel.transport.send(w.finish());
          if (err !== 0) {
            fail(err);
            return;
          }
          timer = setTimeout(check, this.replyTimeoutMs);
        }),
    );
  }

  private noteDecodeError(e: DecodeError): void {
    this.counters.decodeErrors++;
    if (this.lastDecodeErrors.length >= 16) this.lastDecodeErrors.shift();
    this.lastDecodeErrors.push(e);
  }
}

const errnoLabels = new Map<number, string>();

/** The errno's name (EEXIST); memoised: a repeated commit labels 100k EEXISTs. */
export function errnoLabel(errno: number): string {
  let label = errnoLabels.get(errno);
  if (label === undefined) {
    label = new KernelOpError('', errno).code.slice('EKERNEL_'.length);
    errnoLabels.set(errno, label);
  }
  return label;
}

function writeLookup(w: NlWriter, key: Pick<ConntrackEntry, 'family' | 'orig' | 'zone'>): void {
  const t = w.nest(CTA.TUPLE_ORIG);
  encodeTuple(w, key.orig, key.family);
  w.endNest(t);
  if (key.zone !== undefined && key.zone !== 0) w.u16be(CTA.ZONE, key.zone);
}


/** form: how creates, updates and upserts write the entry, CONFIRMED included (see batchOf). */
function writeOp(
  w: NlWriter,
  op: KernelOp,
  item: ConntrackEntry | EntryRecord,
  seq: number,
  ackFlag: number,
  form: RequestForm,
): void {
  if (item instanceof EntryRecord && (op === 'create' || op === 'update' || op === 'upsert')) {
    const flags = NLM_F_REQUEST | ackFlag | (op === 'create' ? NLM_F_CREATE | NLM_F_EXCL : op === 'upsert' ? NLM_F_CREATE : 0);
    w.begin(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW), flags, seq, item.w[item.at + W_HEAD]! & 0xff);
    encodeRequestRecord(w, item, form, op === 'create');
    w.end();
    return;
  }
  const entry = item instanceof EntryRecord ? item.entry() : item;
  const family = entry.family ?? AF_INET;
  if (op === 'delete') {
    w.begin(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | ackFlag, seq, family);
    writeLookup(w, entry);
    w.end();
    return;
  }
  let flags = NLM_F_REQUEST | ackFlag;
  if (op === 'create') flags |= NLM_F_CREATE | NLM_F_EXCL;
  else if (op === 'upsert') flags |= NLM_F_CREATE;
  w.begin(msgType(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW), flags, seq, family);
  if (op === 'timeout') {
    writeLookup(w, entry);
    w.u32be(CTA.TIMEOUT, entry.timeout ?? 0);
    w.end();
    return;
  }
  // The kernel only accepts entries it can treat as confirmed (EBUSY
  // otherwise): the caller's form sets CONFIRMED.
  encodeRequest(w, entry, form, op === 'create');
  w.end();
}
