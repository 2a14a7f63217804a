// The flow log's record: one JSON object per conntrack event, one per line.
// Its fields are documented in README.md ("Flow log") and pinned by
// test/unit/flowlog-record.test.ts; `flows find` reads them back. Written
// by hand rather than through JSON.stringify of an object: every value is a
// number or a string the kernel layer produced (addresses, protocol and
// state names), none needs escaping, and one string per event is all it
// allocates besides the entry it was decoded into.
import type { EventType } from '../kernel/conntrack-events.js';
import { AF_INET, protoName } from '../kernel/constants.js';
import type { ConntrackEntry, Counters, Tuple } from '../kernel/entry.js';
import { stateJson, type TupleJson, tupleJson } from '../kernel/entry-json.js';

/** The record as `JSON.parse` gives it back (see README, "Flow log"). */
export interface FlowRecord {
  /** When ctsyncd read the event (ISO 8601, UTC, milliseconds). Always the first key. */
  time: string;
  event: EventType;
  family: 'ipv4' | 'ipv6';
  proto: string | number;
  orig: TupleJson;
  reply: TupleJson;
  /** The translation, when there is one: source (SNAT/masquerade) and destination (DNAT) as the far side sees them. */
  nat?: { src?: string; sport?: number; dst?: string; dport?: number };
  state?: string | number;
  mark: number;
  zone: number;
  /** Connection label bits set (connlabel.conf numbers), when any. */
  labels?: number[];
  /** The kernel's conntrack id (CTA_ID): tells apart two flows of the same tuple. */
  id?: number;
  /** Kernel timestamps (net.netfilter.nf_conntrack_timestamp=1), ISO 8601 with milliseconds. */
  start?: string;
  stop?: string;
  /** Per direction (net.netfilter.nf_conntrack_acct=1), as the kernel reports them; on destroy, the flow's totals. */
  counters?: { orig: { packets: number; bytes: number }; reply: { packets: number; bytes: number } };
}

/**
 * The translation of a flow, or undefined: SNAT when the reply goes back to
 * another address or port than the original came from, DNAT when the reply
 * comes from another than the original went to. Read from the tuples rather
 * than the status bits, which an UPDATE may not carry.
 */
export function natOf(orig: Tuple, reply: Tuple): FlowRecord['nat'] {
  const snat = reply.dst !== orig.src || reply.dport !== orig.sport;
  const dnat = reply.src !== orig.dst || reply.sport !== orig.dport;
  if (!snat && !dnat) return undefined;
  const n: NonNullable<FlowRecord['nat']> = {};
  if (snat) {
    n.src = reply.dst;
    if (reply.dport !== undefined) n.sport = reply.dport;
  }
  if (dnat) {
    n.dst = reply.src;
    if (reply.sport !== undefined) n.dport = reply.sport;
  }
  return n;
}

/** Nanoseconds since the epoch (the kernel's CTA_TIMESTAMP) as ISO 8601 with milliseconds. */
function isoFromNs(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

function tupleText(t: TupleJson): string {
  const code = t.code === undefined ? '' : `,"code":${t.code}`;
  return `{"src":"${t.src}","dst":"${t.dst}","sport":${t.sport},"dport":${t.dport}${code}}`;
}

function countersText(c: Counters | undefined): string {
  return c === undefined ? '{"packets":0,"bytes":0}' : `{"packets":${c.packets},"bytes":${c.bytes}}`;
}

function labelBits(labels: Buffer): number[] {
  const bits: number[] = [];
  // The kernel copies its label bitmap (unsigned longs) as it is: on a
  // little-endian host, label n is bit n%8 of byte n/8.
  for (let i = 0; i < labels.length; i++) {
    const byte = labels[i]!;
    for (let b = 0; b < 8; b++) if (byte & (1 << b)) bits.push(i * 8 + b);
  }
  return bits;
}

/** The record's line for `entry` read at `now` (milliseconds since the epoch), without the newline. */
export function flowLine(kind: EventType, e: ConntrackEntry, now: number): string {
  const orig = tupleJson(e.orig);
  const reply = tupleJson(e.reply);
  let s = `{"time":"${new Date(now).toISOString()}","event":"${kind}","family":"${e.family === AF_INET ? 'ipv4' : 'ipv6'}"`;
  const proto = protoName(e.orig.proto);
  s += `,"proto":${typeof proto === 'string' ? `"${proto}"` : proto},"orig":${tupleText(orig)},"reply":${tupleText(reply)}`;
  const nat = natOf(e.orig, e.reply);
  if (nat !== undefined) {
    const parts: string[] = [];
    if (nat.src !== undefined) parts.push(`"src":"${nat.src}"`);
    if (nat.sport !== undefined) parts.push(`"sport":${nat.sport}`);
    if (nat.dst !== undefined) parts.push(`"dst":"${nat.dst}"`);
    if (nat.dport !== undefined) parts.push(`"dport":${nat.dport}`);
    s += `,"nat":{${parts.join(',')}}`;
  }
  const state = stateJson(e);
  if (state !== undefined) s += `,"state":${typeof state === 'string' ? `"${state}"` : state}`;
  s += `,"mark":${e.mark ?? 0},"zone":${e.zone ?? 0}`;
  if (e.labels !== undefined) {
    const bits = labelBits(e.labels);
    if (bits.length > 0) s += `,"labels":[${bits.join(',')}]`;
  }
  if (e.id !== undefined) s += `,"id":${e.id}`;
  const ts = e.timestamp;
  // The kernel sends stop as 0 while the flow lives.
  if (ts?.start !== undefined && ts.start > 0n) s += `,"start":"${isoFromNs(ts.start)}"`;
  if (ts?.stop !== undefined && ts.stop > 0n) s += `,"stop":"${isoFromNs(ts.stop)}"`;
  if (e.countersOrig !== undefined || e.countersReply !== undefined) {
    s += `,"counters":{"orig":${countersText(e.countersOrig)},"reply":${countersText(e.countersReply)}}`;
  }
  return `${s}}`;
}

/** Where a line's time is: `{"time":"` and 24 characters of ISO 8601. */
export const TIME_AT = 9;
const TIME_LEN = 24;

/** A line's time (milliseconds since the epoch) read from its prefix without parsing it, or NaN. */
export function lineTime(line: string): number {
  if (!line.startsWith('{"time":"')) return Number.NaN;
  return Date.parse(line.slice(TIME_AT, TIME_AT + TIME_LEN));
}
