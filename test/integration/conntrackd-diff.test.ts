// Differential test against the reference implementation: Debian's
// conntrackd 1.4.7 and ctsyncd run side by side in the same two namespaces
// (fw1, fw2) on the same veth sync link, each on its own port, and watch the
// same kernel workload in fw1. What each one reports in its dumps and stats
// is compared with the other and with the kernel table itself, as printed by
// conntrack(8) (libnetfilter_conntrack decodes it, not ctsyncd):
//
//   1. fw1 internal caches: conntrackd -i vs ctsyncd dump internal vs the kernel.
//   2. fw2 external caches: conntrackd -e vs ctsyncd dump external vs fw1's kernel.
//   3. stats: conntrackd -s / -s cache / -s runtime vs ctsyncd stats.
//   4. after updates and deletes: the same, and deleted entries gone everywhere.
//   5. conntrackd -c on fw2: what conntrackd rebuilds in the kernel from its
//      external cache (NAT reply tuples from its SNAT/DNAT attributes) vs the
//      reply tuples ctsyncd holds in its external cache; then ctsyncd's own
//      commit into the emptied table.
//   6. ctsyncd's conntrackd-compatible text dumps (ctsyncd -C FILE -i/-e),
//      read with the same parser as conntrackd's.
//
// The main workload (~380 entries: TCP in every state, UDP, ICMP, IPv6,
// SCTP, GRE, UDP-Lite, marks, zones, NAT) also covers entries present before
// the daemons start and a restart of fw2. Two smaller pairs check the same
// TCP-state and protocol filter on both daemons, and real traffic inside
// fw1, whose packet-path events carry partial updates.
//
// This is a check of decoding and of cache semantics, not wire interop: the
// two daemons never talk to each other.
//
// Where the two differ by design, the difference is written down below as an
// explicit expectation with its reason (grep "DIFFERENCE"), never by leaving
// a field out of the comparison silently.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AF_INET, AF_INET6, IPPROTO, IPS, TCP_STATES, type TcpStateName } from '../../src/kernel/constants.js';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import type { ConntrackEntry, Family, Tuple } from '../../src/kernel/entry.js';
import { parseIPv6Into } from '../../src/common/address.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import {
  Conntrackd,
  type ConntrackdFilter,
  type ConntrackdStats,
  type CtTextEntry,
  type CtTuple,
  parseConntrackdCacheStats,
  parseConntrackdStats,
  parseConntrackText,
  requireConntrackd,
} from './helpers/conntrackd.js';
import type { Netns } from './helpers/netns.js';

const CTSYNCD_BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');
/** ctsyncd's sync port is Cluster's 3780; conntrackd gets its own. */
const CONNTRACKD_PORT = 3790;
/**
 * Workload addresses. The cluster's sync subnet is 10.99.<1..250>.0/24, so
 * these never meet it (except the entries that use fw1's sync address on
 * purpose, to exercise the address filter).
 */
const CLI = '10.99.251';
const SRV = '10.99.252';
const NAT = '10.99.253';

const { SEEN_REPLY, ASSURED } = IPS;
const STATE = Object.fromEntries(TCP_STATES.map((s, i) => [s, i])) as Record<TcpStateName, number>;

// ---------------------------------------------------------------------------
// Building the workload

interface Opts {
  mark?: number;
  zone?: number;
}

function familyOf(addr: string): Family {
  return addr.includes(':') ? AF_INET6 : AF_INET;
}

function ported(
  proto: number,
  src: string,
  dst: string,
  sport: number,
  dport: number,
  status: number,
  o: Opts,
): ConntrackEntry {
  const e: ConntrackEntry = {
    family: familyOf(src),
    orig: { src, dst, proto, sport, dport },
    reply: { src: dst, dst: src, proto, sport: dport, dport: sport },
    status,
    timeout: 3600,
    mark: o.mark ?? 0,
  };
  if (o.zone !== undefined) e.zone = o.zone;
  return e;
}

function tcp(src: string, dst: string, sport: number, dport: number, state: TcpStateName, o: Opts = {}) {
  // What the kernel would hold: no reply seen before SYN_RECV, assured once established.
  const unreplied = state === 'NONE' || state === 'SYN_SENT' || state === 'SYN_SENT2';
  const status = unreplied ? 0 : state === 'SYN_RECV' ? SEEN_REPLY : SEEN_REPLY | ASSURED;
  const e = ported(IPPROTO.TCP, src, dst, sport, dport, status, o);
  e.protoinfo = { tcp: { state: STATE[state] } };
  return e;
}

function udp(src: string, dst: string, sport: number, dport: number, replied: boolean, o: Opts = {}) {
  return ported(IPPROTO.UDP, src, dst, sport, dport, replied ? SEEN_REPLY | ASSURED : 0, o);
}

function icmp(src: string, dst: string, id: number, o: Opts & { code?: number } = {}): ConntrackEntry {
  const v6 = familyOf(src) === AF_INET6;
  const proto = v6 ? IPPROTO.ICMPV6 : IPPROTO.ICMP;
  const code = o.code ?? 0;
  const e: ConntrackEntry = {
    family: familyOf(src),
    orig: { src, dst, proto, icmpType: v6 ? 128 : 8, icmpCode: code, icmpId: id },
    reply: { src: dst, dst: src, proto, icmpType: v6 ? 129 : 0, icmpCode: code, icmpId: id },
    status: 0,
    timeout: 3600,
    mark: o.mark ?? 0,
  };
  if (o.zone !== undefined) e.zone = o.zone;
  return e;
}

/** One kernel entry of the workload, created over ctnetlink or (for NAT) with conntrack -I. */
interface Item {
  name: string;
  entry?: ConntrackEntry;
  /** conntrack(8) arguments after -I: NAT needs CTA_NAT_*, which only the CLI sends. */
  cli?: string[];
  /** Expected to be dropped by both daemons' address filter. */
  filtered?: boolean;
  /** In fw1's kernel before the daemons start. */
  seed?: boolean;
}

function buildWorkload(fw1Sync: string): Item[] {
  const items: Item[] = [];
  const add = (name: string, entry: ConntrackEntry, filtered = false) => items.push({ name, entry, filtered });
  // 120 established TCP flows; every 4th with a mark, every 10th in zone 5.
  for (let i = 0; i < 120; i++) {
    add(
      `est${i}`,
      tcp(`${CLI}.${1 + (i % 200)}`, `${SRV}.${1 + (i % 20)}`, 20000 + i, 443, 'ESTABLISHED', {
        mark: i % 4 === 0 ? 100 + i : 0,
        ...(i % 10 === 0 ? { zone: 5 } : {}),
      }),
    );
  }
  // Every TCP state the kernel has (SYN_SENT2 is the old LISTEN slot, 9).
  const states: Array<[TcpStateName, number]> = [
    ['SYN_SENT', 30],
    ['SYN_RECV', 10],
    ['FIN_WAIT', 10],
    ['CLOSE_WAIT', 10],
    ['LAST_ACK', 5],
    ['TIME_WAIT', 30],
    ['CLOSE', 5],
    ['NONE', 2],
    ['SYN_SENT2', 2],
  ];
  let port = 30000;
  for (const [state, n] of states) {
    for (let i = 0; i < n; i++) add(`${state}${i}`, tcp(`${CLI}.${1 + (i % 50)}`, `${SRV}.30`, port++, 80, state));
  }
  for (let i = 0; i < 40; i++) {
    add(`udp${i}`, udp(`${CLI}.${1 + i}`, `${SRV}.53`, 40000 + i, 53, i >= 20, { mark: i % 3 === 0 ? 3 : 0 }));
  }
  for (let i = 0; i < 20; i++) add(`icmp${i}`, icmp(`${CLI}.${1 + i}`, `${SRV}.1`, 1000 + i));
  // Same type and id, another code: a different connection to the kernel.
  add('icmpcode0', icmp(`${CLI}.99`, `${SRV}.1`, 999, { code: 0 }));
  add('icmpcode1', icmp(`${CLI}.99`, `${SRV}.1`, 999, { code: 1 }));
  // IPv6: ULA addresses as tuple values only, no traffic.
  const v6 = (i: number) => `fd99:251::${(i + 1).toString(16)}`;
  for (let i = 0; i < 20; i++) add(`v6tcp${i}`, tcp(v6(i), 'fd99:252::1', 20000 + i, 443, 'ESTABLISHED'));
  for (let i = 0; i < 10; i++) add(`v6udp${i}`, udp(v6(i), 'fd99:252::53', 40000 + i, 53, true));
  for (let i = 0; i < 10; i++) add(`v6icmp${i}`, icmp(v6(i), 'fd99:252::1', 2000 + i));
  // Address spellings where formatters can disagree (see the spelling check).
  const spellings = ['fd99:0:0:1::5', 'fd99::1:0:0:5', 'fd99:1:0:1:1:1:1:1', '::ffff:10.99.251.9', '::10.99.251.9'];
  for (const [i, a] of spellings.entries()) add(`v6spell${i}`, tcp(a, 'fd99:252::2', 21000 + i, 443, 'ESTABLISHED'));
  // The same tuple in zone 0 and zone 9: two connections.
  for (let i = 0; i < 5; i++) {
    add(`twin0_${i}`, tcp(`${CLI}.250`, `${SRV}.250`, 50000 + i, 443, 'ESTABLISHED'));
    add(`twin9_${i}`, tcp(`${CLI}.250`, `${SRV}.250`, 50000 + i, 443, 'ESTABLISHED', { zone: 9 }));
  }
  // Protocols beside TCP/UDP/ICMP. Two of each between the same addresses.
  for (let i = 0; i < 2; i++) {
    const s = ported(IPPROTO.SCTP, `${CLI}.60`, `${SRV}.60`, 5000 + i, 5001, SEEN_REPLY | ASSURED, {});
    s.protoinfo = { sctp: { state: 4 /* ESTABLISHED */, vtagOrig: 11 + i, vtagReply: 22 + i } };
    add(`sctp${i}`, s);
    add(`gre${i}`, ported(IPPROTO.GRE, `${CLI}.61`, `${SRV}.61`, 7 + i, 70 + i, 0, {}));
    add(`udplite${i}`, ported(IPPROTO.UDPLITE, `${CLI}.62`, `${SRV}.62`, 6000 + i, 6001, 0, {}));
  }
  // NAT: real SNAT/DNAT bindings (status SRC_NAT/DST_NAT and their _DONE bits), via conntrack -I.
  const nat = (name: string, src: string, sport: number, natArgs: string[], extra: string[] = []) =>
    items.push({
      name,
      cli: [
        ...['-p', 'tcp', '-s', src, '-d', `${SRV}.80`, '--sport', String(sport), '--dport', '80'],
        ...natArgs,
        ...['--state', 'ESTABLISHED', '-t', '3600', '-u', 'ASSURED,SEEN_REPLY'],
        ...extra,
      ],
    });
  for (let i = 0; i < 6; i++) nat(`snat${i}`, `${CLI}.${70 + i}`, 33000 + i, ['--src-nat', `${NAT}.1`]);
  for (let i = 0; i < 3; i++) {
    nat(`snatport${i}`, `${CLI}.${80 + i}`, 33100 + i, ['--src-nat', `${NAT}.2:${6000 + i}`]);
  }
  for (let i = 0; i < 3; i++) nat(`dnat${i}`, `${CLI}.${90 + i}`, 33200 + i, ['--dst-nat', `${NAT}.3:8080`]);
  nat('snatzone', `${CLI}.95`, 33300, ['--src-nat', `${NAT}.4`], ['-m', '42', '-w', '5']);
  // Masquerading to the firewall's own (sync) address: it is the reply
  // *destination*, which neither daemon's address filter looks at: replicated.
  nat('masq', `${CLI}.96`, 33400, ['--src-nat', fw1Sync]);
  // Filtered by both: fw1's own sync address as original source (a flow fw1
  // opens) or as reply source (a flow to fw1).
  add('own0', tcp(fw1Sync, `${SRV}.9`, 34000, 22, 'ESTABLISHED'), true);
  add('own1', udp(fw1Sync, `${SRV}.9`, 34001, 53, true), true);
  add('toown0', tcp(`${CLI}.9`, fw1Sync, 34002, 22, 'ESTABLISHED'), true);
  add('toown1', icmp(`${CLI}.9`, fw1Sync, 34003), true);
  return items;
}

