// Firewall nodes for integration tests: one namespace per node, a shared
// sync link (a veth pair for two nodes, a bridge in its own namespace for
// more), and real daemons started from bin/ctsyncd inside the namespaces.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CONFIG_CACHE_DIR, ConfigCache } from '../../../src/config/cache.js';
import { controlRequest } from '../../../src/control/client.js';
import { createNetns, type Netns, uniqueName } from './netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');

export interface NodeHandle {
  id: string;
  ns: Netns;
  /** Address on the sync link. */
  syncAddress: string;
  socket: string;
  configPath: string;
  process?: ChildProcess;
  stderr: string[];
}

export interface ClusterOptions {
  nodes: number;
  transport: 'multicast' | 'udp';
  /** Extra YAML appended to each node's config, or per node. */
  extraYaml?: (node: string, index: number) => string;
  /** Extra lines inside each node's `sync:` section (indented by the caller, e.g. '  reliability: { … }'). */
  syncYaml?: string;
  /** Per-node sync.auth key files; without them sync.auth is none. */
  keyFiles?: (node: string, index: number, dir: string) => string[] | undefined;
  /**
   * The sync link: 'veth' (only for two nodes) or 'bridge' (a bridge in its
   * own namespace, so further hosts such as a relay can join with addHost).
   * Default: veth for two nodes, bridge for more.
   */
  topology?: 'veth' | 'bridge';
  /** Overrides sync.udp.peers of a node (default: every other node's sync address). */
  udpPeers?: (node: string, index: number, cluster: Cluster) => string[];
  /** More keys of the cluster section (YAML flow-map entries), e.g. `nodes: [fw1, fw2]`. */
  clusterYaml?: string;
  /** A tag of the test file put in front of its namespace and veth names, e.g. `ad`. */
  tag?: string;
}

export class Cluster {
  readonly nodes: NodeHandle[] = [];
  readonly dir: string;
  readonly subnet: number;
  readonly group: string;
  private bridgeNs: Netns | undefined;
  private readonly hosts: Netns[] = [];

