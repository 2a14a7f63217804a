// An in-memory conntrack table that speaks ctnetlink through fake sockets
// implementing NetlinkTransport. Requests are decoded with the real codec
// and answered with real message bytes, so everything above the socket runs
// unchanged in unit tests. It mirrors the kernel behaviours ctsyncd relies
// on: EEXIST/ENOENT/EBUSY, events tagged with the requester's port id,
// receive-buffer overruns (ENOBUFS), dumps in several datagrams, and NAT
// set up on a create from CTA_NAT_SRC / CTA_NAT_DST (refused on an update).
import { formatIPv4At, formatIPv6At } from '../common/address.js';
import {
  AF_INET,
  CTA,
  CTA_EXPECT,
  CTA_NAT,
  CTA_PROTONAT,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  IPCTNL_MSG_CT_NEW,
  IPCTNL_MSG_EXP_DELETE,
  IPCTNL_MSG_EXP_GET,
  IPCTNL_MSG_EXP_NEW,
  IPS,
  NFNL_SUBSYS_CTNETLINK,
  NFNL_SUBSYS_CTNETLINK_EXP,
  NFNLGRP_CONNTRACK_DESTROY,
  NFNLGRP_CONNTRACK_EXP_DESTROY,
  NFNLGRP_CONNTRACK_EXP_NEW,
  NFNLGRP_CONNTRACK_NEW,
  NFNLGRP_CONNTRACK_UPDATE,
  NLM_F_ACK,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
} from './constants.js';
import { runClassicBpf } from './bpf.js';
import { decodeConntrack, decodeExpect, encodeConntrack, encodeExpect } from './ct-codec.js';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey, type Tuple } from './entry.js';
import { AttrIterator, beU16, type NlMessage, NlWriter, parseNetlink } from './netlink-codec.js';
import type { NetlinkReceiver, NetlinkTransport, TransportOptions } from './transport.js';

const ENOENT = 2;
const ENOMEM = 12;
const EBUSY = 16;
const EEXIST = 17;
const EINVAL = 22;
const ENOBUFS = 105;
const EOPNOTSUPP = 95;

/** Bytes the real kernel charges per queued small skb; used for overrun accounting. */
const SKB_OVERHEAD = 640;
const DEFAULT_RCVBUF = 212_992;
const DUMP_DATAGRAM = 16 * 1024;
const NLMSG_MIN_TYPE = 0x10;

type Op = 'create' | 'update' | 'delete' | 'get';

export interface FakeKernelOptions {
  /** Table size limit, like nf_conntrack_max; inserts beyond it fail with ENOMEM. */
  maxEntries?: number;
}

export class FakeKernel {
  readonly table = new Map<string, ConntrackEntry>();
  readonly expectations = new Map<string, ExpectEntry>();
  maxEntries: number;
  private readonly sockets = new Set<FakeSocket>();
  private nextPortid = 1000;
  private nextId = 1;
  private readonly injected: Array<{ op: Op; errno: number; remaining: number }> = [];

  constructor(opts: FakeKernelOptions = {}) {
    this.maxEntries = opts.maxEntries ?? Number.POSITIVE_INFINITY;
  }

  openSocket = (opts: TransportOptions = {}): FakeSocket => {
    const s = new FakeSocket(this, this.nextPortid++, opts);
    this.sockets.add(s);
    return s;
  };

  /** The sockets open now, for assertions (an event socket is one with groups). */
  openSockets(): FakeSocket[] {
    return [...this.sockets];
  }

  /** Makes the next `count` requests of kind op fail with errno. */
  injectError(op: Op, errno: number, count = 1): void {
    this.injected.push({ op, errno, remaining: count });
  }

  /** A packet created a flow: stored and announced with pid 0. */
  packetNew(entry: ConntrackEntry): void {
    const stored = this.store(entry);
    this.announce(NFNLGRP_CONNTRACK_NEW, stored, 0);
  }

  packetUpdate(entry: ConntrackEntry): void {
    const key = entryKey(entry);
    const old = this.table.get(key);
    const stored = { ...old, ...entry, id: old?.id ?? this.nextId++ };
    this.table.set(key, stored);
    this.announce(NFNLGRP_CONNTRACK_UPDATE, stored, 0);
  }

