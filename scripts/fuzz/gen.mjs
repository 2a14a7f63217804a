// Seeded randomness and the generators both fuzz targets share: entries and
// expectations of many shapes, and byte mutations. Everything derives from
// one seed, so a run is repeated exactly by giving the same --seed and counts.
import { formatIPv4, formatIPv6 } from '../../dist/common/address.js';

/** sfc32: small, fast, good enough for fuzzing; state from a 32-bit seed via splitmix32. */
export function makeRng(seed) {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  const u32 = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  const rng = {
    u32,
    /** Uniform in [0, n). */
    int: (n) => (n <= 0 ? 0 : Math.floor((u32() / 0x1_0000_0000) * n)),
    chance: (p) => u32() / 0x1_0000_0000 < p,
    pick: (arr) => arr[rng.int(arr.length)],
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = u32() & 0xff;
      return b;
    },
    /** Values that sit on the edges of the field's range, or anything. */
    edgeU32: () => rng.pick([0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff, u32(), u32()]),
    edgeU16: () => rng.pick([0, 1, 0x7fff, 0x8000, 0xffff, u32() & 0xffff]),
  };
  return rng;
}

const v4 = (rng) =>
  rng.chance(0.7) ? `10.${rng.int(4)}.${rng.int(256)}.${1 + rng.int(254)}` : formatIPv4(rng.u32());
const v6 = (rng) => {
  const b = Buffer.alloc(16);
  if (rng.chance(0.5)) {
    b.writeUInt16BE(0x2001, 0);
    b.writeUInt16BE(0x0db8, 2);
    b[15] = rng.int(256);
  } else {
    rng.bytes(16).copy(b);
  }
  return formatIPv6(b);
};

const PORTED = [6, 17, 132, 33, 136];
const ICMP = { 2: 1, 10: 58 };

export function tuple(rng, family, proto) {
  const addr = family === 2 ? v4 : v6;
  const t = { src: addr(rng), dst: addr(rng), proto };
  if (PORTED.includes(proto) || proto === 47) {
    t.sport = rng.chance(0.8) ? 1024 + rng.int(60000) : rng.edgeU16();
    t.dport = rng.pick([22, 53, 80, 443, 5060, rng.edgeU16()]);
  } else if (proto === ICMP[family]) {
    t.icmpType = rng.pick([0, 8, 128, 129, rng.int(256)]);
    t.icmpCode = rng.chance(0.9) ? 0 : rng.int(256);
    t.icmpId = rng.edgeU16();
  }
  return t;
}

const mirror = (t) => {
  const r = { ...t, src: t.dst, dst: t.src };
  if (t.sport !== undefined) {
    r.sport = t.dport;
    r.dport = t.sport;
  }
  return r;
};

/** A conntrack entry: mostly the kernel's common shapes, sometimes every optional attribute. */
export function entry(rng) {
  const family = rng.chance(0.75) ? 2 : 10;
  const proto = rng.pick([6, 6, 6, 17, 17, ICMP[family], 132, 47, 33, 136, 0, 41, 255]);
  const orig = tuple(rng, family, proto);
  const reply = rng.chance(0.6) ? mirror(orig) : tuple(rng, family, proto);
  const e = { family, orig, reply };
  if (rng.chance(0.95)) e.status = rng.chance(0.8) ? rng.pick([0x8, 0x19e, 0x1be, 0x38e]) : rng.u32();
  if (rng.chance(0.95)) e.timeout = rng.chance(0.8) ? rng.int(432_000) : rng.edgeU32();
  if (rng.chance(0.7)) e.mark = rng.chance(0.8) ? 0 : rng.u32();
  if (rng.chance(0.1)) e.zone = rng.edgeU16();
  if (rng.chance(0.1)) e.secmark = rng.u32();
  if (rng.chance(0.5)) e.id = rng.u32();
  if (rng.chance(0.3)) e.use = rng.int(4);
  if (proto === 6 && rng.chance(0.9)) {
    const tcp = { state: rng.int(10) };
    if (rng.chance(0.8)) {
      tcp.wscaleOrig = rng.int(15);
      tcp.wscaleReply = rng.int(15);
      tcp.flagsOrig = { flags: rng.int(256), mask: rng.int(256) };
      tcp.flagsReply = { flags: rng.int(256), mask: rng.int(256) };
    }
    e.protoinfo = { tcp };
  } else if (proto === 132 && rng.chance(0.8)) {
    e.protoinfo = { sctp: { state: rng.int(10), vtagOrig: rng.u32(), vtagReply: rng.u32() } };
  } else if (proto === 33 && rng.chance(0.8)) {
    e.protoinfo = { dccp: { state: rng.int(10), role: rng.int(2), handshakeSeq: BigInt(rng.u32()) } };
  }
  if (rng.chance(0.15)) {
    e.countersOrig = { packets: BigInt(rng.u32()), bytes: BigInt(rng.u32()) * 7n };
    e.countersReply = { packets: BigInt(rng.u32()), bytes: BigInt(rng.u32()) };
  }
  if (rng.chance(0.05)) e.timestamp = { start: BigInt(rng.u32()) * 1000n, stop: rng.chance(0.5) ? BigInt(rng.u32()) : undefined };
  if (rng.chance(0.05)) {
    e.labels = rng.bytes(16);
    if (rng.chance(0.5)) e.labelsMask = rng.bytes(16);
  }
  if (rng.chance(0.05)) e.helper = rng.pick(['ftp', 'sip', 'tftp', 'h323']);
  if (rng.chance(0.05)) e.master = tuple(rng, family, 6);
  if (rng.chance(0.03)) e.seqAdjOrig = { correctionPos: rng.u32(), offsetBefore: rng.u32() | 0, offsetAfter: rng.u32() | 0 };
  if (rng.chance(0.03)) e.synproxy = { isn: rng.u32(), its: rng.u32(), tsoff: rng.u32() };
  if (e.timestamp && e.timestamp.stop === undefined) delete e.timestamp.stop;
  return e;
}

