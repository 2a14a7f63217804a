// conntrackd 1.4.x's wire format (sync.protocol: conntrackd), so one node
// of a conntrackd pair can be replaced by ctsyncd while the other still runs
// conntrackd. Layout, from ../shared/docs/conntrackd.md §3 (written from the
// spec, not from conntrackd's code; the expectation attributes' order and
// groups were checked by reading conntrackd's build.c and parse.c):
//
//   message = header (8 bytes; 16 for ACK, NACK and RESYNC) + TLV payload
//   header  = version<<4 | type, flags, u16 BE len (header included), u32 BE seq
//             [, u32 BE from, u32 BE to]
//   TLV     = u16 BE nta_len (4 + payload, padding excluded), u16 BE attr,
//             payload padded with zeros to a multiple of 4
//
// Several messages are packed into one datagram. The format has no node id,
// no epoch, no checksum and no authentication: the engine
// (src/sync/engine/conntrackd-node.ts) names the peer by its address.
//
// Quirks kept on purpose (a conntrackd 1.4.7 on x86 writes them so):
// SPAT_PORT, DPAT_PORT and ICMP_ID travel little-endian while PORT is
// big-endian; SNAT/DNAT_IPV4 are in network order (1.4.7's fix).
//
// Pure functions over Buffers. The decoder distrusts its input: a datagram
// whose framing is bad stops where it became unreadable, a message whose
// payload is bad is skipped, and each is an error value with a code
// (WireErrorCode, shared with the ctsyncd wire so the drop counters are
// one set); nothing here throws on input.

import { formatIPv4At, formatIPv6At, parseIPv4, parseIPv6Into } from '../../common/address.js';
import type { ConntrackEntry, ExpectEntry, Family, ProtoInfo, SeqAdj, Tuple } from '../../kernel/entry.js';
import { mirrorTuple } from './proto-codec.js';
import type { WireError, WireErrorCode } from './types.js';

export const CTD_VERSION = 1;
export const CTD_HEADER_BYTES = 8;
/** ACK, NACK and RESYNC carry a range after the header. */
export const CTD_RANGE_HEADER_BYTES = 16;

/** Message types (the header's low nibble). */
export const CTD_T = { CT_NEW: 0, CT_UPD: 1, CT_DEL: 2, EXP_NEW: 3, EXP_UPD: 4, EXP_DEL: 5, CTL: 10 } as const;
const MAX_DATA_TYPE = 5;

/** Header flags. */
export const CTD_F = {
  RESYNC: 0x02,
  NACK: 0x04,
  ACK: 0x08,
  ALIVE: 0x10,
  HELLO: 0x20,
  HELLO_BACK: 0x40,
} as const;
const HELLO_FLAGS = CTD_F.HELLO | CTD_F.HELLO_BACK;
const RANGE_FLAGS = CTD_F.RESYNC | CTD_F.NACK | CTD_F.ACK;
const CONTROL_FLAGS = RANGE_FLAGS | CTD_F.ALIVE;

/** Conntrack attributes (nta_attr). */
const A = {
  IPV4: 0,
  IPV6: 1,
  L4PROTO: 2,
  PORT: 3,
  TCP_STATE: 4,
  STATUS: 5,
  TIMEOUT: 6,
  MARK: 7,
  MASTER_IPV4: 8,
  MASTER_IPV6: 9,
  MASTER_L4PROTO: 10,
  MASTER_PORT: 11,
  SNAT_IPV4: 12,
  DNAT_IPV4: 13,
  SPAT_PORT: 14,
  DPAT_PORT: 15,
  NAT_SEQ_ADJ: 16,
  SCTP_STATE: 17,
  SCTP_VTAG_ORIG: 18,
  SCTP_VTAG_REPL: 19,
  DCCP_STATE: 20,
  DCCP_ROLE: 21,
  ICMP_TYPE: 22,
  ICMP_CODE: 23,
  ICMP_ID: 24,
  TCP_WSCALE_ORIG: 25,
  TCP_WSCALE_REPL: 26,
  HELPER_NAME: 27,
  LABELS: 28,
  SNAT_IPV6: 29,
  DNAT_IPV6: 30,
  SYNPROXY: 31,
  ZONE: 32,
} as const;
const ATTR_COUNT = 33;