  /** A flow timed out or was closed. */
  expire(entry: Pick<ConntrackEntry, 'family' | 'orig' | 'zone'>): boolean {
    const key = entryKey(entry);
    const old = this.table.get(key);
    if (!old) return false;
    this.table.delete(key);
    this.announce(NFNLGRP_CONNTRACK_DESTROY, old, 0);
    return true;
  }

  /** @internal */
  closeSocket(s: FakeSocket): void {
    this.sockets.delete(s);
  }

  /** @internal Handles one request message; pushes replies to `from`. */
  handle(from: FakeSocket, msg: NlMessage): void {
    // Control messages (NLMSG_NOOP and friends) are only acknowledged, as netlink_rcv_skb does.
    if (msg.type < NLMSG_MIN_TYPE) return from.ack(msg, 0);
    const subsys = msg.type >> 8;
    const kind = msg.type & 0xff;
    if (subsys === NFNL_SUBSYS_CTNETLINK) {
      if (kind === IPCTNL_MSG_CT_NEW) return this.onNew(from, msg);
      if (kind === IPCTNL_MSG_CT_GET) return this.onGet(from, msg);
      if (kind === IPCTNL_MSG_CT_DELETE) return this.onDelete(from, msg);
    } else if (subsys === NFNL_SUBSYS_CTNETLINK_EXP) {
      if (kind === IPCTNL_MSG_EXP_NEW) return this.onExpNew(from, msg);
      if (kind === IPCTNL_MSG_EXP_GET) return this.onExpGet(from, msg);
      if (kind === IPCTNL_MSG_EXP_DELETE) return this.onExpDelete(from, msg);
    }
    from.ack(msg, EOPNOTSUPP);
  }

  private takeInjected(op: Op): number {
    const i = this.injected.findIndex((x) => x.op === op);
    if (i < 0) return 0;
    const inj = this.injected[i]!;
    if (--inj.remaining <= 0) this.injected.splice(i, 1);
    return inj.errno;
  }

  private store(entry: ConntrackEntry): ConntrackEntry {
    const stored: ConntrackEntry = { ...entry, id: entry.id ?? this.nextId++, use: 1 };
    this.table.set(entryKey(entry), stored);
    return stored;
  }

  private onNew(from: FakeSocket, msg: NlMessage): void {
    const injected = this.takeInjected(msg.flags & NLM_F_CREATE ? 'create' : 'update');
    if (injected) return from.ack(msg, injected);
    // Lookup mode: an update may carry the original tuple alone (a timeout change does).
    const r = decodeConntrack(msg, { lookup: true });
    if (!r.ok) return from.ack(msg, EINVAL);
    const nat = natSetup(msg);
    if (nat === undefined) return from.ack(msg, EINVAL);
    const e = r.value;
    const key = entryKey(e);
    const old = this.table.get(key);
    if (old) {
      if (msg.flags & NLM_F_EXCL) return from.ack(msg, EEXIST);
      // ctnetlink_change_conntrack: NAT is set up once, when the entry is created.
      if (nat.src !== undefined || nat.dst !== undefined) return from.ack(msg, EOPNOTSUPP);
      const merged: ConntrackEntry = { ...old, ...e, reply: old.reply, id: old.id, use: old.use };
      this.table.set(key, merged);
      this.announce(NFNLGRP_CONNTRACK_UPDATE, merged, from.portid);
      return from.ack(msg, 0);
    }
    if (!(msg.flags & NLM_F_CREATE)) return from.ack(msg, ENOENT);
    if (!e.reply) return from.ack(msg, EINVAL);
    if (!((e.status ?? 0) & IPS.CONFIRMED)) return from.ack(msg, EBUSY);
    if (this.table.size >= this.maxEntries) return from.ack(msg, ENOMEM);
    const stored = this.store(applyNat({ ...e, id: undefined } as ConntrackEntry, nat));
    this.announce(NFNLGRP_CONNTRACK_NEW, stored, from.portid);
    from.ack(msg, 0);
  }

