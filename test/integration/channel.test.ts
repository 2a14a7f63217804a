// Sync channels on real sockets between two network namespaces joined by
// veth pairs. Each endpoint is a child process started with `ip netns exec`
// (helpers/channel-peer.ts), so interface lookup, sysfs and binding all
// happen inside the namespace, as in the daemon. Only 10.99.0.0/16,
// fd99::/16 and 225.99.0.0/16 are used, with random parts so parallel runs
// never meet, and only inside namespaces made here.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PeerCommand, PeerEvent, PeerSpec } from './helpers/channel-peer.js';
import { createNetns, type Netns } from './helpers/netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const PEER_ENTRY = join(ROOT, 'test/integration/helpers/channel-peer.ts');

let buildDir = '';
let peerScript = '';
const namespaces: Netns[] = [];
const peers: Peer[] = [];

/**
 * Transpiles the peer script and everything it imports relatively into a
 * scratch tree with the repository's layout, so plain `node` can run it in
 * a namespace. Type-only imports vanish in transpilation, so the walk only
 * follows what is loaded at run time.
 */
function transpileTree(entry: string, outDir: string): string {
  const queue = [entry];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const out = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const dest = join(outDir, relative(ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, out);
    for (const m of out.matchAll(/(?:from|import)\s*'(\.{1,2}\/[^']+)\.js'/g)) {
      queue.push(resolve(dirname(file), `${m[1]}.ts`));
    }
  }
  writeFileSync(join(outDir, 'package.json'), '{"type":"module"}\n');
  return join(outDir, relative(ROOT, entry)).replace(/\.ts$/, '.js');
}

beforeAll(() => {
  buildDir = mkdtempSync(join(tmpdir(), 'ctsyncd-channel-'));
  peerScript = transpileTree(PEER_ENTRY, buildDir);
});