/** Entries in fw1's kernel before either daemon starts: their initial dumps must agree too. */
function buildSeeds(): Item[] {
  const items: Item[] = [];
  for (let i = 0; i < 10; i++) {
    items.push({
      name: `seed${i}`,
      seed: true,
      entry: tcp(`${CLI}.${200 + i}`, `${SRV}.200`, 45000 + i, 443, 'ESTABLISHED', i % 2 ? { mark: 9 } : { zone: 5 }),
    });
  }
  for (let i = 0; i < 5; i++) {
    const entry = udp(`${CLI}.${210 + i}`, `${SRV}.53`, 46000 + i, 53, i < 2);
    items.push({ name: `seedudp${i}`, seed: true, entry });
  }
  items.push({
    name: 'seednat',
    seed: true,
    cli: [
      ...['-p', 'tcp', '-s', `${CLI}.220`, '-d', `${SRV}.80`, '--sport', '47000', '--dport', '80'],
      ...['--src-nat', `${NAT}.9:9000`, '--state', 'ESTABLISHED', '-t', '3600', '-u', 'ASSURED,SEEN_REPLY'],
    ],
  });
  return items;
}

/** Creates items in a namespace's kernel: over ctnetlink in one batch, NAT ones with conntrack -I. */
async function createItems(ns: Netns, items: Item[], link?: ConntrackLink): Promise<void> {
  const l = link ?? new ConntrackLink({ netns: ns.path });
  try {
    const res = await l.batch(items.filter((i) => i.entry).map((i) => ({ op: 'create', entry: i.entry! })));
    if (res.failed > 0) throw new Error(`creating the workload failed: ${JSON.stringify(res.failures)}`);
  } finally {
    if (!link) l.close();
  }
  for (const i of items) if (i.cli) await ns.exec('conntrack', ['-I', ...i.cli]);
}

/** Protocols whose ports/keys conntrackd 1.4.7 does not put on the wire (no NTA_PORT). */
const PORTLESS_ON_CONNTRACKD_WIRE = new Set(['udplite', 'gre']);

// ---------------------------------------------------------------------------
// One comparable view of an entry, whoever printed it
//
// What the three printers show in common is compared: tuple, reply tuple,
// protocol state, mark, zone, [ASSURED], [UNREPLIED]. What only one of them
// shows is not, and here is why for each:
//  - timeouts: conntrackd hides them in -i/-e; ctsyncd's are checked against
//    the kernel's (checkTimeouts) and against conntrackd's commit;
//  - raw status bits: see `status` below;
//  - conntrackd's "[active since Ns]": ctsyncd keeps no creation time;
//  - conntrack -L's "use=": a kernel reference count, in no cache;
//  - TCP window scale and flags, SCTP vtags, counters, labels, helper,
//    secmark: printed by neither daemon's text or JSON dump.

interface View {
  /** proto | orig src | orig dst | l4 identity | zone; addresses in canonical form. */
  key: string;
  /** The original addresses as printed, to compare spelling separately. */
  spelling: string;
  proto: string;
  state: string | undefined;
  mark: number;
  zone: number;
  assured: boolean;
  unreplied: boolean;
  /** Reply tuple as "src dst l4", canonical; undefined when the source holds none. */
  reply: string | undefined;
  timeout: number | undefined;
  /**
   * Raw IPS_* bits: only ctsyncd's dumps show them. conntrack(8) and
   * conntrackd print just [ASSURED] and [UNREPLIED] of them (compared as
   * `assured`/`unreplied`); the rest is compared between ctsyncd's caches.
   */
  status: number | undefined;
  /** ctsyncd's external cache: the node the entry came from. */
  origin: string | undefined;
}

function canonical(addr: string): string {
  if (!addr.includes(':')) return addr;
  const b = Buffer.alloc(16);
  if (!parseIPv6Into(addr, b, 0)) throw new Error(`bad IPv6 address ${addr}`);
  return b.toString('hex');
}

const ICMP_PROTOS = new Set(['icmp', 'icmpv6']);

function l4Text(proto: string, t: CtTuple): string {
  if (ICMP_PROTOS.has(proto)) return `t${t.type}c${t.code}i${t.id}`;
  if (proto === 'gre') {
    const k = (v: string | undefined) => (v === undefined ? '' : String(Number.parseInt(v, 16)));
    return `${k(t.fields.srckey)}>${k(t.fields.dstkey)}`;
  }
  return `${t.sport ?? ''}>${t.dport ?? ''}`;
}

function fromText(e: CtTextEntry): View {
  const o = e.orig;
  const zone = e.zone ?? 0;
  return {
    key: `${e.proto}|${canonical(o.src)}|${canonical(o.dst)}|${l4Text(e.proto, o)}|z${zone}`,
    spelling: `${o.src} ${o.dst}`,
    proto: e.proto,
    state: e.state,
    mark: e.mark ?? 0,
    zone,
    assured: e.flags.includes('ASSURED'),
    unreplied: e.flags.includes('UNREPLIED'),
    reply: e.reply ? `${canonical(e.reply.src)} ${canonical(e.reply.dst)} ${l4Text(e.proto, e.reply)}` : undefined,
    timeout: e.timeout,
    status: undefined,
    origin: undefined,
  };
}

interface JsonTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  code?: number;
}

function jsonL4(proto: string, t: JsonTuple): string {
  // entryToJson: for ICMP, sport is the id and dport the type.
  if (ICMP_PROTOS.has(proto)) return `t${t.dport}c${t.code ?? '?'}i${t.sport}`;
  return `${t.sport}>${t.dport}`;
}

function fromJson(j: Record<string, unknown>): View {
  const proto = String(j.proto);
  const orig = j as unknown as JsonTuple;
  const reply = j.reply as JsonTuple;
  const zone = Number(j.zone ?? 0);
  const status = Number(j.status ?? 0);
  return {
    key: `${proto}|${canonical(orig.src)}|${canonical(orig.dst)}|${jsonL4(proto, orig)}|z${zone}`,
    spelling: `${orig.src} ${orig.dst}`,
    proto,
    state: j.state === undefined ? undefined : String(j.state),
    mark: Number(j.mark ?? 0),
    zone,
    assured: (status & ASSURED) !== 0,
    // conntrack(8) prints [UNREPLIED] when SEEN_REPLY is clear.
    unreplied: (status & SEEN_REPLY) === 0,
    reply: `${canonical(reply.src)} ${canonical(reply.dst)} ${jsonL4(proto, reply)}`,
    timeout: j.timeout === undefined ? undefined : Number(j.timeout),
    status,
    origin: j.origin === undefined ? undefined : String(j.origin),
  };
}

type Field = 'proto' | 'state' | 'mark' | 'zone' | 'assured' | 'unreplied' | 'reply' | 'spelling';
const ALL_FIELDS: Field[] = ['proto', 'state', 'mark', 'zone', 'assured', 'unreplied', 'reply', 'spelling'];

function index(label: string, views: View[], problems: string[]): Map<string, View> {
  const m = new Map<string, View>();
  for (const v of views) {
    if (m.has(v.key)) problems.push(`${label}: two entries with key ${v.key}`);
    m.set(v.key, v);
  }
  return m;
}

/** Every difference between what `label` holds and what it should hold, as readable lines. */
function diffViews(label: string, want: View[], got: View[], fields: Field[]): string[] {
  const problems: string[] = [];
  const w = index(`${label} (expected)`, want, problems);
  const g = index(label, got, problems);
  for (const [k, v] of w) {
    const x = g.get(k);
    if (!x) {
      problems.push(`${label}: missing ${k}`);
      continue;
    }
    for (const f of fields) {
      if (v[f] !== x[f]) problems.push(`${label}: ${k} ${f}: expected ${String(v[f])}, got ${String(x[f])}`);
    }
  }
  for (const k of g.keys()) if (!w.has(k)) problems.push(`${label}: unexpected ${k}`);
  return problems;
}

// ---------------------------------------------------------------------------
// Sources

async function kernelTable(ns: Netns): Promise<View[]> {
  // conntrack(8) -L lists every family; its summary line goes to stderr.
  const { stdout } = await ns.exec('conntrack', ['-L']);
  return parseConntrackText(stdout).map(fromText);
}

