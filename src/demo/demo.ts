// `ctsyncd demo`: two firewalls in network namespaces on this machine, real
// TCP connections through the first, replication to the second, a failover
// and the commit that keeps the connections alive. Everything it creates
// carries a per-run suffix and is removed again, also on Ctrl-C.
//
//   client ── lan ──┬── fw1 ──┬── wan ── server
//                   └── fw2 ──┘
//                   fw1 ═sync═ fw2      (addresses: 10.99.x.y only)
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { entryText } from '../control/format.js';
import { DAEMON_NODE_FLAGS } from '../daemon/node-flags.js';
import { parseConfig } from '../config/index.js';
import { controlRequest } from '../control/client.js';
import type { CommandIo } from '../common/command-io.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');
const TRAFFIC = join(ROOT, 'dist', 'demo', 'traffic.js');
const SERVER_PORT = 5000;

/** Progress lines and the summary go to out, failures to err. */
export type DemoIo = CommandIo;

export interface DemoOptions {
  connections?: number;
}

interface Status {
  alive: number;
  count: number;
  minEchoed: number;
  broken: string[];
}

interface Fw {
  id: 'fw1' | 'fw2';
  ns: string;
  socket: string;
  config: string;
  log: string;
  daemon?: ChildProcess;
}

class Demo {
  private readonly suffix = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`.slice(0, 8);
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'ctsyncd-demo-'));
  private readonly net = 3 * (1 + (randomBytes(1)[0]! % 80));
  private readonly lan = `10.99.${this.net}`;
  private readonly wan = `10.99.${this.net + 1}`;
  private readonly sync = `10.99.${this.net + 2}`;
  private status: Status | undefined;
  private step = 0;
  private readonly started = Date.now();
  readonly fw: Record<'fw1' | 'fw2', Fw>;

  constructor(
    private readonly io: DemoIo,
    private readonly n: number,
  ) {
    const fw = (id: 'fw1' | 'fw2'): Fw => ({
      id,
      ns: this.name(id),
      socket: join(this.dir, `${id}.sock`),
      config: join(this.dir, `${id}.yaml`),
      log: join(this.dir, `${id}.log`),
    });
    this.fw = { fw1: fw('fw1'), fw2: fw('fw2') };
  }

  private name(role: string): string {
    return `cd${role}${this.suffix}`.slice(0, 15);
  }

  private say(text: string): void {
    const t = ((Date.now() - this.started) / 1000).toFixed(1).padStart(5);
    this.io.out(`[${t}s] ${text}`);
  }

  private title(text: string): void {
    this.step++;
    this.io.out(`\n== ${this.step}. ${text}`);
  }

  private async sh(cmd: string, ...args: string[]): Promise<string> {
    return (await run(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 })).stdout;
  }

  private async inNs(ns: string, cmd: string, ...args: string[]): Promise<string> {
    return this.sh('ip', 'netns', 'exec', ns, cmd, ...args);
  }

  private async addNs(role: string): Promise<string> {
    const ns = this.name(role);
    await this.sh('ip', 'netns', 'add', ns);
    this.namespaces.push(ns);
    await this.sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** A veth from `ns` (named ifname, with address) into bridge namespace `br` (port name port). */
  private async plug(ns: string, ifname: string, address: string, br: string, port: string): Promise<void> {
    const a = `v${randomBytes(5).toString('hex')}`;
    const b = `v${randomBytes(5).toString('hex')}`;
    await this.sh('ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    await this.sh('ip', 'link', 'set', a, 'netns', ns);
    await this.sh('ip', '-n', ns, 'link', 'set', a, 'name', ifname);
    await this.sh('ip', '-n', ns, 'addr', 'add', address, 'dev', ifname);
    await this.sh('ip', '-n', ns, 'link', 'set', ifname, 'up');
    await this.sh('ip', 'link', 'set', b, 'netns', br);
    await this.sh('ip', '-n', br, 'link', 'set', b, 'name', port);
    await this.sh('ip', '-n', br, 'link', 'set', port, 'master', 'br0', 'up');
  }

  async build(): Promise<void> {
    this.title('Building two firewalls in network namespaces');
    const client = await this.addNs('cl');
    const server = await this.addNs('sv');
    const lanbr = await this.addNs('lb');
    const wanbr = await this.addNs('wb');
    for (const br of [lanbr, wanbr]) {
      await this.sh('ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge');
      await this.sh('ip', '-n', br, 'link', 'set', 'br0', 'up');
    }
    await this.plug(client, 'lan0', `${this.lan}.10/24`, lanbr, 'c');
    await this.sh('ip', '-n', client, 'route', 'add', 'default', 'via', `${this.lan}.1`);
    await this.plug(server, 'wan0', `${this.wan}.10/24`, wanbr, 's');
    for (const [i, id] of (['fw1', 'fw2'] as const).entries()) {
      const ns = await this.addNs(id);
      await this.plug(ns, 'lan0', `${this.lan}.${2 + i}/24`, lanbr, id);
      await this.plug(ns, 'wan0', `${this.wan}.${2 + i}/24`, wanbr, id);
      await this.inNs(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      // Both firewalls translate to the WAN virtual address, so the mapping is valid on either.
      await this.inNs(
        ns,
        'nft',
        `add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }; add rule ip nat post oifname "wan0" snat to ${this.wan}.1`,
      );
    }
    const a = `v${randomBytes(5).toString('hex')}`;
    const b = `v${randomBytes(5).toString('hex')}`;
    await this.sh('ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    for (const [i, [ifn, id]] of ([[a, 'fw1'], [b, 'fw2']] as const).entries()) {
      const ns = this.fw[id].ns;
      await this.sh('ip', 'link', 'set', ifn, 'netns', ns);
      await this.sh('ip', '-n', ns, 'link', 'set', ifn, 'name', 'sync0');
      await this.sh('ip', '-n', ns, 'addr', 'add', `${this.sync}.${1 + i}/24`, 'dev', 'sync0');
      await this.sh('ip', '-n', ns, 'link', 'set', 'sync0', 'up');
    }
    await this.moveVips('fw1');
    this.say(`client ${this.lan}.10 → LAN VIP ${this.lan}.1 → fw1 → WAN VIP ${this.wan}.1 (SNAT) → server ${this.wan}.10`);
    this.say(`sync link ${this.sync}.1 ⇄ ${this.sync}.2 (multicast, as in the shipped conntrackd.yaml)`);
    this.say(`namespaces: ${this.namespaces.join(' ')}`);
  }

  private async moveVips(to: 'fw1' | 'fw2'): Promise<void> {
    const ns = this.fw[to].ns;
    await this.sh('ip', '-n', ns, 'addr', 'add', `${this.lan}.1/24`, 'dev', 'lan0');
    await this.sh('ip', '-n', ns, 'addr', 'add', `${this.wan}.1/24`, 'dev', 'wan0');
    // What keepalived's gratuitous ARP does: the neighbours learn the new owner.
    for (const role of ['cl', 'sv']) await this.sh('ip', '-n', this.name(role), 'neigh', 'flush', 'all');
  }

  async startDaemons(): Promise<void> {
    this.title('Starting ctsyncd on both firewalls (the shipped conntrackd.yaml)');
    const shipped = readFileSync(join(ROOT, 'conntrackd.yaml'), 'utf8');
    // The shipped file signs the sync traffic; both firewalls share one fresh key, root's and 0600 as required.
    const key = join(this.dir, 'sync.key');
    writeFileSync(key, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    for (const f of Object.values(this.fw)) {
      const doc = parseDocument(shipped);
      doc.setIn(['node', 'id'], f.id);
      doc.setIn(['sync', 'auth', 'keyFile'], key);
      doc.setIn(['sync', 'multicast', 'interface'], 'sync0');
      doc.setIn(['control', 'socket'], f.socket);
      doc.setIn(['log', 'format'], 'text');
      const text = doc.toString();
      parseConfig(text, f.config);
      writeFileSync(f.config, text);
      const child = spawn('ip', ['netns', 'exec', f.ns, process.execPath, ...DAEMON_NODE_FLAGS, BIN, '--config', f.config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const logs: string[] = [];
      child.stderr?.on('data', (d: Buffer) => {
        logs.push(d.toString());
        writeFileSync(f.log, logs.join(''));
      });
      this.children.push(child);
      f.daemon = child;
    }
    for (const f of Object.values(this.fw)) {
      await this.until(
        async () => ((await this.stats(f).catch(() => undefined))?.ready as boolean | undefined) === true,
        `${f.id} ready`,
        30_000,
      );
      this.say(`${f.id} ready (control socket ${f.socket})`);
    }
  }

  private stats(f: Fw): Promise<Record<string, unknown>> {
    return controlRequest(f.socket, 'stats', {}, { timeoutMs: 5000 }) as Promise<Record<string, unknown>>;
  }

  private spawnIn(ns: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, TRAFFIC, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.children.push(child);
    return child;
  }

  async traffic(): Promise<void> {
    this.title(`Opening ${this.n} TCP connections through fw1`);
    const server = this.spawnIn(this.name('sv'), ['server', String(SERVER_PORT)]);
    await new Promise<void>((resolve, reject) => {
      server.stdout?.once('data', () => resolve());
      server.once('exit', () => reject(new Error('the demo server did not start')));
    });
    const client = this.spawnIn(this.name('cl'), ['client', `${this.wan}.10`, String(SERVER_PORT), String(this.n)]);
    createInterface({ input: client.stdout! }).on('line', (line) => {
      try {
        this.status = JSON.parse(line) as Status;
      } catch {
        // not a status line
      }
    });
    await this.until(() => this.status?.alive === this.n, `${this.n} connections streaming`, 20_000);
    this.say(`${this.n} connections streaming a counter every 100 ms, echoed by the server`);
  }

  async replication(): Promise<void> {
    this.title('Watching them replicate to fw2');
    const t0 = Date.now();
    const external = async () => ((await this.stats(this.fw.fw2)).external as { entries: number }).entries;
    await this.until(async () => (await external()) >= this.n, `fw2's external cache holding ${this.n} connections`, 20_000);
    this.say(`fw2's external cache holds ${await external()} connections from fw1 (${Date.now() - t0} ms after the check began)`);
    const dump = (await controlRequest(this.fw.fw2.socket, 'dump', { cache: 'external' })) as Record<string, unknown>[];
    for (const e of dump.filter((x) => x.dport === SERVER_PORT).slice(0, 3)) this.io.out(`         ${entryText(e)}`);
    const k2 = await this.inNs(this.fw.fw2.ns, 'conntrack', '-C');
    this.say(`fw2's kernel meanwhile holds ${k2.trim()} entries: the state waits in user space until failover`);
  }

  async failover(): Promise<{ survived: number; commitMs: number }> {
    this.title('Failover: fw1 dies, fw2 takes over');
    const before = this.status?.minEchoed ?? 0;
    const fw1 = this.fw.fw1;
    await this.sh('ip', '-n', fw1.ns, 'link', 'set', 'lan0', 'down');
    await this.sh('ip', '-n', fw1.ns, 'link', 'set', 'wan0', 'down');
    fw1.daemon?.kill('SIGKILL');
    this.say('fw1: interfaces down, ctsyncd killed (kill -9)');
    const report = (await controlRequest(this.fw.fw2.socket, 'commit', {}, { timeoutMs: 60_000 })) as Record<
      string,
      number
    >;
    this.say(
      `fw2: commit → ${report.committed} committed, ${report.updated} updated, ${report.failed} failed in ${report.durationMs} ms`,
    );
    await this.moveVips('fw2');
    this.say('fw2: virtual addresses moved (what keepalived does)');
    const nat = (
      await this.inNs(this.fw.fw2.ns, 'conntrack', '-L', '-p', 'tcp', '--dport', String(SERVER_PORT))
    ).trim();
    const lines = nat ? nat.split('\n') : [];
    this.say(`fw2's kernel: ${lines.length} connections to the server, e.g.`);
    if (lines[0]) this.io.out(`         ${lines[0].replace(/\s+/g, ' ')}`);
    await this.until(
      () => (this.status?.minEchoed ?? 0) >= before + 20,
      'every connection echoing again after the failover',
      20_000,
    ).catch(() => undefined);
    const survived = this.status?.alive ?? 0;
    this.say(`${survived}/${this.n} connections alive, counters unbroken (${this.status?.minEchoed ?? 0} echoes each so far)`);
    return { survived, commitMs: report.durationMs ?? 0 };
  }

  /** A few lines of fw2's Prometheus metrics, fetched inside its namespace. */
  async metrics(): Promise<void> {
    this.title("fw2's metrics (Prometheus, 127.0.0.1:9469/metrics inside its namespace)");
    const script =
      "fetch('http://127.0.0.1:9469/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))";
    const text = await this.inNs(this.fw.fw2.ns, process.execPath, '-e', script).catch(() => '');
    const wanted = /^ctsyncd_(cache_entries|commit_entries_total|commit_duration_seconds_(count|sum)|peer_up|sync_datagrams_total)\b/;
    const lines = text.split('\n').filter((l) => wanted.test(l));
    if (lines.length === 0) this.say('(metrics endpoint not reachable)');
    for (const l of lines.slice(0, 12)) this.io.out(`         ${l}`);
  }

  private async until(cond: () => boolean | Promise<boolean>, what: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    let last = Date.now();
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      if (Date.now() - last > 3000) {
        this.say(`… still waiting for ${what}`);
        last = Date.now();
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  cleanup(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0)) {
      spawnSyncQuiet('ip', ['netns', 'del', ns]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  get logDir(): string {
    return this.dir;
  }
}

/** Synchronous, so it also runs from a signal handler before exit. */
function spawnSyncQuiet(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
}

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['conntrack', 'conntrack'],
  ] as const) {
    const found = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => existsSync(join(d, tool)));
    if (!found) missing.push(pkg);
  }
  return missing;
}

