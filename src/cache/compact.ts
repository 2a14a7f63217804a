// How cached entries are stored, compared and merged.
//
// Memory per entry is what bounds a cache of a million flows, and the
// decoder's objects are built for decoding speed, not for keeping. So an
// entry is copied into a compact form before it is stored:
//  - id, use, counters and timestamp are dropped: they are node-local or
//    change on every packet, and are never needed to take a flow over; so is
//    an all-zero synproxy state (see liveSynproxy);
//  - strings built by template literals are V8 cons strings (a tree of
//    pieces, ~2x the bytes); reading a character flattens them;
//  - a reply address equal to an original address reuses that string;
//  - tuples and the common entry shapes are built as one object literal, so
//    V8 keeps every field in-object instead of in a side array;
//  - TCP protoinfo is interned: a few hundred (state, wscale, flags)
//    combinations cover every flow, and a private copy of those four nested
//    objects would be the largest part of an entry. Interned objects are
//    frozen because many entries share them.
// Stored entries are shared, so nobody but the caches may write to them, and
// the caches write one field only: an unchanged entry gets its fresh
// `timeout` in place (see refreshTimeout), which spares a million-entry
// dump from re-allocating every entry it merely confirms.

import type {
  ConntrackEntry,
  ExpectEntry,
  ProtoInfo,
  SeqAdj,
  Synproxy,
  TcpFlags,
  TcpInfo,
  Tuple,
} from '../kernel/entry.js';
import { F_TIMEOUT, REC_WORDS, type RecordExtras, W_FLAGS, W_TIMEOUT } from '../kernel/ct-record.js';

/**
 * What compaction does with each entry field. `satisfies` makes a field added
 * to ConntrackEntry a compile error here until someone decides its fate.
 */
export const ENTRY_FIELDS = {
  family: 'keep',
  orig: 'keep',
  reply: 'keep',
  master: 'keep',
  status: 'keep',
  timeout: 'keep',
  mark: 'keep',
  zone: 'keep',
  labels: 'keep',
  labelsMask: 'keep',
  protoinfo: 'keep',
  seqAdjOrig: 'keep',
  seqAdjReply: 'keep',
  helper: 'keep',
  secmark: 'keep',
  secctx: 'keep',
  synproxy: 'keep',
  id: 'drop',
  use: 'drop',
  countersOrig: 'drop',
  countersReply: 'drop',
  timestamp: 'drop',
} as const satisfies Record<keyof ConntrackEntry, 'keep' | 'drop'>;

/**
 * The fields compactTuple and copyTcp copy one by one. A field added to Tuple
 * or TcpInfo fails to compile here, as a reminder to copy it there too.
 */
export const TUPLE_FIELDS = {
  src: true,
  dst: true,
  proto: true,
  sport: true,
  dport: true,
  icmpType: true,
  icmpCode: true,
  icmpId: true,
  zone: true,
} as const satisfies Record<keyof Tuple, true>;
export const TCP_FIELDS = {
  state: true,
  wscaleOrig: true,
  wscaleReply: true,
  flagsOrig: true,
  flagsReply: true,
} as const satisfies Record<keyof TcpInfo, true>;

function flat(s: string): string {
  // charCodeAt makes V8 flatten a cons string in place; GC then drops the pieces.
  s.charCodeAt(0);
  return s;
}

function compactTuple(t: Tuple, other: Tuple | undefined): Tuple {
  let src = flat(t.src);
  let dst = flat(t.dst);
  if (other !== undefined) {
    // Without NAT the reply tuple is the original one mirrored.
    if (src === other.dst) src = other.dst;
    if (dst === other.src) dst = other.src;
  }
  const { proto, sport, dport, icmpType, icmpCode, icmpId, zone } = t;
  if (zone === undefined) {
    if (sport !== undefined && dport !== undefined && icmpType === undefined && icmpId === undefined)
      return { src, dst, proto, sport, dport };
    if (sport === undefined && icmpType !== undefined && icmpCode !== undefined && icmpId !== undefined)
      return { src, dst, proto, icmpType, icmpCode, icmpId };
  }
  const out: Tuple = { src, dst, proto };
  if (sport !== undefined) out.sport = sport;
  if (dport !== undefined) out.dport = dport;
  if (icmpType !== undefined) out.icmpType = icmpType;
  if (icmpCode !== undefined) out.icmpCode = icmpCode;
  if (icmpId !== undefined) out.icmpId = icmpId;
  if (zone !== undefined) out.zone = zone;
  return out;
}