interface CtsyncdStats {
  internal: {
    entries: number;
    created: number;
    updated: number;
    unchanged: number;
    destroyed: number;
    missing: number;
    filtered: Record<string, number>;
  };
  external: { entries: number; created: number; updated: number; deleted: number; missing: number; stale: number };
  kernel: { events: { new: number; update: number; destroy: number; own: number }; eventFilter: { rules: string[] } };
}

type NodeId = 'fw1' | 'fw2';

/**
 * Both daemons on both nodes: ctsyncd from Cluster (sync port 3780) and
 * conntrackd beside it in the same namespaces (its own port), plus a
 * ctnetlink link into fw1's kernel for the workload.
 */
class Pair {
  private constructor(
    readonly cluster: Cluster,
    readonly cd: Record<NodeId, Conntrackd>,
    readonly link: ConntrackLink,
  ) {}

  /**
   * `ctsyncdYaml` and `conntrackd` give both daemons the same further filter
   * rules; both also get the address rule ctsyncd always applies by itself
   * (loopback and the node's own sync address, src/cache/filter.ts), which
   * conntrackd needs spelled out. `seed` fills fw1's kernel before either
   * daemon starts. conntrackd filters in userspace here (Filter From
   * Userspace), so ctsyncd's kernel-side event filter is off unless
   * `kernelFilter`: with it on, the events it drops never reach ctsyncd's
   * counters, while the caches must still agree.
   */
  static async start(
    opts: {
      ctsyncdYaml?: string;
      conntrackd?: ConntrackdFilter;
      seed?: (fw1: Netns) => Promise<void>;
      kernelFilter?: boolean;
    } = {},
  ): Promise<Pair> {
    requireConntrackd();
    const yaml = [opts.ctsyncdYaml ?? '', opts.kernelFilter ? '' : 'kernel: { filterEvents: false }'].join('\n');
    const cluster = await Cluster.create({ nodes: 2, transport: 'udp', extraYaml: () => yaml });
    const cd: Partial<Record<NodeId, Conntrackd>> = {};
    let link: ConntrackLink | undefined;
    try {
      await opts.seed?.(cluster.node('fw1').ns);
      cluster.start('fw1');
      cluster.start('fw2');
      for (const [id, peer] of [
        ['fw1', 'fw2'],
        ['fw2', 'fw1'],
      ] as const) {
        const n = cluster.node(id);
        cd[id] = await Conntrackd.start({
          ns: n.ns,
          dir: cluster.dir,
          name: id,
          sync: {
            local: n.syncAddress,
            peer: cluster.node(peer).syncAddress,
            port: CONNTRACKD_PORT,
            interface: 'sync0',
          },
          filter: { ...opts.conntrackd, addresses: { ignore: ['127.0.0.0/8', '::1', n.syncAddress] } },
        });
      }
      await cluster.waitReady('fw1');
      await cluster.waitReady('fw2');
      link = new ConntrackLink({ netns: cluster.node('fw1').ns.path });
      return new Pair(cluster, cd as Record<NodeId, Conntrackd>, link);
    } catch (e) {
      link?.close();
      for (const d of Object.values(cd)) await d.stop('SIGKILL');
      await cluster.destroy();
      throw e;
    }
  }

  ns(id: NodeId): Netns {
    return this.cluster.node(id).ns;
  }

  /** Restarts both daemons of a node with empty caches (fresh processes, same configs). */
  async restart(id: NodeId): Promise<void> {
    const old = this.cd[id];
    await old.stop('SIGTERM');
    await this.cluster.stop(id, 'SIGTERM');
    this.cd[id] = await Conntrackd.start(old.opts);
    this.cluster.start(id);
    await this.cluster.waitReady(id);
  }

  async ctsyncdStats(id: NodeId): Promise<CtsyncdStats> {
    return (await this.cluster.request(id, 'stats')) as CtsyncdStats;
  }

  async ctsyncdDump(id: NodeId, which: 'internal' | 'external'): Promise<View[]> {
    return (await this.cluster.dump(id, which)).map(fromJson);
  }

  /** ctsyncd's conntrackd-compatible CLI (`ctsyncd -C FILE -i|-e`), parsed as conntrackd's output is. */
  async ctsyncdCliDump(id: NodeId, which: 'internal' | 'external'): Promise<View[]> {
    const n = this.cluster.node(id);
    const { stdout } = await n.ns.exec(process.execPath, [
      CTSYNCD_BIN,
      '-C',
      n.configPath,
      which === 'internal' ? '-i' : '-e',
    ]);
    return parseConntrackText(stdout).map(fromText);
  }

  /** Every stats view at once. */
  async stats(): Promise<{
    cd1: ConntrackdStats;
    cd2: ConntrackdStats;
    ct1: CtsyncdStats;
    ct2: CtsyncdStats;
    /** conntrackd fw1 -s runtime, "netlink stats" section. */
    cdNetlink1: Record<string, number>;
  }> {
    const [cd1, cd2, ct1, ct2, rt] = await Promise.all([
      this.cd.fw1.stats(),
      this.cd.fw2.stats(),
      this.ctsyncdStats('fw1'),
      this.ctsyncdStats('fw2'),
      this.cd.fw1.runtimeStats(),
    ]);
    return { cd1, cd2, ct1, ct2, cdNetlink1: rt['netlink stats'] ?? {} };
  }

  async stop(): Promise<void> {
    this.link.close();
    for (const d of Object.values(this.cd)) await d.stop('SIGTERM');
    await this.cluster.destroy();
  }
}

interface Ctx {
  pair: Pair;
  items: Item[];
  byName: Map<string, Item>;
  /** Keys (View.key) of the workload entries, by item name, from fw1's kernel. */
  keyOf: Map<string, string>;
  /** conntrackd's external cache as its wire loses ports: wire key -> the entry it last carried. */
  cdWire: Map<string, string>;
  /** Item names deleted from fw1's kernel. */
  deleted: Set<string>;
  /**
   * What conntrackd on fw2 has been sent: everything but the entries
   * conntrackd on fw1 found at startup (until -B), everything, or nothing
   * (restarted, until -n).
   */
  cdPeer: 'without-seeds' | 'full' | 'empty';
  /** Seeds ctsyncd fw1 sent fw2 twice at startup (see the first test). */
  ctsyncdStartupResends: number;
  counts: { created: number; filteredEvents: number; updated: number; destroyed: number; deletesOfFiltered: number };
}

let ctx: Ctx | undefined;

function c(): Ctx {
  if (!ctx) throw new Error('setup failed');
  return ctx;
}

/** The key conntrackd's external cache files an entry under: without ports for PORTLESS protocols. */
function wireKey(v: View): string {
  if (!PORTLESS_ON_CONNTRACKD_WIRE.has(v.proto)) return v.key;
  // conntrackd -e prints the missing ports (GRE keys) as 0.
  const [proto, src, dst, , zone] = v.key.split('|');
  return `${proto}|${src}|${dst}|0>0|${zone}`;
}

/** What fw1's daemons must hold: the kernel table minus what the address filter drops. */
async function fw1Truth(): Promise<View[]> {
  const filtered = new Set(
    c()
      .items.filter((i) => i.filtered)
      .map((i) => c().keyOf.get(i.name)),
  );
  return (await kernelTable(c().pair.ns('fw1'))).filter((v) => !filtered.has(v.key));
}

/**
 * What conntrackd -e on fw2 must show, given fw1's filtered kernel table.
 *
 * DIFFERENCE (conntrackd quirk): conntrackd 1.4.7 sends no NTA_PORT for
 * UDP-Lite and GRE, so on the peer such entries lose their ports/keys (-e
 * prints them as 0): all flows between two addresses share one
 * external-cache key, the last NEW replacing the one before, and a DEL of
 * any of them removes the survivor. `cdWire` tracks which entry each such
 * key last carried. ctsyncd replicates them whole.
 */
function conntrackdExternalExpected(truth: View[]): View[] {
  const byKey = new Map(truth.map((v) => [v.key, v]));
  const seeds = new Set(
    c()
      .items.filter((i) => i.seed)
      .map((i) => c().keyOf.get(i.name)),
  );
  const out: View[] = [];
  if (c().cdPeer === 'empty') return out;
  for (const v of truth) {
    if (c().cdPeer === 'without-seeds' && seeds.has(v.key)) continue;
    if (!PORTLESS_ON_CONNTRACKD_WIRE.has(v.proto)) out.push({ ...v, reply: undefined });
  }
  for (const [wk, srcKey] of c().cdWire) {
    const v = byKey.get(srcKey);
    if (v) out.push({ ...v, key: wk, reply: undefined });
  }
  return out;
}

function noteWire(name: string, op: 'set' | 'delete', truth: Map<string, View>): void {
  const key = c().keyOf.get(name);
  const v = key === undefined ? undefined : truth.get(key);
  if (!v || !PORTLESS_ON_CONNTRACKD_WIRE.has(v.proto)) return;
  if (op === 'set') c().cdWire.set(wireKey(v), v.key);
  else c().cdWire.delete(wireKey(v));
}

/** Polls `check` until it reports nothing or the deadline passes; returns the last report. */
async function settle(check: () => Promise<string[]>, timeoutMs = 15_000): Promise<string[]> {
  let last: string[] = [];
  try {
    await waitFor(
      async () => {
        last = await check();
        return last.length === 0;
      },
      'agreement',
      timeoutMs,
    );
  } catch {
    // The caller asserts on `last`, which says what still differs.
  }
  return last;
}

/**
 * Four caches against what they should hold: conntrackd -i and ctsyncd's
 * internal cache on fw1 against `truth` (fw1's kernel after filtering),
 * conntrackd -e and ctsyncd's external cache on fw2 against `truth` as well,
 * except that conntrackd -e is held to `cdExternal` where its wire loses
 * something (default: `truth`).
 */
