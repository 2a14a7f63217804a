// The flow log's line for one event, written as bytes straight from the
// ctnetlink message: no entry object, no string per field, no JSON of an
// object. The common shape (what decodeConntrackRecord takes: both tuples,
// status, mark, zone, TCP state, plus id, counters and timestamps read in a
// second walk of the top-level attributes) is written here; anything else
// (labels, SCTP or DCCP state, a master tuple, a malformed message) is
// punted to the object path, flowLine(decodeConntrack(...)), which this
// must equal byte for byte (test/unit/flowlog.test.ts holds it to that on
// the kernel fixtures and on random entries).
//
// Why: the object path cost ~30 µs of CPU per event (a tree of attribute
// objects, an entry, a string per field, a joined batch re-encoded to
// UTF-8), twice ulogd2's, and a burst outran the writer and filled the
// bounded queue.
import { formatIPv6At } from '../common/address.js';
import type { EventType } from '../kernel/conntrack-events.js';
import { AF_INET, CTA, CTA_COUNTERS, CTA_TIMESTAMP, IPPROTO, NLA_TYPE_MASK, protoName, TCP_STATES } from '../kernel/constants.js';
import {
  decodeConntrackRecord,
  F_TCP,
  O_SHIFT,
  R_SHIFT,
  REC_OK,
  type RecordBuf,
  recordBuf,
  T_DPORT,
  T_ICMP_CODE,
  T_ICMP_ID,
  T_ICMP_TYPE,
  T_SPORT,
  W_FLAGS,
  W_HEAD,
  W_MARK,
  W_OAB,
  W_ODST,
  W_OSRC,
  W_RAB,
  W_RDST,
  W_RSRC,
  W_TCP,
} from '../kernel/ct-record.js';

/** encode(): the message is not of the common shape; format it from its object. */
export const LINE_PUNT = -1;
/** encode(): the filter rejected the connection. */
export const LINE_FILTERED = -2;

const NLMSG_HDRLEN = 16;
const NFGENMSG_LEN = 4;
/**
 * The longest line of the common shape: the fixed keys (~260 bytes), six
 * IPv6 addresses of at most 39 characters, ten numbers of at most 20 digits
 * and three timestamps of 27. Labels, the only field without a bound, are
 * punted.
 */
const LINE_MAX = 2048;
/** 10000-01-01T00:00:00.000Z: from here toISOString() writes a six-digit year with a sign. */
const ISO_MAX_MS = 253_402_300_800_000;
const MS_PER_DAY = 86_400_000;
const TWO32 = 4_294_967_296;

/** The line's fixed parts, as bytes. */
function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}
const KIND_TEXT: { readonly [K in EventType]: Uint8Array } = { new: ascii('new'), update: ascii('update'), destroy: ascii('destroy') };
const K_EVENT = ascii('","event":"');
const K_ORIG = ascii(',"orig":');
const K_REPLY = ascii(',"reply":');
const K_STATE = ascii(',"state":');
const K_MARK = ascii(',"mark":');
const K_ZONE = ascii(',"zone":');
const K_ID = ascii(',"id":');
const K_START = ascii(',"start":"');
const K_STOP = ascii(',"stop":"');
const K_COUNTERS = ascii(',"counters":{"orig":{"packets":');
const K_BYTES = ascii(',"bytes":');
const K_CREPLY = ascii('},"reply":{"packets":');
const K_CLOSE2 = ascii('}}');
const K_TSRC = ascii('{"src":"');
const K_TDST = ascii('","dst":"');
const K_TSPORT = ascii('","sport":');
const K_DPORT = ascii(',"dport":');
const K_CODE = ascii(',"code":');
const K_NAT = ascii(',"nat":{');
const K_NSRC = ascii('"src":"');
const K_SPORT = ascii(',"sport":');
const K_TIME = ascii('{"time":"');
const K_V4 = ascii('","family":"ipv4","proto":');
const K_V6 = ascii('","family":"ipv6","proto":');
const K_DST0 = ascii('"dst":"');
const K_DST1 = ascii(',"dst":"');

/**
 * A record filter (the cache's, Filter.checkRecord): true to log. Given the
 * record decodeConntrackRecord wrote, which needs no extras.
 */
export type RecordAccept = (r: RecordBuf, at: number) => boolean;

export class FlowLineEncoder {
  /** The last line encode() wrote, without its newline: out[0, n). */
  readonly out: Buffer = Buffer.allocUnsafe(LINE_MAX);
  private readonly rec: RecordBuf = recordBuf(1);
  private nowMs = Number.NaN;
  private readonly nowText: Buffer = Buffer.alloc(24);
  // What the second walk found; fields rather than an object per event.
  private id = -1;
  private tsStartHi = 0;
  private tsStartLo = 0;
  private tsStopHi = 0;
  private tsStopLo = 0;
  private counters = 0;
  /** packets hi, lo, bytes hi, lo: original [0..3], reply [4..7]. */
  private readonly cnt = new Float64Array(8);