function sameTuple(a: Tuple, b: Tuple): boolean {
  return (
    a.src === b.src &&
    a.dst === b.dst &&
    a.proto === b.proto &&
    a.sport === b.sport &&
    a.dport === b.dport &&
    a.icmpType === b.icmpType &&
    a.icmpCode === b.icmpCode &&
    a.icmpId === b.icmpId &&
    a.zone === b.zone
  );
}

function copyFlags(f: TcpFlags | undefined): TcpFlags | undefined {
  return f === undefined ? undefined : { flags: f.flags, mask: f.mask };
}

function copyTcp(t: TcpInfo): TcpInfo {
  const out: TcpInfo = { state: t.state };
  if (t.wscaleOrig !== undefined) out.wscaleOrig = t.wscaleOrig;
  if (t.wscaleReply !== undefined) out.wscaleReply = t.wscaleReply;
  const fo = copyFlags(t.flagsOrig);
  if (fo !== undefined) out.flagsOrig = fo;
  const fr = copyFlags(t.flagsReply);
  if (fr !== undefined) out.flagsReply = fr;
  return out;
}

/** A number identifying the TCP info, or -1 when a value is outside what the key can hold. */
function tcpInternKey(t: TcpInfo): number {
  const { state, wscaleOrig: wo, wscaleReply: wr, flagsOrig: fo, flagsReply: fr } = t;
  if (!below(state, 16) || (wo !== undefined && !below(wo, 16)) || (wr !== undefined && !below(wr, 16))) return -1;
  const f1 = flagsKey(fo);
  const f2 = flagsKey(fr);
  if (f1 < 0 || f2 < 0) return -1;
  // 4 + 5 + 5 + 17 + 17 = 48 bits: exact in a double.
  return (((state * 17 + (wo ?? 16)) * 17 + (wr ?? 16)) * 131073 + f1) * 131073 + f2;
}

function flagsKey(f: TcpFlags | undefined): number {
  if (f === undefined) return 131072;
  return below(f.flags, 256) && below(f.mask, 256) ? f.flags * 256 + f.mask : -1;
}

function below(v: number, limit: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < limit;
}

function freezeTcp(t: TcpInfo): TcpInfo {
  if (t.flagsOrig !== undefined) Object.freeze(t.flagsOrig);
  if (t.flagsReply !== undefined) Object.freeze(t.flagsReply);
  return Object.freeze(t);
}

/**
 * Compacts entries for storage. One per cache, so the intern table lives and
 * dies with the cache instead of being a module-level singleton.
 */
export class EntryCompactor {
  private readonly tcpInterned = new Map<number, ProtoInfo>();

  /** maxInterned bounds the intern table against a peer sending garbage combinations. */
  constructor(private readonly maxInterned = 4096) {}

  get internedCount(): number {
    return this.tcpInterned.size;
  }