async function compareFour(p: Pair, truth: View[], cdExternal: View[] = truth): Promise<string[]> {
  const problems: string[] = [];
  const [cdInt, ctInt, cdExt, ctExt] = await Promise.all([
    p.cd.fw1.internal(),
    p.ctsyncdDump('fw1', 'internal'),
    p.cd.fw2.external(),
    p.ctsyncdDump('fw2', 'external'),
  ]);
  // DIFFERENCE (presentation): glibc's inet_ntop, behind conntrack(8) and
  // conntrackd, prints IPv4-compatible addresses (::a.b.c.d, deprecated by
  // RFC 4291) in dotted form; ctsyncd follows RFC 5952, which keeps mixed
  // notation for IPv4-mapped (::ffff:a.b.c.d) only. Keys compare canonical
  // bytes, so this shows only in the spelling, fixed here for the one such
  // address of the workload.
  const ntopSpelling = (v: View): View =>
    v.spelling.startsWith('::10.99.251.9 ')
      ? { ...v, spelling: v.spelling.replace('::10.99.251.9', '::a63:fb09') }
      : v;
  const truthCt = truth.map(ntopSpelling);
  // 1. fw1's internal caches hold the kernel table, fields and reply tuple included.
  problems.push(...diffViews('conntrackd fw1 -i', truth, cdInt.map(fromText), ALL_FIELDS));
  problems.push(...diffViews('ctsyncd fw1 internal', truthCt, ctInt, ALL_FIELDS));
  // 2. fw2's external caches hold fw1's table. conntrackd -e never shows a
  // reply tuple (its external cache keeps NAT attributes, which
  // conntrack(8)-style output does not print); the reply tuple it would
  // rebuild is compared after `conntrackd -c` instead.
  problems.push(
    ...diffViews(
      'conntrackd fw2 -e',
      cdExternal.map((v) => ({ ...v, reply: undefined })),
      cdExt.map(fromText),
      ALL_FIELDS.filter((f) => f !== 'reply'),
    ),
  );
  problems.push(...diffViews('ctsyncd fw2 external', truthCt, ctExt, ALL_FIELDS));
  // Raw status bits, which only ctsyncd prints, survive replication as they
  // are; every external entry names fw1 as its origin.
  const statusOf = new Map(ctInt.map((v) => [v.key, v.status]));
  for (const v of ctExt) {
    if (statusOf.has(v.key) && statusOf.get(v.key) !== v.status)
      problems.push(`ctsyncd fw2 external: ${v.key} status ${v.status}, fw1 internal ${statusOf.get(v.key)}`);
    if (v.origin !== 'fw1') problems.push(`ctsyncd fw2 external: ${v.key} origin ${v.origin}`);
  }
  return problems;
}

/** The main workload's four caches against fw1's kernel. */
async function compareCaches(): Promise<string[]> {
  const truth = await fw1Truth();
  return compareFour(c().pair, truth, conntrackdExternalExpected(truth));
}

/**
 * Timeouts: conntrackd hides them in -i/-e ("cached timeouts are hidden"),
 * so they are checked for ctsyncd against the kernel only. ctsyncd keeps the
 * timeout of the last event (a timeout-only change is not an update), so it
 * is at or above the kernel's countdown, by about the seconds since.
 */
async function checkTimeouts(): Promise<string[]> {
  const truth = new Map((await fw1Truth()).map((v) => [v.key, v]));
  const problems: string[] = [];
  for (const [label, views] of [
    ['ctsyncd fw1 internal', await c().pair.ctsyncdDump('fw1', 'internal')],
    ['ctsyncd fw2 external', await c().pair.ctsyncdDump('fw2', 'external')],
  ] as const) {
    for (const v of views) {
      const k = truth.get(v.key)?.timeout;
      if (k === undefined || v.timeout === undefined) continue;
      if (v.timeout < k || v.timeout > k + 60) problems.push(`${label}: ${v.key} timeout ${v.timeout}, kernel ${k}`);
    }
  }
  return problems;
}

type PairStats = Awaited<ReturnType<Pair['stats']>>;

/** The counters the tests compare, on one line for the log. */
function summary(s: PairStats): string {
  const cd = (c: ConntrackdStats['internal']) =>
    `active ${c?.active} created ${c?.created} updated ${c?.updated} destroyed ${c?.destroyed}`;
  const i = s.ct1.internal;
  const e = s.ct2.external;
  const nl = s.cdNetlink1;
  return [
    `conntrackd fw1 internal: ${cd(s.cd1.internal)}, ` +
      `events received ${nl['events received']} filtered ${nl['events filtered']}`,
    `ctsyncd fw1 internal: entries ${i.entries} created ${i.created} updated ${i.updated} ` +
      `destroyed ${i.destroyed} missing ${i.missing} filtered ${JSON.stringify(i.filtered)}`,
    `conntrackd fw2 external: ${cd(s.cd2.external)}`,
    `ctsyncd fw2 external: entries ${e.entries} created ${e.created} updated ${e.updated} deleted ${e.deleted}`,
  ].join('; ');
}

// ---------------------------------------------------------------------------

