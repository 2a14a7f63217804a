// The failover test's network: a client namespace on a LAN bridge, two
// firewalls (fw1, fw2) between the LAN bridge and a WAN bridge, a server
// namespace on the WAN bridge, and a veth pair between the firewalls for
// ctsyncd. Both firewalls SNAT LAN → WAN to the WAN virtual address with
// nftables; keepalived runs VRRP (unicast between the firewalls' own
// addresses) for a LAN and a WAN virtual address in one sync group, whose
// notify path is contrib/keepalived/primary-backup.sh driving ctsyncd.
//
//   client ── lanbr ──┬── fw1 ──┬── wanbr ── server
//                     └── fw2 ──┘
//                     fw1 ═sync═ fw2
//
// Every address is 10.99.x.y inside these namespaces (three random third
// octets per run), every namespace and veth name comes from uniqueName(),
// and every process is started here and killed by its PID.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { controlRequest } from '../../../src/control/client.js';
import { waitFor } from './cluster.js';
import { CONNTRACKD_BIN, Conntrackd } from './conntrackd.js';
import { createNetns, type Netns, uniqueName } from './netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');
export const CTSYNCD_BIN = join(ROOT, 'bin/ctsyncd');
export const NOTIFY_SCRIPT = join(ROOT, 'contrib/keepalived/primary-backup.sh');
const SERVER_SCRIPT = resolve(import.meta.dirname, 'stream-server.mjs');
const CLIENT_SCRIPT = resolve(import.meta.dirname, 'stream-client.mjs');

export const SERVER_PORT = 5000;
export const SYNC_PORT = 3780;
/** VRRP advertisement interval in seconds: a dead master is noticed after about 3.6 s. */
export const ADVERT_INT = 1;
/** failover.purgeTimeoutSeconds: what `-t` shortens the kernel timeouts of a new backup to. */
export const PURGE_TIMEOUT_SECONDS = 30;
/** How much a track file value of 1 lowers a firewall's VRRP priority. */
export const TRACK_WEIGHT = -60;

export type FirewallId = 'fw1' | 'fw2';

export interface Firewall {
  id: FirewallId;
  ns: Netns;
  priority: number;
  lanAddress: string;
  wanAddress: string;
  syncAddress: string;
  ctsyncdConfig: string;
  socket: string;
  trackFile: string;
  keepalivedConfig: string;
  /** The wrapper keepalived runs; it sets the environment and calls primary-backup.sh. */
  notifyWrapper: string;
  /** stderr of primary-backup.sh. */
  notifyLog: string;
  /** One line per notify run: "<startMs> <endMs> <state> <exit status>". */
  notifyEvents: string;
  ctsyncd?: ChildProcess;
  /** conntrackd 1.4.7 in ctsyncd's place, when startConntrackd() runs it. */
  conntrackd?: Conntrackd;
  /** Which daemon the notify wrapper drives (useDaemon()). */
  daemon: 'ctsyncd' | 'conntrackd';
  /** ctsyncd's sync.protocol and sync.auth (configureCtsyncd()). */
  protocol: 'ctsyncd' | 'conntrackd';
  keyFile?: string;
  keepalived?: ChildProcess;
  /** The VRRP child keepalived forked (from its pid file). */
  vrrpPid?: number;
  ctsyncdLog: string[];
  keepalivedLog: string[];
}

export interface NotifyEvent {
  startMs: number;
  endMs: number;
  state: string;
  status: number;
}

export interface ConntrackTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface ConntrackRow {
  state: string;
  timeout: number;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  line: string;
}

export interface TopologyOptions {
  /** Write failover.trackFile into the ctsyncd configs and track it in keepalived (default true). */
  trackFile?: boolean;
  /** Extra YAML for each firewall's ctsyncd config. */
  extraYaml?: (fw: FirewallId) => string;
  /** Put in front of every namespace and veth name (a test file's own tag); none by default. */
  tag?: string;
}

function octets(n: number): number[] {
  const picked = new Set<number>();
  while (picked.size < n) picked.add(2 + (randomBytes(1)[0]! % 250));
  return [...picked];
}

function appendCapped(buf: string[], chunk: string): void {
  buf.push(chunk);
  if (buf.length > 4000) buf.splice(0, 2000);
}

