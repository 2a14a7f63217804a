// Conntrack entries the integration tests create in a node's kernel.
import { AF_INET, IPPROTO, IPS } from '../../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../../src/kernel/entry.js';

/**
 * Established TCP entry number i from 10.<net>.x.y (one /16 per origin, so
 * origins never share a key) to 10.97.0.1:443.
 */
export function tcpEntry(i: number, opts: { net?: number; mark?: number } = {}): ConntrackEntry {
  const src = `10.${opts.net ?? 98}.${(i >> 8) & 255}.${i & 255}`;
  const sport = 1024 + (i >> 16);
  return {
    family: AF_INET,
    orig: { src, dst: '10.97.0.1', proto: IPPROTO.TCP, sport, dport: 443 },
    reply: { src: '10.97.0.1', dst: src, proto: IPPROTO.TCP, sport: 443, dport: sport },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 3600,
    mark: opts.mark ?? 0,
    protoinfo: { tcp: { state: 3 } },
  };
}
