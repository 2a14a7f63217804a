// The JSON shape of an entry in `dump --json` and `kernel dump --json`.
import { protoName, TCP_STATES } from './constants.js';
import type { ConntrackEntry, Tuple } from './entry.js';

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
  };
}