/** An expectation (FTP/SIP-like): master, expected tuple, mask. */
export function expectation(rng) {
  const family = rng.chance(0.8) ? 2 : 10;
  const master = tuple(rng, family, 6);
  const t = tuple(rng, family, rng.pick([6, 17]));
  const full = family === 2 ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const mask = { src: full, dst: full, proto: t.proto, sport: 0, dport: 0xffff };
  const x = { family, master, tuple: t, mask };
  if (rng.chance(0.9)) x.timeout = rng.chance(0.9) ? rng.int(300) : rng.edgeU32();
  if (rng.chance(0.8)) x.helper = rng.pick(['ftp', 'sip', 'tftp']);
  if (rng.chance(0.3)) x.id = rng.u32();
  if (rng.chance(0.2)) x.flags = rng.int(8);
  if (rng.chance(0.1)) x.zone = rng.edgeU16();
  if (rng.chance(0.1)) x.class = rng.int(4);
  if (rng.chance(0.05)) x.nat = { dir: rng.int(2), tuple: tuple(rng, family, t.proto) };
  return x;
}

/**
 * 1..maxOps byte edits of a copy of buf in [from, buf.length): bit flips,
 * set bytes, 16/32-bit length-like fields, truncation, deletion, insertion,
 * a splice from a donor. Never edits before `from` (a prefix kept intact).
 */
export function mutateBytes(rng, buf, donors, maxOps = 4, from = 0) {
  let b = Buffer.from(buf);
  const ops = 1 + rng.int(maxOps);
  for (let k = 0; k < ops; k++) {
    const span = b.length - from;
    if (span <= 0) break;
    const at = from + rng.int(span);
    switch (rng.int(9)) {
      case 0:
      case 1:
        b[at] ^= 1 << rng.int(8);
        break;
      case 2:
        b[at] = rng.pick([0, 0xff, 0x7f, 0x80, rng.int(256)]);
        break;
      case 3: {
        const o = from + ((at - from) & ~3);
        if (o + 2 <= b.length) b.writeUInt16LE(rng.pick([0, 3, 4, 5, 8, 16, 0xffff, rng.int(0x10000)]), o);
        break;
      }
      case 4:
        if (at + 4 <= b.length) b.writeUInt32LE(rng.edgeU32(), at);
        break;
      case 5:
        b = b.subarray(0, at);
        break;
      case 6:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(8))]);
        break;
      case 7:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(8)), b.subarray(at)]);
        break;
      default: {
        const d = donors.length > 0 ? rng.pick(donors) : rng.bytes(16);
        const s = rng.int(d.length);
        b = Buffer.concat([b.subarray(0, at), d.subarray(s, s + 1 + rng.int(64)), b.subarray(at)]);
      }
    }
  }
  return b;
}

/** A short printable summary of a buffer for failure reports. */
export function hexOf(buf, max = 4096) {
  const h = buf.toString('hex', 0, Math.min(buf.length, max));
  return buf.length > max ? `${h}… (${buf.length} bytes)` : h;
}
