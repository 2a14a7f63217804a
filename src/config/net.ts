// Address arithmetic the config validator needs beyond zod's format regexes:
// multicast ranges, host bits under a prefix, and host:port splitting. The
// functions assume their input already passed z.ipv4()/z.ipv6() (or the CIDR
// variants), so they parse without re-validating every character.

import { isIPv4, isIPv6 } from 'node:net';

export function ipv4ToNumber(addr: string): number {
  let n = 0;
  for (const octet of addr.split('.')) n = n * 256 + Number(octet);
  return n;
}

function numberToIPv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function ipv6ToBigInt(addr: string): bigint {
  let text = addr;
  // An embedded dotted quad (::ffff:192.0.2.1) stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipv4ToNumber(tail);
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...restGroups];
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(Number.parseInt(g, 16));
  return n;
}

function bigIntToIPv6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (first one on ties) of two or more zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** 224.0.0.0/4 or ff00::/8. Anything that is not an IP literal is not multicast. */
export function isMulticast(addr: string): boolean {
  if (isIPv4(addr)) return ipv4ToNumber(addr) >>> 28 === 0xe;
  if (isIPv6(addr)) return ipv6ToBigInt(addr) >> 120n === 0xffn;
  return false;
}

export function ipFamily(addr: string): 4 | 6 | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

/**
 * For `addr/len`, the network address with the host bits cleared, e.g.
 * 10.1.2.3/8 → 10.0.0.0/8. Returns the input unchanged when it is already a
 * network address or not a prefix at all. Filters match on the network part,
 * so a prefix with host bits set is almost always a typo worth flagging.
 */
export function networkOf(prefix: string): string {
  const slash = prefix.indexOf('/');
  if (slash < 0) return prefix;
  const addr = prefix.slice(0, slash);
  const len = Number(prefix.slice(slash + 1));
  if (isIPv4(addr)) {
    const hostBits = 32 - len;
    const n = ipv4ToNumber(addr);
    const net = hostBits === 32 ? 0 : Math.floor(n / 2 ** hostBits) * 2 ** hostBits;
    return net === n ? prefix : `${numberToIPv4(net)}/${len}`;
  }
  if (isIPv6(addr)) {
    const hostBits = BigInt(128 - len);
    const n = ipv6ToBigInt(addr);
    const net = (n >> hostBits) << hostBits;
    return net === n ? prefix : `${bigIntToIPv6(net)}/${len}`;
  }
  return prefix;
}

export interface HostPort {
  /** An IPv4 literal, an IPv6 literal without brackets, or a host name. */
  host: string;
  port: number;
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Splits `host:port` / `[v6]:port`. Returns undefined for anything else so
 * that the schema can phrase the error; callers holding a validated Config
 * can rely on a result.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  const [, bracketed, plain] = m;
  if (bracketed !== undefined) return isIPv6(bracketed) ? { host: bracketed, port } : undefined;
  if (plain === undefined) return undefined;
  if (isIPv4(plain)) return { host: plain, port };
  // 300.1.1.1 fits the host name grammar, but nobody means it as a name.
  if (/^[0-9.]+$/.test(plain)) return undefined;
  return HOSTNAME.test(plain) ? { host: plain, port } : undefined;
}