export async function runDemo(io: DemoIo, opts: DemoOptions = {}): Promise<number> {
  if (process.getuid?.() !== 0) {
    io.err('ctsyncd: the demo creates network namespaces: run it as root (sudo npx ctsyncd demo)');
    return 1;
  }
  const missing = await missingTools();
  if (missing.length > 0) {
    io.err(`ctsyncd: the demo needs ${missing.join(', ')}: apt-get install -y ${missing.join(' ')}`);
    return 1;
  }
  if (!existsSync(TRAFFIC)) {
    io.err('ctsyncd: not built yet: run `npm ci` (or `npm run build`) first');
    return 1;
  }
  const demo = new Demo(io, opts.connections ?? 20);
  const onSignal = () => {
    io.err('\ninterrupted: cleaning up');
    demo.cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    io.out('ctsyncd demo: a firewall failover that keeps established, NATed TCP connections alive');
    await demo.build();
    await demo.startDaemons();
    await demo.traffic();
    await demo.replication();
    const { survived, commitMs } = await demo.failover();
    await demo.metrics();
    const n = opts.connections ?? 20;
    io.out('\n== Summary');
    io.out(`  ${survived}/${n} connections survived the failover; the commit took ${commitMs} ms.`);
    io.out('  On a real pair, keepalived runs the commit: see contrib/keepalived/ and README "Failover with keepalived".');
    io.out("  Metrics: each daemon serves Prometheus metrics on metrics.listen (127.0.0.1:9469); METRICS.md lists them.");
    io.out(`  Logs of this run: ${demo.logDir} (removed now). Everything the demo created is being removed.`);
    return survived === n ? 0 : 1;
  } catch (e) {
    io.err(`ctsyncd: demo failed: ${(e as Error).message}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    demo.cleanup();
  }
}
