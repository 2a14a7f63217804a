// ctnetlink conntrack and expectation messages <-> typed entries. Pure.
//
// Decoding is the hot path (event streams, full-table dumps), so it is one
// pass per nesting level over the attributes with a switch: no closures, no
// intermediate attribute arrays, iterators reused from a per-depth pool.
// Inner decoders return the decoded value or undefined, leaving the reason in
// `lastError`, which avoids allocating a Result per nested structure.
//
// Encoding writes attributes in the order the kernel emits them
// (ctnetlink_fill_info for dumps, ctnetlink_conntrack_event for events), so
// re-encoding a decoded kernel message reproduces its bytes exactly; the
// fixture tests hold us to that.

import { formatIPv4At, formatIPv6At } from '../common/address.js';
import {
  AF_INET,
  AF_INET6,
  CTA,
  CTA_COUNTERS,
  CTA_EXPECT,
  CTA_EXPECT_NAT,
  CTA_HELP,
  CTA_IP,
  CTA_NAT,
  CTA_PROTO,
  CTA_PROTOINFO,
  CTA_PROTOINFO_DCCP,
  CTA_PROTOINFO_SCTP,
  CTA_PROTOINFO_TCP,
  CTA_PROTONAT,
  CTA_SECCTX,
  CTA_SEQADJ,
  CTA_SYNPROXY,
  CTA_TIMESTAMP,
  CTA_TUPLE,
  hasPorts,
  IPPROTO,
  NFGENMSG_LEN,
  NFNL_SUBSYS_CTNETLINK,
  NFNL_SUBSYS_CTNETLINK_EXP,
} from './constants.js';
import type {
  ConntrackEntry,
  Counters,
  DccpInfo,
  ExpectEntry,
  Family,
  ProtoInfo,
  SctpInfo,
  SeqAdj,
  Synproxy,
  TcpInfo,
  Timestamp,
  Tuple,
} from './entry.js';
import {
  type EntryRecord,
  F_FLAGS_ORIG,
  F_FLAGS_REPLY,
  F_MARK,
  F_PROTOINFO,
  F_STATUS,
  F_TCP,
  F_TIMEOUT,
  F_WHOLE,
  F_WSCALE_ORIG,
  F_WSCALE_REPLY,
  F_ZONE,
  O_SHIFT,
  R_SHIFT,
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
  W_STATUS,
  W_TCP,
  W_TCPFLAGS,
  W_TIMEOUT,
} from './ct-record.js';
import {
  AttrIterator,
  beI32,
  beU16,
  beU32,
  beU64,
  type DecodeError,
  type DecodeErrorCode,
  decodeError,
  fail,
  MAX_NEST_DEPTH,
  type NlMessage,
  type NlWriter,
  type Result,
  readString,
} from './netlink-codec.js';

export interface DecodeOptions {
  /**
   * Decode a request that names an entry rather than describing it (GET,
   * DELETE): only CTA_TUPLE_ORIG is required, the reply tuple may be absent.
   */
  lookup?: boolean;
}

/** What a lookup-mode decode yields: an entry whose reply tuple may be missing. */
export type ConntrackLookup = Omit<ConntrackEntry, 'reply'> & { reply?: Tuple };

export interface EncodeOptions {
  /**
   * Also write the fields only the kernel sets (id, use, counters,
   * timestamp, secctx, secmark): for dumps/events produced by a fake kernel
   * and for byte-exact round trips. Requests to the kernel leave them out.
   */
  readOnly?: boolean;
  /**
   * Attribute order: 'dump' follows ctnetlink_fill_info (dump and GET
   * replies), 'event' follows ctnetlink_conntrack_event. The kernel accepts
   * either order in requests.
   */
  layout?: 'dump' | 'event';
}

export interface ExpectEncodeOptions {
  /** Also write CTA_EXPECT_ID. A delete request carrying a foreign id would not match (ENOENT). */
  readOnly?: boolean;
}

// ---------------------------------------------------------------------------
// Decoding

const iters: AttrIterator[] = [];
for (let i = 0; i <= MAX_NEST_DEPTH; i++) iters.push(new AttrIterator());

/** Why the last inner decoder returned undefined. */
let lastError: DecodeError = decodeError('EVALUE', 0, 'no error');

function setError(code: DecodeErrorCode, offset: number, reason: string): undefined {
  lastError = decodeError(code, offset, reason);
  return undefined;
}

/** A child iterator for the current attribute of `parent`, or undefined past the depth limit. */
function child(parent: AttrIterator): AttrIterator | undefined {
  const it = iters[parent.depth + 1];
  if (!it || !parent.enter(it)) {
    lastError = parent.error ?? decodeError('ENEST_DEPTH', parent.hdr, `nesting deeper than ${MAX_NEST_DEPTH}`);
    return undefined;
  }
  return it;
}

function badSize(it: AttrIterator, what: string, want: number): DecodeError {
  return decodeError('EATTR_SIZE', it.hdr, `${what}: payload of ${it.len} bytes, expected ${want}`);
}

/** For inner decoders: records a size error and yields their failure value. */
function sizeError(it: AttrIterator, what: string, want: number): undefined {
  lastError = badSize(it, what, want);
  return undefined;
}

function childError(it: AttrIterator): boolean {
  if (it.error) {
    lastError = it.error;
    return true;
  }
  return false;
}

const HAVE_SRC = 1;
const HAVE_DST = 2;
const HAVE_PROTO = 4;

/** Addresses of the tuple being decoded (tuples do not nest, so one suffices). */
const addrs = { src: '', dst: '' };

function decodeTuple(parent: AttrIterator, family: number, what: string): Tuple | undefined {
  const it = child(parent);
  if (!it) return undefined;
  addrs.src = '';
  addrs.dst = '';
  let proto = -1;
  let zone = -1;
  let have = 0;
  while (it.next()) {
    switch (it.type) {
      case CTA_TUPLE.IP: {
        const got = decodeTupleIp(it, family, addrs);
        if (got < 0) return undefined;
        have |= got;
        break;
      }
      case CTA_TUPLE.PROTO:
        proto = decodeTupleProto(it);
        if (proto < 0) return undefined;
        have |= HAVE_PROTO;
        break;
      case CTA_TUPLE.ZONE:
        if (it.len !== 2) return sizeError(it, 'CTA_TUPLE_ZONE', 2);
        zone = beU16(it.buf, it.off);
        break;
    }
  }
  if (childError(it)) return undefined;
  if (!(have & HAVE_SRC)) return setError('EMISSING', parent.hdr, `${what}: no source address`);
  if (!(have & HAVE_DST)) return setError('EMISSING', parent.hdr, `${what}: no destination address`);
  if (!(have & HAVE_PROTO)) return setError('EMISSING', parent.hdr, `${what}: no CTA_PROTO_NUM`);
  return buildTuple(addrs.src, addrs.dst, proto, zone);
}

/**
 * The tuple from the addresses and protoVals, built as one literal in the
 * common shapes: every field in-object, the shapes the caches store (see
 * src/cache/compact.ts), instead of an object grown field by field.
 */
