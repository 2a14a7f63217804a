// The event socket's BPF program on the real kernel, in a namespace of its
// own: the kernel must accept the program, and the events it filters must
// never arrive while the others do. Entries are written over ctnetlink by a
// second socket (10.99.x.x / fd99:: only). Each test ends with a sentinel
// event the program passes: events of one namespace reach a socket in order,
// so once the sentinel is in, anything filtered would have been too.
import { afterEach, describe, expect, it } from 'vitest';
import { kernelEventRules, type FilterRules } from '../../src/cache/filter.js';
import { type ConntrackEvent, ConntrackEvents } from '../../src/kernel/conntrack-events.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, AF_INET6, IPPROTO, IPS, TCP_STATES } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { createNetns, type Netns } from './helpers/netns.js';

const open: Array<{ close(): void }> = [];
let ns: Netns | undefined;

afterEach(async () => {
  for (const o of open.splice(0)) o.close();
  await ns?.destroy();
  ns = undefined;
});

const NO_RULES: FilterRules = { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } };
const ESTABLISHED = TCP_STATES.indexOf('ESTABLISHED');
const FIN_WAIT = TCP_STATES.indexOf('FIN_WAIT');

function flow(src: string, dst: string, proto: number, sport: number, tcpState = ESTABLISHED): ConntrackEntry {
  const e: ConntrackEntry = {
    family: src.includes(':') ? AF_INET6 : AF_INET,
    orig: { src, dst, proto, sport, dport: 443 },
    reply: { src: dst, dst: src, proto, sport: 443, dport: sport },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED,
    timeout: 600,
    mark: 1,
  };
  if (proto === IPPROTO.TCP) e.protoinfo = { tcp: { state: tcpState } };
  return e;
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Opens the event socket with `rules` and a writer socket in a fresh namespace. */
async function setup(rules: FilterRules) {
  ns = await createNetns('bpf');
  const events = new ConntrackEvents({ netns: ns.path, filterRules: kernelEventRules(rules, []) });
  const own = new ConntrackLink({ netns: ns.path });
  const writer = new ConntrackLink({ netns: ns.path });
  open.push(events, own, writer);
  events.addOwnPortid(own.portid);
  const seen: ConntrackEvent[] = [];
  let overruns = 0;
  events.start({ onEvent: (ev) => seen.push(ev), onOverrun: () => overruns++ });
  const write = async (op: 'create' | 'update' | 'delete', entries: ConntrackEntry[]) => {
    const r = await writer.batch(entries.map((entry) => ({ op, entry })));
    expect(r.failures).toEqual({});
  };
  /** Waits for a passing sentinel event: everything written before it has been delivered or filtered. */
  const settle = async (sentinel: ConntrackEntry) => {
    await write('create', [sentinel]);
    await until(() => seen.some((e) => e.type === 'new' && e.entry.orig.src === sentinel.orig.src), 'the sentinel event');
    await write('delete', [sentinel]);
    await until(() => seen.some((e) => e.type === 'destroy' && e.entry.orig.src === sentinel.orig.src), 'the sentinel destroy');
  };
  const by = (type: string) => seen.filter((e) => e.type === type && !e.entry.orig.src.endsWith('.250')).map((e) => e.entry.orig.src).sort();
  return { events, own, writer, seen, write, settle, by, overruns: () => overruns };
}

describe('kernel event filter (real kernel, netns)', () => {
  it('the kernel takes the program; filtered protocols and ignored sources never arrive, in any event type', async () => {
    const rules: FilterRules = { ...NO_RULES, protocols: { accept: ['tcp'] }, addresses: { ignore: ['10.99.200.0/24', 'fd99::200/120'] } };
    const t = await setup(rules);
    expect(t.events.kernelFilter).toMatchObject({ attached: true, rules: ['address-ignore', 'protocol'], userspaceOnly: [] });
    expect(t.events.ownEventsFiltered).toBe(true);

    const udp = [1, 2, 3].map((i) => flow(`10.99.1.${i}`, '10.99.254.1', IPPROTO.UDP, 1000 + i));
    const tcp = [1, 2, 3].map((i) => flow(`10.99.2.${i}`, '10.99.254.1', IPPROTO.TCP, 2000 + i));
    const ignored = [1, 2].map((i) => flow(`10.99.200.${i}`, '10.99.254.1', IPPROTO.TCP, 3000 + i));
    const v6 = [flow('fd99::1', 'fd98::1', IPPROTO.TCP, 4001), flow('fd99::201', 'fd98::1', IPPROTO.TCP, 4002)];
    const all = [...udp, ...tcp, ...ignored, ...v6];
    await t.write('create', all);
    await t.write('update', all.map((e) => ({ ...e, mark: 2 })));
    await t.write('delete', all);
    // Our own socket's events are dropped as before.
    await t.own.batch([{ op: 'create', entry: flow('10.99.3.1', '10.99.254.1', IPPROTO.TCP, 5001) }]);
    await t.settle(flow('10.99.9.250', '10.99.254.1', IPPROTO.TCP, 9999));

    const passing = [...tcp.map((e) => e.orig.src), 'fd99::1'].sort();
    expect(t.by('new')).toEqual(passing);
    expect(t.by('update')).toEqual(passing);
    expect(t.by('destroy')).toEqual(passing);
    expect(t.seen.some((e) => e.own)).toBe(false);
    expect(t.events.counters.decodeErrors).toBe(0);
    expect(t.overruns()).toBe(0);
  });

  it('a TCP state rule drops updates into rejected states only; NEW and DESTROY always arrive', async () => {
    const rules: FilterRules = { ...NO_RULES, tcpStates: { accept: ['ESTABLISHED'] } };
    const t = await setup(rules);
    expect(t.events.kernelFilter.rules).toEqual(['address-ignore', 'tcp-state']);
    const flows = [1, 2].map((i) => flow(`10.99.4.${i}`, '10.99.254.1', IPPROTO.TCP, 6000 + i));
    await t.write('create', flows);
    await t.write('update', flows.map((e) => ({ ...e, protoinfo: { tcp: { state: FIN_WAIT } } })));
    await t.write('update', [{ ...flows[0]!, protoinfo: { tcp: { state: ESTABLISHED } } }]);
    await t.write('delete', flows);
    await t.settle(flow('10.99.9.250', '10.99.254.1', IPPROTO.TCP, 9999));

    expect(t.by('new')).toEqual(['10.99.4.1', '10.99.4.2']);
    // The move to FIN_WAIT is filtered for both; the move back to ESTABLISHED arrives.
    const updates = t.seen.filter((e) => e.type === 'update' && !e.entry.orig.src.endsWith('.250'));
    expect(updates.map((e) => [e.entry.orig.src, e.entry.protoinfo?.tcp?.state])).toEqual([['10.99.4.1', ESTABLISHED]]);
    expect(t.by('destroy')).toEqual(['10.99.4.1', '10.99.4.2']);
  });

  it('an accept list drops UPDATEs of flows with neither source in it, and leaves their NEW and DESTROY to userspace', async () => {
    const rules: FilterRules = { ...NO_RULES, addresses: { accept: ['10.99.5.0/24'] } };
    const t = await setup(rules);
    expect(t.events.kernelFilter.rules).toEqual(['address-accept', 'address-ignore']);
    const inside = flow('10.99.5.1', '10.99.254.1', IPPROTO.UDP, 7001);
    const outside = flow('10.99.6.1', '10.99.254.1', IPPROTO.UDP, 7002);
    await t.write('create', [inside, outside]);
    await t.write('update', [inside, outside].map((e) => ({ ...e, mark: 3 })));
    await t.write('delete', [inside, outside]);
    // The sentinel must pass the accept list too.
    await t.settle(flow('10.99.5.250', '10.99.254.1', IPPROTO.TCP, 9999));
    expect(t.by('new')).toEqual(['10.99.5.1', '10.99.6.1']);
    expect(t.by('update')).toEqual(['10.99.5.1']);
    expect(t.by('destroy')).toEqual(['10.99.5.1', '10.99.6.1']);
  });
});