  /**
   * The compact form of `e`. With `base`, a stored entry of the same key,
   * `e` is a kernel UPDATE event and is laid over it: the event carries only
   * what changed plus a few fixed fields (ctnetlink_conntrack_event includes
   * protoinfo, labels, seqadj, master... only when their event bit is set),
   * so fields present in `e` win and absent ones keep base's value, as
   * conntrackd's nfct_copy() does. Unchanged tuples and protoinfo of base
   * are reused, not copied.
   */
  entry(e: ConntrackEntry, base?: ConntrackEntry): ConntrackEntry {
    const orig = base !== undefined && sameTuple(e.orig, base.orig) ? base.orig : compactTuple(e.orig, undefined);
    const reply = base !== undefined && sameTuple(e.reply, base.reply) ? base.reply : compactTuple(e.reply, orig);
    const family = e.family;
    const status = e.status ?? base?.status;
    const timeout = e.timeout ?? base?.timeout;
    const mark = e.mark ?? base?.mark;
    const protoinfo = e.protoinfo === undefined ? base?.protoinfo : this.protoinfo(e.protoinfo);
    // The shapes the kernel sends for nearly every flow, as literals (see the
    // file comment); anything else is assembled field by field.
    let out: ConntrackEntry;
    if (status !== undefined && timeout !== undefined && mark !== undefined) {
      out =
        protoinfo !== undefined
          ? { family, orig, reply, status, timeout, mark, protoinfo }
          : { family, orig, reply, status, timeout, mark };
    } else {
      out = { family, orig, reply };
      if (status !== undefined) out.status = status;
      if (timeout !== undefined) out.timeout = timeout;
      if (mark !== undefined) out.mark = mark;
      if (protoinfo !== undefined) out.protoinfo = protoinfo;
    }
    const zone = e.zone ?? base?.zone;
    if (zone !== undefined) out.zone = zone;
    const master = e.master === undefined ? base?.master : compactTuple(e.master, undefined);
    if (master !== undefined) out.master = master;
    const labels = e.labels ?? base?.labels;
    if (labels !== undefined) out.labels = labels;
    const labelsMask = e.labelsMask ?? base?.labelsMask;
    if (labelsMask !== undefined) out.labelsMask = labelsMask;
    const seqAdjOrig = e.seqAdjOrig ?? base?.seqAdjOrig;
    if (seqAdjOrig !== undefined) out.seqAdjOrig = seqAdjOrig;
    const seqAdjReply = e.seqAdjReply ?? base?.seqAdjReply;
    if (seqAdjReply !== undefined) out.seqAdjReply = seqAdjReply;
    const helper = e.helper === undefined ? base?.helper : flat(e.helper);
    if (helper !== undefined) out.helper = helper;
    const secmark = e.secmark ?? base?.secmark;
    if (secmark !== undefined) out.secmark = secmark;
    const secctx = e.secctx === undefined ? base?.secctx : flat(e.secctx);
    if (secctx !== undefined) out.secctx = secctx;
    const synproxy = liveSynproxy(e.synproxy) ?? base?.synproxy;
    if (synproxy !== undefined) out.synproxy = synproxy;
    return out;
  }

  expect(e: ExpectEntry): ExpectEntry {
    // Expectations are few (one per FTP/SIP control flow at most), so only
    // the node-local id is dropped.
    if (e.id === undefined) return e;
    const { id: _id, ...rest } = e;
    return rest;
  }

  private protoinfo(p: ProtoInfo): ProtoInfo {
    const { tcp, sctp, dccp } = p;
    if (tcp === undefined || sctp !== undefined || dccp !== undefined) {
      const out: ProtoInfo = {};
      if (tcp !== undefined) out.tcp = copyTcp(tcp);
      if (sctp !== undefined) out.sctp = { ...sctp };
      if (dccp !== undefined) out.dccp = { ...dccp };
      return out;
    }
    const key = tcpInternKey(tcp);
    if (key < 0) return { tcp: copyTcp(tcp) };
    const hit = this.tcpInterned.get(key);
    if (hit !== undefined) return hit;
    const info: ProtoInfo = Object.freeze({ tcp: freezeTcp(copyTcp(tcp)) });
    if (this.tcpInterned.size < this.maxInterned) this.tcpInterned.set(key, info);
    return info;
  }
}