function buildTuple(src: string, dst: string, proto: number, zone: number): Tuple {
  const v = protoVals;
  let a = -1;
  let b = -1;
  let c = -1;
  if (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6) {
    const v4 = proto === IPPROTO.ICMP;
    a = v[v4 ? CTA_PROTO.ICMP_TYPE : CTA_PROTO.ICMPV6_TYPE]!;
    b = v[v4 ? CTA_PROTO.ICMP_CODE : CTA_PROTO.ICMPV6_CODE]!;
    c = v[v4 ? CTA_PROTO.ICMP_ID : CTA_PROTO.ICMPV6_ID]!;
    if (a >= 0 && b >= 0 && c >= 0 && zone < 0) return { src, dst, proto, icmpType: a, icmpCode: b, icmpId: c };
    const t: Tuple = { src, dst, proto };
    if (a >= 0) t.icmpType = a;
    if (b >= 0) t.icmpCode = b;
    if (c >= 0) t.icmpId = c;
    if (zone >= 0) t.zone = zone;
    return t;
  }
  if (hasPorts(proto)) {
    a = v[CTA_PROTO.SRC_PORT]!;
    b = v[CTA_PROTO.DST_PORT]!;
    if (a >= 0 && b >= 0 && zone < 0) return { src, dst, proto, sport: a, dport: b };
  }
  const t: Tuple = { src, dst, proto };
  if (a >= 0) t.sport = a;
  if (b >= 0) t.dport = b;
  if (zone >= 0) t.zone = zone;
  return t;
}

/** Returns HAVE_* bits for the addresses found, or -1 on error. */
function decodeTupleIp(parent: AttrIterator, family: number, t: { src: string; dst: string }): number {
  const it = child(parent);
  if (!it) return -1;
  let have = 0;
  while (it.next()) {
    const type = it.type;
    if (type === CTA_IP.V4_SRC || type === CTA_IP.V4_DST) {
      if (family !== AF_INET) {
        setError('EFAMILY', it.hdr, 'IPv4 address in an AF_INET6 message');
        return -1;
      }
      if (it.len !== 4) {
        sizeError(it, 'CTA_IP_V4', 4);
        return -1;
      }
      const s = formatIPv4At(it.buf, it.off);
      if (type === CTA_IP.V4_SRC) {
        t.src = s;
        have |= HAVE_SRC;
      } else {
        t.dst = s;
        have |= HAVE_DST;
      }
    } else if (type === CTA_IP.V6_SRC || type === CTA_IP.V6_DST) {
      if (family !== AF_INET6) {
        setError('EFAMILY', it.hdr, 'IPv6 address in an AF_INET message');
        return -1;
      }
      if (it.len !== 16) {
        sizeError(it, 'CTA_IP_V6', 16);
        return -1;
      }
      const s = formatIPv6At(it.buf, it.off);
      if (type === CTA_IP.V6_SRC) {
        t.src = s;
        have |= HAVE_SRC;
      } else {
        t.dst = s;
        have |= HAVE_DST;
      }
    }
  }
  return childError(it) ? -1 : have;
}

/** Payload sizes of CTA_PROTO_* attributes, by type (index 0 unused). */
const PROTO_ATTR_SIZE = [0, 1, 2, 2, 2, 1, 1, 2, 1, 1];
const PROTO_ATTR_NAME = [
  '',
  'CTA_PROTO_NUM',
  'CTA_PROTO_SRC_PORT',
  'CTA_PROTO_DST_PORT',
  'CTA_PROTO_ICMP_ID',
  'CTA_PROTO_ICMP_TYPE',
  'CTA_PROTO_ICMP_CODE',
  'CTA_PROTO_ICMPV6_ID',
  'CTA_PROTO_ICMPV6_TYPE',
  'CTA_PROTO_ICMPV6_CODE',
];
/** CTA_PROTO_* values of the tuple being decoded; -1 = absent. */
const protoVals = new Int32Array(PROTO_ATTR_SIZE.length);

/**
 * Like the kernel's l4 trackers, a tuple takes only the fields of its
 * protocol: ports for port-based ones, ICMP_* for ICMP, ICMPV6_* for ICMPv6.
 * Anything else in the nest is ignored (buildTuple picks), so what we decode
 * is exactly what the kernel would have understood (and what encodeTuple
 * writes back). Leaves the values in protoVals; returns the protocol, or -1.
 */
function decodeTupleProto(parent: AttrIterator): number {
  const it = child(parent);
  if (!it) return -1;
  const v = protoVals;
  v.fill(-1);
  while (it.next()) {
    const type = it.type;
    if (type === 0 || type >= PROTO_ATTR_SIZE.length) continue;
    const size = PROTO_ATTR_SIZE[type]!;
    if (it.len !== size) {
      sizeError(it, PROTO_ATTR_NAME[type]!, size);
      return -1;
    }
    v[type] = size === 1 ? it.buf[it.off]! : beU16(it.buf, it.off);
  }
  if (childError(it)) return -1;
  const proto = v[CTA_PROTO.NUM]!;
  if (proto < 0) {
    setError('EMISSING', parent.hdr, 'CTA_TUPLE_PROTO without CTA_PROTO_NUM');
    return -1;
  }
  return proto;
}

function decodeProtoinfo(parent: AttrIterator): ProtoInfo | undefined {
  const it = child(parent);
  if (!it) return undefined;
  const p: ProtoInfo = {};
  while (it.next()) {
    switch (it.type) {
      case CTA_PROTOINFO.TCP: {
        const v = decodeTcp(it);
        if (!v) return undefined;
        p.tcp = v;
        break;
      }
      case CTA_PROTOINFO.SCTP: {
        const v = decodeSctp(it);
        if (!v) return undefined;
        p.sctp = v;
        break;
      }
      case CTA_PROTOINFO.DCCP: {
        const v = decodeDccp(it);
        if (!v) return undefined;
        p.dccp = v;
        break;
      }
    }
  }
  return childError(it) ? undefined : p;
}

function decodeTcp(parent: AttrIterator): TcpInfo | undefined {
  const it = child(parent);
  if (!it) return undefined;
  const v: TcpInfo = { state: -1 };
  while (it.next()) {
    const b = it.buf;
    const o = it.off;
    switch (it.type) {
      case CTA_PROTOINFO_TCP.STATE:
        if (it.len !== 1) return sizeError(it, 'CTA_PROTOINFO_TCP_STATE', 1);
        v.state = b[o]!;
        break;
      case CTA_PROTOINFO_TCP.WSCALE_ORIGINAL:
        if (it.len !== 1) return sizeError(it, 'CTA_PROTOINFO_TCP_WSCALE_ORIGINAL', 1);
        v.wscaleOrig = b[o]!;
        break;
      case CTA_PROTOINFO_TCP.WSCALE_REPLY:
        if (it.len !== 1) return sizeError(it, 'CTA_PROTOINFO_TCP_WSCALE_REPLY', 1);
        v.wscaleReply = b[o]!;
        break;
      // struct nf_ct_tcp_flags { __u8 flags; __u8 mask; }
      case CTA_PROTOINFO_TCP.FLAGS_ORIGINAL:
        if (it.len !== 2) return sizeError(it, 'CTA_PROTOINFO_TCP_FLAGS_ORIGINAL', 2);
        v.flagsOrig = { flags: b[o]!, mask: b[o + 1]! };
        break;
      case CTA_PROTOINFO_TCP.FLAGS_REPLY:
        if (it.len !== 2) return sizeError(it, 'CTA_PROTOINFO_TCP_FLAGS_REPLY', 2);
        v.flagsReply = { flags: b[o]!, mask: b[o + 1]! };
        break;
    }
  }
  if (childError(it)) return undefined;
  if (v.state < 0) return setError('EMISSING', parent.hdr, 'CTA_PROTOINFO_TCP without a state');
  return v;
}

