// FakeKernel sets NAT up on a create the way ctnetlink does (issue 18):
// CTA_NAT_SRC rewrites the reply's destination, CTA_NAT_DST its source, and
// only a mapping that changes the tuple sets IPS_SRC_NAT / IPS_DST_NAT. So a
// unit test of commit pins which attribute carries which mapping.
import { describe, expect, it } from 'vitest';
import { AF_INET, CTA, CTA_NAT, CTA_PROTONAT, IPCTNL_MSG_CT_NEW, IPPROTO, IPS, NFNL_SUBSYS_CTNETLINK, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR } from '../../src/kernel/constants.js';
import { AS_IS, encodeRequest } from '../../src/kernel/ct-codec.js';
import { type ConntrackEntry, entryKey } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { decodeNlError, NlWriter, parseNetlink } from '../../src/kernel/netlink-codec.js';

const ORIG = { src: '10.0.0.5', dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 40000, dport: 443 };
/** The reply of an un-NATed connection: the inverted original. */
const PLAIN_REPLY = { src: '198.51.100.9', dst: '10.0.0.5', proto: IPPROTO.TCP, sport: 443, dport: 40000 };
const NAT_BITS = IPS.SRC_NAT | IPS.DST_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE;

interface Range {
  type: number;
  /** Left out: a malformed range. */
  addr?: string;
  port?: number;
}

/** Sends one CT_NEW for `e` (its reply as given, no NAT of its own) plus the given CTA_NAT_* ranges; returns the errno. */
function create(kernel: FakeKernel, e: ConntrackEntry, ranges: Range[], flags = NLM_F_CREATE | NLM_F_EXCL): number {
  const sock = kernel.openSocket();
  let errno = -1;
  sock.setReceiver({
    onData: (buf, start, end) => {
      for (const m of parseNetlink(buf, start, end).messages) {
        if (m.type !== NLMSG_ERROR) continue;
        const r = decodeNlError(m.payload);
        if (r.ok) errno = r.value.errno;
      }
    },
    onError: () => {},
  });
  const w = new NlWriter();
  w.begin((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK | flags, 1, AF_INET);
  encodeRequest(w, { ...e, status: (e.status ?? 0) | IPS.CONFIRMED }, AS_IS, false);
  for (const r of ranges) {
    const n = w.nest(r.type);
    if (r.addr !== undefined) {
      w.ipv4(CTA_NAT.V4_MINIP, r.addr);
      w.ipv4(CTA_NAT.V4_MAXIP, r.addr);
    }
    if (r.port !== undefined) {
      const p = w.nest(CTA_NAT.PROTO);
      w.u16be(CTA_PROTONAT.PORT_MIN, r.port);
      w.u16be(CTA_PROTONAT.PORT_MAX, r.port);
      w.endNest(p);
    }
    w.endNest(n);
  }
  w.end();
  sock.send(w.finish());
  sock.drain();
  return errno;
}

const entry = (status = IPS.SEEN_REPLY): ConntrackEntry => ({ family: AF_INET, orig: ORIG, reply: PLAIN_REPLY, status });

describe('FakeKernel NAT setup on create', () => {
  it.each([
    {
      name: 'CTA_NAT_SRC address and port: the reply goes to the mapped source',
      ranges: [{ type: CTA.NAT_SRC, addr: '192.0.2.1', port: 61000 }],
      reply: { ...PLAIN_REPLY, dst: '192.0.2.1', dport: 61000 },
      bits: IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
    },
    {
      name: 'CTA_NAT_SRC address only: the port stays',
      ranges: [{ type: CTA.NAT_SRC, addr: '192.0.2.1' }],
      reply: { ...PLAIN_REPLY, dst: '192.0.2.1' },
      bits: IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
    },
    {
      name: 'CTA_NAT_DST: the reply comes from the mapped destination',
      ranges: [{ type: CTA.NAT_DST, addr: '10.1.1.1', port: 8443 }],
      reply: { ...PLAIN_REPLY, src: '10.1.1.1', sport: 8443 },
      bits: IPS.DST_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
    },
    {
      name: 'both',
      ranges: [
        { type: CTA.NAT_SRC, addr: '192.0.2.1', port: 61000 },
        { type: CTA.NAT_DST, addr: '10.1.1.1', port: 8443 },
      ],
      reply: { ...PLAIN_REPLY, src: '10.1.1.1', sport: 8443, dst: '192.0.2.1', dport: 61000 },
      bits: NAT_BITS,
    },
    {
      name: 'a mapping onto the tuple it already has: done, but not translated',
      ranges: [{ type: CTA.NAT_SRC, addr: '10.0.0.5', port: 40000 }],
      reply: PLAIN_REPLY,
      bits: IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
    },
    { name: 'no NAT attribute', ranges: [], reply: PLAIN_REPLY, bits: 0 },
  ])('$name', ({ ranges, reply, bits }) => {
    const k = new FakeKernel();
    expect(create(k, entry(), ranges)).toBe(0);
    const got = k.table.get(entryKey(entry()))!;
    expect(got.reply).toEqual(reply);
    expect(got.status! & NAT_BITS).toBe(bits);
  });

  it('never takes the NAT bits from CTA_STATUS', () => {
    const k = new FakeKernel();
    expect(create(k, entry(IPS.SEEN_REPLY | IPS.SRC_NAT | IPS.DST_NAT | IPS.SRC_NAT_DONE), [])).toBe(0);
    expect(k.table.get(entryKey(entry()))!.status! & NAT_BITS).toBe(0);
  });

  it('refuses NAT on an entry that exists (EOPNOTSUPP), and a malformed range (EINVAL)', () => {
    const k = new FakeKernel();
    expect(create(k, entry(), [])).toBe(0);
    expect(create(k, entry(), [{ type: CTA.NAT_SRC, addr: '192.0.2.1' }], NLM_F_CREATE)).toBe(95);
    expect(create(k, entry(), [], NLM_F_CREATE)).toBe(0);
    const other: ConntrackEntry = { ...entry(), orig: { ...ORIG, sport: 40001 }, reply: { ...PLAIN_REPLY, dport: 40001 } };
    expect(create(k, other, [{ type: CTA.NAT_DST, port: 80 }])).toBe(22);
    expect(k.table.has(entryKey(other))).toBe(false);
  });
});