/** Payload size of each fixed-size attribute; -1 for the variable ones (bounded by VAR_MAX). */
const FIXED: readonly number[] = [
  8, 32, 1, 4, 1, 4, 4, 4, 8, 32, 1, 4, 4, 4, 2, 2, 24, 1, 4, 4, 1, 1, 1, 1, 2, 1, 1, -1, -1, 16, 16, 12, 2,
];
/** Expectation attributes (nta_exp_attr): EXP_NEW, EXP_UPD, EXP_DEL carry these, not the ones above. */
const X = {
  MASTER_IPV4: 0,
  MASTER_IPV6: 1,
  MASTER_L4PROTO: 2,
  MASTER_PORT: 3,
  EXPECT_IPV4: 4,
  EXPECT_IPV6: 5,
  EXPECT_L4PROTO: 6,
  EXPECT_PORT: 7,
  MASK_IPV4: 8,
  MASK_IPV6: 9,
  MASK_L4PROTO: 10,
  MASK_PORT: 11,
  TIMEOUT: 12,
  FLAGS: 13,
  CLASS: 14,
  NAT_IPV4: 15,
  NAT_PORT: 16,
  NAT_L4PROTO: 17,
  NAT_DIR: 18,
  HELPER_NAME: 19,
  FN: 20,
} as const;
const EXP_ATTR_COUNT = 21;
/** Payload size of each fixed-size expectation attribute; -1 for the two strings. */
const EXP_FIXED: readonly number[] = [8, 32, 1, 4, 8, 32, 1, 4, 8, 32, 1, 4, 4, 4, 4, 8, 4, 1, 4, -1, -1];
/**
 * conntrackd checks an expectation's strings against nta_len (header
 * included), not the payload: a helper name of at most 16 - 4 bytes and a
 * function name of at most 32 - 4, NUL included, or it drops the message.
 */
const EXP_HELPER_PAYLOAD_MAX = 12;
const EXP_FN_PAYLOAD_MAX = 28;

/** The kernel's helper name limit (NF_CT_HELPER_NAME_LEN, NUL included). */
const HELPER_NAME_MAX = 16;
/** 128 label bits. */
const LABELS_MAX = 16;

export type CtdDataType = 0 | 1 | 2 | 3 | 4 | 5;

export type CtdMessage =
  /** CT_NEW, CT_UPD, CT_DEL. flags: only HELLO / HELLO_BACK. */
  | { kind: 'ct'; type: 0 | 1 | 2; flags: number; seq: number; entry: ConntrackEntry }
  /** EXP_NEW, EXP_UPD, EXP_DEL (conntrackd's ExpectationSync). flags: only HELLO / HELLO_BACK. */
  | { kind: 'exp'; type: 3 | 4 | 5; flags: number; seq: number; entry: ExpectEntry }
  /** CTL: ACK / NACK / RESYNC carry [from, to]; ALIVE does not (0, 0). */
  | { kind: 'ctl'; flags: number; seq: number; from: number; to: number };

export interface CtdDecodeResult {
  messages: CtdMessage[];
  /** One per message skipped, or one for the bad framing that ended the walk. */
  errors: WireError[];
}

class Bad {
  constructor(
    readonly code: WireErrorCode,
    readonly reason: string,
  ) {}
}

/** Walks the messages of one received datagram. Never throws. */
export function decodeCtdDatagram(buf: Buffer): CtdDecodeResult {
  const messages: CtdMessage[] = [];
  const errors: WireError[] = [];
  let at = 0;
  while (at < buf.length) {
    const remain = buf.length - at;
    if (remain < CTD_HEADER_BYTES) {
      errors.push({ code: 'ETRUNC', reason: `${remain} bytes left at ${at}, shorter than a header` });
      break;
    }
    const version = buf[at]! >>> 4;
    const type = buf[at]! & 0x0f;
    const flags = buf[at + 1]!;
    const len = buf.readUInt16BE(at + 2);
    const seq = buf.readUInt32BE(at + 4);
    const ranged = (flags & RANGE_FLAGS) !== 0;
    const min = ranged ? CTD_RANGE_HEADER_BYTES : CTD_HEADER_BYTES;
    if (len < min || len > remain) {
      // The next message starts at at + len: with len unusable nothing after it can be found.
      errors.push({ code: 'ETRUNC', reason: `message at ${at}: len ${len}, ${remain} bytes left, at least ${min}` });
      break;
    }
    if (version !== CTD_VERSION) {
      errors.push({ code: 'EVERSION', reason: `message at ${at}: version ${version}, not ${CTD_VERSION}` });
    } else if (type <= MAX_DATA_TYPE && (flags & ~HELLO_FLAGS) === 0) {
      if (type <= CTD_T.CT_DEL) {
        const r = decodeEntry(buf, at + CTD_HEADER_BYTES, at + len);
        if (r instanceof Bad) errors.push({ code: r.code, reason: `message at ${at}: ${r.reason}` });
        else messages.push({ kind: 'ct', type: type as 0 | 1 | 2, flags, seq, entry: r });
      } else {
        const r = decodeExpect(buf, at + CTD_HEADER_BYTES, at + len);
        if (r instanceof Bad) errors.push({ code: r.code, reason: `message at ${at}: ${r.reason}` });
        else messages.push({ kind: 'exp', type: type as 3 | 4 | 5, flags, seq, entry: r });
      }
    } else if (type === CTD_T.CTL && (flags & CONTROL_FLAGS) !== 0) {
      const from = ranged ? buf.readUInt32BE(at + 8) : 0;
      const to = ranged ? buf.readUInt32BE(at + 12) : 0;
      messages.push({ kind: 'ctl', flags, seq, from, to });
    } else {
      errors.push({
        code: 'EVALUE',
        reason: `message at ${at}: type ${type} with flags 0x${flags.toString(16)} is neither data nor control`,
      });
    }
    at += len;
  }
  return { messages, errors };
}

