// The JSON shape of an entry in `dump --json` and `kernel dump --json`.
import { protoName, TCP_STATES } from './constants.js';
import type { ConntrackEntry, ExpectEntry, Tuple } from './entry.js';

export interface TupleJson {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

function tupleJson(x: Tuple): TupleJson {
  // ICMP has no ports: the id and type stand in, as conntrack(8) prints them.
  return { src: x.src, dst: x.dst, sport: x.sport ?? x.icmpId ?? 0, dport: x.dport ?? x.icmpType ?? 0 };
}

/** The JSON shape of an entry in dumps (shared with the daemon's dump command). */
export function entryToJson(e: ConntrackEntry): Record<string, unknown> {
  const t = tupleJson;
  const tcp = e.protoinfo?.tcp;
  return {
    proto: protoName(e.orig.proto),
    ...t(e.orig),
    reply: t(e.reply),
    ...(tcp ? { state: TCP_STATES[tcp.state] ?? tcp.state } : {}),
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