function decodeSctp(parent: AttrIterator): SctpInfo | undefined {
  const it = child(parent);
  if (!it) return undefined;
  const v: SctpInfo = { state: -1 };
  while (it.next()) {
    switch (it.type) {
      case CTA_PROTOINFO_SCTP.STATE:
        if (it.len !== 1) return sizeError(it, 'CTA_PROTOINFO_SCTP_STATE', 1);
        v.state = it.buf[it.off]!;
        break;
      case CTA_PROTOINFO_SCTP.VTAG_ORIGINAL:
        if (it.len !== 4) return sizeError(it, 'CTA_PROTOINFO_SCTP_VTAG_ORIGINAL', 4);
        v.vtagOrig = beU32(it.buf, it.off);
        break;
      case CTA_PROTOINFO_SCTP.VTAG_REPLY:
        if (it.len !== 4) return sizeError(it, 'CTA_PROTOINFO_SCTP_VTAG_REPLY', 4);
        v.vtagReply = beU32(it.buf, it.off);
        break;
    }
  }
  if (childError(it)) return undefined;
  if (v.state < 0) return setError('EMISSING', parent.hdr, 'CTA_PROTOINFO_SCTP without a state');
  return v;
}

function decodeDccp(parent: AttrIterator): DccpInfo | undefined {
  const it = child(parent);
  if (!it) return undefined;
  const v: DccpInfo = { state: -1 };
  while (it.next()) {
    switch (it.type) {
      case CTA_PROTOINFO_DCCP.STATE:
        if (it.len !== 1) return sizeError(it, 'CTA_PROTOINFO_DCCP_STATE', 1);
        v.state = it.buf[it.off]!;
        break;
      case CTA_PROTOINFO_DCCP.ROLE:
        if (it.len !== 1) return sizeError(it, 'CTA_PROTOINFO_DCCP_ROLE', 1);
        v.role = it.buf[it.off]!;
        break;
      case CTA_PROTOINFO_DCCP.HANDSHAKE_SEQ:
        if (it.len !== 8) return sizeError(it, 'CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ', 8);
        v.handshakeSeq = beU64(it.buf, it.off);
        break;
    }
  }
  if (childError(it)) return undefined;
  if (v.state < 0) return setError('EMISSING', parent.hdr, 'CTA_PROTOINFO_DCCP without a state');
  return v;
}

function decodeCounters(parent: AttrIterator): Counters | undefined {
  const it = child(parent);
  if (!it) return undefined;
  let packets: bigint | undefined;
  let bytes: bigint | undefined;
  while (it.next()) {
    switch (it.type) {
      case CTA_COUNTERS.PACKETS:
        if (it.len !== 8) return sizeError(it, 'CTA_COUNTERS_PACKETS', 8);
        packets = beU64(it.buf, it.off);
        break;
      case CTA_COUNTERS.BYTES:
        if (it.len !== 8) return sizeError(it, 'CTA_COUNTERS_BYTES', 8);
        bytes = beU64(it.buf, it.off);
        break;
      // Pre-2.6.x kernels; still valid to receive.
      case CTA_COUNTERS.PACKETS32:
        if (it.len !== 4) return sizeError(it, 'CTA_COUNTERS32_PACKETS', 4);
        packets = BigInt(beU32(it.buf, it.off));
        break;
      case CTA_COUNTERS.BYTES32:
        if (it.len !== 4) return sizeError(it, 'CTA_COUNTERS32_BYTES', 4);
        bytes = BigInt(beU32(it.buf, it.off));
        break;
    }
  }
  if (childError(it)) return undefined;
  if (packets === undefined || bytes === undefined) {
    return setError('EMISSING', parent.hdr, 'CTA_COUNTERS without packets and bytes');
  }
  return { packets, bytes };
}

function decodeTimestamp(parent: AttrIterator): Timestamp | undefined {
  const it = child(parent);
  if (!it) return undefined;
  const v: Timestamp = {};
  while (it.next()) {
    switch (it.type) {
      case CTA_TIMESTAMP.START:
        if (it.len !== 8) return sizeError(it, 'CTA_TIMESTAMP_START', 8);
        v.start = beU64(it.buf, it.off);
        break;
      case CTA_TIMESTAMP.STOP:
        if (it.len !== 8) return sizeError(it, 'CTA_TIMESTAMP_STOP', 8);
        v.stop = beU64(it.buf, it.off);
        break;
    }
  }
  return childError(it) ? undefined : v;
}

function decodeSeqAdj(parent: AttrIterator): SeqAdj | undefined {
  const it = child(parent);
  if (!it) return undefined;
  let have = 0;
  const v: SeqAdj = { correctionPos: 0, offsetBefore: 0, offsetAfter: 0 };
  while (it.next()) {
    const t = it.type;
    if (t !== CTA_SEQADJ.CORRECTION_POS && t !== CTA_SEQADJ.OFFSET_BEFORE && t !== CTA_SEQADJ.OFFSET_AFTER) continue;
    if (it.len !== 4) return sizeError(it, 'CTA_SEQADJ', 4);
    // struct nf_ct_seqadj: u32 correction_pos; s32 offset_before, offset_after.
    if (t === CTA_SEQADJ.CORRECTION_POS) v.correctionPos = beU32(it.buf, it.off);
    else if (t === CTA_SEQADJ.OFFSET_BEFORE) v.offsetBefore = beI32(it.buf, it.off);
    else v.offsetAfter = beI32(it.buf, it.off);
    have |= 1 << t;
  }
  if (childError(it)) return undefined;
  if (have !== 0b1110) return setError('EMISSING', parent.hdr, 'CTA_SEQ_ADJ without all three fields');
  return v;
}

function decodeSynproxy(parent: AttrIterator): Synproxy | undefined {
  const it = child(parent);
  if (!it) return undefined;
  let have = 0;
  const v: Synproxy = { isn: 0, its: 0, tsoff: 0 };
  while (it.next()) {
    const t = it.type;
    if (t !== CTA_SYNPROXY.ISN && t !== CTA_SYNPROXY.ITS && t !== CTA_SYNPROXY.TSOFF) continue;
    if (it.len !== 4) return sizeError(it, 'CTA_SYNPROXY', 4);
    const x = beU32(it.buf, it.off);
    if (t === CTA_SYNPROXY.ISN) v.isn = x;
    else if (t === CTA_SYNPROXY.ITS) v.its = x;
    else v.tsoff = x;
    have |= 1 << t;
  }
  if (childError(it)) return undefined;
  if (have !== 0b1110) return setError('EMISSING', parent.hdr, 'CTA_SYNPROXY without all three fields');
  return v;
}

/** The string attribute `nameType` inside a nest (CTA_HELP, CTA_SECCTX). */
function decodeNamed(parent: AttrIterator, nameType: number, what: string): string | undefined {
  const it = child(parent);
  if (!it) return undefined;
  let name: string | undefined;
  while (it.next()) if (it.type === nameType) name = readString(it.buf, it.off, it.len);
  if (childError(it)) return undefined;
  if (name === undefined) return setError('EMISSING', parent.hdr, `${what} without a name`);
  return name;
}

/** The nfgenmsg family of a message of `subsys`, or -1 with `lastError` set. */
function checkHeader(msg: NlMessage, subsys: number, what: string): number {
  if (msg.type >> 8 !== subsys) {
    lastError = decodeError('EMSG_TYPE', 0, `message type 0x${msg.type.toString(16)} is not ${what}`);
    return -1;
  }
  const p = msg.payload;
  if (p.length < NFGENMSG_LEN) {
    lastError = decodeError('ETRUNC_HEADER', 0, `nfgenmsg needs 4 bytes, got ${p.length}`);
    return -1;
  }
  const family = p[0]!;
  if (family !== AF_INET && family !== AF_INET6) {
    lastError = decodeError('EFAMILY', 0, `nfgen_family ${family}`);
    return -1;
  }
  return family;
}