/**
 * Deep equality ignoring the top-level `timeout` (it moves every second and
 * is not news to a peer), treating an absent field like one holding
 * undefined. Generic, for expectations; conntrack entries, far more
 * numerous, go through carriesNothingNew.
 */
export function sameIgnoringTimeout(a: object, b: object): boolean {
  if (a === b) return true;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  for (const k in ra) if (k !== 'timeout' && !same(ra[k], rb[k])) return false;
  for (const k in rb) if (k !== 'timeout' && ra[k] === undefined && rb[k] !== undefined) return false;
  return true;
}

/**
 * Whether `incoming`, an entry as decoded from the kernel or the wire,
 * carries nothing new for `stored`, its cached compact form. The timeout and
 * the fields compaction drops are not compared. With `partial` (an UPDATE
 * event, see EntryCompactor.entry) only the fields `incoming` has count;
 * otherwise a field that only `stored` has is a difference too. Cheaper than
 * compacting first, and the common answer for dumps.
 */
export function carriesNothingNew(stored: ConntrackEntry, incoming: ConntrackEntry, partial: boolean): boolean {
  // Field by field rather than a generic walk: this runs for every event and
  // dump line, and a for-in over objects of many shapes is several times
  // slower. ENTRY_FIELDS' `keep` list is what must be covered here; the
  // tests change each kept field in turn to prove it.
  const s = stored;
  const n = incoming;
  return (
    n.family === s.family &&
    sameTuple(n.orig, s.orig) &&
    sameTuple(n.reply, s.reply) &&
    opt(n.master, s.master, partial, sameTuple) &&
    opt(n.status, s.status, partial, eq) &&
    opt(n.mark, s.mark, partial, eq) &&
    opt(n.zone, s.zone, partial, eq) &&
    opt(n.labels, s.labels, partial, sameBytes) &&
    opt(n.labelsMask, s.labelsMask, partial, sameBytes) &&
    opt(n.protoinfo, s.protoinfo, partial, sameProtoinfo) &&
    opt(n.seqAdjOrig, s.seqAdjOrig, partial, sameSeqAdj) &&
    opt(n.seqAdjReply, s.seqAdjReply, partial, sameSeqAdj) &&
    opt(n.helper, s.helper, partial, eq) &&
    opt(n.secmark, s.secmark, partial, eq) &&
    opt(n.secctx, s.secctx, partial, eq) &&
    opt(liveSynproxy(n.synproxy), s.synproxy, partial, sameSynproxy)
  );
}

/**
 * Synproxy state that says something, else undefined. ctnetlink gives every
 * entry it creates a synproxy extension, so entries written by a commit or a
 * conntrack tool (and their events) carry CTA_SYNPROXY with three zeros:
 * exactly the state of a connection that never went through SYNPROXY, and
 * what the kernel sets up for an entry created without it. Stored and sent,
 * those zeros cost two objects per entry (~90 bytes) for nothing.
 */
export function liveSynproxy(s: Synproxy | undefined): Synproxy | undefined {
  return s !== undefined && (s.isn | s.its | s.tsoff) !== 0 ? s : undefined;
}

/** An optional field: absent in `n` matches anything when partial, else only absence. */
function opt<T>(n: T | undefined, s: T | undefined, partial: boolean, same: (a: T, b: T) => boolean): boolean {
  if (n === undefined) return partial || s === undefined;
  return s !== undefined && same(n, s);
}

function eq<T>(a: T, b: T): boolean {
  return a === b;
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a === b || a.equals(b);
}

function sameFlags(a: TcpFlags | undefined, b: TcpFlags | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.flags === b.flags && a.mask === b.mask);
}

function sameTcp(a: TcpInfo, b: TcpInfo): boolean {
  return (
    a.state === b.state &&
    a.wscaleOrig === b.wscaleOrig &&
    a.wscaleReply === b.wscaleReply &&
    sameFlags(a.flagsOrig, b.flagsOrig) &&
    sameFlags(a.flagsReply, b.flagsReply)
  );
}