  constructor(private readonly accept?: RecordAccept) {}

  /**
   * Writes the line for the netlink message msg[start, start + len) into
   * `out`; returns its length, LINE_PUNT or LINE_FILTERED. `now` in
   * milliseconds since the epoch.
   */
  encode(kind: EventType, msg: Buffer, start: number, len: number, now: number): number {
    if (len < NLMSG_HDRLEN + NFGENMSG_LEN) return LINE_PUNT;
    const p0 = start + NLMSG_HDRLEN;
    const end = start + len;
    const r = this.rec;
    if (decodeConntrackRecord(msg, r, 0, p0, end) !== REC_OK) return LINE_PUNT;
    if (this.accept !== undefined && !this.accept(r, 0)) return LINE_FILTERED;
    this.extras(msg, p0 + NFGENMSG_LEN, end);
    return this.write(kind, now);
  }

  /** The attributes the record does not keep; decodeConntrackRecord checked their shape already. */
  private extras(p: Buffer, start: number, end: number): void {
    this.id = -1;
    this.tsStartHi = this.tsStartLo = this.tsStopHi = this.tsStopLo = 0;
    this.counters = 0;
    for (let pos = start; pos + 4 <= end; ) {
      const len = p.readUInt16LE(pos);
      if (len < 4) break;
      const type = p.readUInt16LE(pos + 2) & NLA_TYPE_MASK;
      const off = pos + 4;
      const nestEnd = Math.min(end, pos + len);
      if (type === CTA.ID) {
        this.id = p.readUInt32BE(off);
      } else if (type === CTA.TIMESTAMP) {
        for (let q = off; q + 4 <= nestEnd; ) {
          const l = p.readUInt16LE(q);
          if (l < 4) break;
          const t = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
          if (t === CTA_TIMESTAMP.START && l === 12) {
            this.tsStartHi = p.readUInt32BE(q + 4);
            this.tsStartLo = p.readUInt32BE(q + 8);
          } else if (t === CTA_TIMESTAMP.STOP && l === 12) {
            this.tsStopHi = p.readUInt32BE(q + 4);
            this.tsStopLo = p.readUInt32BE(q + 8);
          }
          q += (l + 3) & ~3;
        }
      } else if (type === CTA.COUNTERS_ORIG || type === CTA.COUNTERS_REPLY) {
        const base = type === CTA.COUNTERS_ORIG ? 0 : 4;
        this.counters |= type === CTA.COUNTERS_ORIG ? 1 : 2;
        const c = this.cnt;
        for (let q = off; q + 4 <= nestEnd; ) {
          const l = p.readUInt16LE(q);
          if (l < 4) break;
          const t = p.readUInt16LE(q + 2) & NLA_TYPE_MASK;
          // Last one wins, as in the object decoder.
          if ((t === CTA_COUNTERS.PACKETS || t === CTA_COUNTERS.BYTES) && l === 12) {
            const i = base + (t === CTA_COUNTERS.PACKETS ? 0 : 2);
            c[i] = p.readUInt32BE(q + 4);
            c[i + 1] = p.readUInt32BE(q + 8);
          } else if ((t === CTA_COUNTERS.PACKETS32 || t === CTA_COUNTERS.BYTES32) && l === 8) {
            const i = base + (t === CTA_COUNTERS.PACKETS32 ? 0 : 2);
            c[i] = 0;
            c[i + 1] = p.readUInt32BE(q + 4);
          }
          q += (l + 3) & ~3;
        }
      }
      pos += (len + 3) & ~3;
    }
  }