describe('differential: ctsyncd vs conntrackd 1.4.7 on one kernel workload', () => {
  beforeAll(async () => {
    const started = Date.now();
    const seeds = buildSeeds();
    const pair = await Pair.start({ seed: (fw1) => createItems(fw1, seeds) });
    const items = [...seeds, ...buildWorkload(pair.cluster.node('fw1').syncAddress)];
    ctx = {
      pair,
      items,
      byName: new Map(items.map((i) => [i.name, i])),
      cdPeer: 'without-seeds',
      ctsyncdStartupResends: 0,
      keyOf: new Map(),
      cdWire: new Map(),
      deleted: new Set(),
      counts: { created: 0, filteredEvents: 0, updated: 0, destroyed: 0, deletesOfFiltered: 0 },
    };
    console.log(`setup: ${Date.now() - started} ms`);
  });

  afterAll(async () => {
    await ctx?.pair.stop();
    ctx = undefined;
  });

  it('entries present before start: both initial dumps agree; only ctsyncd replicates them unasked', async () => {
    const x = c();
    const p = x.pair;
    const seeds = x.items.filter((i) => i.seed);
    const table = await kernelTable(p.ns('fw1'));
    expect(table.length).toBe(seeds.length);
    for (const i of seeds) x.keyOf.set(i.name, i.entry ? expectedKey(i.entry) : cliKey(i.cli!));
    expect(new Set(table.map((v) => v.key))).toEqual(new Set(x.keyOf.values()));
    // DIFFERENCE (deliberate): conntrackd files its startup dump in the
    // internal cache without sending it; the peer learns it only on -B (or
    // its own -n). ctsyncd replicates what its startup dump found like any
    // other change. conntrackdExternalExpected leaves the seeds out until -B.
    expect(await settle(compareCaches)).toEqual([]);
    expect((await p.cd.fw2.external()).length).toBe(0);
    await p.cd.fw1.bulkSend();
    x.cdPeer = 'full';
    expect(await settle(compareCaches)).toEqual([]);
    const n = seeds.length;
    x.counts.created = n;
    const s = await p.stats();
    // Startup dump entries count as created in both internal caches; no events yet.
    expect(s.cd1.internal).toMatchObject({ active: n, created: n, updated: 0, destroyed: 0 });
    expect(s.ct1.internal).toMatchObject({ entries: n, created: n, updated: 0, destroyed: 0 });
    expect(s.cdNetlink1['events received']).toBe(0);
    expect(s.ct1.kernel.events).toMatchObject({ new: 0, update: 0, destroy: 0 });
    expect(s.cd2.external).toMatchObject({ active: n, created: n, updated: 0 });
    // DIFFERENCE (ctsyncd inefficiency, reported): fw1's ctsyncd sends
    // what its startup dump found as new entries, and again in the bulk
    // that fw2's startup resync request asks for, unless the two happen
    // to merge in its send queue. fw2 applies the second copy as an
    // update. Harmless, but the initial table crosses the link twice.
    expect(s.ct2.external).toMatchObject({ entries: n, created: n });
    expect(s.ct2.external.updated).toBeLessThanOrEqual(n);
    x.ctsyncdStartupResends = s.ct2.external.updated;
    console.log(`seeds: ${n} entries; ctsyncd fw2 applied ${x.ctsyncdStartupResends} of them twice`);
  });

  it('creates: internal caches on fw1 and external caches on fw2 agree with each other and the kernel', async () => {
    const x = c();
    const p = x.pair;
    const items = x.items.filter((i) => !i.seed);
    await createItems(p.ns('fw1'), items, p.link);

    // Keys of every item, from the kernel's own listing.
    const table = await kernelTable(p.ns('fw1'));
    expect(table.length).toBe(x.items.length);
    for (const i of items) {
      const want = i.entry ? expectedKey(i.entry) : cliKey(i.cli!);
      const v = table.find((t) => t.key === want);
      expect(v, `kernel entry for ${i.name} (${want})`).toBeDefined();
      x.keyOf.set(i.name, want);
    }
    const truthMap = new Map(table.map((v) => [v.key, v]));
    for (const i of items) noteWire(i.name, 'set', truthMap);
    const filtered = items.filter((i) => i.filtered).length;
    x.counts.created += items.length - filtered;
    x.counts.filteredEvents = filtered;

    // The workload is what it claims to be: NAT bindings rewrite the reply
    // tuple, so comparing reply tuples compares NAT handling.
    const tv = (name: string) => truthMap.get(x.keyOf.get(name)!)!;
    expect(tv('snat0').reply).toBe(`${SRV}.80 ${NAT}.1 80>33000`);
    expect(tv('snatport0').reply).toBe(`${SRV}.80 ${NAT}.2 80>6000`);
    expect(tv('dnat0').reply).toBe(`${NAT}.3 ${CLI}.90 8080>33200`);
    expect(tv('masq').reply).toBe(`${SRV}.80 ${p.cluster.node('fw1').syncAddress} 80>33400`);

    const problems = await settle(compareCaches);
    expect(problems).toEqual([]);
    expect(await checkTimeouts()).toEqual([]);
    // The one address spelling that differs, spelled out (see compareCaches).
    const compat = x.keyOf.get('v6spell4')!;
    expect(tv('v6spell4').spelling).toBe('::10.99.251.9 fd99:252::2');
    expect((await p.ctsyncdDump('fw1', 'internal')).find((v) => v.key === compat)?.spelling).toBe(
      '::a63:fb09 fd99:252::2',
    );
    // ctsyncd's conntrackd-compatible text dumps (-i/-e), read with the
    // parser used for conntrackd's, say what its JSON dumps say.
    const truthNow = (await fw1Truth()).map((v) =>
      v.spelling.startsWith('::10.99.251.9 ') ? { ...v, spelling: '::a63:fb09 fd99:252::2' } : v,
    );
    expect([
      ...diffViews('ctsyncd -C fw1 -i', truthNow, await p.ctsyncdCliDump('fw1', 'internal'), ALL_FIELDS),
      ...diffViews('ctsyncd -C fw2 -e', truthNow, await p.ctsyncdCliDump('fw2', 'external'), ALL_FIELDS),
    ]).toEqual([]);
    const n = x.counts.created;
    console.log(`creates: ${items.length} kernel entries, ${filtered} filtered; ${n} in each cache with the seeds`);

    // 3. Stats.
    const s = await p.stats();
    // fw1 internal: "current active connections" = entries; created counts
    // cache insertions, from the initial dump (seeds) and NEW events alike;
    // nothing updated or destroyed yet.
    expect(s.cd1.internal).toMatchObject({ active: n, created: n, updated: 0, destroyed: 0, createFailed: 0 });
    expect(s.ct1.internal).toMatchObject({ entries: n, created: n, updated: 0, destroyed: 0 });
    // Kernel events seen and filtered: conntrackd's "events received" are
    // ctsyncd's new+update+destroy (its own-socket events aside, none here);
    // conntrackd's "events filtered" are ctsyncd's filtered.address.
    const events = s.ct1.kernel.events;
    expect(s.cdNetlink1['events received']).toBe(events.new + events.update + events.destroy);
    expect(events.new).toBe(items.length);
    expect(events.update + events.destroy).toBe(0);
    expect(s.cdNetlink1['events filtered']).toBe(filtered);
    expect(s.ct1.internal.filtered).toEqual({ protocol: 0, address: filtered, 'tcp-state': 0 });
    // Nothing flows from fw2 to fw1, nothing is in fw2's kernel.
    expect(s.cd1.external).toMatchObject({ active: 0, created: 0 });
    expect(s.ct1.external).toMatchObject({ entries: 0, created: 0 });
    expect(s.cd2.internal).toMatchObject({ active: 0, created: 0 });
    expect(s.ct2.internal).toMatchObject({ entries: 0, created: 0 });
    // fw2 external. DIFFERENCE (conntrackd quirk, see conntrackdExternalExpected):
    // each UDP-Lite/GRE pair shares one key on conntrackd's side; the second
    // NEW deletes the first entry and creates it again.
    const collapsed = collapsedCount(x);
    expect(s.ct2.external).toMatchObject({
      entries: n,
      created: n,
      updated: x.ctsyncdStartupResends,
      deleted: 0,
    });
    expect(s.cd2.external).toMatchObject({ active: n - collapsed, created: n, destroyed: collapsed });
    console.log(`stats after creates: ${summary(s)}`);
  });

  it('updates: marks and states change alike in all four caches; counters agree', async () => {
    const x = c();
    const p = x.pair;
    const kernel = await kernelEntries(x);
    const upd: Array<[string, (e: ConntrackEntry) => ConntrackEntry]> = [];
    const mark = (m: number) => (e: ConntrackEntry) => ({ ...e, mark: m });
    const state = (st: TcpStateName, status = SEEN_REPLY | ASSURED) => (e: ConntrackEntry) => ({
      ...e,
      status,
      protoinfo: { tcp: { state: STATE[st] } },
    });
    for (let i = 0; i < 40; i++) upd.push([`est${i}`, mark(7000 + i)]);
    for (let i = 0; i < 20; i++) upd.push([`SYN_SENT${i}`, state('ESTABLISHED')]);
    for (let i = 40; i < 50; i++) upd.push([`est${i}`, state('FIN_WAIT')]);
    for (let i = 50; i < 60; i++) upd.push([`est${i}`, state('TIME_WAIT')]);
    for (let i = 0; i < 10; i++) upd.push([`udp${i}`, (e) => ({ ...e, status: SEEN_REPLY | ASSURED })]);
    for (let i = 0; i < 5; i++) upd.push([`v6tcp${i}`, mark(600 + i)]);
    for (let i = 0; i < 3; i++) upd.push([`twin9_${i}`, mark(900 + i)]);
    for (const n of ['snat0', 'snatport0', 'dnat0', 'snatzone']) upd.push([n, mark(77)]);
    const SHUTDOWN_SENT = 5;
    upd.push(['sctp0', (e) => ({ ...e, protoinfo: { sctp: { ...e.protoinfo!.sctp!, state: SHUTDOWN_SENT } } })]);
    // Filtered by both: counted as filtered events, cached nowhere.
    upd.push(['own0', mark(5)], ['toown0', mark(5)]);
    const items: BatchItem[] = upd.map(([name, f]) => ({ op: 'update', entry: f(kernel.get(name)!) }));
    const res = await p.link.batch(items);
    expect(res.failures).toEqual({});
    const filteredUpdates = upd.filter(([n]) => x.byName.get(n)!.filtered).length;
    const u = upd.length - filteredUpdates;
    x.counts.updated += u;
    x.counts.filteredEvents += filteredUpdates;

    expect(await settle(compareCaches)).toEqual([]);
    expect(await checkTimeouts()).toEqual([]);
    console.log(`updates: ${upd.length} kernel updates, ${filteredUpdates} of filtered entries`);

    const s = await p.stats();
    const n = x.counts.created;
    // conntrackd counts every UPDATE event that passes its filter as an
    // update; ctsyncd counts an update only when something besides the
    // timeout changed (and "unchanged" otherwise). The kernel sends one
    // UPDATE event per ctnetlink update whatever it changed, and every
    // update here changes something, so the two counts coincide.
    expect(s.cd1.internal).toMatchObject({ active: n, created: n, updated: x.counts.updated, destroyed: 0 });
    expect(s.ct1.internal).toMatchObject({ entries: n, created: n, updated: x.counts.updated, unchanged: 0 });
    const events = s.ct1.kernel.events;
    expect(events.update).toBe(upd.length);
    expect(s.cdNetlink1['events received']).toBe(events.new + events.update + events.destroy);
    expect(s.cdNetlink1['events filtered']).toBe(x.counts.filteredEvents);
    expect(s.ct1.internal.filtered.address).toBe(x.counts.filteredEvents);
    // fw2: one message per updated entry reaches each external cache (an
    // update of an entry still queued for sending would fold into it; these
    // were sent and acknowledged long before).
    const collapsed = collapsedCount(x);
    expect(s.ct2.external).toMatchObject({
      entries: n,
      created: n,
      updated: x.counts.updated + x.ctsyncdStartupResends,
      deleted: 0,
    });
    expect(s.cd2.external).toMatchObject({
      active: n - collapsed,
      created: n,
      updated: x.counts.updated,
      destroyed: collapsed,
    });
  });

  it('deletes: gone from every cache on both nodes; counters agree', async () => {
    const x = c();
    const p = x.pair;
    const kernel = await kernelEntries(x);
    const names: string[] = [];
    const range = (prefix: string, from: number, to: number) => {
      for (let i = from; i < to; i++) names.push(`${prefix}${i}`);
    };
    range('est', 60, 90);
    range('SYN_SENT', 20, 30);
    range('TIME_WAIT', 0, 5);
    range('udp', 20, 30);
    range('icmp', 0, 5);
    range('v6tcp', 10, 15);
    range('v6icmp', 0, 3);
    range('twin9_', 3, 5);
    names.push('icmpcode1', 'snat1', 'snatport1', 'dnat1', 'gre0', 'udplite0', 'sctp1', 'v6spell4');
    const filteredNames = ['own0', 'own1', 'toown0', 'toown1'];
    const all = [...names, ...filteredNames];
    const truthBefore = new Map((await kernelTable(p.ns('fw1'))).map((v) => [v.key, v]));
    const res = await p.link.batch(all.map((name) => ({ op: 'delete', entry: kernel.get(name)! })));
    expect(res.failures).toEqual({});
    for (const name of all) {
      noteWire(name, 'delete', truthBefore);
      x.deleted.add(name);
    }
    x.counts.destroyed += names.length;
    x.counts.deletesOfFiltered += filteredNames.length;

    expect(await settle(compareCaches)).toEqual([]);
    // Spelled out: none of the deleted keys is left anywhere.
    const gone = new Set(all.map((nm) => x.keyOf.get(nm)!));
    const leftovers = [
      ...(await p.cd.fw1.internal()).map(fromText),
      ...(await p.ctsyncdDump('fw1', 'internal')),
      ...(await p.cd.fw2.external()).map(fromText),
      ...(await p.ctsyncdDump('fw2', 'external')),
    ].filter((v) => gone.has(v.key));
    expect(leftovers).toEqual([]);
    console.log(`deletes: ${names.length} cached entries and ${filteredNames.length} filtered ones`);

    const s = await p.stats();
    const n = x.counts.created;
    const live = n - x.counts.destroyed;
    expect(s.cd1.internal).toMatchObject({
      active: live,
      created: n,
      updated: x.counts.updated,
      destroyed: x.counts.destroyed,
    });
    expect(s.ct1.internal).toMatchObject({ entries: live, created: n, destroyed: x.counts.destroyed });
    // DIFFERENCE (deliberate): conntrackd runs DESTROY events through its
    // filter like any other ("events filtered"); ctsyncd removes a cached
    // entry on DESTROY whatever the filter says, and counts a DESTROY for a
    // key it never cached as "missing", not as filtered.
    expect(s.cdNetlink1['events filtered']).toBe(x.counts.filteredEvents + x.counts.deletesOfFiltered);
    expect(s.ct1.internal.filtered.address).toBe(x.counts.filteredEvents);
    expect(s.ct1.internal.missing).toBe(x.counts.deletesOfFiltered);
    const events = s.ct1.kernel.events;
    expect(events.destroy).toBe(all.length);
    expect(s.cdNetlink1['events received']).toBe(events.new + events.update + events.destroy);
    // fw2. conntrackd's collapsed UDP-Lite/GRE keys: the DEL of gre0 and
    // udplite0 removed the shared entry, so gre1 and udplite1, still alive
    // on fw1, are gone from conntrackd's external cache (but not ctsyncd's).
    const collapsed = collapsedCount(x);
    expect(collapsed).toBe(2);
    expect(s.ct2.external).toMatchObject({ entries: live, created: n, deleted: x.counts.destroyed, missing: 0 });
    expect(s.cd2.external).toMatchObject({
      active: live - collapsed,
      created: n,
      updated: x.counts.updated,
      // One DEL per deleted entry found in the cache, plus the NEWs that replaced a collapsed key.
      destroyed: x.counts.destroyed + 2,
    });

    // conntrackd keeps a deleted entry DEAD in its internal cache until the
    // peer acknowledges the DEL: "active objects" drops to the live count
    // once that happened. ctsyncd removes it at once (its resend queue
    // holds the message, not the entry).
    await waitFor(
      async () => {
        const cs = await p.cd.fw1.cacheStats();
        return cs.internal?.objects === live && cs.internal.active === live;
      },
      'conntrackd fw1 internal objects = live entries',
      10_000,
    );
    const cs1 = await p.cd.fw1.cacheStats();
    expect(cs1.internal).toMatchObject({
      active: live,
      total: live,
      createOk: n,
      updateOk: x.counts.updated,
      deleteOk: x.counts.destroyed,
    });
  });

  it('a restarted fw2 refills its external cache: ctsyncd by itself, conntrackd on -n', async () => {
    const x = c();
    const p = x.pair;
    await p.restart('fw2');
    // DIFFERENCE (deliberate): a starting ctsyncd asks its peers for their
    // tables (hello + resync request); conntrackd only does so with
    // StartupResync on (off by default) or on -n, which an HA script sends
    // when the node becomes backup. So ctsyncd's external cache refills on
    // its own and conntrackd's stays empty until -n.
    x.cdPeer = 'empty';
    expect(await settle(compareCaches)).toEqual([]);
    expect((await p.cd.fw2.external()).length).toBe(0);
    await p.cd.fw2.requestResync();
    x.cdPeer = 'full';
    // The resync sends conntrackd fw1's whole internal cache: the UDP-Lite
    // and GRE entries lost to the shared key come back (one per address pair is left).
    const truth = new Map((await fw1Truth()).map((v) => [v.key, v]));
    x.cdWire.clear();
    for (const name of x.keyOf.keys()) if (!x.deleted.has(name)) noteWire(name, 'set', truth);
    expect(collapsedCount(x)).toBe(0);
    expect(await settle(compareCaches)).toEqual([]);
    const live = x.counts.created - x.counts.destroyed;
    const s = await p.stats();
    // Fresh processes on fw2: every entry created once, by the resync.
    expect(s.ct2.external).toMatchObject({ entries: live, created: live, deleted: 0 });
    expect(s.cd2.external).toMatchObject({ active: live, created: live, destroyed: 0 });
  });

  it('conntrackd -c and ctsyncd commit on fw2 rebuild the same table, NAT reply tuples included', async () => {
    const x = c();
    const p = x.pair;
    const before = await p.ctsyncdDump('fw2', 'external');
    expect(await kernelTable(p.ns('fw2'))).toEqual([]);
    await p.cd.fw2.commit();
    const committed = await kernelTable(p.ns('fw2'));
    // DIFFERENCE (conntrackd quirk): conntrackd commits the UDP-Lite and
    // GRE entries it received without ports (see conntrackdExternalExpected)
    // with ports/keys 0, and the kernel takes them: entries no packet of
    // the real flow will ever match. ctsyncd holds the real ones.
    const want = before.map((v) => {
      if (!PORTLESS_ON_CONNTRACKD_WIRE.has(v.proto)) return v;
      const [rsrc, rdst] = v.reply!.split(' ');
      return { ...v, key: wireKey(v), reply: `${rsrc} ${rdst} 0>0` };
    });
    console.log(`commit: conntrackd committed ${committed.length}; ctsyncd's external cache holds ${before.length}`);
    expect(diffViews('fw2 kernel after conntrackd -c', want, committed, ALL_FIELDS)).toEqual([]);
    // Timeouts: conntrackd commits the synced timeout minus the time since
    // the entry was last updated; ctsyncd keeps the synced timeout. The two
    // are separate daemons on both nodes, each reading, sending and ageing
    // in its own time: on a loaded machine (a clean-clone CI run at load 12,
    // 2026-12-07) conntrackd committed 16 of 299 entries above ctsyncd's
    // copy; a few seconds over it are those clocks, not a timeout made up.
    const CLOCKS_S = 10;
    const ext = new Map(want.map((v) => [v.key, v]));
    const bad = committed.filter((v) => {
      const t = ext.get(v.key)?.timeout ?? -1;
      return v.timeout === undefined || v.timeout > t + CLOCKS_S || v.timeout < t - 60;
    });
    expect(bad.map((v) => `${v.key} ${v.timeout} vs ${ext.get(v.key)?.timeout}`)).toEqual([]);

    // Both fw2 daemons now see the committed entries as fw2's own table:
    // conntrackd caches them (origin COMMIT, not sent back) and so does
    // ctsyncd (someone else's commit, so it does replicate them to fw1).
    const fw2Internal = async () => {
      const truth = await kernelTable(p.ns('fw2'));
      return [
        ...diffViews('conntrackd fw2 -i', truth, (await p.cd.fw2.internal()).map(fromText), ALL_FIELDS),
        ...diffViews('ctsyncd fw2 internal', truth, await p.ctsyncdDump('fw2', 'internal'), ALL_FIELDS),
      ];
    };
    expect(await settle(fw2Internal)).toEqual([]);

    // The same external state committed by ctsyncd instead, into an emptied table.
    await p.ns('fw2').exec('conntrack', ['-F']);
    expect(
      await settle(async () => {
        const left = [
          ...(await kernelTable(p.ns('fw2'))),
          ...(await p.cd.fw2.internal()).map(fromText),
          ...(await p.ctsyncdDump('fw2', 'internal')),
        ];
        return left.map((v) => `fw2 not empty after conntrack -F: ${v.key}`);
      }),
    ).toEqual([]);
    const report = (await p.cluster.request('fw2', 'commit')) as { committed: number; failed: number };
    expect(report).toMatchObject({ committed: before.length, failed: 0 });
    const byCtsyncd = await kernelTable(p.ns('fw2'));
    console.log(`commit: ctsyncd committed ${byCtsyncd.length}`);
    // What ctsyncd commits is its external cache as it is, UDP-Lite and GRE included.
    expect(diffViews('fw2 kernel after ctsyncd commit', before, byCtsyncd, ALL_FIELDS)).toEqual([]);
    const extAll = new Map(before.map((v) => [v.key, v]));
    const badCt = byCtsyncd.filter((v) => {
      const t = extAll.get(v.key)?.timeout ?? -1;
      return v.timeout === undefined || v.timeout > t || v.timeout < t - 60;
    });
    expect(badCt.map((v) => `${v.key} ${v.timeout} vs ${extAll.get(v.key)?.timeout}`)).toEqual([]);
    // DIFFERENCE (deliberate): a daemon's view of its own commit. conntrackd
    // caches the events of its own commit (origin COMMIT, not sent on), as
    // seen above; ctsyncd's own writes never reach its event socket (a BPF
    // filter on its port ids), so its internal cache learns the committed
    // entries from the kernel resync (-R) that follows a commit in the
    // failover sequence. conntrackd, for which this commit is someone
    // else's, caches it like any kernel change.
    const truthAfter = await kernelTable(p.ns('fw2'));
    expect(
      await settle(async () => [
        ...diffViews('conntrackd fw2 -i', truthAfter, (await p.cd.fw2.internal()).map(fromText), ALL_FIELDS),
        ...diffViews('ctsyncd fw2 internal', [], await p.ctsyncdDump('fw2', 'internal'), ALL_FIELDS),
      ]),
    ).toEqual([]);
    await p.cluster.request('fw2', 'resync');
    expect(
      diffViews('ctsyncd fw2 internal after resync', truthAfter, await p.ctsyncdDump('fw2', 'internal'), ALL_FIELDS),
    ).toEqual([]);
  });
});