  private constructor(readonly opts: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'ctsyncd-test-'));
    this.subnet = 1 + (randomBytes(1)[0]! % 250);
    this.group = `225.99.${this.subnet}.${1 + (randomBytes(1)[0]! % 250)}`;
  }

  static async create(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    try {
      await c.build();
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  private async build(): Promise<void> {
    for (let i = 0; i < this.opts.nodes; i++) {
      const ns = await createNetns(`${this.opts.tag ?? ''}ct${i + 1}`);
      this.nodes.push({
        id: `fw${i + 1}`,
        ns,
        syncAddress: `10.99.${this.subnet}.${i + 1}`,
        socket: join(this.dir, `fw${i + 1}.sock`),
        configPath: join(this.dir, `fw${i + 1}.yaml`),
        stderr: [],
      });
    }
    const topology = this.opts.topology ?? (this.nodes.length === 2 ? 'veth' : 'bridge');
    if (topology === 'veth' && this.nodes.length !== 2) throw new Error('a veth sync link joins exactly two nodes');
    if (topology === 'veth') {
      const a = uniqueName(`${this.opts.tag ?? ''}va`);
      const b = uniqueName(`${this.opts.tag ?? ''}vb`);
      await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
      await this.attach(a, this.nodes[0]!);
      await this.attach(b, this.nodes[1]!);
    } else {
      this.bridgeNs = await createNetns(`${this.opts.tag ?? ''}ctbr`);
      await this.bridgeNs.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
      await this.bridgeNs.exec('ip', ['link', 'set', 'br0', 'up']);
      for (const [i, n] of this.nodes.entries()) {
        const a = uniqueName(`${this.opts.tag ?? ''}va`);
        const b = uniqueName(`${this.opts.tag ?? ''}vb`);
        await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
        await this.attach(a, n);
        await run('ip', ['link', 'set', b, 'netns', this.bridgeNs.name]);
        await this.bridgeNs.exec('ip', ['link', 'set', b, 'name', `p${i}`]);
        await this.bridgeNs.exec('ip', ['link', 'set', `p${i}`, 'master', 'br0', 'up']);
      }
    }
    for (const [i, n] of this.nodes.entries()) {
      writeFileSync(n.configPath, this.configFor(n, i));
    }
  }

  private async attach(ifname: string, n: NodeHandle): Promise<void> {
    await this.attachNs(ifname, n.ns, [n.syncAddress]);
  }

  private async attachNs(ifname: string, ns: Netns, addresses: string[]): Promise<void> {
    await run('ip', ['link', 'set', ifname, 'netns', ns.name]);
    await ns.exec('ip', ['link', 'set', ifname, 'name', 'sync0']);
    for (const a of addresses) await ns.exec('ip', ['addr', 'add', `${a}/24`, 'dev', 'sync0']);
    await ns.exec('ip', ['link', 'set', 'sync0', 'up']);
  }

  /** Address on the sync link's /24 (10.99.<subnet>.<host>). */
  address(host: number): string {
    return `10.99.${this.subnet}.${host}`;
  }

  /**
   * A further namespace on the sync link (bridge topology only) holding the
   * given addresses on its `sync0`, e.g. for a relay between the nodes.
   * It is deleted by destroy().
   */
  async addHost(prefix: string, addresses: string[]): Promise<Netns> {
    const bridge = this.bridgeNs;
    if (!bridge) throw new Error('addHost needs the bridge topology');
    const ns = await createNetns(`${this.opts.tag ?? ''}${prefix}`);
    this.hosts.push(ns);
    const a = uniqueName(`${this.opts.tag ?? ''}va`);
    const b = uniqueName(`${this.opts.tag ?? ''}vb`);
    const port = `h${this.hosts.length - 1}`;
    await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    await this.attachNs(a, ns, addresses);
    await run('ip', ['link', 'set', b, 'netns', bridge.name]);
    await bridge.exec('ip', ['link', 'set', b, 'name', port]);
    await bridge.exec('ip', ['link', 'set', port, 'master', 'br0', 'up']);
    return ns;
  }

  configFor(n: NodeHandle, i: number): string {
    const peers = this.opts.udpPeers?.(n.id, i, this) ?? this.nodes.filter((x) => x !== n).map((x) => x.syncAddress);
    const keys = this.opts.keyFiles?.(n.id, i, this.dir);
    return [
      // The epoch file stays in the test's directory, not the host's /var/lib/ctsyncd.
      `node: { id: ${n.id}, stateDir: ${join(this.dir, 'state')} }`,
      this.opts.clusterYaml ? `cluster: { id: 7, ${this.opts.clusterYaml} }` : 'cluster: { id: 7 }',
      'sync:',
      `  transport: ${this.opts.transport}`,
      `  multicast: { group: ${this.group}, port: 3780, interface: sync0 }`,
      `  udp: { bind: ${n.syncAddress}, port: 3780, peers: [${peers.join(', ')}] }`,
      keys ? `  auth: { keyFiles: [${keys.join(', ')}] }` : '  auth: none',
      ...(this.opts.syncYaml ? [this.opts.syncYaml] : []),
      `control: { socket: ${n.socket} }`,
      'log: { level: debug, format: text }',
      this.opts.extraYaml?.(n.id, i) ?? '',
    ].join('\n');
  }

  node(id: string): NodeHandle {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Starts the daemon of a node from bin/ctsyncd inside its namespace. */
  start(id: string): NodeHandle {
    const n = this.node(id);
    const child = spawn(
      'ip',
      ['netns', 'exec', n.ns.name, 'node', join(ROOT, 'bin/ctsyncd'), '--config', n.configPath],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      n.stderr.push(d);
      if (n.stderr.length > 2000) n.stderr.splice(0, 1000);
    });
    n.process = child;
    return n;
  }

  async waitReady(id: string, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        const s = (await this.request(id, 'stats').catch(() => undefined)) as { ready?: boolean } | undefined;
        return s?.ready === true;
      },
      `${id} ready`,
      timeoutMs,
      () => this.node(id).stderr.join('').slice(-3000),
    );
  }

  request(id: string, cmd: string, args?: Record<string, unknown>): Promise<unknown> {
    return controlRequest(this.node(id).socket, cmd, args, { timeoutMs: 30_000 });
  }

  async dump(id: string, cache: 'internal' | 'external'): Promise<Array<Record<string, unknown>>> {
    return (await this.request(id, 'dump', { cache })) as Array<Record<string, unknown>>;
  }

  /** SIGTERM (or SIGKILL) to the daemon we started, by PID; resolves when it exited. */
  async stop(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const n = this.node(id);
    const child = n.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    n.process = undefined;
    return code;
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) await this.stop(n.id, 'SIGKILL').catch(() => undefined);
    for (const n of this.nodes) await n.ns.destroy();
    for (const h of this.hosts) await h.destroy();
    await this.bridgeNs?.destroy();
    // Each daemon kept its validated config under the cache directory, named by its config's path.
    for (const n of this.nodes) rmSync(configCacheEntry(n.configPath), { force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Where a daemon started with `configPath` keeps its validated config (src/config/cache.ts). */
export function configCacheEntry(configPath: string): string {
  return new ConfigCache({ dir: CONFIG_CACHE_DIR, fingerprint: '' }).entryPath(configPath);
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
  diagnostics?: () => string,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${diagnostics ? `\n${diagnostics()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