  private write(kind: EventType, now: number): number {
    const o = this.out;
    const w = this.rec.w;
    const b = this.rec.b;
    const head = w[W_HEAD]!;
    const family = head & 0xff;
    const proto = (head >>> 8) & 0xff;
    const zone = head >>> 16;
    const flags = w[W_FLAGS]!;
    const ob = (flags >>> O_SHIFT) & 31;
    const rb = (flags >>> R_SHIFT) & 31;
    const v4 = family === AF_INET;
    let n = put(o, 0, K_TIME);
    if (now !== this.nowMs) {
      this.nowMs = now;
      writeIso(this.nowText, 0, now);
    }
    n += this.nowText.copy(o, n);
    n = put(o, n, K_EVENT);
    n = put(o, n, KIND_TEXT[kind]);
    n = put(o, n, v4 ? K_V4 : K_V6);
    const name = protoName(proto);
    if (typeof name === 'string') {
      o[n++] = 0x22;
      n += o.write(name, n, 'latin1');
      o[n++] = 0x22;
    } else {
      n = writeUint(o, n, name);
    }
    n = put(o, n, K_ORIG);
    n = tuple(o, n, b, v4, proto, W_OSRC * 4, W_ODST * 4, w[W_OAB]!, ob);
    n = put(o, n, K_REPLY);
    n = tuple(o, n, b, v4, proto, W_RSRC * 4, W_RDST * 4, w[W_RAB]!, rb);
    n = nat(o, n, w, b, v4, ob, rb);
    if (flags & F_TCP) {
      const state = w[W_TCP]! & 0xff;
      n = put(o, n, K_STATE);
      const s = TCP_STATES[state];
      if (s !== undefined) {
        o[n++] = 0x22;
        n += o.write(s, n, 'latin1');
        o[n++] = 0x22;
      } else {
        n = writeUint(o, n, state);
      }
    }
    n = put(o, n, K_MARK);
    n = writeUint(o, n, w[W_MARK]! >>> 0);
    n = put(o, n, K_ZONE);
    n = writeUint(o, n, zone);
    if (this.id >= 0) {
      n = put(o, n, K_ID);
      n = writeUint(o, n, this.id);
    }
    // The kernel sends stop as 0 while the flow lives.
    if (this.tsStartHi !== 0 || this.tsStartLo !== 0) {
      n = put(o, n, K_START);
      n = writeIso(o, n, msFromNs(this.tsStartHi, this.tsStartLo));
      o[n++] = 0x22;
    }
    if (this.tsStopHi !== 0 || this.tsStopLo !== 0) {
      n = put(o, n, K_STOP);
      n = writeIso(o, n, msFromNs(this.tsStopHi, this.tsStopLo));
      o[n++] = 0x22;
    }
    if (this.counters !== 0) {
      const c = this.cnt;
      const orig = (this.counters & 1) !== 0;
      const reply = (this.counters & 2) !== 0;
      n = put(o, n, K_COUNTERS);
      n = writeU64(o, n, orig ? c[0]! : 0, orig ? c[1]! : 0);
      n = put(o, n, K_BYTES);
      n = writeU64(o, n, orig ? c[2]! : 0, orig ? c[3]! : 0);
      n = put(o, n, K_CREPLY);
      n = writeU64(o, n, reply ? c[4]! : 0, reply ? c[5]! : 0);
      n = put(o, n, K_BYTES);
      n = writeU64(o, n, reply ? c[6]! : 0, reply ? c[7]! : 0);
      n = put(o, n, K_CLOSE2);
    }
    o[n++] = 0x7d;
    return n;
  }
}

/** An address of the record's bytes at byte offset `at`, as tupleJson spells it. */
function addr(o: Buffer, n: number, b: Buffer, v4: boolean, at: number): number {
  if (!v4) return n + o.write(formatIPv6At(b, at), n, 'latin1');
  n = writeUint(o, n, b[at]!);
  o[n++] = 0x2e;
  n = writeUint(o, n, b[at + 1]!);
  o[n++] = 0x2e;
  n = writeUint(o, n, b[at + 2]!);
  o[n++] = 0x2e;
  return writeUint(o, n, b[at + 3]!);
}

/**
 * `{"src":…,"dst":…,"sport":…,"dport":…}` as tupleJson gives it: ICMP's id
 * and type stand in for the ports, its code follows when present.
 */
function tuple(o: Buffer, n: number, b: Buffer, v4: boolean, proto: number, src: number, dst: number, ab: number, bits: number): number {
  n = put(o, n, K_TSRC);
  n = addr(o, n, b, v4, src);
  n = put(o, n, K_TDST);
  n = addr(o, n, b, v4, dst);
  n = put(o, n, K_TSPORT);
  const icmp = proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6;
  let sport = 0;
  let dport = 0;
  if (icmp) {
    if (bits & T_ICMP_ID) sport = ab >>> 16;
    if (bits & T_ICMP_TYPE) dport = (ab >>> 8) & 0xff;
  } else {
    if (bits & T_SPORT) sport = ab & 0xffff;
    if (bits & T_DPORT) dport = ab >>> 16;
  }
  n = writeUint(o, n, sport);
  n = put(o, n, K_DPORT);
  n = writeUint(o, n, dport);
  if (icmp && bits & T_ICMP_CODE) {
    n = put(o, n, K_CODE);
    n = writeUint(o, n, ab & 0xff);
  }
  o[n++] = 0x7d;
  return n;
}

function sameAddr(w: Int32Array, a: number, c: number): boolean {
  return w[a] === w[c] && w[a + 1] === w[c + 1] && w[a + 2] === w[c + 2] && w[a + 3] === w[c + 3];
}

/**
 * natOf() on the record: SNAT when the reply goes back to another address
 * or port than the original came from, DNAT when it comes from another
 * than the original went to. A port is compared as present-and-equal, as
 * natOf compares Tuple fields that may be absent.
 */