function sameProtoinfo(a: ProtoInfo, b: ProtoInfo): boolean {
  if (a === b) return true;
  const { tcp: at, sctp: as, dccp: ad } = a;
  const { tcp: bt, sctp: bs, dccp: bd } = b;
  if (at !== bt && (at === undefined || bt === undefined || !sameTcp(at, bt))) return false;
  if (
    as !== bs &&
    (as === undefined ||
      bs === undefined ||
      as.state !== bs.state ||
      as.vtagOrig !== bs.vtagOrig ||
      as.vtagReply !== bs.vtagReply)
  )
    return false;
  return (
    ad === bd ||
    (ad !== undefined &&
      bd !== undefined &&
      ad.state === bd.state &&
      ad.role === bd.role &&
      ad.handshakeSeq === bd.handshakeSeq)
  );
}

function sameSeqAdj(a: SeqAdj, b: SeqAdj): boolean {
  return a.correctionPos === b.correctionPos && a.offsetBefore === b.offsetBefore && a.offsetAfter === b.offsetAfter;
}

function sameSynproxy(a: Synproxy, b: Synproxy): boolean {
  return a.isn === b.isn && a.its === b.its && a.tsoff === b.tsoff;
}

/**
 * Gives a stored entry the timeout of an incoming one that carried nothing
 * else new. Returns the entry to keep: `stored` itself, written in place,
 * or, in the rare case that it has no timeout field yet, a copy.
 */
export function refreshTimeout(stored: ConntrackEntry, timeout: number | undefined): ConntrackEntry {
  if (timeout === undefined || timeout === stored.timeout) return stored;
  // A new field would change the object's shape; a copy keeps shapes stable.
  if (stored.timeout === undefined) return { ...stored, timeout };
  stored.timeout = timeout;
  return stored;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  for (const k in ra) if (!same(ra[k], rb[k])) return false;
  for (const k in rb) if (ra[k] === undefined && rb[k] !== undefined) return false;
  return true;
}

/**
 * carriesNothingNew for records (src/kernel/ct-record.ts): whether the
 * record at `n[nat]` with extras `nx` says nothing the stored one at
 * `s[sat]` does not, the timeout aside. Both were written whole, never
 * partially, so every word counts.
 */
export function recordCarriesNothingNew(
  s: Int32Array,
  sat: number,
  sx: RecordExtras | undefined,
  n: Int32Array,
  nat: number,
  nx: RecordExtras | undefined,
): boolean {
  for (let i = 0; i < REC_WORDS; i++) {
    if (i === W_TIMEOUT) continue;
    const a = s[sat + i]!;
    const b = n[nat + i]!;
    if (a !== b && (i !== W_FLAGS || (a & ~F_TIMEOUT) !== (b & ~F_TIMEOUT))) return false;
  }
  if (sx === nx) return true;
  if (sx === undefined || nx === undefined) return false;
  if (sx.whole !== undefined || nx.whole !== undefined)
    return sx.whole !== undefined && nx.whole !== undefined && carriesNothingNew(sx.whole, nx.whole, false);
  return (
    optSame(sx.master, nx.master, sameTuple) &&
    optSame(sx.labels, nx.labels, sameBytes) &&
    optSame(sx.labelsMask, nx.labelsMask, sameBytes) &&
    optSame(sx.protoinfo, nx.protoinfo, sameProtoinfo) &&
    optSame(sx.seqAdjOrig, nx.seqAdjOrig, sameSeqAdj) &&
    optSame(sx.seqAdjReply, nx.seqAdjReply, sameSeqAdj) &&
    sx.helper === nx.helper &&
    sx.secctx === nx.secctx &&
    optSame(sx.synproxy, nx.synproxy, sameSynproxy)
  );
}

function optSame<T>(a: T | undefined, b: T | undefined, same: (a: T, b: T) => boolean): boolean {
  return a === undefined ? b === undefined : b !== undefined && same(a, b);
}