  private onGet(from: FakeSocket, msg: NlMessage): void {
    if ((msg.flags & NLM_F_DUMP) === NLM_F_DUMP) {
      const family = msg.payload.length > 0 ? msg.payload[0]! : 0;
      const entries = [...this.table.values()].filter((e) => family === 0 || e.family === family);
      return from.dumpReply(msg, entries.length, (w, i, seq) => {
        const e = entries[i]!;
        w.begin((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_MULTI, seq, e.family);
        encodeConntrack(w, e, { readOnly: true });
        w.end();
      });
    }
    const injected = this.takeInjected('get');
    if (injected) return from.ack(msg, injected);
    const r = decodeConntrack(msg, { lookup: true });
    if (!r.ok) return from.ack(msg, EINVAL);
    const found = this.table.get(entryKey(r.value));
    if (!found) return from.ack(msg, ENOENT);
    from.reply((w) => {
      w.begin((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, 0, msg.seq, found.family);
      encodeConntrack(w, found, { readOnly: true });
      w.end();
    });
    from.ack(msg, 0);
  }

  private onDelete(from: FakeSocket, msg: NlMessage): void {
    const injected = this.takeInjected('delete');
    if (injected) return from.ack(msg, injected);
    // A delete without a tuple flushes (one family, or all).
    if (msg.payload.length <= 4) {
      const family = msg.payload.length > 0 ? msg.payload[0]! : 0;
      for (const [key, e] of this.table) {
        if (family !== 0 && e.family !== family) continue;
        this.table.delete(key);
        this.announce(NFNLGRP_CONNTRACK_DESTROY, e, from.portid);
      }
      return from.ack(msg, 0);
    }
    const r = decodeConntrack(msg, { lookup: true });
    if (!r.ok) return from.ack(msg, EINVAL);
    const key = entryKey(r.value);
    const old = this.table.get(key);
    if (!old) return from.ack(msg, ENOENT);
    this.table.delete(key);
    this.announce(NFNLGRP_CONNTRACK_DESTROY, old, from.portid);
    from.ack(msg, 0);
  }

  private onExpNew(from: FakeSocket, msg: NlMessage): void {
    const r = decodeExpect(msg);
    if (!r.ok) return from.ack(msg, EINVAL);
    const e = r.value;
    // The kernel attaches an expectation to an existing master only.
    const master = this.table.get(entryKey({ family: e.family, orig: e.master, zone: e.zone }));
    if (!master) return from.ack(msg, ENOENT);
    const key = expectKey(e);
    if (this.expectations.has(key) && msg.flags & NLM_F_EXCL) return from.ack(msg, EEXIST);
    const stored = { ...e, id: this.nextId++ };
    this.expectations.set(key, stored);
    this.announceExpect(NFNLGRP_CONNTRACK_EXP_NEW, stored, from.portid);
    from.ack(msg, 0);
  }

  private onExpGet(from: FakeSocket, msg: NlMessage): void {
    if ((msg.flags & NLM_F_DUMP) !== NLM_F_DUMP) return from.ack(msg, EOPNOTSUPP);
    const entries = [...this.expectations.values()];
    from.dumpReply(msg, entries.length, (w, i, seq) => {
      const e = entries[i]!;
      w.begin((NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW, NLM_F_MULTI, seq, e.family);
      encodeExpect(w, e, { readOnly: true });
      w.end();
    });
  }

  private onExpDelete(from: FakeSocket, msg: NlMessage): void {
    // As ctnetlink_del_expect: no tuple means all of them, or with
    // CTA_EXPECT_HELP_NAME all whose master has that helper.
    const scope = expectDeleteScope(msg);
    if (scope === undefined) return from.ack(msg, EINVAL);
    if (scope.all) {
      for (const [key, e] of this.expectations) {
        if (scope.helper !== undefined && e.helper !== scope.helper) continue;
        this.expectations.delete(key);
        this.announceExpect(NFNLGRP_CONNTRACK_EXP_DESTROY, e, from.portid);
      }
      return from.ack(msg, 0);
    }
    const r = decodeExpect(msg);
    if (!r.ok) return from.ack(msg, EINVAL);
    const key = expectKey(r.value);
    const old = this.expectations.get(key);
    if (!old) return from.ack(msg, ENOENT);
    this.expectations.delete(key);
    this.announceExpect(NFNLGRP_CONNTRACK_EXP_DESTROY, old, from.portid);
    from.ack(msg, 0);
  }

  private announce(group: number, e: ConntrackEntry, pid: number): void {
    const type = (NFNL_SUBSYS_CTNETLINK << 8) | (group === NFNLGRP_CONNTRACK_DESTROY ? IPCTNL_MSG_CT_DELETE : 0);
    const flags = group === NFNLGRP_CONNTRACK_NEW ? NLM_F_CREATE | NLM_F_EXCL : 0;
    this.multicast(group, pid, (w) => {
      w.begin(type, flags, 0, e.family ?? AF_INET);
      encodeConntrack(w, e, { readOnly: true });
      w.end();
    });
  }

  private announceExpect(group: number, e: ExpectEntry, pid: number): void {
    const destroy = group === NFNLGRP_CONNTRACK_EXP_DESTROY;
    const type = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | (destroy ? IPCTNL_MSG_EXP_DELETE : IPCTNL_MSG_EXP_NEW);
    const flags = group === NFNLGRP_CONNTRACK_EXP_NEW ? NLM_F_CREATE | NLM_F_EXCL : 0;
    this.multicast(group, pid, (w) => {
      w.begin(type, flags, 0, e.family);
      encodeExpect(w, e, { readOnly: true });
      w.end();
    });
  }

  private multicast(group: number, pid: number, build: (w: NlWriter) => void): void {
    let bytes: Buffer | undefined;
    for (const s of this.sockets) {
      if (!s.groups.has(group)) continue;
      if (!bytes) {
        const w = new NlWriter(256);
        build(w);
        bytes = Buffer.from(w.finish());
        // Events name the port id of the socket whose request caused them.
        bytes.writeUInt32LE(pid, 12);
      }
      s.enqueue(bytes, true);
    }
  }
}

export class FakeSocket implements NetlinkTransport {
  readonly groups = new Set<number>();
  private receiver: NetlinkReceiver | undefined;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private rcvbuf: number;
  private sndbuf = DEFAULT_RCVBUF;
  private pendingError = 0;
  private noEnobufs = false;
  private broadcastError = false;
  /**
   * Events the kernel could not queue while NETLINK_BROADCAST_ERROR is on:
   * ctnetlink keeps them and delivers them again later (reliable delivery),
   * here as soon as the queue has been read.
   */
  private readonly redeliver: Buffer[] = [];
  private filter: Buffer | undefined;
  private scheduled = false;
  private closed = false;
  private readonly writer = new NlWriter(4096);
  /** Counts of what the kernel did for this socket, for assertions. */
  readonly stats = { sends: 0, asyncSends: 0, messages: 0, dropped: 0, filtered: 0, redelivered: 0 };

  constructor(
    private readonly kernel: FakeKernel,
    readonly portid: number,
    opts: TransportOptions,
  ) {
    this.rcvbuf = opts.receiveBufferBytes ?? DEFAULT_RCVBUF;
    if (opts.sendBufferBytes) this.sndbuf = opts.sendBufferBytes;
    for (const g of opts.groups ?? []) this.groups.add(g);
  }

  setReceiver(receiver: NetlinkReceiver): void {
    this.receiver = receiver;
    this.schedule();
  }

  send(data: Buffer): number {
    if (this.closed) return 9;
    if (data.length > this.sndbuf) return 90; // EMSGSIZE, as netlink_sendmsg
    this.stats.sends++;
    const { messages, error } = parseNetlink(data, 0, data.length);
    for (const m of messages) {
      this.stats.messages++;
      this.kernel.handle(this, m);
    }
    if (error) return EINVAL;
    return 0;
  }

  /** As the real socket: the kernel's work done, then done(errno) on a later turn of the event loop. */
  sendAsync(data: Buffer, done: (errno: number) => void): void {
    const errno = this.send(data);
    this.stats.asyncSends++;
    setImmediate(() => done(errno));
  }

  drain(): void {
    if (this.closed || !this.receiver) return;
    // Deliver in one batch like recvBatch: concatenated datagrams.
    while (this.queue.length > 0 || this.pendingError) {
      if (this.queue.length > 0) {
        const batch = Buffer.concat(this.queue.splice(0, 256));
        this.queuedBytes = this.queue.reduce((n, b) => n + b.length + SKB_OVERHEAD, 0);
        this.receiver.onData(batch, 0, batch.length);
        if (this.closed) return;
      }
      if (this.pendingError) {
        const e = this.pendingError;
        this.pendingError = 0;
        this.receiver.onError(e);
      }
    }
    if (this.redeliver.length > 0) {
      const held = this.redeliver.splice(0);
      for (const d of held) this.enqueue(d, true);
      return;
    }
    this.receiver.onEmpty?.();
  }

  joinGroup(group: number): void {
    if (group < 1 || group > 32) throw Object.assign(new Error('setsockopt: Invalid argument'), { errno: EINVAL });
    this.groups.add(group);
  }

  leaveGroup(group: number): void {
    this.groups.delete(group);
  }

  setReceiveBuffer(bytes: number): number {
    this.rcvbuf = bytes;
    return bytes;
  }

  setSendBuffer(bytes: number): number {
    this.sndbuf = bytes;
    return bytes;
  }

  setNoEnobufs(on: boolean): void {
    this.noEnobufs = on;
  }

  setBroadcastError(on: boolean): void {
    this.broadcastError = on;
  }

  setFilter(program: Buffer): void {
    this.filter = program.length > 0 ? Buffer.from(program) : undefined;
  }

  ref(_on: boolean): void {}

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.kernel.closeSocket(this);
  }

  /** @internal Queues one datagram; multicast ones may overrun the buffer. */
  enqueue(datagram: Buffer, multicast: boolean): void {
    if (this.closed) return;
    // The socket's program, run on the very bytes as the kernel would (bpf.ts).
    if (multicast && this.filter && runClassicBpf(this.filter, datagram) === 0) {
      this.stats.filtered++;
      return;
    }
    const cost = datagram.length + SKB_OVERHEAD;
    if (multicast && this.queuedBytes + cost > this.rcvbuf) {
      if (this.broadcastError) {
        this.stats.redelivered++;
        this.redeliver.push(datagram);
        return;
      }
      this.stats.dropped++;
      if (!this.noEnobufs) this.pendingError = ENOBUFS;
      this.schedule();
      return;
    }
    this.queue.push(datagram);
    this.queuedBytes += cost;
    this.schedule();
  }

  /** @internal */
  ack(req: NlMessage, errno: number): void {
    if (errno === 0 && !(req.flags & NLM_F_ACK)) return;
    const b = Buffer.alloc(NLMSG_HDRLEN + 4 + NLMSG_HDRLEN);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt16LE(NLMSG_ERROR, 4);
    b.writeUInt16LE(NLM_F_CAPPED, 6);
    b.writeUInt32LE(req.seq, 8);
    b.writeUInt32LE(this.portid, 12);
    b.writeInt32LE(-errno, 16);
    b.writeUInt32LE(NLMSG_HDRLEN + req.payload.length, 20);
    b.writeUInt16LE(req.type, 24);
    b.writeUInt16LE(req.flags, 26);
    b.writeUInt32LE(req.seq, 28);
    b.writeUInt32LE(req.pid, 32);
    this.enqueue(b, false);
  }

  /** @internal */
  reply(build: (w: NlWriter) => void): void {
    const w = this.writer;
    w.reset();
    build(w);
    this.enqueue(Buffer.from(w.finish()), false);
  }

  /** @internal A dump: entries packed into datagrams of about 16 KiB, then NLMSG_DONE. */
  dumpReply(req: NlMessage, count: number, write: (w: NlWriter, i: number, seq: number) => void): void {
    const w = this.writer;
    w.reset();
    for (let i = 0; i < count; i++) {
      write(w, i, req.seq);
      if (w.length >= DUMP_DATAGRAM) {
        this.enqueue(Buffer.from(w.finish()), false);
        w.reset();
      }
    }
    if (w.length > 0) this.enqueue(Buffer.from(w.finish()), false);
    const done = Buffer.alloc(NLMSG_HDRLEN + 4);
    done.writeUInt32LE(done.length, 0);
    done.writeUInt16LE(NLMSG_DONE, 4);
    done.writeUInt16LE(NLM_F_MULTI, 6);
    done.writeUInt32LE(req.seq, 8);
    done.writeUInt32LE(this.portid, 12);
    this.enqueue(done, false);
  }

  private schedule(): void {
    if (this.scheduled || !this.receiver) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }
}

/** One CTA_NAT_SRC / CTA_NAT_DST range as a create carries it (ctsyncd sends single-address ranges). */
interface NatRange {
  addr: string;
  port: number | undefined;
}

/** What an EXP_DELETE names: one expectation (its tuple), or all of them, of one helper or any; undefined when malformed. */
function expectDeleteScope(msg: NlMessage): { all: boolean; helper?: string } | undefined {
  const p = msg.payload;
  const it = new AttrIterator().reset(p, 4, p.length, 0);
  let helper: string | undefined;
  while (it.next()) {
    if (it.type === CTA_EXPECT.TUPLE) return { all: false };
    if (it.type === CTA_EXPECT.HELP_NAME) {
      const nul = p.indexOf(0, it.off);
      helper = p.toString('utf8', it.off, nul >= it.off && nul < it.off + it.len ? nul : it.off + it.len);
    }
  }
  if (it.error) return undefined;
  return helper === undefined ? { all: true } : { all: true, helper };
}

/** The NAT setup of a CT_NEW request; undefined when it is malformed. */
function natSetup(msg: NlMessage): { src: NatRange | undefined; dst: NatRange | undefined } | undefined {
  const p = msg.payload;
  const family = p.length > 0 ? p[0]! : AF_INET;
  const it = new AttrIterator().reset(p, 4, p.length, 0);
  const out: { src: NatRange | undefined; dst: NatRange | undefined } = { src: undefined, dst: undefined };
  while (it.next()) {
    if (it.type !== CTA.NAT_SRC && it.type !== CTA.NAT_DST) continue;
    const r = natRange(it, family);
    if (r === undefined) return undefined;
    if (it.type === CTA.NAT_SRC) out.src = r;
    else out.dst = r;
  }
  return it.error ? undefined : out;
}

function natRange(parent: AttrIterator, family: number): NatRange | undefined {
  const it = new AttrIterator();
  if (!parent.enter(it)) return undefined;
  const [minType, size] = family === AF_INET ? [CTA_NAT.V4_MINIP, 4] : [CTA_NAT.V6_MINIP, 16];
  let addr: string | undefined;
  let port: number | undefined;
  while (it.next()) {
    if (it.type === minType) {
      if (it.len !== size) return undefined;
      addr = size === 4 ? formatIPv4At(it.buf, it.off) : formatIPv6At(it.buf, it.off);
    } else if (it.type === CTA_NAT.PROTO) {
      const pi = new AttrIterator();
      if (!it.enter(pi)) return undefined;
      while (pi.next()) {
        if (pi.type !== CTA_PROTONAT.PORT_MIN) continue;
        if (pi.len !== 2) return undefined;
        port = beU16(pi.buf, pi.off);
      }
      if (pi.error) return undefined;
    }
  }
  // The kernel needs an address to map to (a port-only range keeps the address, ctsyncd never sends one).
  if (it.error || addr === undefined) return undefined;
  return { addr, port };
}

/**
 * The kernel's NAT setup on a create (ctnetlink_setup_nat, then
 * nf_nat_setup_info per manip, DST first): the connection's original
 * direction, as the sent reply tuple inverts it, gets the range's address
 * (and port, or ICMP id, for SRC) on the manipulated side. Only when that
 * changes the tuple is the reply tuple rewritten and IPS_SRC_NAT /
 * IPS_DST_NAT set; the NAT_DONE bit of both manips is set either way (a
 * manip without a range gets a null binding). The NAT bits of CTA_STATUS
 * itself are never taken. Without CTA_NAT_SRC and CTA_NAT_DST nothing is set up.
 */
function applyNat(e: ConntrackEntry, nat: { src: NatRange | undefined; dst: NatRange | undefined }): ConntrackEntry {
  const natBits = IPS.SRC_NAT | IPS.DST_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE;
  let status = (e.status ?? 0) & ~natBits;
  if (nat.src === undefined && nat.dst === undefined) return { ...e, status };
  const reply: Tuple = { ...e.reply };
  const d = nat.dst;
  if (d !== undefined) {
    // The original direction's destination is the reply's source.
    const port = d.port !== undefined && reply.sport !== undefined ? d.port : reply.sport;
    if (d.addr !== reply.src || port !== reply.sport) {
      reply.src = d.addr;
      if (port !== undefined) reply.sport = port;
      status |= IPS.DST_NAT;
    }
  }
  const s = nat.src;
  if (s !== undefined) {
    // The original direction's source is the reply's destination (ICMP: the id is the "port").
    const portField = reply.dport !== undefined ? 'dport' : reply.icmpId !== undefined ? 'icmpId' : undefined;
    const cur = portField === undefined ? undefined : reply[portField];
    const port = s.port !== undefined && portField !== undefined ? s.port : cur;
    if (s.addr !== reply.dst || port !== cur) {
      reply.dst = s.addr;
      if (portField !== undefined && port !== undefined) reply[portField] = port;
      status |= IPS.SRC_NAT;
    }
  }
  status |= IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE;
  return { ...e, reply, status: status >>> 0 };
}
