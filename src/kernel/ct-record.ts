// Conntrack entries as fixed-layout records: 26 little-endian 32-bit words
// (104 bytes) in a caller's Int32Array, instead of a tree of JavaScript
// objects and strings. A million cached flows as objects are a million
// times six objects for the garbage collector to trace and promote; as
// records they are one typed array it never looks into.
//
// A record holds what a peer needs to take a flow over and what the filters
// read, in the shape the kernel sends for nearly every flow: both tuples,
// status, timeout, mark, secmark, zone and the TCP protoinfo. The rare
// fields (master tuple, labels, helper, seqadj, synproxy, secctx, SCTP and
// DCCP state) live beside it in a RecordExtras object, and an entry whose
// shape the words cannot express exactly (a directional tuple zone, a reply
// protocol other than the original's, ports on a protocol without ports) is
// kept whole in its extras. Fields compaction drops (id, use, counters,
// timestamp, an all-zero synproxy; see src/cache/compact.ts) are not kept.
//
// The first KEY_WORDS words are the entry's identity exactly as entryKey()
// defines it (family, protocol, zone, original addresses, ports or ICMP
// type/code/id), so two records have equal key words exactly when their
// entries have equal entryKey()s: a hash table can compare ten integers
// instead of building a string per lookup.
//
// Word layout (addresses in network byte order as the bytes of their words;
// an IPv4 address takes the first of its four words, the rest stay zero):
//   0       family u8 | protocol u8 << 8 | zone u16 << 16
//   1..4    original source          5..8   original destination
//   9       original a | b << 16     (ports: sport, dport; ICMP: type << 8 | code, id)
//   10      presence flags (F_*, and the tuple field bits at O_SHIFT/R_SHIFT)
//   11..14  reply source             15..18 reply destination
//   19      reply a | b << 16
//   20 status   21 timeout   22 mark   23 secmark
//   24      TCP state | wscale original << 8 | wscale reply << 16
//   25      TCP flags original (flags | mask << 8) | flags reply << 16

import { formatIPv4At, formatIPv6At, parseIPv4, parseIPv6Into } from '../common/address.js';
import { AF_INET, AF_INET6, CTA, CTA_IP, CTA_PROTO, CTA_PROTOINFO, CTA_PROTOINFO_TCP, CTA_TUPLE, hasPorts, IPPROTO, NLA_TYPE_MASK } from './constants.js';
import type { ConntrackEntry, ProtoInfo, TcpInfo, Tuple } from './entry.js';

export const REC_WORDS = 26;
export const REC_BYTES = REC_WORDS * 4;
/** Words 0..KEY_WORDS-1 are the entry's identity (see the file comment). */
export const KEY_WORDS = 10;

export const W_HEAD = 0;
export const W_OSRC = 1;
export const W_ODST = 5;
export const W_OAB = 9;
export const W_FLAGS = 10;
export const W_RSRC = 11;
export const W_RDST = 15;
export const W_RAB = 19;
export const W_STATUS = 20;
export const W_TIMEOUT = 21;
export const W_MARK = 22;
export const W_SECMARK = 23;
export const W_TCP = 24;
export const W_TCPFLAGS = 25;

export const F_ZONE = 1 << 0;
export const F_STATUS = 1 << 1;
export const F_TIMEOUT = 1 << 2;
export const F_MARK = 1 << 3;
export const F_SECMARK = 1 << 4;
/** A protoinfo is present; its TCP part is in the words when F_TCP is set too, else in the extras. */
export const F_PROTOINFO = 1 << 5;
export const F_TCP = 1 << 6;
export const F_WSCALE_ORIG = 1 << 7;
export const F_WSCALE_REPLY = 1 << 8;
export const F_FLAGS_ORIG = 1 << 9;
export const F_FLAGS_REPLY = 1 << 10;
/** The entry is held whole in the extras; the words are only its key and what filters read. */
export const F_WHOLE = 1 << 11;
/** Tuple field presence, shifted by O_SHIFT (original) or R_SHIFT (reply). */
export const T_SPORT = 1;
export const T_DPORT = 2;
export const T_ICMP_TYPE = 4;
export const T_ICMP_CODE = 8;
export const T_ICMP_ID = 16;
export const O_SHIFT = 16;
export const R_SHIFT = 21;

/**
 * The fields a record's words cannot hold, as ConntrackEntry types them;
 * `whole` with F_WHOLE, and `protoinfo` only when it is not TCP alone (SCTP,
 * DCCP, or TCP values out of range).
 */
export type RecordExtras = Partial<
  Pick<ConntrackEntry, 'master' | 'labels' | 'labelsMask' | 'protoinfo' | 'seqAdjOrig' | 'seqAdjReply' | 'helper' | 'secctx' | 'synproxy'>