afterAll(() => {
  if (buildDir !== '') rmSync(buildDir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.stop()));
  await Promise.all(namespaces.splice(0).map((ns) => ns.destroy()));
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

type StatsEvent = Extract<PeerEvent, { ev: 'stats' }>;
type RecvEvent = Extract<PeerEvent, { ev: 'recv' }>;

/** One ChannelSet in a namespace, driven over the child's stdin/stdout. */
class Peer {
  readonly events: PeerEvent[] = [];
  private stderr = '';
  private exited = false;
  private nextId = 1;

  private constructor(
    readonly label: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.events.push(JSON.parse(line) as PeerEvent);
    });
    child.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    child.on('exit', () => {
      this.exited = true;
    });
  }

  /** Resolves once the set started, or with the child's error event when it refused to. */
  static async start(label: string, ns: Netns, spec: PeerSpec): Promise<Peer> {
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, peerScript, JSON.stringify(spec)], {
      env: { ...process.env, CTSYNCD_CHANNEL_PEER: '1' },
    });
    const peer = new Peer(label, child);
    peers.push(peer);
    await until(
      () => peer.events.some((e) => e.ev === 'ready' || e.ev === 'error') || peer.exited,
      `${label} to start`,
    );
    if (!peer.events.some((e) => e.ev === 'ready' || e.ev === 'error')) {
      throw new Error(`${label} exited before starting: ${peer.stderr}`);
    }
    return peer;
  }

  get startError(): Extract<PeerEvent, { ev: 'error' }> | undefined {
    return this.events.find((e): e is Extract<PeerEvent, { ev: 'error' }> => e.ev === 'error');
  }

  command(cmd: PeerCommand): void {
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  send(data: string): void {
    this.command({ op: 'send', data });
  }

  received(): RecvEvent[] {
    return this.events.filter((e): e is RecvEvent => e.ev === 'recv');
  }

  activeChanges(): Array<Extract<PeerEvent, { ev: 'active' }>> {
    return this.events.filter((e): e is Extract<PeerEvent, { ev: 'active' }> => e.ev === 'active');
  }

  async stats(): Promise<StatsEvent> {
    const id = this.nextId++;
    this.command({ op: 'stats', id });
    let found: StatsEvent | undefined;
    await until(() => {
      found = this.events.find((e): e is StatsEvent => e.ev === 'stats' && e.id === id);
      return found !== undefined;
    }, `${this.label} stats`);
    return found as StatsEvent;
  }

  /** Log lines, for failure messages. */
  logs(): string {
    return this.events
      .filter((e) => e.ev === 'log')
      .map((e) => JSON.stringify(e))
      .join('\n');
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.stdin.end();
    const deadline = Date.now() + 3000;
    while (!this.exited && Date.now() < deadline) await sleep(10);
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

function rnd(n: number): number {
  return (randomBytes(2).readUInt16BE(0) % n) + 1;
}

interface Link {
  /** Interface names in namespace a and b. */
  a: string;
  b: string;
  v4: [string, string];
  v6: [string, string];
}

interface Pair {
  a: Netns;
  b: Netns;
  links: Link[];
}

/** Two namespaces joined by `count` veth pairs, link i on 10.99.(x+i).0/24 and fd99:(x+i)::/64. */
async function makePair(count: number): Promise<Pair> {
  const a = await createNetns('ctcha');
  namespaces.push(a);
  const b = await createNetns('ctchb');
  namespaces.push(b);
  const x = rnd(250);
  const tag = randomBytes(3).toString('hex');
  const links: Link[] = [];
  for (let i = 0; i < count; i++) {
    const subnet = x + i;
    const link: Link = {
      a: `v${tag}${i}a`,
      b: `v${tag}${i}b`,
      v4: [`10.99.${subnet}.1`, `10.99.${subnet}.2`],
      v6: [`fd99:${subnet}::1`, `fd99:${subnet}::2`],
    };
    await run('ip', ['link', 'add', link.a, 'netns', a.name, 'type', 'veth', 'peer', 'name', link.b, 'netns', b.name]);
    for (const [ns, dev, v4, v6] of [
      [a, link.a, link.v4[0], link.v6[0]],
      [b, link.b, link.v4[1], link.v6[1]],
    ] as const) {
      // Link-local addresses would otherwise sit in DAD for a second or two.
      await ns.exec('sysctl', ['-qw', `net.ipv6.conf.${dev}.accept_dad=0`]);
      await run('ip', ['-n', ns.name, 'addr', 'add', `${v4}/24`, 'dev', dev]);
      await run('ip', ['-n', ns.name, 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad']);
      await run('ip', ['-n', ns.name, 'link', 'set', dev, 'up']);
    }
    links.push(link);
  }
  for (const link of links) {
    await waitOperUp(a, link.a);
    await waitOperUp(b, link.b);
  }
  return { a, b, links };
}

async function waitOperUp(ns: Netns, dev: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { stdout } = await run('ip', ['-n', ns.name, '-j', 'link', 'show', 'dev', dev]);
    if ((JSON.parse(stdout) as Array<{ operstate?: string }>)[0]?.operstate === 'UP') return;
    if (Date.now() > deadline) throw new Error(`${dev} in ${ns.name} did not come up`);
    await sleep(20);
  }
}

function group(): string {
  return `225.99.${rnd(254)}.${rnd(254)}`;
}

function port(): number {
  return 20_000 + rnd(20_000);
}

/** Sends `count` datagrams `prefix-i` and waits until the receiver has all of them. */
async function exchange(from: Peer, to: Peer, prefix: string, count: number): Promise<RecvEvent[]> {
  for (let i = 0; i < count; i++) from.send(`${prefix}-${i}`);
  await until(
    () => to.received().filter((e) => e.data.startsWith(`${prefix}-`)).length >= count,
    `${to.label} to receive ${count} × ${prefix}\n${from.logs()}\n${to.logs()}`,
  );
  return to.received().filter((e) => e.data.startsWith(`${prefix}-`));
}

describe('sync channels between network namespaces', () => {
  it('IPv4 multicast crosses the link with TTL 1 and never loops back to the sender', async () => {
    const { a, b, links } = await makePair(1);
    const link = links[0] as Link;
    const g = group();
    const p = port();
    // Count what arrives in b by TTL, as an independent witness of the wire.
    await b.exec('nft', ['add', 'table', 'inet', 'cttest']);
    await b.exec('nft', ['add', 'chain', 'inet', 'cttest', 'in', '{ type filter hook input priority 0 ; }']);
    for (const [ttl, tag] of [
      ['1', 'ttl1'],
      ['!= 1', 'ttlother'],
    ] as const) {
      await b.exec('nft', [
        'add',
        'rule',
        'inet',
        'cttest',
        'in',
        ...`ip daddr ${g} udp dport ${p} ip ttl ${ttl} counter comment "${tag}"`.split(' '),
      ]);
    }
    const pa = await Peer.start('a', a, { channels: [{ kind: 'multicast', group: g, port: p, interface: link.a }] });
    const pb = await Peer.start('b', b, { channels: [{ kind: 'multicast', group: g, port: p, interface: link.b }] });
    expect(pa.startError).toBeUndefined();
    expect(pb.startError).toBeUndefined();

    const got = await exchange(pa, pb, 'mc', 5);
    expect(got.map((e) => e.data).sort()).toEqual(['mc-0', 'mc-1', 'mc-2', 'mc-3', 'mc-4']);
    expect(got.every((e) => e.from === link.v4[0] && e.channel === link.b)).toBe(true);
    await exchange(pb, pa, 'back', 3);

    // Give a looped-back copy time to show up before checking it did not.
    await sleep(300);
    const sa = await pa.stats();
    expect(sa.channels[0]?.counters).toMatchObject({
      datagramsSent: 5,
      datagramsReceived: 3,
      droppedOwnSource: 0,
      sendErrors: 0,
    });
    expect(pa.received().filter((e) => e.data.startsWith('mc-'))).toEqual([]);

    const { stdout } = await b.exec('nft', ['-j', 'list', 'chain', 'inet', 'cttest', 'in']);
    const packets: Record<string, number> = {};
    for (const item of (JSON.parse(stdout) as { nftables: Array<Record<string, unknown>> }).nftables) {
      const rule = item.rule as { comment?: string; expr?: Array<{ counter?: { packets: number } }> } | undefined;
      const counter = rule?.expr?.find((e) => e.counter !== undefined)?.counter;
      if (rule?.comment !== undefined && counter !== undefined) packets[rule.comment] = counter.packets;
    }
    expect(packets).toEqual({ ttl1: 5, ttlother: 0 });
  });

  it('IPv6 multicast works with a link-local-scope group and a global-scope one', async () => {
    const { a, b, links } = await makePair(1);
    const link = links[0] as Link;
    const n = rnd(0xfff).toString(16);
    for (const g of [`ff02::c7:${n}`, `ff15::c7:${n}`]) {
      const p = port();
      const pa = await Peer.start('a', a, { channels: [{ kind: 'multicast', group: g, port: p, interface: link.a }] });
      const pb = await Peer.start('b', b, { channels: [{ kind: 'multicast', group: g, port: p, interface: link.b }] });
      expect(pa.startError).toBeUndefined();
      expect(pb.startError).toBeUndefined();
      const got = await exchange(pa, pb, `v6-${g}`, 3);
      expect(got.every((e) => e.channel === link.b)).toBe(true);
      await exchange(pb, pa, `v6back-${g}`, 3);
      await sleep(200);
      expect(pa.received().filter((e) => e.data.startsWith(`v6-${g}`))).toEqual([]);
      await pa.stop();
      await pb.stop();
    }
  });

  it.each([
    ['IPv4', 'v4'],
    ['IPv6', 'v6'],
  ] as const)('UDP unicast over %s, both directions', async (_label, fam) => {
    const { a, b, links } = await makePair(1);
    const link = links[0] as Link;
    const [addrA, addrB] = link[fam];
    const p = port();
    const pa = await Peer.start('a', a, { channels: [{ kind: 'udp', bind: addrA, port: p, peers: [addrB] }] });
    const pb = await Peer.start('b', b, { channels: [{ kind: 'udp', bind: addrB, port: p, peers: [addrA] }] });
    expect(pa.startError).toBeUndefined();
    expect(pb.startError).toBeUndefined();
    const got = await exchange(pa, pb, 'uc', 10);
    expect(got.every((e) => e.from === addrA)).toBe(true);
    await exchange(pb, pa, 'ucback', 10);
    const sa = await pa.stats();
    // The channel found the interface holding its bind address, so its link is watched.
    expect(sa.channels[0]).toMatchObject({ interfaceName: link.a, link: 'up' });
    expect(sa.channels[0]?.counters).toMatchObject({ datagramsReceived: 10, sendErrors: 0 });
  });

  it('fails over to the second link when the first goes down, and keeps delivering', async () => {
    const { a, b, links } = await makePair(2);
    const [l1, l2] = links as [Link, Link];
    // Same port, different groups: each socket is bound to its own group, so
    // neither channel may see the other link's traffic.
    const p = port();
    const g1 = group();
    let g2 = group();
    while (g2 === g1) g2 = group();
    const spec = (side: 'a' | 'b'): PeerSpec => ({
      checkIntervalMs: 100,
      channels: [
        { kind: 'multicast', group: g1, port: p, interface: l1[side] },
        { kind: 'multicast', group: g2, port: p, interface: l2[side] },
      ],
    });
    const pa = await Peer.start('a', a, spec('a'));
    const pb = await Peer.start('b', b, spec('b'));
    expect(pa.startError).toBeUndefined();
    expect(pb.startError).toBeUndefined();
    expect((await pa.stats()).active).toBe(l1.a);

    const before = await exchange(pa, pb, 'one', 10);
    expect(before.every((e) => e.channel === l1.b)).toBe(true);

    await run('ip', ['-n', a.name, 'link', 'set', l1.a, 'down']);
    await until(() => pa.activeChanges().some((e) => e.name === l2.a), `a to fail over\n${pa.logs()}`, 5000);
    await until(() => pb.activeChanges().some((e) => e.name === l2.b), `b to fail over\n${pb.logs()}`, 5000);
    expect(pa.activeChanges().at(-1)).toMatchObject({ name: l2.a, previous: l1.a });
    expect(['link-down', 'send-error']).toContain(pa.activeChanges().at(-1)?.reason);

    const after = await exchange(pa, pb, 'two', 10);
    expect(after.every((e) => e.channel === l2.b)).toBe(true);
    const back = await exchange(pb, pa, 'three', 10);
    expect(back.every((e) => e.channel === l2.a)).toBe(true);

    const sa = await pa.stats();
    expect(sa).toMatchObject({ active: l2.a, failovers: 1 });
    expect(sa.channels.map((c) => [c.name, c.link, c.active])).toEqual([
      [l1.a, 'down', false],
      [l2.a, 'up', true],
    ]);
    // Every datagram arrived exactly once, on the channel it was sent on.
    const all = pb.received().map((e) => e.data);
    expect(new Set(all).size).toBe(all.length);

    // The first link coming back does not take transmission back.
    await run('ip', ['-n', a.name, 'link', 'set', l1.a, 'up']);
    await waitOperUp(a, l1.a);
    await sleep(300);
    expect((await pa.stats()).active).toBe(l2.a);
  });

  it('starts on a backup link that has no carrier yet, and refuses an interface without an address', async () => {
    const { a, b, links } = await makePair(2);
    const [l1, l2] = links as [Link, Link];
    // Without carrier, os.networkInterfaces() hides the link's addresses.
    await run('ip', ['-n', b.name, 'link', 'set', l2.b, 'down']);
    const pa = await Peer.start('a', a, {
      checkIntervalMs: 100,
      channels: [
        { kind: 'multicast', group: group(), port: port(), interface: l1.a },
        { kind: 'multicast', group: group(), port: port(), interface: l2.a },
      ],
    });
    expect(pa.startError).toBeUndefined();
    const sa = await pa.stats();
    expect(sa.channels.map((c) => c.link)).toEqual(['up', 'down']);

    // A veth pair inside a: up, IPv6 link-local only, no IPv4 address.
    await a.exec('ip', ['link', 'add', 'bare0', 'type', 'veth', 'peer', 'name', 'bare1']);
    await a.exec('ip', ['link', 'set', 'bare0', 'up']);
    await a.exec('ip', ['link', 'set', 'bare1', 'up']);
    const bare = await Peer.start('bare', a, {
      channels: [{ kind: 'multicast', group: group(), port: port(), interface: 'bare0' }],
    });
    expect(bare.startError).toMatchObject({ code: 'ECHANNEL_IFACE', message: expect.stringContaining('bare0') });
    const missing = await Peer.start('missing', a, {
      channels: [{ kind: 'multicast', group: group(), port: port(), interface: 'nosuch0' }],
    });
    expect(missing.startError).toMatchObject({ code: 'ECHANNEL_IFACE', message: expect.stringContaining('nosuch0') });
  });
});