const u32Names: Record<number, string> = {
  [CTA.STATUS]: 'CTA_STATUS',
  [CTA.TIMEOUT]: 'CTA_TIMEOUT',
  [CTA.MARK]: 'CTA_MARK',
  [CTA.USE]: 'CTA_USE',
  [CTA.ID]: 'CTA_ID',
  [CTA.SECMARK]: 'CTA_SECMARK',
};

/**
 * Decodes an IPCTNL_MSG_CT_NEW/DELETE message (dump entry, GET reply, event
 * or request). Attributes ctsyncd does not model are skipped. Error offsets
 * are relative to msg.payload.
 */
export function decodeConntrack(msg: NlMessage): Result<ConntrackEntry>;
export function decodeConntrack(msg: NlMessage, opts: DecodeOptions & { lookup: true }): Result<ConntrackLookup>;
export function decodeConntrack(msg: NlMessage, opts?: DecodeOptions): Result<ConntrackEntry | ConntrackLookup>;
export function decodeConntrack(msg: NlMessage, opts?: DecodeOptions): Result<ConntrackEntry | ConntrackLookup> {
  const checked = checkHeader(msg, NFNL_SUBSYS_CTNETLINK, 'ctnetlink');
  if (checked < 0) return { ok: false, error: lastError };
  const family = checked as Family;
  const p = msg.payload;
  const it = iters[0]!.reset(p, NFGENMSG_LEN, p.length, 0);
  // Built up in kernel attribute order, so entries share V8 hidden classes.
  const e = { family } as ConntrackLookup;
  let orig: Tuple | undefined;
  while (it.next()) {
    const b = it.buf;
    const o = it.off;
    switch (it.type) {
      case CTA.TUPLE_ORIG: {
        const t = decodeTuple(it, family, 'CTA_TUPLE_ORIG');
        if (!t) return { ok: false, error: lastError };
        e.orig = orig = t;
        break;
      }
      case CTA.TUPLE_REPLY: {
        const t = decodeTuple(it, family, 'CTA_TUPLE_REPLY');
        if (!t) return { ok: false, error: lastError };
        e.reply = t;
        break;
      }
      case CTA.TUPLE_MASTER: {
        const t = decodeTuple(it, family, 'CTA_TUPLE_MASTER');
        if (!t) return { ok: false, error: lastError };
        e.master = t;
        break;
      }
      case CTA.STATUS:
      case CTA.TIMEOUT:
      case CTA.MARK:
      case CTA.USE:
      case CTA.ID:
      case CTA.SECMARK: {
        if (it.len !== 4) return { ok: false, error: badSize(it, u32Names[it.type]!, 4) };
        const v = beU32(b, o);
        const t = it.type;
        if (t === CTA.STATUS) e.status = v;
        else if (t === CTA.TIMEOUT) e.timeout = v;
        else if (t === CTA.MARK) e.mark = v;
        else if (t === CTA.USE) e.use = v;
        else if (t === CTA.ID) e.id = v;
        else e.secmark = v;
        break;
      }
      case CTA.ZONE:
        if (it.len !== 2) return { ok: false, error: badSize(it, 'CTA_ZONE', 2) };
        e.zone = beU16(b, o);
        break;
      case CTA.PROTOINFO: {
        const v = decodeProtoinfo(it);
        if (!v) return { ok: false, error: lastError };
        e.protoinfo = v;
        break;
      }
      case CTA.HELP: {
        const v = decodeNamed(it, CTA_HELP.NAME, 'CTA_HELP');
        if (v === undefined) return { ok: false, error: lastError };
        e.helper = v;
        break;
      }
      case CTA.SECCTX: {
        const v = decodeNamed(it, CTA_SECCTX.NAME, 'CTA_SECCTX');
        if (v === undefined) return { ok: false, error: lastError };
        e.secctx = v;
        break;
      }
      case CTA.COUNTERS_ORIG:
      case CTA.COUNTERS_REPLY: {
        const v = decodeCounters(it);
        if (!v) return { ok: false, error: lastError };
        if (it.type === CTA.COUNTERS_ORIG) e.countersOrig = v;
        else e.countersReply = v;
        break;
      }
      case CTA.TIMESTAMP: {
        const v = decodeTimestamp(it);
        if (!v) return { ok: false, error: lastError };
        e.timestamp = v;
        break;
      }
      case CTA.SEQ_ADJ_ORIG:
      case CTA.SEQ_ADJ_REPLY: {
        const v = decodeSeqAdj(it);
        if (!v) return { ok: false, error: lastError };
        if (it.type === CTA.SEQ_ADJ_ORIG) e.seqAdjOrig = v;
        else e.seqAdjReply = v;
        break;
      }
      case CTA.SYNPROXY: {
        const v = decodeSynproxy(it);
        if (!v) return { ok: false, error: lastError };
        e.synproxy = v;
        break;
      }
      case CTA.LABELS:
      case CTA.LABELS_MASK: {
        // The kernel takes 1..4 u32 words (NF_CT_LABELS_MAX_SIZE = 16 bytes).
        if (it.len === 0 || it.len > 16 || it.len % 4 !== 0) {
          const name = it.type === CTA.LABELS ? 'CTA_LABELS' : 'CTA_LABELS_MASK';
          return fail('EATTR_SIZE', it.hdr, `${name}: payload of ${it.len} bytes, expected 4, 8, 12 or 16`);
        }
        // A copy: the receive buffer is reused as soon as this batch is handled.
        const v = Buffer.allocUnsafe(it.len);
        v.set(b.subarray(o, o + it.len));
        if (it.type === CTA.LABELS) e.labels = v;
        else e.labelsMask = v;
        break;
      }
      // Deliberately skipped, like every attribute not listed: CTA_TIMESTAMP_EVENT
      // (no field in ConntrackEntry), CTA_NAT_SRC/DST, CTA_MARK_MASK, CTA_STATUS_MASK,
      // CTA_FILTER (request-only).
    }
  }
  if (it.error) return { ok: false, error: it.error };
  if (!orig) return fail('EMISSING', 0, 'no CTA_TUPLE_ORIG');
  if (!e.reply && !opts?.lookup) return fail('EMISSING', 0, 'no CTA_TUPLE_REPLY');
  return { ok: true, value: e };
}