describe('differential: TCP state and protocol filters on both daemons', () => {
  // The same rules on both: UDP ignored, TCP TIME_WAIT and CLOSE ignored.
  let pair: Pair | undefined;

  beforeAll(async () => {
    const ctsyncdYaml = 'filter:\n  protocols: { ignore: [udp] }\n  tcpStates: { ignore: [TIME_WAIT, CLOSE] }';
    // ctsyncd's kernel-side event filter on: the caches must agree all the same.
    pair = await Pair.start({
      ctsyncdYaml,
      conntrackd: { protocols: { ignore: ['UDP'] }, tcpStates: { ignore: ['TIME_WAIT', 'CLOSE'] } },
      kernelFilter: true,
    });
  });

  afterAll(async () => {
    await pair?.stop();
    pair = undefined;
  });

  it('agree on what is filtered and on stale copies; a filtered DESTROY strands an entry in conntrackd', async () => {
    const p = pair!;
    const fw1 = p.ns('fw1');
    const entries = new Map<string, ConntrackEntry>();
    const put = (name: string, e: ConntrackEntry) => entries.set(name, e);
    const est = (i: number) => tcp(`${CLI}.${1 + i}`, `${SRV}.1`, 20000 + i, 443, 'ESTABLISHED');
    for (let i = 0; i < 10; i++) put(`keep${i}`, est(i));
    for (let i = 0; i < 5; i++) put(`closing${i}`, est(10 + i));
    for (let i = 0; i < 3; i++) put(`gone${i}`, est(20 + i));
    for (let i = 0; i < 2; i++) put(`finwait${i}`, est(30 + i));
    for (let i = 0; i < 2; i++) put(`icmp${i}`, icmp(`${CLI}.${40 + i}`, `${SRV}.1`, 100 + i));
    // Filtered by both from the start.
    for (let i = 0; i < 5; i++) put(`tw${i}`, tcp(`${CLI}.${50 + i}`, `${SRV}.1`, 21000 + i, 443, 'TIME_WAIT'));
    for (let i = 0; i < 2; i++) put(`close${i}`, tcp(`${CLI}.${60 + i}`, `${SRV}.1`, 22000 + i, 443, 'CLOSE'));
    for (let i = 0; i < 3; i++) put(`reopen${i}`, tcp(`${CLI}.${70 + i}`, `${SRV}.1`, 23000 + i, 443, 'TIME_WAIT'));
    for (let i = 0; i < 5; i++) put(`udp${i}`, udp(`${CLI}.${80 + i}`, `${SRV}.53`, 40000 + i, 53, true));
    const res = await p.link.batch([...entries.values()].map((entry) => ({ op: 'create' as const, entry })));
    expect(res.failures).toEqual({});

    const keyOf = (name: string) => expectedKey(entries.get(name)!);
    const table = async () => new Map((await kernelTable(fw1)).map((v) => [v.key, v]));
    /** What each daemon should show, by item name. */
    const cdShown = new Map<string, View>();
    const ctShown = new Map<string, View>();
    const show = (names: string[], truth: Map<string, View>) => {
      for (const n of names) {
        cdShown.set(n, truth.get(keyOf(n))!);
        ctShown.set(n, truth.get(keyOf(n))!);
      }
    };
    const compare = async () => {
      const [cdInt, ctInt, cdExt, ctExt] = await Promise.all([
        p.cd.fw1.internal(),
        p.ctsyncdDump('fw1', 'internal'),
        p.cd.fw2.external(),
        p.ctsyncdDump('fw2', 'external'),
      ]);
      const cdWant = [...cdShown.values()];
      const ctWant = [...ctShown.values()];
      return [
        ...diffViews('conntrackd fw1 -i', cdWant, cdInt.map(fromText), ALL_FIELDS),
        ...diffViews('ctsyncd fw1 internal', ctWant, ctInt, ALL_FIELDS),
        // conntrackd -e shows no reply tuple (see compareFour).
        ...diffViews(
          'conntrackd fw2 -e',
          cdWant.map((v) => ({ ...v, reply: undefined })),
          cdExt.map(fromText),
          ALL_FIELDS.filter((f) => f !== 'reply'),
        ),
        ...diffViews('ctsyncd fw2 external', ctWant, ctExt, ALL_FIELDS),
      ];
    };
    const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

    // Creates: both cache the same 22 entries; UDP, TIME_WAIT and CLOSE are filtered.
    const t1 = await table();
    const cachedAtStart = [
      ...range('keep', 10),
      ...range('closing', 5),
      ...range('gone', 3),
      ...range('finwait', 2),
      ...range('icmp', 2),
    ];
    show(cachedAtStart, t1);
    expect(await settle(compare)).toEqual([]);

    // Updates. closing*: ESTABLISHED -> TIME_WAIT is filtered, so both keep
    // the ESTABLISHED copy (conntrackd drops the event; ctsyncd merges it,
    // filters the result and leaves the cached entry as it was). reopen*:
    // TIME_WAIT -> ESTABLISHED, an UPDATE for an uncached key that now
    // passes: both create the entry. finwait*: an accepted state change.
    const kernel = new Map((await p.link.list()).map((e) => [expectedKey(e), e]));
    const upd = (name: string, st: TcpStateName): BatchItem => ({
      op: 'update',
      entry: { ...kernel.get(keyOf(name))!, protoinfo: { tcp: { state: STATE[st] } } },
    });
    const r2 = await p.link.batch([
      ...range('closing', 5).map((n) => upd(n, 'TIME_WAIT')),
      ...range('reopen', 3).map((n) => upd(n, 'ESTABLISHED')),
      ...range('finwait', 2).map((n) => upd(n, 'FIN_WAIT')),
    ]);
    expect(r2.failures).toEqual({});
    const t2 = await table();
    show([...range('reopen', 3), ...range('finwait', 2)], t2);
    expect(t2.get(keyOf('closing0'))!.state).toBe('TIME_WAIT');
    expect(cdShown.get('closing0')!.state).toBe('ESTABLISHED');
    expect(await settle(compare)).toEqual([]);

    // Deletes of closing* (now TIME_WAIT in the kernel), gone*, and two
    // entries that were never cached.
    const del = [...range('closing', 5), ...range('gone', 3), 'tw0', 'udp0'];
    const r3 = await p.link.batch(del.map((n) => ({ op: 'delete' as const, entry: kernel.get(keyOf(n))! })));
    expect(r3.failures).toEqual({});
    for (const n of range('gone', 3)) {
      cdShown.delete(n);
      ctShown.delete(n);
    }
    // DIFFERENCE (conntrackd quirk; ctsyncd's choice is deliberate):
    // conntrackd filters DESTROY events like any other (src/ctnl.c
    // event_handler), and a TIME_WAIT connection's DESTROY fails the state
    // rule. Its cached ESTABLISHED copy therefore stays in -i, and on the
    // peer in -e, after the connection is gone: a zombie that `conntrackd -c`
    // would inject at failover. ctsyncd removes a cached entry on DESTROY
    // whatever the filter says (src/cache/internal-cache.ts).
    for (const n of range('closing', 5)) ctShown.delete(n);
    expect(await settle(compare)).toEqual([]);
    const t3 = await table();
    expect(t3.has(keyOf('closing0'))).toBe(false);
    const zombies = cdShown.size - ctShown.size;
    console.log(`filters: conntrackd keeps ${cdShown.size} entries, ctsyncd ${ctShown.size}; ${zombies} zombies`);

    const s = await p.stats();
    // 22 + 3 reopened entries created; 2 updated; destroyed: conntrackd only
    // gone* (3), ctsyncd gone* and closing* (8).
    expect(s.cd1.internal).toMatchObject({ active: 22, created: 25, updated: 2, destroyed: 3 });
    expect(s.ct1.internal).toMatchObject({ entries: 17, created: 25, updated: 2, destroyed: 8, missing: 1 });
    // Filtered events. conntrackd: 15 NEW (5 UDP, 5 TIME_WAIT, 2 CLOSE, 3
    // reopen), 5 UPDATE (closing*), 7 DESTROY (closing*, tw0, udp0).
    // ctsyncd: its kernel filter drops every UDP event (NEW and udp0's
    // DESTROY) and the 5 UPDATEs into TIME_WAIT, so userspace counts only
    // the 10 TCP NEWs in rejected states (a NEW stays with userspace: it may
    // replace a cached entry of its key). DESTROYs are never filtered by
    // state: tw0's, uncached, counts as missing.
    expect(s.cdNetlink1['events filtered']).toBe(15 + 5 + 7);
    expect(s.ct1.internal.filtered).toEqual({ protocol: 0, address: 0, 'tcp-state': 10 });
    expect(s.ct1.kernel.eventFilter.rules).toEqual(['address-ignore', 'protocol', 'tcp-state']);
    expect(s.cd2.external).toMatchObject({ active: 22, created: 25, updated: 2, destroyed: 3 });
    expect(s.ct2.external).toMatchObject({ entries: 17, created: 25, updated: 2, deleted: 8 });
  });
});

