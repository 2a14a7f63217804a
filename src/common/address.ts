// IPv4 and IPv6 addresses as text: parsing, formatting, prefixes and the
// few predicates the config validator and the sync channels need. The one
// place for address spelling, so that the kernel codec, the wire codec, the
// filter and the config agree on what an address looks like.
//
// The bottom layer: imports nothing from src. Parsers return undefined/false
// on bad input and never throw, since the codecs feed them peer and kernel
// data. The *At functions work on a caller's buffer so the codecs' hot paths
// allocate nothing but the resulting string.

import { isIPv4, isIPv6 } from 'node:net';

/** "0".."255": an address then costs string concatenations, not number formatting. */
const DEC: string[] = Array.from({ length: 256 }, (_, i) => String(i));

// A direct-mapped memo of recent IPv4 strings. A firewall's flows share
// few addresses (servers, NAT addresses, the clients of many flows), so most
// lookups hit: decoding then allocates no string, and every cached entry
// holding the address points at one flat copy instead of its own. Pure
// memoisation: a slot holds (address, its spelling), nothing else; 768 KiB
// of slots for up to 64k addresses shared.
const V4_SLOTS = 65536;
const v4Addr = new Int32Array(V4_SLOTS);
const v4Text: (string | undefined)[] = new Array<string | undefined>(V4_SLOTS).fill(undefined);

/** Dotted quad from a big-endian u32 at b[o]. */
export function formatIPv4At(b: Buffer, o: number): string {
  const v = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  const slot = Math.imul(v, 0x9e3779b1) >>> 16;
  const hit = v4Text[slot];
  if (hit !== undefined && v4Addr[slot] === v) return hit;
  const s = `${DEC[b[o]!]}.${DEC[b[o + 1]!]}.${DEC[b[o + 2]!]}.${DEC[b[o + 3]!]}`;
  // Flat before it is shared (see src/cache/compact.ts on cons strings).
  s.charCodeAt(0);
  v4Addr[slot] = v;
  v4Text[slot] = s;
  return s;
}