/** Decodes an IPCTNL_MSG_EXP_NEW/DELETE message. Error offsets are relative to msg.payload. */
export function decodeExpect(msg: NlMessage): Result<ExpectEntry> {
  const checked = checkHeader(msg, NFNL_SUBSYS_CTNETLINK_EXP, 'ctnetlink_exp');
  if (checked < 0) return { ok: false, error: lastError };
  const family = checked as Family;
  const p = msg.payload;
  const it = iters[0]!.reset(p, NFGENMSG_LEN, p.length, 0);
  const e = { family } as ExpectEntry;
  let have = 0;
  while (it.next()) {
    const b = it.buf;
    const o = it.off;
    switch (it.type) {
      case CTA_EXPECT.TUPLE:
      case CTA_EXPECT.MASK:
      case CTA_EXPECT.MASTER: {
        const t = decodeTuple(it, family, EXPECT_TUPLE_NAMES[it.type]!);
        if (!t) return { ok: false, error: lastError };
        if (it.type === CTA_EXPECT.TUPLE) e.tuple = t;
        else if (it.type === CTA_EXPECT.MASK) e.mask = t;
        else e.master = t;
        have |= 1 << it.type;
        break;
      }
      case CTA_EXPECT.TIMEOUT:
      case CTA_EXPECT.ID:
      case CTA_EXPECT.FLAGS:
      case CTA_EXPECT.CLASS: {
        if (it.len !== 4) return { ok: false, error: badSize(it, EXPECT_U32_NAMES[it.type]!, 4) };
        const v = beU32(b, o);
        if (it.type === CTA_EXPECT.TIMEOUT) e.timeout = v;
        else if (it.type === CTA_EXPECT.ID) e.id = v;
        else if (it.type === CTA_EXPECT.FLAGS) e.flags = v;
        else e.class = v;
        break;
      }
      case CTA_EXPECT.ZONE:
        if (it.len !== 2) return { ok: false, error: badSize(it, 'CTA_EXPECT_ZONE', 2) };
        e.zone = beU16(b, o);
        break;
      case CTA_EXPECT.HELP_NAME:
        e.helper = readString(b, o, it.len);
        break;
      case CTA_EXPECT.FN:
        e.fn = readString(b, o, it.len);
        break;
      case CTA_EXPECT.NAT: {
        const n = child(it);
        if (!n) return { ok: false, error: lastError };
        let dir: number | undefined;
        let tuple: Tuple | undefined;
        while (n.next()) {
          if (n.type === CTA_EXPECT_NAT.DIR) {
            if (n.len !== 4) return { ok: false, error: badSize(n, 'CTA_EXPECT_NAT_DIR', 4) };
            dir = beU32(n.buf, n.off);
          } else if (n.type === CTA_EXPECT_NAT.TUPLE) {
            const t = decodeTuple(n, family, 'CTA_EXPECT_NAT_TUPLE');
            if (!t) return { ok: false, error: lastError };
            tuple = t;
          }
        }
        if (n.error) return { ok: false, error: n.error };
        if (dir === undefined || !tuple) return fail('EMISSING', it.hdr, 'CTA_EXPECT_NAT without direction and tuple');
        e.nat = { dir, tuple };
        break;
      }
    }
  }
  if (it.error) return { ok: false, error: it.error };
  if (!(have & (1 << CTA_EXPECT.MASTER))) return fail('EMISSING', 0, 'no CTA_EXPECT_MASTER');
  if (!(have & (1 << CTA_EXPECT.TUPLE))) return fail('EMISSING', 0, 'no CTA_EXPECT_TUPLE');
  if (!(have & (1 << CTA_EXPECT.MASK))) return fail('EMISSING', 0, 'no CTA_EXPECT_MASK');
  return { ok: true, value: e };
}

const EXPECT_TUPLE_NAMES: Record<number, string> = {
  [CTA_EXPECT.MASTER]: 'CTA_EXPECT_MASTER',
  [CTA_EXPECT.TUPLE]: 'CTA_EXPECT_TUPLE',
  [CTA_EXPECT.MASK]: 'CTA_EXPECT_MASK',
};

const EXPECT_U32_NAMES: Record<number, string> = {
  [CTA_EXPECT.TIMEOUT]: 'CTA_EXPECT_TIMEOUT',
  [CTA_EXPECT.ID]: 'CTA_EXPECT_ID',
  [CTA_EXPECT.FLAGS]: 'CTA_EXPECT_FLAGS',
  [CTA_EXPECT.CLASS]: 'CTA_EXPECT_CLASS',
};

// ---------------------------------------------------------------------------
// Encoding

/**
 * Writes the contents of a tuple nest (CTA_TUPLE_IP, CTA_TUPLE_PROTO, and
 * CTA_TUPLE_ZONE when set); the caller opens and closes the nest around it.
 * Only the fields of t.proto are written (see decodeTupleProto). Throws
 * RangeError for an address that is not of `family`.
 */
export function encodeTuple(w: NlWriter, t: Tuple, family: Family): void {
  const ip = w.nest(CTA_TUPLE.IP);
  if (family === AF_INET) {
    w.ipv4(CTA_IP.V4_SRC, t.src);
    w.ipv4(CTA_IP.V4_DST, t.dst);
  } else if (family === AF_INET6) {
    w.ipv6(CTA_IP.V6_SRC, t.src);
    w.ipv6(CTA_IP.V6_DST, t.dst);
  } else {
    throw new RangeError(`unsupported address family ${String(family)}`);
  }
  w.endNest(ip);
  const proto = w.nest(CTA_TUPLE.PROTO);
  w.u8(CTA_PROTO.NUM, t.proto);
  // Same order as the kernel's icmp/icmpv6/port tuple_to_nlattr.
  if (t.proto === IPPROTO.ICMP) {
    if (t.icmpId !== undefined) w.u16be(CTA_PROTO.ICMP_ID, t.icmpId);
    if (t.icmpType !== undefined) w.u8(CTA_PROTO.ICMP_TYPE, t.icmpType);
    if (t.icmpCode !== undefined) w.u8(CTA_PROTO.ICMP_CODE, t.icmpCode);
  } else if (t.proto === IPPROTO.ICMPV6) {
    if (t.icmpId !== undefined) w.u16be(CTA_PROTO.ICMPV6_ID, t.icmpId);
    if (t.icmpType !== undefined) w.u8(CTA_PROTO.ICMPV6_TYPE, t.icmpType);
    if (t.icmpCode !== undefined) w.u8(CTA_PROTO.ICMPV6_CODE, t.icmpCode);
  } else if (hasPorts(t.proto)) {
    if (t.sport !== undefined) w.u16be(CTA_PROTO.SRC_PORT, t.sport);
    if (t.dport !== undefined) w.u16be(CTA_PROTO.DST_PORT, t.dport);
  }
  w.endNest(proto);
  if (t.zone !== undefined) w.u16be(CTA_TUPLE.ZONE, t.zone);
}

function writeTuple(w: NlWriter, type: number, t: Tuple, family: Family): void {
  const n = w.nest(type);
  encodeTuple(w, t, family);
  w.endNest(n);
}

/** tcpFlags: OR'ed into flags and mask of both directions, which are then always written (see RequestForm). */
function writeProtoinfo(w: NlWriter, p: ProtoInfo, withDetail: boolean, tcpFlags = 0): void {
  const n = w.nest(CTA.PROTOINFO);
  if (p.tcp) {
    const t = p.tcp;
    const m = w.nest(CTA_PROTOINFO.TCP);
    w.u8(CTA_PROTOINFO_TCP.STATE, t.state);
    if (withDetail) {
      if (t.wscaleOrig !== undefined) w.u8(CTA_PROTOINFO_TCP.WSCALE_ORIGINAL, t.wscaleOrig);
      if (t.wscaleReply !== undefined) w.u8(CTA_PROTOINFO_TCP.WSCALE_REPLY, t.wscaleReply);
      // Two bytes, flags then mask: the layout of struct nf_ct_tcp_flags.
      const fo = t.flagsOrig;
      if (fo || tcpFlags !== 0) {
        w.u16be(CTA_PROTOINFO_TCP.FLAGS_ORIGINAL, (((fo?.flags ?? 0) | tcpFlags) << 8) | (((fo?.mask ?? 0) | tcpFlags) & 0xff));
      }
      const fr = t.flagsReply;
      if (fr || tcpFlags !== 0) {
        w.u16be(CTA_PROTOINFO_TCP.FLAGS_REPLY, (((fr?.flags ?? 0) | tcpFlags) << 8) | (((fr?.mask ?? 0) | tcpFlags) & 0xff));
      }
    }
    w.endNest(m);
  }
  if (p.dccp) {
    const d = p.dccp;
    const m = w.nest(CTA_PROTOINFO.DCCP);
    w.u8(CTA_PROTOINFO_DCCP.STATE, d.state);
    if (d.role !== undefined) w.u8(CTA_PROTOINFO_DCCP.ROLE, d.role);
    if (d.handshakeSeq !== undefined) w.u64be(CTA_PROTOINFO_DCCP.HANDSHAKE_SEQ, d.handshakeSeq);
    w.endNest(m);
  }
  if (p.sctp) {
    const s = p.sctp;
    const m = w.nest(CTA_PROTOINFO.SCTP);
    w.u8(CTA_PROTOINFO_SCTP.STATE, s.state);
    if (s.vtagOrig !== undefined) w.u32be(CTA_PROTOINFO_SCTP.VTAG_ORIGINAL, s.vtagOrig);
    if (s.vtagReply !== undefined) w.u32be(CTA_PROTOINFO_SCTP.VTAG_REPLY, s.vtagReply);
    w.endNest(m);
  }
  w.endNest(n);
}

