// The typed shape of conntrack and expectation entries as ctsyncd sees them.
// Addresses are kept in their textual form (IPv4 dotted quad, IPv6 as
// produced by formatIPv6: lowercase, zero-compressed) so that keys, filters,
// dumps and JSON output all agree on one spelling.

import { parseIPv4 } from '../common/address.js';
import { AF_INET, hasPorts, IPPROTO } from './constants.js';

export type Family = 2 | 10; // AF_INET | AF_INET6

export interface Tuple {
  src: string;
  dst: string;
  proto: number;
  /** TCP, UDP, UDPLite, SCTP, DCCP ports; GRE keys. */
  sport?: number;
  dport?: number;
  /** ICMP and ICMPv6. */
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  /** CTA_TUPLE_ZONE: a directional zone, rarely used. */
  zone?: number;
}

export interface TcpFlags {
  flags: number;
  mask: number;
}

export interface TcpInfo {
  state: number;
  wscaleOrig?: number;
  wscaleReply?: number;
  flagsOrig?: TcpFlags;
  flagsReply?: TcpFlags;
}

export interface SctpInfo {
  state: number;
  vtagOrig?: number;
  vtagReply?: number;
}

export interface DccpInfo {
  state: number;
  role?: number;
  handshakeSeq?: bigint;
}

export interface ProtoInfo {
  tcp?: TcpInfo;
  sctp?: SctpInfo;
  dccp?: DccpInfo;
}

export interface SeqAdj {
  correctionPos: number;
  offsetBefore: number;
  offsetAfter: number;
}

export interface Counters {
  packets: bigint;
  bytes: bigint;
}

export interface Timestamp {
  start?: bigint;
  stop?: bigint;
}

export interface Synproxy {
  isn: number;
  its: number;
  tsoff: number;
}

export interface ConntrackEntry {
  family: Family;
  orig: Tuple;
  reply: Tuple;
  master?: Tuple;
  status?: number;
  /** Seconds left, as the kernel reports it. */
  timeout?: number;
  mark?: number;
  zone?: number;
  /** 16 bytes (128 label bits) as the kernel carries them. */
  labels?: Buffer;
  labelsMask?: Buffer;
  protoinfo?: ProtoInfo;
  seqAdjOrig?: SeqAdj;
  seqAdjReply?: SeqAdj;
  helper?: string;
  secmark?: number;
  secctx?: string;
  id?: number;
  use?: number;
  countersOrig?: Counters;
  countersReply?: Counters;
  timestamp?: Timestamp;
  synproxy?: Synproxy;
}

export interface ExpectNat {
  dir: number;
  tuple: Tuple;
}

export interface ExpectEntry {
  family: Family;
  master: Tuple;
  tuple: Tuple;
  mask: Tuple;
  timeout?: number;
  id?: number;
  helper?: string;
  zone?: number;
  flags?: number;
  class?: number;
  nat?: ExpectNat;
  fn?: string;
}

// Keys are opaque: only ever compared and used as Map keys, never shown or
// parsed. So they are built as short two-byte strings straight from the
// numbers, one UTF-16 unit per 16 bits (an IPv4 key is 8 units, 16 bytes of
// payload): several times cheaper to build than a readable key (no number
// formatting, no concatenation chain to flatten) and half the memory per
// cached entry, where a million of them live.
const KIND_EXPECT = 0x8000;
/** Addresses that are not a canonical dotted quad (IPv6, or a hand-made entry) are keyed by their text. */
const KIND_TEXT = 0x4000;

function u16(v: number | undefined): number {
  return v === undefined ? 0 : v;
}

function isU16(v: number | undefined): boolean {
  return v === undefined || (v >>> 0 === v && v <= 0xffff);
}

function tupleKey(kind: number, family: Family, t: Tuple, zone: number | undefined): string {
  const p = t.proto;
  const head = kind | ((family === AF_INET ? 4 : 6) << 8) | (p & 0xff);
  const ports = hasPorts(p);
  const icmp = !ports && (p === IPPROTO.ICMP || p === IPPROTO.ICMPV6);
  let a = 0;
  let b = 0;
  if (ports) {
    a = u16(t.sport);
    b = u16(t.dport);
  } else if (icmp) {
    a = (u16(t.icmpType) << 8) | u16(t.icmpCode);
    b = u16(t.icmpId);
  }
  const numeric =
    isU16(zone) &&
    p >>> 0 === p &&
    p <= 0xff &&
    (ports ? isU16(t.sport) && isU16(t.dport) : !icmp || (isU16(t.icmpId) && u16(t.icmpType) <= 0xff && u16(t.icmpCode) <= 0xff));
  if (family === AF_INET && numeric) {
    const s = parseIPv4(t.src);
    const d = parseIPv4(t.dst);
    if (s !== undefined && d !== undefined) {
      return String.fromCharCode(head, s >>> 16, s & 0xffff, d >>> 16, d & 0xffff, a, b, u16(zone));
    }
  }
  const rest = ports
    ? `${t.sport ?? 0}|${t.dport ?? 0}`
    : icmp
      ? `${t.icmpType ?? 0}|${t.icmpCode ?? 0}|${t.icmpId ?? 0}`
      : '';
  return `${String.fromCharCode(head | KIND_TEXT)}${p}|${t.src}|${t.dst}|${rest}|${zone ?? 0}`;
}

/**
 * The identity of a connection across nodes: the original tuple plus zone.
 * CTA_ID is node-local and deliberately not part of it, so a new flow with
 * the same tuple replaces a stale one instead of living beside it.
 */
export function entryKey(e: Pick<ConntrackEntry, 'family' | 'orig' | 'zone'>): string {
  return tupleKey(0, e.family, e.orig, e.zone);
}

/** An expectation's identity: its expected tuple plus zone; never equal to a connection's key. */
export function expectKey(e: ExpectEntry): string {
  return tupleKey(KIND_EXPECT, e.family, e.tuple, e.zone);
}
