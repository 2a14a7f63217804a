// The typed shape of conntrack and expectation entries as ctsyncd sees them.
// Addresses are kept in their textual form (IPv4 dotted quad, IPv6 as
// produced by formatIPv6: lowercase, zero-compressed) so that keys, filters,
// dumps and JSON output all agree on one spelling.

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

function tupleKeyPart(t: Tuple): string {
  if (hasPorts(t.proto)) return `${t.src}|${t.dst}|${t.sport ?? 0}|${t.dport ?? 0}`;
  if (t.proto === IPPROTO.ICMP || t.proto === IPPROTO.ICMPV6)
    return `${t.src}|${t.dst}|${t.icmpType ?? 0}|${t.icmpCode ?? 0}|${t.icmpId ?? 0}`;
  return `${t.src}|${t.dst}`;
}

/**
 * The identity of a connection across nodes: the original tuple plus zone.
 * CTA_ID is node-local and deliberately not part of it, so a new flow with
 * the same tuple replaces a stale one instead of living beside it.
 */
export function entryKey(e: Pick<ConntrackEntry, 'family' | 'orig' | 'zone'>): string {
  return `${e.family === AF_INET ? 4 : 6}|${e.orig.proto}|${tupleKeyPart(e.orig)}|${e.zone ?? 0}`;
}

export function expectKey(e: ExpectEntry): string {
  return `x${e.family === AF_INET ? 4 : 6}|${e.tuple.proto}|${tupleKeyPart(e.tuple)}|${e.zone ?? 0}`;
}