function writeCounters(w: NlWriter, type: number, c: Counters): void {
  const n = w.nest(type);
  w.u64be(CTA_COUNTERS.PACKETS, c.packets);
  w.u64be(CTA_COUNTERS.BYTES, c.bytes);
  w.endNest(n);
}

function writeTimestamp(w: NlWriter, t: Timestamp): void {
  const n = w.nest(CTA.TIMESTAMP);
  if (t.start !== undefined) w.u64be(CTA_TIMESTAMP.START, t.start);
  if (t.stop !== undefined) w.u64be(CTA_TIMESTAMP.STOP, t.stop);
  w.endNest(n);
}

function writeNamed(w: NlWriter, type: number, nameType: number, name: string): void {
  const n = w.nest(type);
  w.string(nameType, name);
  w.endNest(n);
}

function writeSeqAdj(w: NlWriter, type: number, s: SeqAdj): void {
  const n = w.nest(type);
  w.u32be(CTA_SEQADJ.CORRECTION_POS, s.correctionPos);
  w.u32be(CTA_SEQADJ.OFFSET_BEFORE, s.offsetBefore);
  w.u32be(CTA_SEQADJ.OFFSET_AFTER, s.offsetAfter);
  w.endNest(n);
}

function writeSynproxy(w: NlWriter, s: Synproxy): void {
  const n = w.nest(CTA.SYNPROXY);
  w.u32be(CTA_SYNPROXY.ISN, s.isn);
  w.u32be(CTA_SYNPROXY.ITS, s.its);
  w.u32be(CTA_SYNPROXY.TSOFF, s.tsoff);
  w.endNest(n);
}

function writeLabels(w: NlWriter, e: ConntrackEntry): void {
  if (e.labels) w.bytes(CTA.LABELS, e.labels);
  if (e.labelsMask) w.bytes(CTA.LABELS_MASK, e.labelsMask);
}

function writeSeqAdjs(w: NlWriter, e: ConntrackEntry): void {
  if (e.seqAdjOrig) writeSeqAdj(w, CTA.SEQ_ADJ_ORIG, e.seqAdjOrig);
  if (e.seqAdjReply) writeSeqAdj(w, CTA.SEQ_ADJ_REPLY, e.seqAdjReply);
}

/**
 * Appends the attributes of one conntrack entry to the message open in `w`
 * (the caller does begin()/end()). Throws RangeError for an address that
 * does not parse for e.family; w.abort() then drops the half-built message.
 */
export function encodeConntrack(w: NlWriter, e: ConntrackEntry, opts?: EncodeOptions): void {
  const ro = opts?.readOnly === true;
  const f = e.family;
  writeTuple(w, CTA.TUPLE_ORIG, e.orig, f);
  writeTuple(w, CTA.TUPLE_REPLY, e.reply, f);
  if (e.zone !== undefined) w.u16be(CTA.ZONE, e.zone);
  if (opts?.layout === 'event') {
    // ctnetlink_conntrack_event: a destroy event has counters and timestamp
    // between timeout and protoinfo, an update has neither; one order fits both.
    if (ro && e.id !== undefined) w.u32be(CTA.ID, e.id);
    if (e.status !== undefined) w.u32be(CTA.STATUS, e.status);
    if (e.timeout !== undefined) w.u32be(CTA.TIMEOUT, e.timeout);
    if (ro) {
      if (e.countersOrig) writeCounters(w, CTA.COUNTERS_ORIG, e.countersOrig);
      if (e.countersReply) writeCounters(w, CTA.COUNTERS_REPLY, e.countersReply);
      if (e.timestamp) writeTimestamp(w, e.timestamp);
    }
    if (e.protoinfo) writeProtoinfo(w, e.protoinfo, true);
    if (e.helper !== undefined) writeNamed(w, CTA.HELP, CTA_HELP.NAME, e.helper);
    if (ro && e.secctx !== undefined) writeNamed(w, CTA.SECCTX, CTA_SECCTX.NAME, e.secctx);
    if (ro && e.secmark !== undefined) w.u32be(CTA.SECMARK, e.secmark);
    writeLabels(w, e);
    if (e.master) writeTuple(w, CTA.TUPLE_MASTER, e.master, f);
    writeSeqAdjs(w, e);
    if (e.synproxy) writeSynproxy(w, e.synproxy);
    if (e.mark !== undefined) w.u32be(CTA.MARK, e.mark);
    return;
  }
  // ctnetlink_fill_info: ctnetlink_dump_info, then ctnetlink_dump_extinfo.
  if (e.status !== undefined) w.u32be(CTA.STATUS, e.status);
  if (e.mark !== undefined) w.u32be(CTA.MARK, e.mark);
  if (ro) {
    if (e.secctx !== undefined) writeNamed(w, CTA.SECCTX, CTA_SECCTX.NAME, e.secctx);
    if (e.id !== undefined) w.u32be(CTA.ID, e.id);
    if (e.use !== undefined) w.u32be(CTA.USE, e.use);
  }
  if (e.master) writeTuple(w, CTA.TUPLE_MASTER, e.master, f);
  if (e.timeout !== undefined) w.u32be(CTA.TIMEOUT, e.timeout);
  if (e.protoinfo) writeProtoinfo(w, e.protoinfo, true);
  if (ro) {
    if (e.countersOrig) writeCounters(w, CTA.COUNTERS_ORIG, e.countersOrig);
    if (e.countersReply) writeCounters(w, CTA.COUNTERS_REPLY, e.countersReply);
    if (e.timestamp) writeTimestamp(w, e.timestamp);
  }
  if (e.helper !== undefined) writeNamed(w, CTA.HELP, CTA_HELP.NAME, e.helper);
  writeLabels(w, e);
  writeSeqAdjs(w, e);
  if (e.synproxy) writeSynproxy(w, e.synproxy);
  // Not part of kernel dumps (secmark went to CTA_SECCTX long ago); kept last.
  if (ro && e.secmark !== undefined) w.u32be(CTA.SECMARK, e.secmark);
}

// The NAT an entry carries is how its reply tuple differs from the inverted
// original one. These helpers read it without building objects: a commit
// asks them for every one of its entries.

/** SNAT rewrote the source port (or ICMP id): replies come back to reply.dport; undefined if not. */
function snatPort(e: ConntrackEntry): number | undefined {
  const { orig, reply } = e;
  if (hasPorts(orig.proto)) return orig.sport !== reply.dport ? reply.dport : undefined;
  if (orig.proto === IPPROTO.ICMP || orig.proto === IPPROTO.ICMPV6) {
    return orig.icmpId !== reply.icmpId ? reply.icmpId : undefined;
  }
  return undefined;
}

/** DNAT rewrote the destination port: replies come from reply.sport; undefined if not. */
function dnatPort(e: ConntrackEntry): number | undefined {
  const { orig, reply } = e;
  return hasPorts(orig.proto) && orig.dport !== reply.sport ? reply.sport : undefined;
}