/** Strict dotted quad (no leading zeros, which some libcs read as octal) to u32; undefined if invalid. */
export function parseIPv4(s: string): number | undefined {
  const n = s.length;
  if (n < 7 || n > 15) return undefined;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46; /* '.' terminates the last octet */
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else if (c === 46) {
      if (digits === 0) return undefined;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  return parts === 4 ? value : undefined;
}

export function formatIPv4(v: number): string {
  return `${(v >>> 24) & 0xff}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/**
 * RFC 5952 text of the 16 bytes at b[o]: lowercase, no leading zeros, the
 * longest run (first on a tie) of two or more zero groups as "::", and
 * IPv4-mapped addresses in mixed notation (::ffff:192.0.2.1), as section 5
 * recommends and as inet_ntop/conntrack print them.
 */
export function formatIPv6At(b: Buffer, o: number): string {
  if (
    b[o] === 0 &&
    b[o + 1] === 0 &&
    b[o + 2] === 0 &&
    b[o + 3] === 0 &&
    b[o + 4] === 0 &&
    b[o + 5] === 0 &&
    b[o + 6] === 0 &&
    b[o + 7] === 0 &&
    b[o + 8] === 0 &&
    b[o + 9] === 0 &&
    b[o + 10] === 0xff &&
    b[o + 11] === 0xff
  ) {
    return `::ffff:${formatIPv4At(b, o + 12)}`;
  }
  return formatIPv6GroupsAt(b, o);
}

/**
 * The same RFC 5952 text as formatIPv6At but always in eight hex groups, also
 * for IPv4-mapped addresses (::ffff:a01:203). The config's "did you mean"
 * prefixes and the channels' interface-address matching have always used this
 * spelling, which is also what the WHATWG URL parser produces.
 */
export function formatIPv6GroupsAt(b: Buffer, o: number): string {
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let g = 0; g < 8; g++) {
    const zero = b[o + 2 * g] === 0 && b[o + 2 * g + 1] === 0;
    if (zero) {
      if (runStart < 0) runStart = g;
      const len = g - runStart + 1;
      if (len > bestLen) {
        bestLen = len;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  if (bestLen < 2) bestStart = -1;
  let s = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      s += g === 0 ? '::' : ':';
      g += bestLen - 1;
      continue;
    }
    s += ((b[o + 2 * g]! << 8) | b[o + 2 * g + 1]!).toString(16);
    if (g < 7) s += ':';
  }
  return s;
}

export function formatIPv6(b: Buffer): string {
  return b.length === 16 ? formatIPv6At(b, 0) : '';
}

/**
 * Parses any valid IPv6 text (compressed or not, any case, with an embedded
 * dotted quad at the end) into 16 bytes at out[o]. Returns false if invalid;
 * out may then be partly written.
 */
export function parseIPv6Into(s: string, out: Buffer, o: number): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let group = 0; // groups written so far
  let gap = -1; // group index where "::" stands
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
    if (i === n) {
      out.fill(0, o, o + 16);
      return true;
    }
  }
  while (i < n) {
    if (group === 8) return false;
    // One group: up to 4 hex digits, or a dotted quad as the last 32 bits.
    let v = 0;
    let digits = 0;
    const partStart = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else break;
      v = (v << 4) | d;
      if (++digits > 4) return false;
      i++;
    }
    if (i < n && s.charCodeAt(i) === 46) {
      if (group > 6) return false;
      const v4 = parseIPv4(s.slice(partStart));
      if (v4 === undefined) return false;
      out[o + 2 * group] = v4 >>> 24;
      out[o + 2 * group + 1] = (v4 >>> 16) & 0xff;
      out[o + 2 * group + 2] = (v4 >>> 8) & 0xff;
      out[o + 2 * group + 3] = v4 & 0xff;
      group += 2;
      i = n;
      break;
    }
    if (digits === 0) return false;
    out[o + 2 * group] = v >>> 8;
    out[o + 2 * group + 1] = v & 0xff;
    group++;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < n && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = group;
      i++;
    } else if (i === n) {
      return false; // a trailing single ':'
    }
  }
  if (gap < 0) return group === 8;
  if (group === 8) return false; // "::" must stand for at least one group
  // Move the groups after the gap to the end and zero the middle.
  const tail = group - gap;
  for (let k = tail - 1; k >= 0; k--) {
    out[o + 2 * (8 - tail + k)] = out[o + 2 * (gap + k)]!;
    out[o + 2 * (8 - tail + k) + 1] = out[o + 2 * (gap + k) + 1]!;
  }
  out.fill(0, o + 2 * gap, o + 2 * (8 - tail));
  return true;
}

export function parseIPv6(s: string): Buffer | undefined {
  const out = Buffer.alloc(16);
  return parseIPv6Into(s, out, 0) ? out : undefined;
}

/** The canonical (formatIPv6) spelling of an IPv6 address, or undefined if invalid. */
export function canonicalIPv6(s: string): string | undefined {
  const b = parseIPv6(s);
  return b ? formatIPv6At(b, 0) : undefined;
}

export type IpFamily = 4 | 6;

export function ipFamily(addr: string): IpFamily | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

/** An IPv6 literal without its zone (fe80::1%eth0 → fe80::1); node:net accepts zones, the parsers do not. */
function withoutZone(addr: string): string {
  const zone = addr.indexOf('%');
  return zone < 0 ? addr : addr.slice(0, zone);
}

/** Drops an IPv6 zone and lower-cases: enough for addresses the kernel formatted (rinfo, os). */
export function normaliseAddress(addr: string): string {
  return withoutZone(addr).toLowerCase();
}

/**
 * A comparable spelling: IPv6 in formatIPv6GroupsAt form (any spelling of one
 * address gives one string), IPv4 and anything unparseable just normalised.
 */
export function canonicalAddress(addr: string): string {
  const plain = normaliseAddress(addr);
  if (!plain.includes(':')) return plain;
  const b = parseIPv6(plain);
  return b ? formatIPv6GroupsAt(b, 0) : plain;
}

/** 224.0.0.0/4 or ff00::/8. Anything that is not an IP literal is not multicast. */
export function isMulticast(addr: string): boolean {
  if (isIPv4(addr)) return (parseIPv4(addr) ?? 0) >>> 28 === 0xe;
  if (isIPv6(addr)) return parseIPv6(withoutZone(addr))?.[0] === 0xff;
  return false;
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
    const n = parseIPv4(addr);
    if (n === undefined || !(len >= 0 && len <= 32)) return prefix;
    const hostBits = 32 - len;
    const net = hostBits === 32 ? 0 : Math.floor(n / 2 ** hostBits) * 2 ** hostBits;
    return net === n ? prefix : `${formatIPv4(net)}/${len}`;
  }
  if (isIPv6(addr)) {
    const b = parseIPv6(withoutZone(addr));
    if (b === undefined || !(len >= 0 && len <= 128)) return prefix;
    let changed = false;
    for (let i = 0; i < 16; i++) {
      const keep = Math.min(8, Math.max(0, len - 8 * i)); // network bits in this byte
      const masked = b[i]! & ((0xff << (8 - keep)) & 0xff);
      if (masked !== b[i]) {
        b[i] = masked;
        changed = true;
      }
    }
    return changed ? `${formatIPv6GroupsAt(b, 0)}/${len}` : prefix;
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

/**
 * A parsed address prefix in numeric form: `words` is the network (masked)
 * and `masks` the mask, as big-endian 32-bit words: one each for IPv4,
 * four for IPv6. What a prefix list compiles to, in the cache's filter and
 * in the kernel's event filter alike.
 */
export interface AddressPrefix {
  family: IpFamily;
  length: number;
  words: number[];
  masks: number[];
}

/** `addr` or `addr/len` (IPv4 or IPv6) to numbers; undefined if either part is invalid. */
export function parsePrefix(text: string): AddressPrefix | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? undefined : text.slice(slash + 1);
  const v4 = parseIPv4(addr);
  let family: IpFamily;
  let raw: number[];
  if (v4 !== undefined) {
    family = 4;
    raw = [v4];
  } else {
    const b = Buffer.alloc(16);
    if (!parseIPv6Into(addr, b, 0)) return undefined;
    family = 6;
    raw = [b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8), b.readUInt32BE(12)];
  }
  const max = raw.length * 32;
  let length = max;
  if (lenText !== undefined) {
    length = Number(lenText);
    if (lenText === '' || !Number.isInteger(length) || length < 0 || length > max) return undefined;
  }
  const masks = raw.map((_, w) => {
    const bits = Math.max(0, Math.min(32, length - 32 * w));
    return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  });
  return { family, length, words: raw.map((v, w) => (v & masks[w]!) >>> 0), masks };
}
