// The JSON shape of an entry in `dump --json` and `kernel dump --json`.
import { DCCP_STATES, protoName, SCTP_STATES, TCP_STATES } from './constants.js';
import type { ConntrackEntry, ExpectEntry, Tuple } from './entry.js';

export interface TupleJson {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** ICMP and ICMPv6 only: the code (sport and dport stand for the id and the type). */
  code?: number;
}

export function tupleJson(x: Tuple): TupleJson {
  // ICMP has no ports: the id and type stand in, as conntrack(8) prints them.
  const t: TupleJson = { src: x.src, dst: x.dst, sport: x.sport ?? x.icmpId ?? 0, dport: x.dport ?? x.icmpType ?? 0 };
  // The code is part of an ICMP connection's identity: without it two entries can print alike.
  if (x.icmpCode !== undefined) t.code = x.icmpCode;
  return t;
}

/** The protocol state by name (TCP, SCTP, DCCP), as conntrack(8) prints it. */
export function stateJson(e: ConntrackEntry): string | number | undefined {
  const p = e.protoinfo;
  if (p?.tcp) return TCP_STATES[p.tcp.state] ?? p.tcp.state;
  if (p?.sctp) return SCTP_STATES[p.sctp.state] ?? p.sctp.state;
  if (p?.dccp) return DCCP_STATES[p.dccp.state] ?? p.dccp.state;
  return undefined;
}

/** The JSON shape of an entry in dumps (shared with the daemon's dump command). */
export function entryToJson(e: ConntrackEntry): Record<string, unknown> {
  const t = tupleJson;
  const state = stateJson(e);
  return {
    proto: protoName(e.orig.proto),
    ...t(e.orig),
    reply: t(e.reply),
    ...(state !== undefined ? { state } : {}),
    timeout: e.timeout ?? 0,
    zone: e.zone ?? 0,
    mark: e.mark ?? 0,
    status: e.status ?? 0,
    ...(e.master ? { master: t(e.master) } : {}),
    ...(e.helper !== undefined ? { helper: e.helper } : {}),
  };
}

/** The JSON shape of an expectation in dumps. */
export function expectToJson(e: ExpectEntry): Record<string, unknown> {
  return {
    proto: protoName(e.tuple.proto),
    ...tupleJson(e.tuple),
    mask: tupleJson(e.mask),
    master: { proto: protoName(e.master.proto), ...tupleJson(e.master) },
    timeout: e.timeout ?? 0,
    zone: e.zone ?? 0,
    ...(e.helper !== undefined ? { helper: e.helper } : {}),
    ...(e.flags !== undefined ? { flags: e.flags } : {}),
  };
}