function readAddr(b: Buffer, o: number, v6: boolean): string {
  return v6 ? formatIPv6At(b, o) : formatIPv4At(b, o);
}

function u16le(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function seqAdj(b: Buffer, o: number): SeqAdj {
  return { correctionPos: b.readUInt32BE(o), offsetBefore: b.readUInt32BE(o + 4), offsetAfter: b.readUInt32BE(o + 8) };
}

/** The payload of a CT_* message between [start, end). */
function decodeEntry(b: Buffer, start: number, end: number): ConntrackEntry | Bad {
  // One slot per attribute: the last occurrence wins, as in conntrackd.
  const off = new Int32Array(ATTR_COUNT).fill(-1);
  const size = new Int32Array(ATTR_COUNT);
  let at = start;
  // As conntrackd: a tail of 4 bytes or fewer is padding, not an attribute.
  while (end - at > 4) {
    const ntaLen = b.readUInt16BE(at);
    const attr = b.readUInt16BE(at + 2);
    if (ntaLen < 4 || ntaLen > end - at) return new Bad('EDECODE', `attribute at ${at}: nta_len ${ntaLen}`);
    if (attr >= ATTR_COUNT) return new Bad('EDECODE', `attribute at ${at}: unknown id ${attr}`);
    const n = ntaLen - 4;
    const fixed = FIXED[attr]!;
    if (fixed >= 0 && n !== fixed) return new Bad('EDECODE', `attribute ${attr}: ${n} bytes, not ${fixed}`);
    if (attr === A.HELPER_NAME && (n < 1 || n > HELPER_NAME_MAX || b[at + 4 + n - 1] !== 0)) {
      return new Bad('EVALUE', `helper name of ${n} bytes, not NUL-terminated within ${HELPER_NAME_MAX}`);
    }
    if (attr === A.LABELS && (n === 0 || n > LABELS_MAX || n % 4 !== 0)) {
      return new Bad('EVALUE', `labels of ${n} bytes`);
    }
    off[attr] = at + 4;
    size[attr] = n;
    at += (ntaLen + 3) & ~3;
  }
  const v6 = off[A.IPV6]! >= 0;
  if (!v6 && off[A.IPV4]! < 0) return new Bad('EVALUE', 'no IPV4 or IPV6 attribute');
  if (off[A.L4PROTO]! < 0) return new Bad('EVALUE', 'no L4PROTO attribute');
  const family: Family = v6 ? 10 : 2;
  const aw = v6 ? 16 : 4;
  const a = v6 ? off[A.IPV6]! : off[A.IPV4]!;
  const proto = b[off[A.L4PROTO]!]!;
  const orig: Tuple = { src: readAddr(b, a, v6), dst: readAddr(b, a + aw, v6), proto };
  if (off[A.PORT]! >= 0) {
    orig.sport = b.readUInt16BE(off[A.PORT]!);
    orig.dport = b.readUInt16BE(off[A.PORT]! + 2);
  }
  if (off[A.ICMP_TYPE]! >= 0) orig.icmpType = b[off[A.ICMP_TYPE]!]!;
  if (off[A.ICMP_CODE]! >= 0) orig.icmpCode = b[off[A.ICMP_CODE]!]!;
  if (off[A.ICMP_ID]! >= 0) orig.icmpId = u16le(b, off[A.ICMP_ID]!);
  // The reply tuple is not sent: it is the original mirrored, then NAT applied.
  const reply = mirrorTuple(orig);
  const snat = v6 ? off[A.SNAT_IPV6]! : off[A.SNAT_IPV4]!;
  const dnat = v6 ? off[A.DNAT_IPV6]! : off[A.DNAT_IPV4]!;
  if (snat >= 0) reply.dst = readAddr(b, snat, v6);
  if (dnat >= 0) reply.src = readAddr(b, dnat, v6);
  if (off[A.SPAT_PORT]! >= 0) reply.dport = u16le(b, off[A.SPAT_PORT]!);
  if (off[A.DPAT_PORT]! >= 0) reply.sport = u16le(b, off[A.DPAT_PORT]!);
  const e: ConntrackEntry = { family, orig, reply };
  if (off[A.STATUS]! >= 0) e.status = b.readUInt32BE(off[A.STATUS]!);
  if (off[A.TIMEOUT]! >= 0) e.timeout = b.readUInt32BE(off[A.TIMEOUT]!);
  if (off[A.MARK]! >= 0) e.mark = b.readUInt32BE(off[A.MARK]!);
  if (off[A.ZONE]! >= 0) e.zone = b.readUInt16BE(off[A.ZONE]!);
  const pi: ProtoInfo = {};
  if (off[A.TCP_STATE]! >= 0) {
    pi.tcp = { state: b[off[A.TCP_STATE]!]! };
    if (off[A.TCP_WSCALE_ORIG]! >= 0) pi.tcp.wscaleOrig = b[off[A.TCP_WSCALE_ORIG]!]!;
    if (off[A.TCP_WSCALE_REPL]! >= 0) pi.tcp.wscaleReply = b[off[A.TCP_WSCALE_REPL]!]!;
  }
  if (off[A.SCTP_STATE]! >= 0) {
    pi.sctp = { state: b[off[A.SCTP_STATE]!]! };
    if (off[A.SCTP_VTAG_ORIG]! >= 0) pi.sctp.vtagOrig = b.readUInt32BE(off[A.SCTP_VTAG_ORIG]!);
    if (off[A.SCTP_VTAG_REPL]! >= 0) pi.sctp.vtagReply = b.readUInt32BE(off[A.SCTP_VTAG_REPL]!);
  }
  if (off[A.DCCP_STATE]! >= 0) {
    pi.dccp = { state: b[off[A.DCCP_STATE]!]! };
    if (off[A.DCCP_ROLE]! >= 0) pi.dccp.role = b[off[A.DCCP_ROLE]!]!;
  }
  if (pi.tcp || pi.sctp || pi.dccp) e.protoinfo = pi;
  const m = v6 ? off[A.MASTER_IPV6]! : off[A.MASTER_IPV4]!;
  if (m >= 0) {
    if (off[A.MASTER_L4PROTO]! < 0) return new Bad('EVALUE', 'master address without MASTER_L4PROTO');
    const master: Tuple = { src: readAddr(b, m, v6), dst: readAddr(b, m + aw, v6), proto: b[off[A.MASTER_L4PROTO]!]! };
    if (off[A.MASTER_PORT]! >= 0) {
      master.sport = b.readUInt16BE(off[A.MASTER_PORT]!);
      master.dport = b.readUInt16BE(off[A.MASTER_PORT]! + 2);
    }
    e.master = master;
  }
  if (off[A.NAT_SEQ_ADJ]! >= 0) {
    e.seqAdjOrig = seqAdj(b, off[A.NAT_SEQ_ADJ]!);
    e.seqAdjReply = seqAdj(b, off[A.NAT_SEQ_ADJ]! + 12);
  }
  if (off[A.HELPER_NAME]! >= 0) {
    e.helper = b.toString('latin1', off[A.HELPER_NAME]!, off[A.HELPER_NAME]! + size[A.HELPER_NAME]! - 1);
  }
  if (off[A.LABELS]! >= 0) {
    // Word w bit i is label 32w+i; the kernel's bitmap holds it in byte (32w+i)/8: each word little-endian.
    const labels = Buffer.alloc(LABELS_MAX);
    for (let w = 0; w < size[A.LABELS]! / 4; w++) labels.writeUInt32LE(b.readUInt32BE(off[A.LABELS]! + 4 * w), 4 * w);
    e.labels = labels;
  }
  if (off[A.SYNPROXY]! >= 0) {
    const o = off[A.SYNPROXY]!;
    const sp = { its: b.readUInt32BE(o), isn: b.readUInt32BE(o + 4), tsoff: b.readUInt32BE(o + 8) };
    // What ctnetlink gives every entry it creates; ctsyncd does not keep it either (compact.ts).
    if (sp.its !== 0 || sp.isn !== 0 || sp.tsoff !== 0) e.synproxy = sp;
  }
  return e;
}

/** A NUL-terminated string of at most `max` bytes (NUL included) at [o, o + n); a Bad when it is not one. */
function cString(b: Buffer, o: number, n: number, max: number, what: string): string | Bad {
  if (n < 1 || n > max || b[o + n - 1] !== 0) return new Bad('EVALUE', `${what} of ${n} bytes, not NUL-terminated within ${max}`);
  return b.toString('latin1', o, o + n - 1);
}

/**
 * The payload of an EXP_* message between [start, end). conntrackd sends
 * the master's original tuple, the expected tuple and the mask each as an
 * address pair, a protocol and (TCP, UDP, SCTP, DCCP) a port pair in
 * network order; the NAT tuple only for IPv4 (there is no NAT_IPV6). Its
 * builder always sends all three tuples; its parser would let a missing
 * expected tuple or mask take the master's attributes (a fall-through),
 * which no sender relies on: here each is required.
 */
function decodeExpect(b: Buffer, start: number, end: number): ExpectEntry | Bad {
  const off = new Int32Array(EXP_ATTR_COUNT).fill(-1);
  const size = new Int32Array(EXP_ATTR_COUNT);
  let at = start;
  while (end - at > 4) {
    const ntaLen = b.readUInt16BE(at);
    const attr = b.readUInt16BE(at + 2);
    if (ntaLen < 4 || ntaLen > end - at) return new Bad('EDECODE', `attribute at ${at}: nta_len ${ntaLen}`);
    if (attr >= EXP_ATTR_COUNT) return new Bad('EDECODE', `expectation attribute at ${at}: unknown id ${attr}`);
    const n = ntaLen - 4;
    const fixed = EXP_FIXED[attr]!;
    if (fixed >= 0 && n !== fixed) return new Bad('EDECODE', `expectation attribute ${attr}: ${n} bytes, not ${fixed}`);
    off[attr] = at + 4;
    size[attr] = n;
    at += (ntaLen + 3) & ~3;
  }
  const v6 = off[X.MASTER_IPV6]! >= 0;
  const aw = v6 ? 16 : 4;
  // One family throughout: an IPv4 mask on an IPv6 master is not an expectation.
  const tuple = (addr4: number, addr6: number, l4: number, port: number, what: string): Tuple | Bad => {
    const a = v6 ? off[addr6]! : off[addr4]!;
    if (a < 0) return new Bad('EVALUE', `no ${what} ${v6 ? 'IPV6' : 'IPV4'} attribute`);
    if (off[l4]! < 0) return new Bad('EVALUE', `no ${what} L4PROTO attribute`);
    const t: Tuple = { src: readAddr(b, a, v6), dst: readAddr(b, a + aw, v6), proto: b[off[l4]!]! };
    if (off[port]! >= 0) {
      t.sport = b.readUInt16BE(off[port]!);
      t.dport = b.readUInt16BE(off[port]! + 2);
    }
    return t;
  };
  const master = tuple(X.MASTER_IPV4, X.MASTER_IPV6, X.MASTER_L4PROTO, X.MASTER_PORT, 'MASTER');
  if (master instanceof Bad) return master;
  const expected = tuple(X.EXPECT_IPV4, X.EXPECT_IPV6, X.EXPECT_L4PROTO, X.EXPECT_PORT, 'EXPECT');
  if (expected instanceof Bad) return expected;
  const mask = tuple(X.MASK_IPV4, X.MASK_IPV6, X.MASK_L4PROTO, X.MASK_PORT, 'MASK');
  if (mask instanceof Bad) return mask;
  const family: Family = v6 ? 10 : 2;
  const e: ExpectEntry = { family, master, tuple: expected, mask };
  if (off[X.TIMEOUT]! >= 0) e.timeout = b.readUInt32BE(off[X.TIMEOUT]!);
  if (off[X.FLAGS]! >= 0) e.flags = b.readUInt32BE(off[X.FLAGS]!);
  if (off[X.CLASS]! >= 0) e.class = b.readUInt32BE(off[X.CLASS]!);
  if (!v6 && off[X.NAT_IPV4]! >= 0) {
    const o = off[X.NAT_IPV4]!;
    const t: Tuple = {
      src: formatIPv4At(b, o),
      dst: formatIPv4At(b, o + 4),
      proto: off[X.NAT_L4PROTO]! >= 0 ? b[off[X.NAT_L4PROTO]!]! : expected.proto,
    };
    if (off[X.NAT_PORT]! >= 0) {
      t.sport = b.readUInt16BE(off[X.NAT_PORT]!);
      t.dport = b.readUInt16BE(off[X.NAT_PORT]! + 2);
    }
    e.nat = { dir: off[X.NAT_DIR]! >= 0 ? b.readUInt32BE(off[X.NAT_DIR]!) : 0, tuple: t };
  }
  if (off[X.HELPER_NAME]! >= 0) {
    // Up to the kernel's limit: stricter than conntrackd's 12, which is its own receiver's limit.
    const h = cString(b, off[X.HELPER_NAME]!, size[X.HELPER_NAME]!, HELPER_NAME_MAX, 'helper name');
    if (h instanceof Bad) return h;
    e.helper = h;
  }
  if (off[X.FN]! >= 0) {
    const f = cString(b, off[X.FN]!, size[X.FN]!, EXP_FN_PAYLOAD_MAX, 'expectation function name');
    if (f instanceof Bad) return f;
    e.fn = f;
  }
  return e;
}

// ---------------------------------------------------------------- encoding

/**
 * Writes messages into one growing buffer; the engine cuts datagrams from
 * it. Entries that cannot be represented (an address that does not parse)
 * are refused: encodeEntry returns false and writes nothing.
 */
export class CtdWriter {
  private buf: Buffer;
  private len = 0;

  constructor(capacity = 4096) {
    this.buf = Buffer.alloc(capacity);
  }

  get length(): number {
    return this.len;
  }

  /** The bytes written since the last reset (a view; copy what must be kept). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  reset(): void {
    this.len = 0;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private header(type: number, flags: number, seq: number, len: number): void {
    this.room(len);
    const b = this.buf;
    const o = this.len;
    b[o] = (CTD_VERSION << 4) | type;
    b[o + 1] = flags;
    b.writeUInt16BE(len, o + 2);
    b.writeUInt32BE(seq >>> 0, o + 4);
    this.len += CTD_HEADER_BYTES;
  }

  /** A CTL message: ALIVE (no range) or ACK / NACK / RESYNC with [from, to], plus any HELLO flags. */
  control(flags: number, seq: number, from = 0, to = 0): void {
    const ranged = (flags & RANGE_FLAGS) !== 0;
    this.header(CTD_T.CTL, flags, seq, ranged ? CTD_RANGE_HEADER_BYTES : CTD_HEADER_BYTES);
    if (ranged) {
      this.buf.writeUInt32BE(from >>> 0, this.len);
      this.buf.writeUInt32BE(to >>> 0, this.len + 4);
      this.len += 8;
    }
  }

  /** A CT_NEW / CT_UPD / CT_DEL of `e`; false (nothing written) when e cannot travel in this format. */
  entry(type: 0 | 1 | 2, flags: number, seq: number, e: ConntrackEntry): boolean {
    const start = this.len;
    this.header(type, flags, seq, CTD_HEADER_BYTES);
    if (!this.writeEntry(e)) {
      this.len = start;
      return false;
    }
    this.buf.writeUInt16BE(this.len - start, start + 2);
    return true;
  }

  /**
   * An EXP_NEW / EXP_UPD / EXP_DEL of `e`; false (nothing written) when e
   * cannot travel in this format: an address that does not parse, a zone
   * (the format has none: zone 0 would be a different expectation), or a
   * name longer than conntrackd accepts.
   */
  expect(type: 3 | 4 | 5, flags: number, seq: number, e: ExpectEntry): boolean {
    const start = this.len;
    this.header(type, flags, seq, CTD_HEADER_BYTES);
    if (!this.writeExpect(e)) {
      this.len = start;
      return false;
    }
    this.buf.writeUInt16BE(this.len - start, start + 2);
    return true;
  }

  private attr(attr: number, n: number): number {
    const total = (4 + n + 3) & ~3;
    this.room(total);
    const b = this.buf;
    const o = this.len;
    b.writeUInt16BE(4 + n, o);
    b.writeUInt16BE(attr, o + 2);
    b.fill(0, o + 4, o + total);
    this.len += total;
    return o + 4;
  }

  private u8(attr: number, v: number): void {
    // attr() may grow (replace) the buffer: take the offset first.
    const o = this.attr(attr, 1);
    this.buf[o] = v & 0xff;
  }

  private u32(attr: number, v: number): void {
    const o = this.attr(attr, 4);
    this.buf.writeUInt32BE(v >>> 0, o);
  }

  /** SPAT_PORT, DPAT_PORT, ICMP_ID: little-endian, as conntrackd on x86 writes them. */
  private u16le(attr: number, v: number): void {
    const o = this.attr(attr, 2);
    this.buf.writeUInt16LE(v & 0xffff, o);
  }

  private addr(s: string, v6: boolean, o: number): boolean {
    if (v6) return parseIPv6Into(s, this.buf, o);
    const v = parseIPv4(s);
    if (v === undefined) return false;
    this.buf.writeUInt32BE(v, o);
    return true;
  }

  private pair(attr: number, src: string, dst: string, v6: boolean): boolean {
    const w = v6 ? 16 : 4;
    const o = this.attr(attr, 2 * w);
    return this.addr(src, v6, o) && this.addr(dst, v6, o + w);
  }

  private ports(attr: number, t: Tuple): void {
    const o = this.attr(attr, 4);
    this.buf.writeUInt16BE((t.sport ?? 0) & 0xffff, o);
    this.buf.writeUInt16BE((t.dport ?? 0) & 0xffff, o + 2);
  }

  /** A NUL-terminated string attribute; false when it does not fit `max` payload bytes. */
  private str(attr: number, v: string, max: number): boolean {
    const name = Buffer.from(v, 'latin1');
    if (name.length + 1 > max) return false;
    const o = this.attr(attr, name.length + 1);
    name.copy(this.buf, o);
    return true;
  }

  /** One of the three tuples of an expectation: address pair, protocol, ports when it has them. */
  private expTuple(addr: number, l4: number, port: number, t: Tuple, v6: boolean): boolean {
    if (!this.pair(addr, t.src, t.dst, v6)) return false;
    this.u8(l4, t.proto);
    if (t.sport !== undefined && t.dport !== undefined) this.ports(port, t);
    return true;
  }

  // In conntrackd's order: master, expected, mask, timeout, flags, class, NAT, helper, fn.
  private writeExpect(e: ExpectEntry): boolean {
    if (e.zone !== undefined && e.zone !== 0) return false;
    const v6 = e.family === 10;
    if (!this.expTuple(v6 ? X.MASTER_IPV6 : X.MASTER_IPV4, X.MASTER_L4PROTO, X.MASTER_PORT, e.master, v6)) return false;
    if (!this.expTuple(v6 ? X.EXPECT_IPV6 : X.EXPECT_IPV4, X.EXPECT_L4PROTO, X.EXPECT_PORT, e.tuple, v6)) return false;
    if (!this.expTuple(v6 ? X.MASK_IPV6 : X.MASK_IPV4, X.MASK_L4PROTO, X.MASK_PORT, e.mask, v6)) return false;
    if (e.timeout !== undefined) this.u32(X.TIMEOUT, e.timeout);
    // conntrackd always sends the flags.
    this.u32(X.FLAGS, e.flags ?? 0);
    if (e.class !== undefined) this.u32(X.CLASS, e.class);
    if (e.nat) {
      // No NAT_IPV6 in the format: an IPv6 expectation's NAT cannot travel.
      if (v6) return false;
      const t = e.nat.tuple;
      if (!this.pair(X.NAT_IPV4, t.src, t.dst, false)) return false;
      this.u8(X.NAT_L4PROTO, t.proto);
      if (t.sport !== undefined && t.dport !== undefined) this.ports(X.NAT_PORT, t);
      this.u32(X.NAT_DIR, e.nat.dir);
    }
    if (e.helper !== undefined && !this.str(X.HELPER_NAME, e.helper, EXP_HELPER_PAYLOAD_MAX)) return false;
    if (e.fn !== undefined && !this.str(X.FN, e.fn, EXP_FN_PAYLOAD_MAX)) return false;
    return true;
  }

  // In conntrackd's order (§3.5), so a capture reads the same from either daemon.
  private writeEntry(e: ConntrackEntry): boolean {
    const v6 = e.family === 10;
    const { orig, reply } = e;
    if (!this.pair(v6 ? A.IPV6 : A.IPV4, orig.src, orig.dst, v6)) return false;
    if (e.status !== undefined) this.u32(A.STATUS, e.status);
    this.u8(A.L4PROTO, orig.proto);
    if (orig.sport !== undefined && orig.dport !== undefined) this.ports(A.PORT, orig);
    const pi = e.protoinfo;
    if (pi?.tcp) this.u8(A.TCP_STATE, pi.tcp.state);
    if (pi?.sctp) {
      this.u8(A.SCTP_STATE, pi.sctp.state);
      this.u32(A.SCTP_VTAG_ORIG, pi.sctp.vtagOrig ?? 0);
      this.u32(A.SCTP_VTAG_REPL, pi.sctp.vtagReply ?? 0);
    }
    if (pi?.dccp) {
      this.u8(A.DCCP_STATE, pi.dccp.state);
      this.u8(A.DCCP_ROLE, pi.dccp.role ?? 0);
    }
    if (orig.icmpType !== undefined) {
      this.u8(A.ICMP_TYPE, orig.icmpType);
      this.u8(A.ICMP_CODE, orig.icmpCode ?? 0);
      this.u16le(A.ICMP_ID, orig.icmpId ?? 0);
    }
    if (e.timeout !== undefined) this.u32(A.TIMEOUT, e.timeout);
    if (e.mark !== undefined) this.u32(A.MARK, e.mark);
    if (e.master) {
      if (!this.pair(v6 ? A.MASTER_IPV6 : A.MASTER_IPV4, e.master.src, e.master.dst, v6)) return false;
      this.u8(A.MASTER_L4PROTO, e.master.proto);
      if (e.master.sport !== undefined && e.master.dport !== undefined) this.ports(A.MASTER_PORT, e.master);
    }
    // NAT: whatever makes the reply tuple differ from the original mirrored,
    // so the receiver's mirror-then-apply gives back exactly this reply.
    const m = mirrorTuple(orig);
    if (reply.dst !== m.dst && !this.addr(reply.dst, v6, this.attr(v6 ? A.SNAT_IPV6 : A.SNAT_IPV4, v6 ? 16 : 4)))
      return false;
    if (reply.src !== m.src && !this.addr(reply.src, v6, this.attr(v6 ? A.DNAT_IPV6 : A.DNAT_IPV4, v6 ? 16 : 4)))
      return false;
    if (reply.dport !== undefined && reply.dport !== m.dport) this.u16le(A.SPAT_PORT, reply.dport);
    if (reply.sport !== undefined && reply.sport !== m.sport) this.u16le(A.DPAT_PORT, reply.sport);
    if (e.seqAdjOrig || e.seqAdjReply) {
      const o = this.attr(A.NAT_SEQ_ADJ, 24);
      const w = (s: SeqAdj | undefined, at: number): void => {
        this.buf.writeUInt32BE((s?.correctionPos ?? 0) >>> 0, at);
        this.buf.writeUInt32BE((s?.offsetBefore ?? 0) >>> 0, at + 4);
        this.buf.writeUInt32BE((s?.offsetAfter ?? 0) >>> 0, at + 8);
      };
      w(e.seqAdjOrig, o);
      w(e.seqAdjReply, o + 12);
    }
    if (e.helper !== undefined) {
      const name = Buffer.from(e.helper, 'latin1');
      if (name.length + 1 > HELPER_NAME_MAX) return false;
      const o = this.attr(A.HELPER_NAME, name.length + 1);
      name.copy(this.buf, o);
    }
    if (e.labels && e.labels.some((x) => x !== 0)) {
      // Only as many words as hold a set bit, as conntrackd sends them.
      let words = 0;
      for (let w = 0; w < Math.min(e.labels.length, LABELS_MAX) / 4; w++) if (e.labels.readUInt32LE(4 * w) !== 0) words = w + 1;
      const o = this.attr(A.LABELS, 4 * words);
      for (let w = 0; w < words; w++) this.buf.writeUInt32BE(e.labels.readUInt32LE(4 * w), o + 4 * w);
    }
    if (e.synproxy) {
      const o = this.attr(A.SYNPROXY, 12);
      this.buf.writeUInt32BE(e.synproxy.its >>> 0, o);
      this.buf.writeUInt32BE(e.synproxy.isn >>> 0, o + 4);
      this.buf.writeUInt32BE(e.synproxy.tsoff >>> 0, o + 8);
    }
    if (e.zone !== undefined && e.zone !== 0) {
      const o = this.attr(A.ZONE, 2);
      this.buf.writeUInt16BE(e.zone & 0xffff, o);
    }
    return true;
  }
}

/** Whether header flags mark a data message's HELLO handshake (data and control carry them alike). */
export function ctdHelloFlags(flags: number): number {
  return flags & HELLO_FLAGS;
}