> & { whole?: ConntrackEntry };

/** Records in one ArrayBuffer, seen as words and as bytes (addresses are read as bytes). */
export interface RecordBuf {
  readonly w: Int32Array;
  readonly b: Buffer;
}

export function recordBuf(records: number): RecordBuf {
  const w = new Int32Array(records * REC_WORDS);
  return { w, b: Buffer.from(w.buffer, w.byteOffset, w.byteLength) };
}

// ---------------------------------------------------------------------------
// Identity

/** A 30-bit hash of the key words of the record at word `at`. */
export function recordHash(w: Int32Array, at: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < KEY_WORDS; i++) {
    h = Math.imul(h ^ w[at + i]!, 0x01000193);
    h ^= h >>> 15;
  }
  h = Math.imul(h, 0x85ebca6b);
  // 30 bits: a small integer to V8, so passing it on never boxes a number.
  return (h ^ (h >>> 13)) & 0x3fff_ffff;
}

export function sameRecordKey(a: Int32Array, at: number, b: Int32Array, bt: number): boolean {
  for (let i = 0; i < KEY_WORDS; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

/** The key words as a string, for the few Map and Set keys kept beside a table (tombstones, reconciles). */
export function recordKeyString(w: Int32Array, at: number): string {
  let s = '';
  for (let i = 0; i < KEY_WORDS; i++) {
    const v = w[at + i]!;
    s += String.fromCharCode(v & 0xffff, v >>> 16);
  }
  return s;
}

/** Copies one record's words. A loop: subarray() + set() would allocate two typed-array objects per record. */
export function copyRecordWords(src: Int32Array, at: number, dst: Int32Array, to: number): void {
  for (let i = 0; i < REC_WORDS; i++) dst[to + i] = src[at + i]!;
}

export function recordProto(w: Int32Array, at: number): number {
  return (w[at + W_HEAD]! >>> 8) & 0xff;
}

/** The TCP state, or -1 when the record has none in its words. */
export function recordTcpState(w: Int32Array, at: number): number {
  return (w[at + W_FLAGS]! & F_TCP) !== 0 ? w[at + W_TCP]! & 0xff : -1;
}

// ---------------------------------------------------------------------------
// Objects → record

function isU(v: number, limit: number): boolean {
  return v >>> 0 === v && v < limit;
}

/** Writes 16 address bytes at byte `o`; false when the text is not an address of the family. */
function writeAddr(r: RecordBuf, o: number, s: string, family: number): boolean {
  if (family === AF_INET) {
    const v = parseIPv4(s);
    if (v === undefined) return false;
    const b = r.b;
    b[o] = v >>> 24;
    b[o + 1] = (v >>> 16) & 0xff;
    b[o + 2] = (v >>> 8) & 0xff;
    b[o + 3] = v & 0xff;
    // Word writes: Buffer.fill costs more than the rest of the record.
    const wi = o >> 2;
    r.w[wi + 1] = 0;
    r.w[wi + 2] = 0;
    r.w[wi + 3] = 0;
    return true;
  }
  return parseIPv6Into(s, r.b, o);
}

/**
 * The presence bits of a tuple's protocol fields and its a/b word, or -1
 * when the words cannot express the tuple exactly (it is then kept whole).
 */
function tupleBits(t: Tuple, proto: number): number {
  const { sport, dport, icmpType, icmpCode, icmpId } = t;
  if (t.zone !== undefined || t.proto !== proto) return -1;
  if (hasPorts(proto)) {
    if (icmpType !== undefined || icmpCode !== undefined || icmpId !== undefined) return -1;
    if ((sport !== undefined && !isU(sport, 0x10000)) || (dport !== undefined && !isU(dport, 0x10000))) return -1;
    return (sport !== undefined ? T_SPORT : 0) | (dport !== undefined ? T_DPORT : 0);
  }
  if (sport !== undefined || dport !== undefined) return -1;
  if (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6) {
    if ((icmpType !== undefined && !isU(icmpType, 256)) || (icmpCode !== undefined && !isU(icmpCode, 256))) return -1;
    if (icmpId !== undefined && !isU(icmpId, 0x10000)) return -1;
    return (
      (icmpType !== undefined ? T_ICMP_TYPE : 0) |
      (icmpCode !== undefined ? T_ICMP_CODE : 0) |
      (icmpId !== undefined ? T_ICMP_ID : 0)
    );
  }
  return icmpType !== undefined || icmpCode !== undefined || icmpId !== undefined ? -1 : 0;
}

/** The a | b << 16 word of a tuple as entryKey() reads it (absent fields are 0). */
function tupleAB(t: Tuple, proto: number): number {
  if (hasPorts(proto)) return ((t.sport ?? 0) & 0xffff) | (((t.dport ?? 0) & 0xffff) << 16);
  if (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6)
    return ((((t.icmpType ?? 0) & 0xff) << 8) | ((t.icmpCode ?? 0) & 0xff)) | (((t.icmpId ?? 0) & 0xffff) << 16);
  return 0;
}

function isPlainTcp(p: ProtoInfo): boolean {
  const t = p.tcp;
  if (t === undefined || p.sctp !== undefined || p.dccp !== undefined) return false;
  if (!isU(t.state, 256)) return false;
  if (t.wscaleOrig !== undefined && !isU(t.wscaleOrig, 256)) return false;
  if (t.wscaleReply !== undefined && !isU(t.wscaleReply, 256)) return false;
  const fo = t.flagsOrig;
  const fr = t.flagsReply;
  if (fo !== undefined && !(isU(fo.flags, 256) && isU(fo.mask, 256))) return false;
  return fr === undefined || (isU(fr.flags, 256) && isU(fr.mask, 256));
}

/** What identifies an entry: entryKey() reads these fields only. */
export type EntryIdentity = Pick<ConntrackEntry, 'family' | 'orig' | 'zone'>;

/**
 * Writes the key words (0..KEY_WORDS-1) of `e` at word `at`: enough to look
 * an entry up. False when the entry cannot be keyed (see writeEntryRecord).
 */
export function writeKeyWords(e: EntryIdentity, r: RecordBuf, at: number): boolean {
  const family = e.family;
  const orig = e.orig;
  const proto = orig.proto;
  const zone = e.zone;
  if ((family !== AF_INET && family !== AF_INET6) || !isU(proto, 256)) return false;
  if (zone !== undefined && !isU(zone, 0x10000)) return false;
  const o = at * 4;
  if (!writeAddr(r, o + W_OSRC * 4, orig.src, family) || !writeAddr(r, o + W_ODST * 4, orig.dst, family)) return false;
  r.w[at + W_HEAD] = family | (proto << 8) | ((zone ?? 0) << 16);
  r.w[at + W_OAB] = tupleAB(orig, proto);
  return true;
}

/**
 * Writes `e` as the record at word `at` of `r`. Returns the extras the
 * record needs (undefined: none), or false when the entry cannot be keyed
 * like entryKey() keys it numerically (an address that is not of its
 * family, a protocol or zone out of range): such an entry comes from no
 * decoder and is refused by the caller.
 * `whole` is the entry to keep when the words cannot express it: pass the
 * compacted form, so that what is kept is what the object caches keep.
 */
export function writeEntryRecord(
  e: ConntrackEntry,
  r: RecordBuf,
  at: number,
  whole: (e: ConntrackEntry) => ConntrackEntry = (x) => x,
): RecordExtras | undefined | false {
  if (!writeKeyWords(e, r, at)) return false;
  const w = r.w;
  const family = e.family;
  const orig = e.orig;
  const reply = e.reply;
  const proto = orig.proto;
  const zone = e.zone;
  const o = at * 4;
  const ob = tupleBits(orig, proto);
  const rb = tupleBits(reply, proto);
  const replyAddrs = writeAddr(r, o + W_RSRC * 4, reply.src, family) && writeAddr(r, o + W_RDST * 4, reply.dst, family);
  if (!replyAddrs) {
    w.fill(0, at + W_RSRC, at + W_RAB);
  }
  w[at + W_RAB] = tupleAB(reply, reply.proto);
  let f = zone !== undefined ? F_ZONE : 0;
  w[at + W_STATUS] = e.status ?? 0;
  w[at + W_TIMEOUT] = e.timeout ?? 0;
  w[at + W_MARK] = e.mark ?? 0;
  w[at + W_SECMARK] = e.secmark ?? 0;
  if (e.status !== undefined) f |= F_STATUS;
  if (e.timeout !== undefined) f |= F_TIMEOUT;
  if (e.mark !== undefined) f |= F_MARK;
  if (e.secmark !== undefined) f |= F_SECMARK;
  let extras: RecordExtras | undefined;
  const p = e.protoinfo;
  w[at + W_TCP] = 0;
  w[at + W_TCPFLAGS] = 0;
  if (p !== undefined) {
    f |= F_PROTOINFO;
    if (isPlainTcp(p)) {
      const t = p.tcp!;
      f |= F_TCP;
      let tcp = t.state;
      if (t.wscaleOrig !== undefined) {
        f |= F_WSCALE_ORIG;
        tcp |= t.wscaleOrig << 8;
      }
      if (t.wscaleReply !== undefined) {
        f |= F_WSCALE_REPLY;
        tcp |= t.wscaleReply << 16;
      }
      w[at + W_TCP] = tcp;
      let flags = 0;
      if (t.flagsOrig !== undefined) {
        f |= F_FLAGS_ORIG;
        flags |= t.flagsOrig.flags | (t.flagsOrig.mask << 8);
      }
      if (t.flagsReply !== undefined) {
        f |= F_FLAGS_REPLY;
        flags |= (t.flagsReply.flags | (t.flagsReply.mask << 8)) << 16;
      }
      w[at + W_TCPFLAGS] = flags;
    } else if (p.tcp !== undefined || p.sctp !== undefined || p.dccp !== undefined) {
      extras = { protoinfo: p };
    }
  }
  if (ob < 0 || rb < 0 || !replyAddrs) {
    w[at + W_FLAGS] = f | F_WHOLE;
    return { whole: whole(e) };
  }
  w[at + W_FLAGS] = f | (ob << O_SHIFT) | (rb << R_SHIFT);
  if (e.master !== undefined) (extras ??= {}).master = e.master;
  if (e.labels !== undefined) (extras ??= {}).labels = e.labels;
  if (e.labelsMask !== undefined) (extras ??= {}).labelsMask = e.labelsMask;
  if (e.seqAdjOrig !== undefined) (extras ??= {}).seqAdjOrig = e.seqAdjOrig;
  if (e.seqAdjReply !== undefined) (extras ??= {}).seqAdjReply = e.seqAdjReply;
  if (e.helper !== undefined) (extras ??= {}).helper = e.helper;
  if (e.secctx !== undefined) (extras ??= {}).secctx = e.secctx;
  const sp = e.synproxy;
  // An all-zero synproxy state says nothing (see liveSynproxy in src/cache/compact.ts).
  if (sp !== undefined && (sp.isn | sp.its | sp.tsoff) !== 0) (extras ??= {}).synproxy = sp;
  return extras;
}

// ---------------------------------------------------------------------------
// Record → objects (the edges: dumps, JSON, the object codecs)

function readAddr(r: RecordBuf, o: number, family: number): string {
  return family === AF_INET ? formatIPv4At(r.b, o) : formatIPv6At(r.b, o);
}

function readTuple(r: RecordBuf, at: number, wSrc: number, wAB: number, bits: number, proto: number, family: number): Tuple {
  const o = at * 4;
  const src = readAddr(r, o + wSrc * 4, family);
  const dst = readAddr(r, o + (wSrc + 4) * 4, family);
  const ab = r.w[at + wAB]!;
  const a = ab & 0xffff;
  const b = ab >>> 16;
  // The common shapes as one literal, like the decoders build them.
  if (bits === (T_SPORT | T_DPORT)) return { src, dst, proto, sport: a, dport: b };
  if (bits === (T_ICMP_TYPE | T_ICMP_CODE | T_ICMP_ID)) return { src, dst, proto, icmpType: a >>> 8, icmpCode: a & 0xff, icmpId: b };
  const t: Tuple = { src, dst, proto };
  if (bits & T_SPORT) t.sport = a;
  if (bits & T_DPORT) t.dport = b;
  if (bits & T_ICMP_TYPE) t.icmpType = a >>> 8;
  if (bits & T_ICMP_CODE) t.icmpCode = a & 0xff;
  if (bits & T_ICMP_ID) t.icmpId = b;
  return t;
}

function readTcp(w: Int32Array, at: number, f: number): TcpInfo {
  const tcp = w[at + W_TCP]!;
  const flags = w[at + W_TCPFLAGS]!;
  const t: TcpInfo = { state: tcp & 0xff };
  if (f & F_WSCALE_ORIG) t.wscaleOrig = (tcp >>> 8) & 0xff;
  if (f & F_WSCALE_REPLY) t.wscaleReply = (tcp >>> 16) & 0xff;
  if (f & F_FLAGS_ORIG) t.flagsOrig = { flags: flags & 0xff, mask: (flags >>> 8) & 0xff };
  if (f & F_FLAGS_REPLY) t.flagsReply = { flags: (flags >>> 16) & 0xff, mask: flags >>> 24 };
  return t;
}

/** The entry the record at word `at` holds, as compactTuple/EntryCompactor would have kept it. */
export function readEntryRecord(r: RecordBuf, at: number, extras: RecordExtras | undefined): ConntrackEntry {
  const w = r.w;
  const f = w[at + W_FLAGS]!;
  if (f & F_WHOLE) return extras!.whole!;
  const head = w[at + W_HEAD]!;
  const family = (head & 0xff) as 2 | 10;
  const proto = (head >>> 8) & 0xff;
  const orig = readTuple(r, at, W_OSRC, W_OAB, (f >>> O_SHIFT) & 31, proto, family);
  const reply = readTuple(r, at, W_RSRC, W_RAB, (f >>> R_SHIFT) & 31, proto, family);
  let protoinfo: ProtoInfo | undefined;
  if (f & F_PROTOINFO) protoinfo = f & F_TCP ? { tcp: readTcp(w, at, f) } : (extras?.protoinfo ?? {});
  let e: ConntrackEntry;
  const common = F_STATUS | F_TIMEOUT | F_MARK;
  if ((f & common) === common) {
    const status = w[at + W_STATUS]! >>> 0;
    const timeout = w[at + W_TIMEOUT]! >>> 0;
    const mark = w[at + W_MARK]! >>> 0;
    e =
      protoinfo !== undefined
        ? { family, orig, reply, status, timeout, mark, protoinfo }
        : { family, orig, reply, status, timeout, mark };
  } else {
    e = { family, orig, reply };
    if (f & F_STATUS) e.status = w[at + W_STATUS]! >>> 0;
    if (f & F_TIMEOUT) e.timeout = w[at + W_TIMEOUT]! >>> 0;
    if (f & F_MARK) e.mark = w[at + W_MARK]! >>> 0;
    if (protoinfo !== undefined) e.protoinfo = protoinfo;
  }
  if (f & F_ZONE) e.zone = head >>> 16;
  if (extras !== undefined) {
    if (extras.master !== undefined) e.master = extras.master;
    if (extras.labels !== undefined) e.labels = extras.labels;
    if (extras.labelsMask !== undefined) e.labelsMask = extras.labelsMask;
    if (extras.seqAdjOrig !== undefined) e.seqAdjOrig = extras.seqAdjOrig;
    if (extras.seqAdjReply !== undefined) e.seqAdjReply = extras.seqAdjReply;
    if (extras.helper !== undefined) e.helper = extras.helper;
  }
  if (f & F_SECMARK) e.secmark = w[at + W_SECMARK]! >>> 0;
  if (extras !== undefined) {
    if (extras.secctx !== undefined) e.secctx = extras.secctx;
    if (extras.synproxy !== undefined) e.synproxy = extras.synproxy;
  }
  return e;
}

/**
 * One record on its own, e.g. a message waiting to be sent and perhaps sent
 * again: a copy of a table's record (which may change or be reused
 * meanwhile) at word `at` of a RecordPool chunk, and its extras. One small
 * object per record: no typed array of its own, which costs V8 far more to
 * make than the words it would hold.
 */
export class EntryRecord implements RecordBuf {
  constructor(
    public w: Int32Array,
    public b: Buffer,
    public at: number,
    public x: RecordExtras | undefined,
  ) {}

  /**
   * Points this EntryRecord at another record: a view, for a reader that
   * uses each record at once and keeps none (the sender encoding it). A
   * pooled copy (RecordPool) is never re-pointed.
   */
  point(r: RecordBuf, at: number, x: RecordExtras | undefined): this {
    this.w = r.w;
    this.b = r.b;
    this.at = at;
    this.x = x;
    return this;
  }

  /** The entry it holds, made on each call. */
  entry(): ConntrackEntry {
    return readEntryRecord(this, this.at, this.x);
  }
}

/** Records per RecordPool chunk: 104 KiB. */
const POOL_RECORDS = 1024;

/**
 * Where EntryRecords live: records are copied into chunks one after the
 * other, and a chunk is garbage once no EntryRecord in it is referenced.
 * Nothing is freed by hand, so nothing can be freed too early.
 */
export class RecordPool {
  private chunk: RecordBuf = recordBuf(POOL_RECORDS);
  private next = 0;

  /** An EntryRecord holding a copy of the record at `src[at]`. */
  copy(src: Int32Array, at: number, x: RecordExtras | undefined): EntryRecord {
    if (this.next === POOL_RECORDS) {
      this.chunk = recordBuf(POOL_RECORDS);
      this.next = 0;
    }
    const c = this.chunk;
    const o = this.next++ * REC_WORDS;
    copyRecordWords(src, at, c.w, o);
    return new EntryRecord(c.w, c.b, o, x);
  }
}

// ---------------------------------------------------------------------------
// Netlink → record, without objects

/** decodeConntrackRecord: the record was written. */
export const REC_OK = 0;
/**
 * decodeConntrackRecord: the message is not of the common shape (a rare
 * attribute, a malformed one, anything unexpected); nothing may be assumed
 * of the record. Decode it with decodeConntrack and writeEntryRecord, which
 * also give the precise error of a malformed message.
 */
export const REC_PUNT = 1;

const NFGENMSG_LEN = 4;
// The attribute walk keeps its position in locals; these carry a nest's
// result back without allocating.
let tupleFlags = 0;

/**
 * Decodes a tuple nest at payload[start, end) into the record's words from
 * `wSrc` (addresses) and `wAB`. Returns the protocol, or -1 to punt.
 */
function tupleInto(p: Buffer, start: number, end: number, family: number, r: RecordBuf, at: number, wSrc: number, wAB: number): number {
  let have = 0;
  let proto = -1;
  let sport = -1;
  let dport = -1;
  // ICMP and ICMPv6 fields apart: like the object decoder, the protocol picks which count.
  let itype4 = -1;
  let icode4 = -1;
  let iid4 = -1;
  let itype6 = -1;
  let icode6 = -1;
  let iid6 = -1;
  const w = r.w;
  for (let pos = start; pos < end; ) {
    const len = attrLen(p, pos, end);
    if (len < 0) return -1;
    const type = p.readUInt16LE(pos + 2) & NLA_TYPE_MASK;
    const off = pos + 4;
    const plen = len - 4;
    if (type === CTA_TUPLE.IP) {
      for (let q = off, qe = off + plen; q < qe; ) {
        const l2 = attrLen(p, q, qe);
        if (l2 < 0) return -1;
        const t2 = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
        const o2 = q + 4;
        if (t2 === CTA_IP.V4_SRC || t2 === CTA_IP.V4_DST) {
          if (family !== AF_INET || l2 !== 8 || (have & (t2 === CTA_IP.V4_SRC ? 1 : 2))) return -1;
          const wi = at + wSrc + (t2 === CTA_IP.V4_SRC ? 0 : 4);
          w[wi] = p.readInt32LE(o2);
          w[wi + 1] = 0;
          w[wi + 2] = 0;
          w[wi + 3] = 0;
          have |= t2 === CTA_IP.V4_SRC ? 1 : 2;
        } else if (t2 === CTA_IP.V6_SRC || t2 === CTA_IP.V6_DST) {
          if (family !== AF_INET6 || l2 !== 20 || (have & (t2 === CTA_IP.V6_SRC ? 1 : 2))) return -1;
          const wi = at + wSrc + (t2 === CTA_IP.V6_SRC ? 0 : 4);
          w[wi] = p.readInt32LE(o2);
          w[wi + 1] = p.readInt32LE(o2 + 4);
          w[wi + 2] = p.readInt32LE(o2 + 8);
          w[wi + 3] = p.readInt32LE(o2 + 12);
          have |= t2 === CTA_IP.V6_SRC ? 1 : 2;
        }
        q += (l2 + 3) & ~3;
      }
    } else if (type === CTA_TUPLE.PROTO) {
      if (proto >= 0) return -1;
      for (let q = off, qe = off + plen; q < qe; ) {
        const l2 = attrLen(p, q, qe);
        if (l2 < 0) return -1;
        const t2 = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
        const o2 = q + 4;
        switch (t2) {
          case CTA_PROTO.NUM:
            if (l2 !== 5) return -1;
            proto = p[o2]!;
            break;
          case CTA_PROTO.SRC_PORT:
            if (l2 !== 6) return -1;
            sport = p.readUInt16BE(o2);
            break;
          case CTA_PROTO.DST_PORT:
            if (l2 !== 6) return -1;
            dport = p.readUInt16BE(o2);
            break;
          case CTA_PROTO.ICMP_ID:
            if (l2 !== 6) return -1;
            iid4 = p.readUInt16BE(o2);
            break;
          case CTA_PROTO.ICMPV6_ID:
            if (l2 !== 6) return -1;
            iid6 = p.readUInt16BE(o2);
            break;
          case CTA_PROTO.ICMP_TYPE:
            if (l2 !== 5) return -1;
            itype4 = p[o2]!;
            break;
          case CTA_PROTO.ICMPV6_TYPE:
            if (l2 !== 5) return -1;
            itype6 = p[o2]!;
            break;
          case CTA_PROTO.ICMP_CODE:
            if (l2 !== 5) return -1;
            icode4 = p[o2]!;
            break;
          case CTA_PROTO.ICMPV6_CODE:
            if (l2 !== 5) return -1;
            icode6 = p[o2]!;
            break;
          default:
            // Unknown or a length the object decoder would reject: let it decide.
            if (t2 === 0 || t2 > CTA_PROTO.ICMPV6_CODE) return -1;
        }
        q += (l2 + 3) & ~3;
      }
      if (proto < 0) return -1;
    } else if (type === CTA_TUPLE.ZONE) {
      return -1;
    }
    pos += (len + 3) & ~3;
  }
  if (have !== 3 || proto < 0) return -1;
  let bits = 0;
  let ab = 0;
  if (hasPorts(proto)) {
    if (sport >= 0) bits |= T_SPORT;
    if (dport >= 0) bits |= T_DPORT;
    ab = (sport >= 0 ? sport : 0) | ((dport >= 0 ? dport : 0) << 16);
  } else if (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6) {
    const v4 = proto === IPPROTO.ICMP;
    const itype = v4 ? itype4 : itype6;
    const icode = v4 ? icode4 : icode6;
    const iid = v4 ? iid4 : iid6;
    if (itype >= 0) bits |= T_ICMP_TYPE;
    if (icode >= 0) bits |= T_ICMP_CODE;
    if (iid >= 0) bits |= T_ICMP_ID;
    ab = (((itype >= 0 ? itype : 0) << 8) | (icode >= 0 ? icode : 0)) | ((iid >= 0 ? iid : 0) << 16);
  }
  w[at + wAB] = ab;
  tupleFlags = bits;
  return proto;
}

/**
 * Decodes the payload (nfgenmsg first) of an IPCTNL_MSG_CT_NEW/DELETE
 * message into the record at word `at`, without building any object.
 * Returns REC_OK, or REC_PUNT for anything but the common shape; the caller
 * has checked the message type. When REC_OK, the record equals what
 * writeEntryRecord(decodeConntrack(msg)) writes, and it needs no extras.
 * The payload is p[start, end): the event socket decodes in place, without
 * a Buffer per message.
 */
export function decodeConntrackRecord(p: Buffer, r: RecordBuf, at: number, start = 0, end = p.length): number {
  if (end - start < NFGENMSG_LEN) return REC_PUNT;
  const family = p[start]!;
  if (family !== AF_INET && family !== AF_INET6) return REC_PUNT;
  const w = r.w;
  let f = 0;
  let seen = 0;
  let proto = -1;
  let replyProto = -1;
  let zone = 0;
  w[at + W_STATUS] = 0;
  w[at + W_TIMEOUT] = 0;
  w[at + W_MARK] = 0;
  w[at + W_SECMARK] = 0;
  w[at + W_TCP] = 0;
  w[at + W_TCPFLAGS] = 0;
  for (let pos = start + NFGENMSG_LEN; pos < end; ) {
    const len = attrLen(p, pos, end);
    if (len < 0) return REC_PUNT;
    const type = p.readUInt16LE(pos + 2) & NLA_TYPE_MASK;
    const off = pos + 4;
    const plen = len - 4;
    // A repeated attribute: the object decoder's last-wins is rare enough to leave to it.
    if (type < 31) {
      if (seen & (1 << type)) return REC_PUNT;
      seen |= 1 << type;
    }
    switch (type) {
      case CTA.TUPLE_ORIG: {
        const pr = tupleInto(p, off, off + plen, family, r, at, W_OSRC, W_OAB);
        if (pr < 0) return REC_PUNT;
        proto = pr;
        f |= tupleFlags << O_SHIFT;
        break;
      }
      case CTA.TUPLE_REPLY: {
        const pr = tupleInto(p, off, off + plen, family, r, at, W_RSRC, W_RAB);
        if (pr < 0) return REC_PUNT;
        replyProto = pr;
        f |= tupleFlags << R_SHIFT;
        break;
      }
      case CTA.STATUS:
      case CTA.TIMEOUT:
      case CTA.MARK:
      case CTA.SECMARK: {
        if (plen !== 4) return REC_PUNT;
        const v = p.readInt32BE(off);
        if (type === CTA.STATUS) {
          w[at + W_STATUS] = v;
          f |= F_STATUS;
        } else if (type === CTA.TIMEOUT) {
          w[at + W_TIMEOUT] = v;
          f |= F_TIMEOUT;
        } else if (type === CTA.MARK) {
          w[at + W_MARK] = v;
          f |= F_MARK;
        } else {
          w[at + W_SECMARK] = v;
          f |= F_SECMARK;
        }
        break;
      }
      case CTA.ZONE:
        if (plen !== 2) return REC_PUNT;
        zone = p.readUInt16BE(off);
        f |= F_ZONE;
        break;
      case CTA.PROTOINFO: {
        f |= F_PROTOINFO;
        for (let q = off, qe = off + plen; q < qe; ) {
          const l2 = attrLen(p, q, qe);
          if (l2 < 0) return REC_PUNT;
          const t2 = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
          if (t2 === CTA_PROTOINFO.TCP) {
            if (f & F_TCP) return REC_PUNT;
            const g = tcpInto(p, q + 4, q + l2, w, at);
            if (g < 0) return REC_PUNT;
            f |= F_TCP | g;
          } else if (t2 === CTA_PROTOINFO.SCTP || t2 === CTA_PROTOINFO.DCCP) {
            return REC_PUNT;
          }
          q += (l2 + 3) & ~3;
        }
        break;
      }
      case CTA.USE:
      case CTA.ID:
        if (plen !== 4) return REC_PUNT;
        break;
      case CTA.COUNTERS_ORIG:
      case CTA.COUNTERS_REPLY:
        if (!countersValid(p, off, off + plen)) return REC_PUNT;
        break;
      case CTA.TIMESTAMP:
        if (!timestampValid(p, off, off + plen)) return REC_PUNT;
        break;
      case CTA.SYNPROXY:
        if (!synproxyZero(p, off, off + plen)) return REC_PUNT;
        break;
      case CTA.TUPLE_MASTER:
      case CTA.HELP:
      case CTA.SECCTX:
      case CTA.SEQ_ADJ_ORIG:
      case CTA.SEQ_ADJ_REPLY:
      case CTA.LABELS:
      case CTA.LABELS_MASK:
        return REC_PUNT;
      // Everything else the object decoder skips too.
    }
    pos += (len + 3) & ~3;
  }
  // A reply protocol unlike the original's is kept whole by writeEntryRecord.
  if (proto < 0 || replyProto !== proto) return REC_PUNT;
  w[at + W_HEAD] = family | (proto << 8) | (zone << 16);
  w[at + W_FLAGS] = f;
  return REC_OK;
}

/** Returns the F_* bits of the TCP fields present, or -1 to punt. */
function tcpInto(p: Buffer, start: number, end: number, w: Int32Array, at: number): number {
  let f = 0;
  let state = -1;
  let tcp = 0;
  let flags = 0;
  for (let q = start; q < end; ) {
    const l = attrLen(p, q, end);
    if (l < 0) return -1;
    const t = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
    const o = q + 4;
    switch (t) {
      case CTA_PROTOINFO_TCP.STATE:
        if (l !== 5) return -1;
        state = p[o]!;
        break;
      case CTA_PROTOINFO_TCP.WSCALE_ORIGINAL:
        if (l !== 5) return -1;
        tcp = (tcp & ~0xff00) | (p[o]! << 8);
        f |= F_WSCALE_ORIG;
        break;
      case CTA_PROTOINFO_TCP.WSCALE_REPLY:
        if (l !== 5) return -1;
        tcp = (tcp & ~0xff0000) | (p[o]! << 16);
        f |= F_WSCALE_REPLY;
        break;
      case CTA_PROTOINFO_TCP.FLAGS_ORIGINAL:
        if (l !== 6) return -1;
        flags = (flags & ~0xffff) | p[o]! | (p[o + 1]! << 8);
        f |= F_FLAGS_ORIG;
        break;
      case CTA_PROTOINFO_TCP.FLAGS_REPLY:
        if (l !== 6) return -1;
        flags = (flags & 0xffff) | ((p[o]! | (p[o + 1]! << 8)) << 16);
        f |= F_FLAGS_REPLY;
        break;
    }
    q += (l + 3) & ~3;
  }
  if (state < 0) return -1;
  w[at + W_TCP] = tcp | state;
  w[at + W_TCPFLAGS] = flags;
  return f;
}

/**
 * The nla_len of the attribute at p[q], or -1 when its header does not fit
 * before `end` or claims a length the object decoder would refuse
 * (AttrIterator.next()).
 */
function attrLen(p: Buffer, q: number, end: number): number {
  if (end - q < 4) return -1;
  const l = p.readUInt16LE(q);
  return l < 4 || l > end - q ? -1 : l;
}

/** Whether a counters nest is one the object decoder accepts (both counts, right sizes). */
function countersValid(p: Buffer, start: number, end: number): boolean {
  let have = 0;
  for (let q = start; q < end; ) {
    const l = attrLen(p, q, end);
    if (l < 0) return false;
    const t = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
    if (t === 1 || t === 2) {
      if (l !== 12) return false;
      have |= t;
    } else if (t === 3 || t === 4) {
      if (l !== 8) return false;
      have |= t - 2;
    }
    q += (l + 3) & ~3;
  }
  return have === 3;
}

function timestampValid(p: Buffer, start: number, end: number): boolean {
  for (let q = start; q < end; ) {
    const l = attrLen(p, q, end);
    if (l < 0) return false;
    const t = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
    if ((t === 1 || t === 2) && l !== 12) return false;
    q += (l + 3) & ~3;
  }
  return true;
}

/** Whether a synproxy nest holds all three fields, all zero: the state that is dropped. */
function synproxyZero(p: Buffer, start: number, end: number): boolean {
  let have = 0;
  for (let q = start; q < end; ) {
    const l = attrLen(p, q, end);
    if (l < 0) return false;
    const t = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
    if (t >= 1 && t <= 3) {
      if (l !== 8 || p.readInt32LE(q + 4) !== 0) return false;
      have |= 1 << t;
    }
    q += (l + 3) & ~3;
  }
  return have === 0b1110;
}