/** SNAT rewrote the source: replies come back to reply.dst. */
function snatted(e: ConntrackEntry): boolean {
  return e.orig.src !== e.reply.dst || snatPort(e) !== undefined;
}

/** DNAT rewrote the destination: replies come from reply.src. */
function dnatted(e: ConntrackEntry): boolean {
  return e.orig.dst !== e.reply.src || dnatPort(e) !== undefined;
}

/** Whether the entry carries a NAT mapping (its reply tuple is not the inverted original). */
export function isNatted(e: ConntrackEntry): boolean {
  return snatted(e) || dnatted(e);
}

/** The reply tuple without NAT: the inverted original, other fields (ICMP type, zone) as in the reply. */
function unNattedReply(e: ConntrackEntry): Tuple {
  const o = e.orig;
  const reply: Tuple = { ...e.reply, src: o.dst, dst: o.src };
  if (hasPorts(o.proto)) {
    reply.sport = o.dport;
    reply.dport = o.sport;
  } else if (o.proto === IPPROTO.ICMP || o.proto === IPPROTO.ICMPV6) {
    reply.icmpId = o.icmpId;
  }
  return reply;
}

/**
 * The entry as a create must carry it when it is NATed: the reply tuple
 * un-translated (the inverted original) and the mapping as CTA_NAT_SRC /
 * CTA_NAT_DST, which the kernel turns back into the translated reply tuple.
 * The kernel only marks an entry as translated (IPS_SRC_NAT / IPS_DST_NAT,
 * which it never takes from CTA_STATUS) when its NAT setup changed the reply
 * tuple; sent already translated, the entry would look right in a dump and
 * translate no packet. Returns the entry unchanged when it is not NATed.
 */
export function natCreateForm(e: ConntrackEntry): { entry: ConntrackEntry; nat: boolean } {
  if (!isNatted(e)) return { entry: e, nat: false };
  return { entry: { ...e, reply: unNattedReply(e) }, nat: true };
}

/**
 * Appends CTA_NAT_SRC / CTA_NAT_DST for a create of `e` (the entry as
 * replicated, reply tuple translated): single-address, single-port ranges
 * that reproduce the mapping exactly. Only valid on a create: the kernel
 * refuses NAT changes to existing entries (EOPNOTSUPP).
 */
export function encodeNatSetup(w: NlWriter, e: ConntrackEntry): void {
  if (snatted(e)) writeNatRange(w, CTA.NAT_SRC, e.family, e.reply.dst, snatPort(e));
  if (dnatted(e)) writeNatRange(w, CTA.NAT_DST, e.family, e.reply.src, dnatPort(e));
}

/**
 * How a request writes an entry, applied while encoding so that no copy of
 * the entry is made: status bits cleared then set, and TCP flags OR'ed into
 * flags and mask of both directions of a TCP entry with TCP protoinfo (the
 * pair is written even when the entry carries none).
 */
export interface RequestForm {
  readonly statusClear: number;
  readonly statusSet: number;
  readonly tcpFlags: number;
}

/** The entry as it is. */
export const AS_IS: RequestForm = { statusClear: 0, statusSet: 0, tcpFlags: 0 };

/**
 * Appends the attributes of a create or update request for `e` in `form`
 * to the message open in `w`. A create carries the master tuple and, for a
 * NATed entry, the form natCreateForm describes plus encodeNatSetup's
 * mapping. An update carries neither: the kernel refuses NAT and master
 * changes. Attribute order and the rest as encodeConntrack without readOnly.
 * CTA_STATUS is always written. Throws RangeError like encodeConntrack.
 */
export function encodeRequest(w: NlWriter, e: ConntrackEntry, form: RequestForm, create: boolean): void {
  const f = e.family;
  const nat = create && isNatted(e);
  writeTuple(w, CTA.TUPLE_ORIG, e.orig, f);
  writeTuple(w, CTA.TUPLE_REPLY, nat ? unNattedReply(e) : e.reply, f);
  if (e.zone !== undefined) w.u16be(CTA.ZONE, e.zone);
  w.u32be(CTA.STATUS, (((e.status ?? 0) & ~form.statusClear) | form.statusSet) >>> 0);
  if (e.mark !== undefined) w.u32be(CTA.MARK, e.mark);
  if (create && e.master) writeTuple(w, CTA.TUPLE_MASTER, e.master, f);
  if (e.timeout !== undefined) w.u32be(CTA.TIMEOUT, e.timeout);
  if (e.protoinfo) writeProtoinfo(w, e.protoinfo, true, e.orig.proto === IPPROTO.TCP ? form.tcpFlags : 0);
  if (e.helper !== undefined) writeNamed(w, CTA.HELP, CTA_HELP.NAME, e.helper);
  writeLabels(w, e);
  writeSeqAdjs(w, e);
  if (e.synproxy) writeSynproxy(w, e.synproxy);
  if (nat) encodeNatSetup(w, e);
}

/**
 * encodeRequest() for an entry held as a record: the same bytes, from the
 * words, without making the entry (a commit encodes every record it holds).
 * Records with extras, a shape the words do not hold, or tuples missing a
 * port or ICMP field take encodeRequest()'s path; the property tests hold
 * the two to the same output.
 */