function nat(o: Buffer, n: number, w: Int32Array, b: Buffer, v4: boolean, ob: number, rb: number): number {
  const oab = w[W_OAB]!;
  const rab = w[W_RAB]!;
  const oHasS = (ob & T_SPORT) !== 0;
  const oHasD = (ob & T_DPORT) !== 0;
  const rHasS = (rb & T_SPORT) !== 0;
  const rHasD = (rb & T_DPORT) !== 0;
  // reply.dport vs orig.sport, reply.sport vs orig.dport.
  const snatPort = rHasD !== oHasS || (rHasD && rab >>> 16 !== (oab & 0xffff));
  const dnatPort = rHasS !== oHasD || (rHasS && (rab & 0xffff) !== oab >>> 16);
  const snat = !sameAddr(w, W_RDST, W_OSRC) || snatPort;
  const dnat = !sameAddr(w, W_RSRC, W_ODST) || dnatPort;
  if (!snat && !dnat) return n;
  n = put(o, n, K_NAT);
  let first = true;
  if (snat) {
    n = put(o, n, K_NSRC);
    n = addr(o, n, b, v4, W_RDST * 4);
    o[n++] = 0x22;
    first = false;
    if (rHasD) {
      n = put(o, n, K_SPORT);
      n = writeUint(o, n, rab >>> 16);
    }
  }
  if (dnat) {
    n = put(o, n, first ? K_DST0 : K_DST1);
    n = addr(o, n, b, v4, W_RSRC * 4);
    o[n++] = 0x22;
    if (rHasS) {
      n = put(o, n, K_DPORT);
      n = writeUint(o, n, rab & 0xffff);
    }
  }
  o[n++] = 0x7d;
  return n;
}

function put(o: Buffer, n: number, text: Uint8Array): number {
  for (let i = 0; i < text.length; i++) o[n + i] = text[i]!;
  return n + text.length;
}

/** Decimal digits of a non-negative integer below 2^53. */
export function writeUint(o: Buffer, n: number, v: number): number {
  if (v < 10) {
    o[n] = 0x30 + v;
    return n + 1;
  }
  let digits = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
  let i = n + digits;
  for (let x = v; i > n; x = Math.floor(x / 10)) o[--i] = 0x30 + (x % 10);
  return n + digits;
}

/** A u64 given as two u32 halves, exactly. */
function writeU64(o: Buffer, n: number, hi: number, lo: number): number {
  // Below 2^53 the double is exact; above, BigInt (a counter that large is rare).
  if (hi < 0x20_0000) return writeUint(o, n, hi * TWO32 + lo);
  return n + o.write(((BigInt(hi) << 32n) | BigInt(lo)).toString(), n, 'latin1');
}

/** floor(ns / 10^6) of a u64 ns given as two u32 halves, exactly and without BigInt. */
export function msFromNs(hi: number, lo: number): number {
  // hi · 2^32 = (qh · 10^6 + rh) · 2^32; rh · 2^32 + lo stays below 2^53.
  const qh = Math.floor(hi / 1e6);
  const rh = hi - qh * 1e6;
  return qh * TWO32 + Math.floor((rh * TWO32 + lo) / 1e6);
}

function two(o: Buffer, n: number, v: number): number {
  o[n] = 0x30 + Math.floor(v / 10);
  o[n + 1] = 0x30 + (v % 10);
  return n + 2;
}

/**
 * Date.prototype.toISOString() of `ms`, written as bytes: the 24 characters
 * of YYYY-MM-DDTHH:MM:SS.mmmZ for years 1970..9999 (days to civil date as
 * in H. Hinnant's chrono algorithms), toISOString() itself otherwise.
 */
export function writeIso(o: Buffer, n: number, ms: number): number {
  if (!(ms >= 0 && ms < ISO_MAX_MS)) return n + o.write(new Date(ms).toISOString(), n, 'latin1');
  // A Date keeps whole milliseconds (toward zero).
  ms = Math.trunc(ms);
  const days = Math.floor(ms / MS_PER_DAY);
  let rest = ms - days * MS_PER_DAY;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  n = two(o, n, Math.floor(y / 100));
  n = two(o, n, y % 100);
  o[n++] = 0x2d;
  n = two(o, n, m);
  o[n++] = 0x2d;
  n = two(o, n, d);
  o[n++] = 0x54;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const mi = Math.floor(rest / 60_000);
  rest -= mi * 60_000;
  const s = Math.floor(rest / 1000);
  rest -= s * 1000;
  n = two(o, n, h);
  o[n++] = 0x3a;
  n = two(o, n, mi);
  o[n++] = 0x3a;
  n = two(o, n, s);
  o[n++] = 0x2e;
  o[n++] = 0x30 + Math.floor(rest / 100);
  n = two(o, n, rest % 100);
  o[n++] = 0x5a;
  return n;
}