/**
 * Real connections inside fw1, between two addresses on its loopback
 * device, run by a child node process driven over stdin: TCP (IPv4 and
 * IPv6) held open, then closed; a UDP exchange; a refused connection. It
 * prints "ready" once everything is open and "closed" once the TCP
 * connections are closed.
 */
const TRAFFIC_SCRIPT = `
const net = require('node:net');
const dgram = require('node:dgram');
const { once } = require('node:events');
const pairs = [['10.99.254.1', '10.99.254.2'], ['fd99:254::1', 'fd99:254::2']];
const clients = [];
(async () => {
  for (const [srv, cli] of pairs) {
    const s = net.createServer((c) => { c.on('data', (d) => c.write(d)); c.on('error', () => {}); });
    s.listen(8000, srv);
    await once(s, 'listening');
    const c = net.connect({ host: srv, port: 8000, localAddress: cli });
    await once(c, 'connect');
    c.write('hello');
    await once(c, 'data');
    clients.push([c, s]);
    const type = srv.includes(':') ? 'udp6' : 'udp4';
    const u = dgram.createSocket(type);
    u.on('message', (m, r) => u.send(m, r.port, r.address));
    u.bind(5353, srv);
    await once(u, 'listening');
    const uc = dgram.createSocket(type);
    uc.bind(0, cli);
    await once(uc, 'listening');
    uc.send('ping', 5353, srv);
    await once(uc, 'message');
    const refused = net.connect({ host: srv, port: 8001, localAddress: cli });
    await once(refused, 'error');
  }
  console.log('ready');
  await once(process.stdin, 'data');
  for (const [c] of clients) { c.end(); await once(c, 'close'); }
  console.log('closed');
  await once(process.stdin, 'data');
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('differential: real traffic in fw1 (packet-path events, partial updates)', () => {
  let pair: Pair | undefined;
  let traffic: ChildProcess | undefined;

  beforeAll(async () => {
    pair = await Pair.start();
    const fw1 = pair.ns('fw1');
    for (const a of ['10.99.254.1/32', '10.99.254.2/32', 'fd99:254::1/128', 'fd99:254::2/128']) {
      await fw1.exec('ip', ['addr', 'add', a, 'dev', 'lo']);
    }
    // Any ct expression makes the kernel track this namespace's traffic.
    const chain = 'chain out { type filter hook output priority 0; policy accept; ct state new counter; }';
    await fw1.exec('nft', [`add table inet ctdiff { ${chain}; }`]);
  });

  afterAll(async () => {
    if (traffic && traffic.exitCode === null && traffic.signalCode === null) traffic.kill('SIGKILL');
    await pair?.stop();
    pair = undefined;
  });

  it('both follow connections through their states from packet-path events alike', async () => {
    const p = pair!;
    const fw1 = p.ns('fw1');
    const sync = p.cluster.node('fw1').syncAddress;
    // The kernel now also tracks the daemons' own sync traffic, which both
    // filter by address (fw1's sync address on either side).
    const truth = async () =>
      (await kernelTable(fw1)).filter((v) => !v.key.includes(`|${sync}|`) && !(v.reply ?? '').startsWith(`${sync} `));
    const child = spawn('ip', ['netns', 'exec', fw1.name, process.execPath, '-e', TRAFFIC_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    traffic = child;
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.stderr.on('data', (d: string) => (out += d));
    await waitFor(() => out.includes('ready'), 'traffic ready', 15_000, () => out);
    await fw1.exec('ping', ['-c', '1', '-W', '2', '10.99.254.1']);

    const open = await truth();
    const states = (vs: View[]) => vs.map((v) => `${v.proto}:${v.state ?? ''}`).sort();
    console.log(`traffic open: ${JSON.stringify(states(open))}`);
    expect(open.filter((v) => v.proto === 'tcp' && v.state === 'ESTABLISHED' && v.assured)).toHaveLength(2);
    expect(await settle(async () => compareFour(p, await truth()))).toEqual([]);

    child.stdin.write('close\n');
    await waitFor(() => out.includes('closed'), 'connections closed', 15_000, () => out);
    expect(await settle(async () => compareFour(p, await truth()))).toEqual([]);
    const closed = await truth();
    console.log(`traffic closed: ${JSON.stringify(states(closed))}`);
    expect(closed.filter((v) => v.proto === 'tcp' && v.state === 'TIME_WAIT')).toHaveLength(2);
    child.stdin.write('exit\n');
    await once(child, 'exit');

    // Packet-path UPDATE events carry only what changed (no protoinfo when
    // the state stayed, no mark): both must have merged them onto the
    // cached entry, which the comparisons above checked. Counters: both saw
    // the same events (the sync traffic's included); conntrackd counts
    // every UPDATE of a cached entry that passes the filter as "updated",
    // ctsyncd splits them into "updated" (something besides the timeout
    // changed) and "unchanged".
    // The two daemons' stats are read one after the other while the kernel
    // may still report the sync flows' own events (a UDP flow turning
    // ASSURED), so an event can fall between the two reads: compare
    // snapshots until one pair agrees, and report the last pair otherwise.
    let s = await p.stats();
    const counters = (x: typeof s): string[] => {
      const ev = x.ct1.kernel.events;
      const pairs: [string, number, number][] = [
        ['events', x.cdNetlink1['events received'], ev.new + ev.update + ev.destroy],
        ['created', x.cd1.internal!.created, x.ct1.internal.created],
        ['entries', x.cd1.internal!.active, x.ct1.internal.entries],
        ['updated', x.cd1.internal!.updated, x.ct1.internal.updated + x.ct1.internal.unchanged],
      ];
      return pairs.filter(([, a, b]) => a !== b).map(([n, a, b]) => `${n}: conntrackd ${a} ctsyncd ${b}`);
    };
    expect(
      await settle(async () => {
        s = await p.stats();
        return counters(s);
      }, 5_000),
    ).toEqual([]);
    console.log(
      `traffic counters: conntrackd created ${s.cd1.internal!.created} updated ${s.cd1.internal!.updated}; ` +
        `ctsyncd created ${s.ct1.internal.created} updated ${s.ct1.internal.updated} ` +
        `unchanged ${s.ct1.internal.unchanged}`,
    );
  });
});

/** fw1's kernel entries by workload item name, as ConntrackLink decodes them (to build updates). */
async function kernelEntries(x: Ctx): Promise<Map<string, ConntrackEntry>> {
  const byKey = new Map((await x.pair.link.list()).map((e) => [expectedKey(e), e]));
  const out = new Map<string, ConntrackEntry>();
  for (const [name, key] of x.keyOf) {
    const e = byKey.get(key);
    if (e && !x.deleted.has(name)) out.set(name, e);
  }
  return out;
}

/** View.key of an entry we built (the kernel's listing must produce the same). */
function expectedKey(e: ConntrackEntry): string {
  const o: Tuple = e.orig;
  const name = { 1: 'icmp', 6: 'tcp', 17: 'udp', 47: 'gre', 58: 'icmpv6', 132: 'sctp', 136: 'udplite' }[o.proto];
  const l4 =
    o.icmpType !== undefined
      ? `t${o.icmpType}c${o.icmpCode ?? 0}i${o.icmpId ?? 0}`
      : `${o.sport ?? ''}>${o.dport ?? ''}`;
  return `${name}|${canonical(o.src)}|${canonical(o.dst)}|${l4}|z${e.zone ?? 0}`;
}

function cliKey(args: string[]): string {
  const arg = (flag: string) => args[args.indexOf(flag) + 1]!;
  const zone = args.includes('-w') ? Number(arg('-w')) : 0;
  return `${arg('-p')}|${arg('-s')}|${arg('-d')}|${arg('--sport')}>${arg('--dport')}|z${zone}`;
}

/** Entries conntrackd's external cache lost to shared keys. */
function collapsedCount(x: Ctx): number {
  let portless = 0;
  for (const [name, k] of x.keyOf) {
    if (!x.deleted.has(name) && PORTLESS_ON_CONNTRACKD_WIRE.has(k.split('|')[0]!)) portless++;
  }
  return portless - x.cdWire.size;
}


// The helper's parsers on lines the Debian 1.4.7 binaries printed (no namespaces needed).
describe('conntrackd helper: parsing conntrack(8) and conntrackd output', () => {
  it('entry lines: conntrack -L, conntrackd -i and -e, ICMP, GRE, IPv6, -o extended, -o id', () => {
    const l = parseConntrackText(
      [
        'tcp      6 3598 ESTABLISHED src=10.99.200.5 dst=10.99.201.1 sport=1000 dport=80 src=10.99.201.1 ' +
          'dst=10.99.200.5 sport=80 dport=1000 [ASSURED] mark=0 zone=7 use=1',
        'icmp     1 src=10.99.200.4 dst=10.99.201.1 type=8 code=0 id=4660 [UNREPLIED] src=10.99.201.1 ' +
          'dst=10.99.200.4 type=0 code=0 id=4660 mark=0 [active since 1s]',
        'tcp      6 ESTABLISHED src=10.99.200.9 dst=10.99.201.1 sport=1000 dport=80 [ASSURED] mark=0 [active since 1s]',
        'gre      47 599 src=10.99.251.1 dst=10.99.252.1 srckey=0x5 dstkey=0x6 [UNREPLIED] src=10.99.252.1 ' +
          'dst=10.99.251.1 srckey=0x6 dstkey=0x5 mark=0 use=1',
        'icmpv6   58 src=fd99::1 dst=fd99::2 type=128 code=0 id=77 [UNREPLIED] mark=0 [active since 1s]',
        'ipv4     2 udp      17 28 src=10.0.0.1 dst=10.0.0.2 sport=53 dport=53 [UNREPLIED] src=10.0.0.2 ' +
          'dst=10.0.0.1 sport=53 dport=53 mark=0 use=1 id=3735928559',
        'udp      17 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 mark=0 [expires in 170s]',
        'conntrack v1.4.7 (conntrack-tools): 7 flow entries have been shown.',
      ].join('\n'),
    );
    expect(l).toHaveLength(7);
    expect(l[0]).toMatchObject({
      proto: 'tcp',
      protonum: 6,
      timeout: 3598,
      state: 'ESTABLISHED',
      orig: { src: '10.99.200.5', dst: '10.99.201.1', sport: 1000, dport: 80 },
      reply: { src: '10.99.201.1', dst: '10.99.200.5', sport: 80, dport: 1000 },
      flags: ['ASSURED'],
      mark: 0,
      zone: 7,
      use: 1,
    });
    expect(l[1]!.timeout).toBeUndefined();
    expect(l[1]).toMatchObject({
      orig: { type: 8, code: 0, id: 4660 },
      reply: { type: 0, code: 0, id: 4660 },
      flags: ['UNREPLIED'],
      activeSince: 1,
    });
    expect(l[2]!.reply).toBeUndefined();
    expect(l[3]!.orig.fields).toMatchObject({ srckey: '0x5', dstkey: '0x6' });
    expect(l[4]).toMatchObject({ proto: 'icmpv6', orig: { src: 'fd99::1', id: 77 } });
    expect(l[4]!.reply).toBeUndefined();
    // The conntrack id after use= is no ICMP id and no tuple field.
    expect(l[5]).toMatchObject({ l3: 'ipv4', proto: 'udp', timeout: 28, use: 1, fields: { id: '3735928559' } });
    expect(l[5]!.reply!.fields.id).toBeUndefined();
    expect(l[6]).toMatchObject({ expiresIn: 170 });
  });

  it('statistics: -s and -s cache', () => {
    const s = parseConntrackdStats(
      [
        'cache internal:',
        'current active connections:\t         361',
        'connections created:\t\t         361\tfailed:\t           0',
        'connections updated:\t\t         103\tfailed:\t           0',
        'connections destroyed:\t\t          78\tfailed:\t           1',
        '',
        'cache external:',
        'current active connections:\t           0',
        'connections created:\t\t           0\tfailed:\t           0',
        'connections updated:\t\t           0\tfailed:\t           0',
        'connections destroyed:\t\t           0\tfailed:\t           0',
        '',
        'traffic processed:',
        '                   0 Bytes                         0 Pckts',
        '',
        'UDP traffic (active device=sync0):',
        '               31540 Bytes sent                   32 Bytes recv',
        '                  38 Pckts sent                    2 Pckts recv',
        '                   0 Error send                    0 Error recv',
        '',
      ].join('\n'),
    );
    expect(s.internal).toEqual({
      active: 361,
      created: 361,
      createFailed: 0,
      updated: 103,
      updateFailed: 0,
      destroyed: 78,
      destroyFailed: 1,
    });
    expect(s.external?.active).toBe(0);
    expect(s.sections['UDP traffic (active device=sync0)']).toEqual({
      'Bytes sent': 31540,
      'Bytes recv': 32,
      'Pckts sent': 38,
      'Pckts recv': 2,
      'Error send': 0,
      'Error recv': 0,
    });
    const cs = parseConntrackdCacheStats(
      [
        'cache:internal\tactive objects:\t\t           8',
        '\tactive/total entries:\t\t           8/           9',
        '\tcreation OK/failed:\t\t           8/           0',
        '\t\tno memory available:\t           0',
        '\t\tno space left in cache:\t           0',
        '\tupdate OK/failed:\t\t           2/           0',
        '\t\tentry not found:\t           3',
        '\tdeletion created/failed:\t           1/           0',
        '\t\tentry not found:\t           4',
        '',
      ].join('\n'),
    );
    expect(cs.internal).toEqual({
      objects: 8,
      active: 8,
      total: 9,
      createOk: 8,
      createFailed: 0,
      noMemory: 0,
      noSpace: 0,
      updateOk: 2,
      updateFailed: 0,
      updateNotFound: 3,
      deleteOk: 1,
      deleteFailed: 0,
      deleteNotFound: 4,
    });
  });
});