export function encodeRequestRecord(w: NlWriter, r: EntryRecord, form: RequestForm, create: boolean): void {
  const rw = r.w;
  const at = r.at;
  const f = rw[at + W_FLAGS]!;
  const head = rw[at + W_HEAD]!;
  const proto = (head >>> 8) & 0xff;
  const icmp = proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6;
  const full = hasPorts(proto) ? T_SPORT | T_DPORT : icmp ? T_ICMP_TYPE | T_ICMP_CODE | T_ICMP_ID : 0;
  if (
    r.x !== undefined ||
    (f & F_WHOLE) !== 0 ||
    (f & (F_PROTOINFO | F_TCP)) === F_PROTOINFO ||
    ((f >>> O_SHIFT) & 31) !== full ||
    ((f >>> R_SHIFT) & 31) !== full
  ) {
    encodeRequest(w, r.entry(), form, create);
    return;
  }
  const v4 = (head & 0xff) === AF_INET;
  const n = v4 ? 1 : 4;
  const oab = rw[at + W_OAB]!;
  const rab = rw[at + W_RAB]!;
  // NAT, as snatted()/dnatted() read it: the reply is not the inverted original.
  let snat = !sameWords(rw, at + W_OSRC, at + W_RDST, n);
  let dnat = !sameWords(rw, at + W_ODST, at + W_RSRC, n);
  let snatPortV = -1;
  let dnatPortV = -1;
  if (hasPorts(proto)) {
    if ((oab & 0xffff) !== rab >>> 16) snatPortV = rab >>> 16;
    if (oab >>> 16 !== (rab & 0xffff)) dnatPortV = rab & 0xffff;
  } else if (icmp && oab >>> 16 !== rab >>> 16) {
    snatPortV = rab >>> 16;
  }
  snat ||= snatPortV >= 0;
  dnat ||= dnatPortV >= 0;
  const nat = create && (snat || dnat);
  let t = w.nest(CTA.TUPLE_ORIG);
  recordTuple(w, rw, at + W_OSRC, at + W_ODST, oab, proto, n);
  w.endNest(t);
  t = w.nest(CTA.TUPLE_REPLY);
  if (nat) {
    // The inverted original; ICMP type and code stay the reply's (unNattedReply).
    const ab = hasPorts(proto) ? (oab >>> 16) | ((oab & 0xffff) << 16) : icmp ? (rab & 0xffff) | (oab & 0xffff0000) : 0;
    recordTuple(w, rw, at + W_ODST, at + W_OSRC, ab, proto, n);
  } else {
    recordTuple(w, rw, at + W_RSRC, at + W_RDST, rab, proto, n);
  }
  w.endNest(t);
  if (f & F_ZONE) w.u16be(CTA.ZONE, head >>> 16);
  const status = f & F_STATUS ? rw[at + W_STATUS]! : 0;
  w.u32be(CTA.STATUS, ((status & ~form.statusClear) | form.statusSet) >>> 0);
  if (f & F_MARK) w.u32be(CTA.MARK, rw[at + W_MARK]! >>> 0);
  if (f & F_TIMEOUT) w.u32be(CTA.TIMEOUT, rw[at + W_TIMEOUT]! >>> 0);
  if (f & F_PROTOINFO) {
    const tcp = rw[at + W_TCP]!;
    const flags = rw[at + W_TCPFLAGS]!;
    const extra = proto === IPPROTO.TCP ? form.tcpFlags : 0;
    const pn = w.nest(CTA.PROTOINFO);
    const m = w.nest(CTA_PROTOINFO.TCP);
    w.u8(CTA_PROTOINFO_TCP.STATE, tcp & 0xff);
    if (f & F_WSCALE_ORIG) w.u8(CTA_PROTOINFO_TCP.WSCALE_ORIGINAL, (tcp >>> 8) & 0xff);
    if (f & F_WSCALE_REPLY) w.u8(CTA_PROTOINFO_TCP.WSCALE_REPLY, (tcp >>> 16) & 0xff);
    if (f & F_FLAGS_ORIG || extra !== 0) {
      const fl = f & F_FLAGS_ORIG ? flags & 0xff : 0;
      const mk = f & F_FLAGS_ORIG ? (flags >>> 8) & 0xff : 0;
      w.u16be(CTA_PROTOINFO_TCP.FLAGS_ORIGINAL, ((fl | extra) << 8) | ((mk | extra) & 0xff));
    }
    if (f & F_FLAGS_REPLY || extra !== 0) {
      const fl = f & F_FLAGS_REPLY ? (flags >>> 16) & 0xff : 0;
      const mk = f & F_FLAGS_REPLY ? flags >>> 24 : 0;
      w.u16be(CTA_PROTOINFO_TCP.FLAGS_REPLY, ((fl | extra) << 8) | ((mk | extra) & 0xff));
    }
    w.endNest(m);
    w.endNest(pn);
  }
  if (nat) {
    if (snat) recordNatRange(w, CTA.NAT_SRC, rw, at + W_RDST, n, snatPortV);
    if (dnat) recordNatRange(w, CTA.NAT_DST, rw, at + W_RSRC, n, dnatPortV);
  }
}

function sameWords(rw: Int32Array, a: number, b: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (rw[a + i] !== rw[b + i]) return false;
  return true;
}

/** encodeTuple() from record words: addresses at wSrc/wDst, the a/b word `ab`; every field of the protocol present. */
function recordTuple(w: NlWriter, rw: Int32Array, wSrc: number, wDst: number, ab: number, proto: number, n: number): void {
  const ip = w.nest(CTA_TUPLE.IP);
  w.addrWords(n === 1 ? CTA_IP.V4_SRC : CTA_IP.V6_SRC, rw, wSrc, n);
  w.addrWords(n === 1 ? CTA_IP.V4_DST : CTA_IP.V6_DST, rw, wDst, n);
  w.endNest(ip);
  const pn = w.nest(CTA_TUPLE.PROTO);
  w.u8(CTA_PROTO.NUM, proto);
  if (proto === IPPROTO.ICMP) {
    w.u16be(CTA_PROTO.ICMP_ID, ab >>> 16);
    w.u8(CTA_PROTO.ICMP_TYPE, (ab >>> 8) & 0xff);
    w.u8(CTA_PROTO.ICMP_CODE, ab & 0xff);
  } else if (proto === IPPROTO.ICMPV6) {
    w.u16be(CTA_PROTO.ICMPV6_ID, ab >>> 16);
    w.u8(CTA_PROTO.ICMPV6_TYPE, (ab >>> 8) & 0xff);
    w.u8(CTA_PROTO.ICMPV6_CODE, ab & 0xff);
  } else if (hasPorts(proto)) {
    w.u16be(CTA_PROTO.SRC_PORT, ab & 0xffff);
    w.u16be(CTA_PROTO.DST_PORT, ab >>> 16);
  }
  w.endNest(pn);
}

/** writeNatRange() from record words; port -1 for none. */
function recordNatRange(w: NlWriter, type: number, rw: Int32Array, wAddr: number, n: number, port: number): void {
  const nn = w.nest(type);
  w.addrWords(n === 1 ? CTA_NAT.V4_MINIP : CTA_NAT.V6_MINIP, rw, wAddr, n);
  w.addrWords(n === 1 ? CTA_NAT.V4_MAXIP : CTA_NAT.V6_MAXIP, rw, wAddr, n);
  if (port >= 0) {
    const p = w.nest(CTA_NAT.PROTO);
    w.u16be(CTA_PROTONAT.PORT_MIN, port);
    w.u16be(CTA_PROTONAT.PORT_MAX, port);
    w.endNest(p);
  }
  w.endNest(nn);
}

function writeNatRange(w: NlWriter, type: number, family: Family, addr: string, port: number | undefined): void {
  const n = w.nest(type);
  if (family === AF_INET) {
    w.ipv4(CTA_NAT.V4_MINIP, addr);
    w.ipv4(CTA_NAT.V4_MAXIP, addr);
  } else {
    w.ipv6(CTA_NAT.V6_MINIP, addr);
    w.ipv6(CTA_NAT.V6_MAXIP, addr);
  }
  if (port !== undefined) {
    const p = w.nest(CTA_NAT.PROTO);
    w.u16be(CTA_PROTONAT.PORT_MIN, port);
    w.u16be(CTA_PROTONAT.PORT_MAX, port);
    w.endNest(p);
  }
  w.endNest(n);
}

/**
 * Appends the attributes of one expectation to the message open in `w`, in
 * the order of the kernel's ctnetlink_exp_dump_expect (CTA_EXPECT_ZONE,
 * which the kernel only reads, last).
 */
export function encodeExpect(w: NlWriter, e: ExpectEntry, opts?: ExpectEncodeOptions): void {
  const f = e.family;
  writeTuple(w, CTA_EXPECT.TUPLE, e.tuple, f);
  writeTuple(w, CTA_EXPECT.MASK, e.mask, f);
  writeTuple(w, CTA_EXPECT.MASTER, e.master, f);
  if (e.nat) {
    const n = w.nest(CTA_EXPECT.NAT);
    w.u32be(CTA_EXPECT_NAT.DIR, e.nat.dir);
    writeTuple(w, CTA_EXPECT_NAT.TUPLE, e.nat.tuple, f);
    w.endNest(n);
  }
  if (e.timeout !== undefined) w.u32be(CTA_EXPECT.TIMEOUT, e.timeout);
  if (opts?.readOnly && e.id !== undefined) w.u32be(CTA_EXPECT.ID, e.id);
  if (e.flags !== undefined) w.u32be(CTA_EXPECT.FLAGS, e.flags);
  if (e.class !== undefined) w.u32be(CTA_EXPECT.CLASS, e.class);
  if (e.helper !== undefined) w.string(CTA_EXPECT.HELP_NAME, e.helper);
  if (e.fn !== undefined) w.string(CTA_EXPECT.FN, e.fn);
  if (e.zone !== undefined) w.u16be(CTA_EXPECT.ZONE, e.zone);
}