export class FailoverTopology {
  readonly dir: string;
  readonly lanNet: string;
  readonly wanNet: string;
  readonly syncNet: string;
  readonly lanVip: string;
  readonly wanVip: string;
  readonly clientAddress: string;
  readonly serverAddress: string;
  readonly fw: Record<FirewallId, Firewall>;
  client!: Netns;
  server!: Netns;
  private lanBridge!: Netns;
  private wanBridge!: Netns;
  private readonly namespaces: Netns[] = [];
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly opts: TopologyOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'ctsyncd-failover-'));
    const [a, b, c] = octets(3) as [number, number, number];
    this.lanNet = `10.99.${a}`;
    this.wanNet = `10.99.${b}`;
    this.syncNet = `10.99.${c}`;
    this.lanVip = `${this.lanNet}.1`;
    this.wanVip = `${this.wanNet}.1`;
    this.clientAddress = `${this.lanNet}.10`;
    this.serverAddress = `${this.wanNet}.10`;
    const mk = (id: FirewallId, host: number, priority: number): Firewall => ({
      id,
      ns: undefined as unknown as Netns,
      priority,
      lanAddress: `${this.lanNet}.${host + 1}`,
      wanAddress: `${this.wanNet}.${host + 1}`,
      syncAddress: `${this.syncNet}.${host}`,
      ctsyncdConfig: join(this.dir, `${id}.yaml`),
      socket: join(this.dir, `${id}.sock`),
      trackFile: join(this.dir, `${id}.track`),
      keepalivedConfig: join(this.dir, `${id}.keepalived.conf`),
      notifyWrapper: join(this.dir, `${id}-notify.sh`),
      notifyLog: join(this.dir, `${id}-notify.log`),
      notifyEvents: join(this.dir, `${id}-notify.events`),
      ctsyncdLog: [],
      keepalivedLog: [],
      daemon: 'ctsyncd',
      protocol: 'ctsyncd',
    });
    this.fw = { fw1: mk('fw1', 1, 150), fw2: mk('fw2', 2, 100) };
  }

  static async create(opts: TopologyOptions = {}): Promise<FailoverTopology> {
    const t = new FailoverTopology(opts);
    try {
      await t.build();
    } catch (e) {
      await t.destroy();
      throw e;
    }
    return t;
  }

  private async ns(prefix: string): Promise<Netns> {
    const ns = await createNetns(`${this.opts.tag ?? ''}${prefix}`);
    this.namespaces.push(ns);
    // IPv4 10.99.x.y only: no link-local IPv6 addresses, router or neighbour solicitations.
    await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    return ns;
  }

  /** A veth pair from `a` (renamed `aName`) to `b` (renamed `bName`). */
  private async veth(a: Netns, aName: string, b: Netns, bName: string): Promise<void> {
    const x = uniqueName(`${this.opts.tag ?? ''}fa`);
    const y = uniqueName(`${this.opts.tag ?? ''}fb`);
    await run('ip', ['link', 'add', x, 'type', 'veth', 'peer', 'name', y]);
    await run('ip', ['link', 'set', x, 'netns', a.name]);
    await run('ip', ['link', 'set', y, 'netns', b.name]);
    await a.exec('ip', ['link', 'set', x, 'name', aName]);
    await b.exec('ip', ['link', 'set', y, 'name', bName]);
  }

  private async build(): Promise<void> {
    this.lanBridge = await this.ns('fol');
    this.wanBridge = await this.ns('fow');
    this.client = await this.ns('foc');
    this.server = await this.ns('fos');
    this.fw.fw1.ns = await this.ns('fo1');
    this.fw.fw2.ns = await this.ns('fo2');
    for (const br of [this.lanBridge, this.wanBridge]) {
      await br.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
      await br.exec('ip', ['link', 'set', 'br0', 'up']);
    }
    const port = async (br: Netns, host: Netns, ifname: string, portName: string, addr: string) => {
      await this.veth(host, ifname, br, portName);
      await br.exec('ip', ['link', 'set', portName, 'master', 'br0', 'up']);
      await host.exec('ip', ['addr', 'add', `${addr}/24`, 'dev', ifname]);
      await host.exec('ip', ['link', 'set', ifname, 'up']);
    };
    await port(this.lanBridge, this.client, 'eth0', 'pc', this.clientAddress);
    await port(this.wanBridge, this.server, 'eth0', 'ps', this.serverAddress);
    for (const f of [this.fw.fw1, this.fw.fw2]) {
      await port(this.lanBridge, f.ns, 'lan0', `p${f.id}`, f.lanAddress);
      await port(this.wanBridge, f.ns, 'wan0', `p${f.id}`, f.wanAddress);
    }
    await this.veth(this.fw.fw1.ns, 'sync0', this.fw.fw2.ns, 'sync0');
    for (const f of [this.fw.fw1, this.fw.fw2]) {
      await f.ns.exec('ip', ['addr', 'add', `${f.syncAddress}/30`, 'dev', 'sync0']);
      await f.ns.exec('ip', ['link', 'set', 'sync0', 'up']);
    }
    // The client reaches the server only through the LAN virtual address.
    // The server needs no route at all: SNAT makes every connection come
    // from the WAN virtual address, on its own subnet.
    await this.client.exec('ip', ['route', 'add', 'default', 'via', this.lanVip]);
    for (const f of [this.fw.fw1, this.fw.fw2]) await this.setUpFirewall(f);
  }

  private async setUpFirewall(f: Firewall): Promise<void> {
    await f.ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await this.nft(f, this.ruleset());
    // Mid-stream packets of a connection the kernel has no entry for are
    // INVALID instead of being picked up as new, so only a committed entry
    // (with its NAT binding) carries a connection across a failover.
    await f.ns.exec('sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_loose=0']);
    const other = f.id === 'fw1' ? this.fw.fw2 : this.fw.fw1;
    writeFileSync(f.ctsyncdConfig, this.ctsyncdConfigFor(f, other));
    writeFileSync(f.keepalivedConfig, this.keepalivedConfigFor(f, other));
    this.writeNotifyWrapper(f);
  }

  /**
   * The notify wrapper keepalived runs: the environment primary-backup.sh
   * reads, pointing at the daemon the firewall runs now (as an operator
   * changes it when replacing conntrackd), then the script itself.
   */
  private writeNotifyWrapper(f: Firewall): void {
    const cd = f.daemon === 'conntrackd' ? this.conntrackdFiles(f) : undefined;
    writeFileSync(
      f.notifyWrapper,
      [
        '#!/bin/sh',
        '# Written by failover-topology.ts: what an operator would put in the environment.',
        `CONNTRACKD_BIN=${cd ? CONNTRACKD_BIN : CTSYNCD_BIN}`,
        `CONNTRACKD_CONFIG=${cd ? cd.config : f.ctsyncdConfig}`,
        `CONNTRACKD_LOCK=${cd ? cd.lock : join(this.dir, `${f.id}.lock`)}`,
        `PATH=${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
        'export CONNTRACKD_BIN CONNTRACKD_CONFIG CONNTRACKD_LOCK PATH',
        'start=$(date +%s%3N)',
        `echo "$start begin $1" >> ${f.notifyLog}`,
        `${NOTIFY_SCRIPT} "$1" 2>> ${f.notifyLog}`,
        'status=$?',
        `echo "$start $(date +%s%3N) $1 $status" >> ${f.notifyEvents}`,
        'exit $status',
        '',
      ].join('\n'),
    );
    chmodSync(f.notifyWrapper, 0o755);
  }

  /** A firewall's nftables ruleset: stateful forwarding LAN → WAN, SNAT to the WAN virtual address. */
  ruleset(): string {
    return [
      'table inet ctfw {',
      '  chain input {',
      '    type filter hook input priority 0; policy accept;',
      // Without this the local stack answers a mid-stream packet to the
      // virtual address (no conntrack entry yet) with a RST.
      '    ct state invalid drop',
      '  }',
      '  chain forward {',
      '    type filter hook forward priority 0; policy drop;',
      '    ct state invalid drop',
      '    ct state established,related accept',
      '    iifname "lan0" oifname "wan0" ct state new accept',
      '  }',
      '}',
      'table ip ctnat {',
      '  chain postrouting {',
      '    type nat hook postrouting priority 100; policy accept;',
      // Not masquerade: that would pick wan0's own address, which does not
      // move with a failover. The binding must be the virtual address.
      `    oifname "wan0" ip saddr ${this.lanNet}.0/24 snat to ${this.wanVip}`,
      '  }',
      '}',
      '',
    ].join('\n');
  }

  async nft(f: Firewall, ruleset: string): Promise<void> {
    const file = join(this.dir, `${f.id}-${randomBytes(4).toString('hex')}.nft`);
    writeFileSync(file, ruleset);
    await f.ns.exec('nft', ['-f', file]);
    rmSync(file, { force: true });
  }

  ctsyncdConfigFor(f: Firewall, other: Firewall): string {
    const track = this.opts.trackFile === false ? '' : `, trackFile: ${f.trackFile}`;
    return [
      `node: { id: ${f.id}, stateDir: ${join(this.dir, 'state')} }`,
      'cluster: { id: 7 }',
      'sync:',
      ...(f.protocol === 'conntrackd' ? ['  protocol: conntrackd'] : []),
      '  transport: udp',
      `  udp: { bind: ${f.syncAddress}, port: ${SYNC_PORT}, peers: [${other.syncAddress}] }`,
      f.keyFile ? `  auth: { keyFile: ${f.keyFile} }` : '  auth: none',
      'filter:',
      '  protocols: { accept: [tcp] }',
      `  addresses: { ignore: [127.0.0.0/8, ${f.lanAddress}, ${f.wanAddress}, ${f.syncAddress}] }`,
      `failover: { purgeTimeoutSeconds: ${PURGE_TIMEOUT_SECONDS}${track} }`,
      `control: { socket: ${f.socket} }`,
      'log: { level: debug, format: text }',
      'metrics: { enabled: false }',
      this.opts.extraYaml?.(f.id) ?? '',
      '',
    ].join('\n');
  }

  keepalivedConfigFor(f: Firewall, other: Firewall): string {
    const track = this.opts.trackFile !== false;
    const instance = (name: string, ifname: string, vrid: number, own: string, peer: string, vip: string) => [
      `vrrp_instance ${name} {`,
      '  state BACKUP',
      `  interface ${ifname}`,
      `  virtual_router_id ${vrid}`,
      `  priority ${f.priority}`,
      `  advert_int ${ADVERT_INT}`,
      `  unicast_src_ip ${own}`,
      `  unicast_peer { ${peer} }`,
      `  virtual_ipaddress { ${vip}/24 dev ${ifname} }`,
      '}',
    ];
    return [
      'global_defs {',
      `  router_id ${f.id}`,
      '  enable_script_security',
      '  script_user root',
      '}',
      ...(track
        ? [
            'track_file ctsyncd_sync {',
            `  file "${f.trackFile}"`,
            `  weight ${TRACK_WEIGHT}`,
            '  init_file 1',
            '}',
          ]
        : []),
      'vrrp_sync_group FW {',
      '  group {',
      '    LAN',
      '    WAN',
      '  }',
      ...(track ? ['  track_file {', '    ctsyncd_sync', '  }'] : []),
      `  notify_master "${f.notifyWrapper} primary"`,
      `  notify_backup "${f.notifyWrapper} backup"`,
      `  notify_fault "${f.notifyWrapper} fault"`,
      '}',
      ...instance('LAN', 'lan0', 51, f.lanAddress, other.lanAddress, this.lanVip),
      ...instance('WAN', 'wan0', 52, f.wanAddress, other.wanAddress, this.wanVip),
      '',
    ].join('\n');
  }

  private track(child: ChildProcess, log: string[]): void {
    this.children.add(child);
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => appendCapped(log, d));
    child.stderr?.on('data', (d: string) => appendCapped(log, d));
    child.once('exit', () => this.children.delete(child));
  }

  // --- which daemon ----------------------------------------------------

  /**
   * ctsyncd's sync settings on `id` from its next start: the protocol, and
   * with `key` a shared key file (the same for both firewalls) instead of
   * auth: none.
   */
  configureCtsyncd(id: FirewallId, opts: { protocol: 'ctsyncd' | 'conntrackd'; key?: boolean }): void {
    const f = this.fw[id];
    f.protocol = opts.protocol;
    if (opts.key) {
      const file = join(this.dir, 'sync.key');
      if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
      f.keyFile = file;
    } else {
      f.keyFile = undefined;
    }
    writeFileSync(f.ctsyncdConfig, this.ctsyncdConfigFor(f, this.other(f)));
  }

  /** Points the notify wrapper at ctsyncd or conntrackd: what keepalived's transitions drive from now on. */
  useDaemon(id: FirewallId, daemon: 'ctsyncd' | 'conntrackd'): void {
    const f = this.fw[id];
    f.daemon = daemon;
    this.writeNotifyWrapper(f);
  }

  private other(f: Firewall): Firewall {
    return f.id === 'fw1' ? this.fw.fw2 : this.fw.fw1;
  }

  // --- conntrackd ------------------------------------------------------

  /** The files Conntrackd.start() makes for a firewall's conntrackd (its name is the firewall's id). */
  private conntrackdFiles(f: Firewall): { config: string; lock: string } {
    const base = join(this.dir, `conntrackd-${f.id}`);
    return { config: `${base}.conf`, lock: `${base}.lock` };
  }

  /**
   * conntrackd 1.4.7 on `id`, FTFW over UDP on the sync link, with the
   * filter ctsyncd has here (TCP only, none of the firewall's own
   * addresses), started by PID; the notify wrapper drives it from now on.
   */
  async startConntrackd(id: FirewallId): Promise<Conntrackd> {
    const f = this.fw[id];
    if (f.conntrackd?.running) throw new Error(`conntrackd already runs on ${id}`);
    const other = this.other(f);
    f.conntrackd = await Conntrackd.start({
      ns: f.ns,
      dir: this.dir,
      name: f.id,
      mode: 'ftfw',
      sync: { transport: 'udp', local: f.syncAddress, peer: other.syncAddress, port: SYNC_PORT, interface: 'sync0' },
      filter: {
        protocols: { accept: ['TCP'] },
        addresses: { ignore: ['127.0.0.0/8', f.lanAddress, f.wanAddress, f.syncAddress] },
      },
    });
    this.useDaemon(id, 'conntrackd');
    return f.conntrackd;
  }

  async stopConntrackd(id: FirewallId, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const f = this.fw[id];
    await f.conntrackd?.stop(signal);
    f.conntrackd = undefined;
  }

  /** conntrackd's external cache on `id` (`-e`), as ConntrackRow-like tuples of its TCP entries. */
  async conntrackdExternal(id: FirewallId): Promise<Array<{ state: string; orig: ConntrackTuple }>> {
    const cd = this.fw[id].conntrackd;
    if (!cd) throw new Error(`no conntrackd on ${id}`);
    return (await cd.external())
      .filter((e) => e.proto === 'tcp' && e.orig.sport !== undefined && e.orig.dport !== undefined)
      .map((e) => ({
        state: e.state ?? '',
        orig: { src: e.orig.src, dst: e.orig.dst, sport: e.orig.sport!, dport: e.orig.dport! },
      }));
  }

  // --- ctsyncd ---------------------------------------------------------

  startCtsyncd(id: FirewallId): void {
    const f = this.fw[id];
    if (f.ctsyncd && f.ctsyncd.exitCode === null && f.ctsyncd.signalCode === null) {
      throw new Error(`ctsyncd already runs on ${id}`);
    }
    const child = spawn('ip', ['netns', 'exec', f.ns.name, process.execPath, CTSYNCD_BIN, '--config', f.ctsyncdConfig], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.track(child, f.ctsyncdLog);
    f.ctsyncd = child;
  }

  stats(id: FirewallId): Promise<Record<string, unknown>> {
    return controlRequest(this.fw[id].socket, 'stats', undefined, { timeoutMs: 5000 }) as Promise<
      Record<string, unknown>
    >;
  }

  async waitCtsyncdReady(id: FirewallId, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => (await this.stats(id).catch(() => undefined))?.ready === true,
      `ctsyncd on ${id} ready`,
      timeoutMs,
      () => this.diagnostics(id),
    );
  }

  /** Runs `ctsyncd --config CONFIG ...args` inside the firewall's namespace. */
  async ctl(id: FirewallId, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const f = this.fw[id];
    return new Promise((resolvePromise) => {
      execFile(
        'ip',
        ['netns', 'exec', f.ns.name, process.execPath, CTSYNCD_BIN, '--config', f.ctsyncdConfig, ...args],
        { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolvePromise({ code, stdout, stderr });
        },
      );
    });
  }

  /** External cache entries of a firewall's ctsyncd. */
  async external(id: FirewallId): Promise<Array<Record<string, unknown>>> {
    return (await controlRequest(this.fw[id].socket, 'dump', { cache: 'external' }, { timeoutMs: 10_000 })) as Array<
      Record<string, unknown>
    >;
  }

  async killCtsyncd(id: FirewallId, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const f = this.fw[id];
    const child = f.ctsyncd;
    f.ctsyncd = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  readTrackFile(id: FirewallId): string | undefined {
    const p = this.fw[id].trackFile;
    return existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined;
  }

  // --- keepalived ------------------------------------------------------

  startKeepalived(id: FirewallId): void {
    const f = this.fw[id];
    if (f.keepalived && f.keepalived.exitCode === null && f.keepalived.signalCode === null) {
      throw new Error(`keepalived already runs on ${id}`);
    }
    const pid = (what: string) => join(this.dir, `${id}-keepalived-${what}.pid`);
    for (const w of ['main', 'vrrp', 'check']) rmSync(pid(w), { force: true });
    f.vrrpPid = undefined;
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        f.ns.name,
        'keepalived',
        '--dont-fork',
        '--log-console',
        '--log-detail',
        '--no-syslog',
        '--vrrp',
        '--use-file',
        f.keepalivedConfig,
        '--pid',
        pid('main'),
        '--vrrp_pid',
        pid('vrrp'),
        '--checkers_pid',
        pid('check'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.track(child, f.keepalivedLog);
    f.keepalived = child;
  }

  /** Waits for keepalived's VRRP child to have written its pid file. */
  async waitKeepalivedStarted(id: FirewallId, timeoutMs = 10_000): Promise<void> {
    const f = this.fw[id];
    const file = join(this.dir, `${id}-keepalived-vrrp.pid`);
    await waitFor(
      () => {
        if (!existsSync(file)) return false;
        const pid = Number(readFileSync(file, 'utf8').trim());
        if (!Number.isInteger(pid) || pid <= 0 || !this.isOurs(pid)) return false;
        f.vrrpPid = pid;
        return true;
      },
      `keepalived on ${id} started`,
      timeoutMs,
      () => this.diagnostics(id),
    );
  }

  /** True if `pid` runs a command line that names this topology's directory. */
  private isOurs(pid: number): boolean {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.dir);
    } catch {
      return false;
    }
  }

  /**
   * Kills keepalived like a crash: no priority-0 advertisement, no VIPs
   * removed, no notify. The parent is stopped first so that it cannot
   * respawn its VRRP child, nor pass its own death on to it as a SIGTERM.
   */
  async killKeepalived(id: FirewallId): Promise<void> {
    const f = this.fw[id];
    const parent = f.keepalived;
    f.keepalived = undefined;
    const alive = parent && parent.exitCode === null && parent.signalCode === null;
    const exited = alive ? new Promise((r) => parent.once('exit', r)) : Promise.resolve();
    if (alive) parent.kill('SIGSTOP');
    if (f.vrrpPid !== undefined && this.isOurs(f.vrrpPid)) process.kill(f.vrrpPid, 'SIGKILL');
    f.vrrpPid = undefined;
    if (alive) parent.kill('SIGKILL');
    await exited;
  }

  // --- VRRP state ------------------------------------------------------

  private async hasAddress(f: Firewall, ifname: string, addr: string): Promise<boolean> {
    const { stdout } = await f.ns.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', ifname], { timeoutMs: 5000 });
    return stdout.split('\n').some((l) => l.includes(` ${addr}/`));
  }

  /** Which virtual addresses a firewall holds. */
  async vips(id: FirewallId): Promise<{ lan: boolean; wan: boolean }> {
    const f = this.fw[id];
    return { lan: await this.hasAddress(f, 'lan0', this.lanVip), wan: await this.hasAddress(f, 'wan0', this.wanVip) };
  }

  async isMaster(id: FirewallId): Promise<boolean> {
    const v = await this.vips(id);
    return v.lan && v.wan;
  }

  notifyEvents(id: FirewallId): NotifyEvent[] {
    const file = this.fw[id].notifyEvents;
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const [startMs, endMs, state, status] = l.trim().split(/\s+/);
        return { startMs: Number(startMs), endMs: Number(endMs), state: state!, status: Number(status) };
      });
  }

  notifyLog(id: FirewallId): string {
    const file = this.fw[id].notifyLog;
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Waits for a finished notify run of `state` that started at or after `sinceMs`. */
  async waitNotify(id: FirewallId, state: string, sinceMs: number, timeoutMs: number): Promise<NotifyEvent> {
    let found: NotifyEvent | undefined;
    await waitFor(
      () => {
        found = this.notifyEvents(id).find((e) => e.state === state && e.startMs >= sinceMs);
        return found !== undefined;
      },
      `notify ${state} on ${id}`,
      timeoutMs,
      () => this.diagnostics(id),
    );
    return found!;
  }

  // --- faults ----------------------------------------------------------

  /**
   * fw dies: keepalived and ctsyncd are killed with SIGKILL and all its
   * interfaces go down, so it neither forwards nor advertises nor syncs.
   */
  async crash(id: FirewallId): Promise<void> {
    const f = this.fw[id];
    await this.killKeepalived(id);
    await this.killCtsyncd(id);
    await this.stopConntrackd(id, 'SIGKILL');
    for (const ifname of ['lan0', 'wan0', 'sync0']) await f.ns.exec('ip', ['link', 'set', ifname, 'down']);
  }

  /**
   * The dead firewall comes back, daemons not started yet: its interfaces go
   * up again. The virtual addresses the killed keepalived left behind are
   * removed first (keepalived would remove them itself when it starts, but
   * until then they would answer ARP next to fw2's). Its kernel table keeps
   * the entries from its time as master, as after a crash of the daemons
   * only; `flush` empties it, as a reboot would.
   */
  async revive(id: FirewallId, opts: { flush?: boolean } = {}): Promise<void> {
    const f = this.fw[id];
    await f.ns.exec('ip', ['addr', 'del', `${this.lanVip}/24`, 'dev', 'lan0']).catch(() => undefined);
    await f.ns.exec('ip', ['addr', 'del', `${this.wanVip}/24`, 'dev', 'wan0']).catch(() => undefined);
    if (opts.flush) await f.ns.exec('conntrack', ['-F'], { timeoutMs: 10_000 });
    for (const ifname of ['lan0', 'wan0', 'sync0']) await f.ns.exec('ip', ['link', 'set', ifname, 'up']);
  }

  /** Drops all sync traffic into and out of a firewall (netdev hooks: no EPERM to the sender). */
  async blockSync(id: FirewallId): Promise<void> {
    await this.nft(
      this.fw[id],
      [
        'table netdev ctsyncblock {',
        '  chain in {',
        '    type filter hook ingress device "sync0" priority 0; policy accept;',
        `    udp dport ${SYNC_PORT} drop`,
        '  }',
        '  chain out {',
        '    type filter hook egress device "sync0" priority 0; policy accept;',
        `    udp dport ${SYNC_PORT} drop`,
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  }

  async unblockSync(id: FirewallId): Promise<void> {
    await this.fw[id].ns.exec('nft', ['delete', 'table', 'netdev', 'ctsyncblock']);
  }

  // --- conntrack -------------------------------------------------------

  /** The firewall's kernel TCP conntrack table, as `conntrack -L` prints it. */
  async conntrack(id: FirewallId): Promise<ConntrackRow[]> {
    const { stdout } = await this.fw[id].ns.exec('conntrack', ['-L', '-p', 'tcp'], { timeoutMs: 10_000 });
    const rows: ConntrackRow[] = [];
    for (const line of stdout.split('\n')) {
      const m =
        /^tcp\s+\d+\s+(\d+)\s+(\S+)\s+src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/.exec(
          line,
        );
      if (!m) continue;
      rows.push({
        timeout: Number(m[1]),
        state: m[2]!,
        orig: { src: m[3]!, dst: m[4]!, sport: Number(m[5]), dport: Number(m[6]) },
        reply: { src: m[7]!, dst: m[8]!, sport: Number(m[9]), dport: Number(m[10]) },
        line,
      });
    }
    return rows;
  }

  /**
   * The firewall's kernel table as `ctsyncd kernel dump --json` decodes it
   * (a local ctnetlink dump, no daemon involved): unlike `conntrack -L` it
   * shows the status bits, e.g. whether the kernel NATs an entry at all.
   */
  async kernelDump(id: FirewallId): Promise<Array<Record<string, unknown>>> {
    const { stdout } = await this.fw[id].ns.exec(process.execPath, [CTSYNCD_BIN, 'kernel', 'dump', '--json'], {
      timeoutMs: 20_000,
    });
    return JSON.parse(stdout) as Array<Record<string, unknown>>;
  }

  // --- traffic ---------------------------------------------------------

  async startTraffic(count: number, intervalMs = 50): Promise<Traffic> {
    const server = new JsonChild(
      spawn(
        'ip',
        [
          'netns',
          'exec',
          this.server.name,
          process.execPath,
          SERVER_SCRIPT,
          JSON.stringify({ host: this.serverAddress, port: SERVER_PORT, intervalMs, maxMs: 600_000 }),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    this.children.add(server.child);
    await server.waitEvent('listening', 10_000);
    const client = new JsonChild(
      spawn(
        'ip',
        [
          'netns',
          'exec',
          this.client.name,
          process.execPath,
          CLIENT_SCRIPT,
          JSON.stringify({ host: this.serverAddress, port: SERVER_PORT, count, intervalMs, maxMs: 600_000 }),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    this.children.add(client.child);
    return new Traffic(server, client);
  }

  // --- diagnostics and cleanup -----------------------------------------

  diagnostics(id?: FirewallId): string {
    const ids: FirewallId[] = id ? [id] : ['fw1', 'fw2'];
    return ids
      .map((i) => {
        const f = this.fw[i];
        return [
          `--- ${i} keepalived (tail)`,
          f.keepalivedLog.join('').slice(-2500),
          `--- ${i} ctsyncd (tail)`,
          f.ctsyncdLog.join('').slice(-2500),
          `--- ${i} notify log`,
          this.notifyLog(i).slice(-2500),
          `--- ${i} track file: ${this.readTrackFile(i) ?? '(none)'}`,
        ].join('\n');
      })
      .join('\n');
  }

  /** Kills everything started here (by PID), deletes every namespace and the directory. */
  async destroy(): Promise<void> {
    for (const id of ['fw1', 'fw2'] as const) {
      await this.killKeepalived(id).catch(() => undefined);
      await this.killCtsyncd(id).catch(() => undefined);
      await this.stopConntrackd(id, 'SIGKILL').catch(() => undefined);
    }
    for (const child of [...this.children]) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    // Processes our keepalived started in turn (notify scripts, a daemon
    // launched by `-d`): each names this run's directory on its command line.
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      if (this.isOurs(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    for (const ns of this.namespaces) await ns.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A child speaking one JSON object per line on stdout, taking commands on stdin. */
class JsonChild {
  private nextId = 1;
  private readonly waiters = new Map<number, (v: Record<string, unknown>) => void>();
  private readonly events: Array<Record<string, unknown>> = [];
  readonly stderr: string[] = [];

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let ev: Record<string, unknown>;
      try {
        ev = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      const id = ev.id as number | undefined;
      if (id !== undefined && this.waiters.has(id)) {
        this.waiters.get(id)!(ev);
        this.waiters.delete(id);
      } else {
        this.events.push(ev);
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => appendCapped(this.stderr, d));
  }

  async waitEvent(name: string, timeoutMs: number): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await waitFor(
      () => {
        found = this.events.find((e) => e.ev === name);
        if (this.child.exitCode !== null) throw new Error(`child exited: ${this.stderr.join('')}`);
        return found !== undefined;
      },
      `event ${name}`,
      timeoutMs,
      () => this.stderr.join(''),
    );
    return found!;
  }

  request(op: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`no answer to ${op} within ${timeoutMs} ms: ${this.stderr.join('').slice(-1000)}`));
      }, timeoutMs);
      this.waiters.set(id, (v) => {
        clearTimeout(timer);
        resolvePromise(v);
      });
      this.child.stdin!.write(`${JSON.stringify({ op, id })}\n`);
    });
  }

  stop(): void {
    this.child.stdin?.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export interface ClientConn {
  index: number;
  localPort: number;
  connected: boolean;
  sent: number;
  echoed: number;
  /** Last counter the server pushed on its own. */
  pushed: number;
  gaps: number;
  error: string | null;
  closed: boolean;
  lastEchoAt: number;
  /** Pauses of more than 300 ms between two echoes, when they ended and how long they were. */
  stalls: Array<{ endedAt: number; ms: number }>;
}

export interface ServerConn {
  id: number;
  peer: string;
  received: number;
  last: number;
  pushed: number;
  gaps: number;
  error: string | null;
  closed: boolean;
  lastAt: number;
}

export class Traffic {
  constructor(
    private readonly server: JsonChild,
    private readonly client: JsonChild,
  ) {}

  async clientStatus(): Promise<{ now: number; conns: ClientConn[] }> {
    const s = await this.client.request('status');
    return { now: s.now as number, conns: s.conns as ClientConn[] };
  }

  async serverStatus(): Promise<{ now: number; conns: ServerConn[] }> {
    const s = await this.server.request('status');
    return { now: s.now as number, conns: s.conns as ServerConn[] };
  }

  stop(): void {
    this.client.stop();
    this.server.stop();
  }
}
