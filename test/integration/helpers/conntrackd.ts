// The reference implementation, conntrackd (conntrack-tools), run inside a
// test namespace: a generated config with its own lock file, UNIX socket and
// sync port, started in the foreground by PID (`ip netns exec` execs the
// binary, so the PID we hold is conntrackd's own), queried with its client
// mode (`conntrackd -C CONF -i | -e | -s ...`), and parsers for what those
// print: conntrack(8)-style entry lines and the statistics blocks.
//
// Used by the differential tests and by benchmarks that compare ctsyncd with
// conntrackd. Nothing here is specific to one test.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Netns } from './netns.js';

export const CONNTRACKD_BIN = '/usr/sbin/conntrackd';

/** Fails (never skips) when the reference binary is missing. */
export function requireConntrackd(bin = CONNTRACKD_BIN): void {
  if (!existsSync(bin)) throw new Error(`${bin} is missing (scripts/install-system-deps.sh installs conntrackd)`);
}

// ---------------------------------------------------------------------------
// Configuration

export interface ConntrackdFilter {
  /** `Filter From Userspace` (default) or `Kernelspace` (a BPF filter on the event socket). */
  from?: 'userspace' | 'kernelspace';
  /** Protocol names as getprotobyname knows them: TCP UDP ICMP IPv6-ICMP SCTP DCCP ... */
  protocols?: { accept: string[] } | { ignore: string[] };
  /** Addresses or CIDR prefixes, IPv4 or IPv6; matched against the original and the reply source. */
  addresses?: { accept: string[] } | { ignore: string[] };
  /** TCP states as conntrackd spells them: SYN_SENT ESTABLISHED TIME_WAIT ... */
  tcpStates?: { accept: string[] } | { ignore: string[] };
}

export interface ConntrackdOptions {
  ns: Netns;
  /** Directory for the config, lock file, socket and log; the caller removes it. */
  dir: string;
  /** Distinguishes the files of several daemons sharing `dir`. */
  name: string;
  mode?: 'ftfw' | 'notrack' | 'alarm';
  /** Sync channel: UDP (unicast) between two addresses, or TCP. */
  sync: {
    /** multicast: `group` is the multicast address, `port` its Group (the UDP port), `local` the interface address. */
    transport?: 'udp' | 'tcp' | 'multicast';
    local: string;
    peer: string;
    port: number;
    group?: string;
    /** Interface the local address lives on; conntrackd watches its link state. */
    interface?: string;
  };
  filter?: ConntrackdFilter;
  /** FTFW/NOTRACK `DisableExternalCache` (inject straight into the kernel). */
  disableExternalCache?: boolean;
  /** Commit timeout in seconds; unset, entries keep the timeout synced from the peer. */
  commitTimeout?: number;
  hashSize?: number;
  hashLimit?: number;
  /** Event socket buffer; MaxGrowth is set to twice this so the value is honoured. */
  netlinkBufferBytes?: number;
  /** Extra lines appended inside `General { }` and `Sync { }`. */
  extraGeneral?: string[];
  extraSync?: string[];
  bin?: string;
}

function listBlock(kind: string, list: { accept: string[] } | { ignore: string[] }, items: string[]): string[] {
  const policy = 'accept' in list ? 'Accept' : 'Ignore';
  return [`\t\t${kind} ${policy} {`, ...items.map((i) => `\t\t\t${i}`), '\t\t}'];
}

function addressLine(a: string): string {
  return `${a.includes(':') ? 'IPv6_address' : 'IPv4_address'} ${a}`;
}

/** The conntrackd.conf text for `opts`, with the given lock, socket and log paths. */
export function conntrackdConfig(
  opts: ConntrackdOptions,
  paths: { lock: string; socket: string; log: string },
): string {
  const mode = (opts.mode ?? 'ftfw').toUpperCase();
  const modeLines: string[] = [];
  if (opts.disableExternalCache) modeLines.push('\t\tDisableExternalCache on');
  if (opts.commitTimeout !== undefined) modeLines.push(`\t\tCommitTimeout ${opts.commitTimeout}`);
  // The grammar's keywords: UDP, TCP, Multicast.
  const transport = opts.sync.transport === 'multicast' ? 'Multicast' : (opts.sync.transport ?? 'udp').toUpperCase();
  const nl = opts.netlinkBufferBytes ?? 8 * 1024 * 1024;
  const f = opts.filter;
  const filter: string[] = [];
  if (f?.protocols) {
    const p = f.protocols;
    filter.push(...listBlock('Protocol', p, 'accept' in p ? p.accept : p.ignore));
  }
  if (f?.addresses) {
    const a = f.addresses;
    filter.push(...listBlock('Address', a, ('accept' in a ? a.accept : a.ignore).map(addressLine)));
  }
  if (f?.tcpStates) {
    const s = f.tcpStates;
    // The grammar reads "State Accept { A B C for TCP }" on one line.
    const items = 'accept' in s ? s.accept : s.ignore;
    filter.push(`\t\tState ${'accept' in s ? 'Accept' : 'Ignore'} { ${items.join(' ')} for TCP }`);
  }
  return [
    'Sync {',
    `\tMode ${mode} {`,
    ...modeLines,
    '\t}',
    `\t${transport} {`,
    ...(transport === 'Multicast'
      ? [
          `\t\tIPv4_address ${opts.sync.group ?? ''}`,
          `\t\tGroup ${opts.sync.port}`,
          `\t\tIPv4_interface ${opts.sync.local}`,
        ]
      : [
          `\t\tIPv4_address ${opts.sync.local}`,
          `\t\tIPv4_Destination_Address ${opts.sync.peer}`,
          `\t\tPort ${opts.sync.port}`,
        ]),
    ...(opts.sync.interface ? [`\t\tInterface ${opts.sync.interface}`] : []),
    '\t\tSndSocketBuffer 4194304',
    '\t\tRcvSocketBuffer 4194304',
    '\t\tChecksum on',
    '\t}',
    ...(opts.extraSync ?? []).map((l) => `\t${l}`),
    '}',
    'General {',
    `\tHashSize ${opts.hashSize ?? 8192}`,
    `\tHashLimit ${opts.hashLimit ?? 262144}`,
    `\tLogFile ${paths.log}`,
    '\tSyslog off',
    // Without Systemd off, a build with systemd support talks to sd_notify.
    '\tSystemd off',
    `\tLockFile ${paths.lock}`,
    '\tUNIX {',
    `\t\tPath ${paths.socket}`,
    '\t}',
    `\tNetlinkBufferSize ${nl}`,
    `\tNetlinkBufferSizeMaxGrowth ${nl * 2}`,
    // The default is SCHED_RR at priority 99: not on a shared test machine.
    // Priority 0 is invalid for RR, so conntrackd warns and keeps SCHED_OTHER.
    '\tScheduler {',
    '\t\tType RR',
    '\t\tPriority 0',
    '\t}',
    ...(filter.length > 0
      ? [`\tFilter From ${f?.from === 'kernelspace' ? 'Kernelspace' : 'Userspace'} {`, ...filter, '\t}']
      : []),
    ...(opts.extraGeneral ?? []).map((l) => `\t${l}`),
    '}',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// The daemon

export class Conntrackd {
  readonly configPath: string;
  readonly socketPath: string;
  readonly lockPath: string;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private readonly output: string[] = [];
  private exited: Promise<void> | undefined;

  private constructor(readonly opts: ConntrackdOptions) {
    const base = join(opts.dir, `conntrackd-${opts.name}`);
    this.configPath = `${base}.conf`;
    this.socketPath = `${base}.sock`;
    this.lockPath = `${base}.lock`;
    this.logPath = `${base}.log`;
  }

  get bin(): string {
    return this.opts.bin ?? CONNTRACKD_BIN;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Writes the config, starts the daemon in the foreground and waits until its socket answers. */
  static async start(opts: ConntrackdOptions, timeoutMs = 10_000): Promise<Conntrackd> {
    requireConntrackd(opts.bin);
    const d = new Conntrackd(opts);
    for (const p of [d.lockPath, d.socketPath]) rmSync(p, { force: true });
    writeFileSync(
      d.configPath,
      conntrackdConfig(opts, { lock: d.lockPath, socket: d.socketPath, log: d.logPath }),
    );
    d.spawn();
    try {
      await d.waitReady(timeoutMs);
    } catch (e) {
      await d.stop('SIGKILL');
      throw e;
    }
    return d;
  }

  private spawn(): void {
    const child = spawn('ip', ['netns', 'exec', this.opts.ns.name, this.bin, '-C', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding('utf8');
      s?.on('data', (d: string) => {
        this.output.push(d);
        if (this.output.length > 500) this.output.splice(0, 250);
      });
    }
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.child = child;
  }

  /** What the daemon printed (console mode logs there) and its log file's tail. */
  diagnostics(): string {
    const log = existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8').slice(-3000) : '';
    const out = this.output.join('').slice(-3000);
    return `conntrackd ${this.opts.name} (pid ${this.pid}, running=${this.running}):\n${out}\n${log}`;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`conntrackd ${this.opts.name} exited during startup\n${this.diagnostics()}`);
      // The client exits 1 only when it cannot connect to the socket.
      if (existsSync(this.socketPath)) {
        const ok = await this.client(['-s', 'runtime']).then(
          () => true,
          () => false,
        );
        if (ok) return;
      }
      if (Date.now() > deadline) throw new Error(`conntrackd ${this.opts.name} not ready\n${this.diagnostics()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs `conntrackd -C CONF ...args` in the namespace and returns its stdout. */
  async client(args: string[], timeoutMs = 30_000): Promise<string> {
    const { stdout } = await this.opts.ns.exec(this.bin, ['-C', this.configPath, ...args], { timeoutMs });
    return stdout;
  }

  /** `-i`: the internal cache (this node's kernel table, filtered). */
  async internal(): Promise<CtTextEntry[]> {
    return parseConntrackText(await this.client(['-i']));
  }

  /** `-e`: the external cache (what the peer sent). */
  async external(): Promise<CtTextEntry[]> {
    return parseConntrackText(await this.client(['-e']));
  }

  /** `-s`: the general statistics. */
  async stats(): Promise<ConntrackdStats> {
    return parseConntrackdStats(await this.client(['-s']));
  }

  /** `-s cache`: per-cache hashtable statistics. */
  async cacheStats(): Promise<Record<string, ConntrackdCacheStats>> {
    return parseConntrackdCacheStats(await this.client(['-s', 'cache']));
  }

  /** `-s runtime`: netlink and process counters, as label → number per section. */
  async runtimeStats(): Promise<Record<string, Record<string, number>>> {
    return parseConntrackdSections(await this.client(['-s', 'runtime']));
  }

  /** `-c`: commits the external cache to the kernel; synchronous in conntrackd. */
  async commit(): Promise<string> {
    return this.client(['-c']);
  }

  /** `-f [internal|external]`. */
  async flush(which?: 'internal' | 'external'): Promise<string> {
    return this.client(which ? ['-f', which] : ['-f']);
  }

  /** `-B`: bulk-sends the internal cache to the peer. */
  async bulkSend(): Promise<string> {
    return this.client(['-B']);
  }

  /** `-n`: asks the peer for a resync. */
  async requestResync(): Promise<string> {
    return this.client(['-n']);
  }

  /** `-R`: resyncs the internal cache with the kernel table. */
  async resyncWithKernel(): Promise<string> {
    return this.client(['-R']);
  }

  /** Signals the daemon we started, by PID, and waits for it to exit (SIGKILL after 5 s). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child && this.running) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    this.child = undefined;
    // A killed conntrackd leaves both behind, and a stale lock file blocks the next start.
    for (const p of [this.lockPath, this.socketPath]) rmSync(p, { force: true });
  }
}

// ---------------------------------------------------------------------------
// conntrack(8)-style entry lines

export interface CtTuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** ICMP and ICMPv6. */
  type?: number;
  code?: number;
  id?: number;
  /** Every key=value of the tuple, including the ones above and per-direction counters. */
  fields: Record<string, string>;
}

export interface CtTextEntry {
  /** Only in `-o extended` output. */
  l3?: string;
  proto: string;
  protonum: number;
  /** Seconds left; conntrack -L prints it, conntrackd's cache dumps do not. */
  timeout?: number;
  /** TCP, SCTP or DCCP state. */
  state?: string;
  orig: CtTuple;
  /** Absent when the source holds no reply tuple (conntrackd's external cache). */
  reply?: CtTuple;
  /** Bracketed flags without brackets: ASSURED, UNREPLIED, OFFLOAD, HW_OFFLOAD, ... */
  flags: string[];
  mark?: number;
  /** The conntrack zone (printed only when not 0). */
  zone?: number;
  use?: number;
  /** conntrackd: "[active since Ns]". */
  activeSince?: number;
  /** conntrackd ALARM external cache: "[expires in Ns]". */
  expiresIn?: number;
  /** Every other key=value outside the tuples (secctx, labels, helper, id, ...). */
  fields: Record<string, string>;
  raw: string;
}

const TUPLE_KEYS = new Set([
  'dst',
  'sport',
  'dport',
  'type',
  'code',
  'id',
  'srckey',
  'dstkey',
  'vtag',
  'packets',
  'bytes',
  'zone-orig',
  'zone-reply',
]);

function num(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function finishTuple(fields: Record<string, string>, raw: string): CtTuple {
  if (fields.src === undefined || fields.dst === undefined) throw new Error(`tuple without src/dst in: ${raw}`);
  const t: CtTuple = { src: fields.src, dst: fields.dst, fields };
  const opt: Array<[keyof CtTuple, string]> = [
    ['sport', 'sport'],
    ['dport', 'dport'],
    ['type', 'type'],
    ['code', 'code'],
    ['id', 'id'],
  ];
  for (const [k, f] of opt) {
    const v = num(fields[f]);
    if (v !== undefined) (t as unknown as Record<string, unknown>)[k] = v;
  }
  return t;
}

/**
 * Parses one line as conntrack(8) and conntrackd -i/-e print it:
 *   tcp      6 431999 ESTABLISHED src=A dst=B sport=1 dport=2 [UNREPLIED]
 *     src=B dst=A sport=2 dport=1 [ASSURED] mark=0 zone=3 use=1
 * (one line) with conntrackd's ` [active since 3s]` or ` [expires in 3s]` appended,
 * the timeout and the reply tuple being optional, and an optional leading
 * `ipv4     2` (-o extended).
 */
export function parseConntrackLine(line: string): CtTextEntry {
  const raw = line.trim();
  // Multi-word bracketed items first: [active since 3s], [expires in 3s].
  let rest = raw;
  let activeSince: number | undefined;
  let expiresIn: number | undefined;
  rest = rest.replace(/\[active since (\d+)s\]/, (_m, s: string) => {
    activeSince = Number(s);
    return '';
  });
  rest = rest.replace(/\[expires in (\d+)s\]/, (_m, s: string) => {
    expiresIn = Number(s);
    return '';
  });
  const tokens = rest.split(/\s+/).filter((t) => t !== '');
  let i = 0;
  let l3: string | undefined;
  if (tokens[0] === 'ipv4' || tokens[0] === 'ipv6') {
    l3 = tokens[0];
    i = 2;
  }
  const proto = tokens[i++];
  const protonum = num(tokens[i++]);
  if (proto === undefined || protonum === undefined) throw new Error(`not a conntrack line: ${raw}`);
  const e: CtTextEntry = { proto, protonum, orig: undefined as unknown as CtTuple, flags: [], fields: {}, raw };
  if (l3) e.l3 = l3;
  if (activeSince !== undefined) e.activeSince = activeSince;
  if (expiresIn !== undefined) e.expiresIn = expiresIn;
  const tuples: Record<string, string>[] = [];
  let inTuple = false;
  for (; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.startsWith('[') && t.endsWith(']')) {
      e.flags.push(t.slice(1, -1));
      continue;
    }
    const eq = t.indexOf('=');
    if (eq < 0) {
      if (/^\d+$/.test(t) && e.timeout === undefined && e.state === undefined && tuples.length === 0) {
        e.timeout = Number(t);
      } else if (/^[A-Z][A-Z0-9_]*$/.test(t) && e.state === undefined && tuples.length === 0) {
        e.state = t;
      } else {
        throw new Error(`unexpected token ${JSON.stringify(t)} in: ${raw}`);
      }
      continue;
    }
    const key = t.slice(0, eq);
    const value = t.slice(eq + 1);
    if (key === 'src') {
      if (tuples.length >= 2) throw new Error(`more than two tuples in: ${raw}`);
      tuples.push({ src: value });
      inTuple = true;
      continue;
    }
    // A tuple ends at the first key that is not a tuple key (mark, use, zone ...);
    // `id` after that is the conntrack id, not an ICMP id.
    if (inTuple && TUPLE_KEYS.has(key) && tuples.at(-1)![key] === undefined) {
      tuples.at(-1)![key] = value;
      continue;
    }
    inTuple = false;
    e.fields[key] = value;
  }
  if (tuples.length === 0) throw new Error(`no tuple in: ${raw}`);
  e.orig = finishTuple(tuples[0]!, raw);
  if (tuples[1]) e.reply = finishTuple(tuples[1], raw);
  const mark = num(e.fields.mark);
  if (mark !== undefined) e.mark = mark;
  const zone = num(e.fields.zone);
  if (zone !== undefined) e.zone = zone;
  const use = num(e.fields.use);
  if (use !== undefined) e.use = use;
  return e;
}

/** Parses every entry line; blank lines and conntrack(8)'s summary line are skipped. */
export function parseConntrackText(text: string): CtTextEntry[] {
  const out: CtTextEntry[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('conntrack v')) continue;
    out.push(parseConntrackLine(l));
  }
  return out;
}

/**
 * The identity of an entry as both daemons key their caches: family,
 * protocol, original tuple and zone. Addresses are compared as printed, so
 * callers must spell IPv6 the same way (both print the compressed form).
 */
export function ctTextKey(e: CtTextEntry): string {
  const o = e.orig;
  const l4 =
    o.sport !== undefined ? `${o.sport}|${o.dport ?? ''}` : `${o.type ?? ''}|${o.code ?? ''}|${o.id ?? ''}`;
  return `${e.proto}|${o.src}|${o.dst}|${l4}|${e.zone ?? 0}`;
}

// ---------------------------------------------------------------------------
// Statistics

export interface ConntrackdCacheCounters {
  /** "current active connections" */
  active: number;
  created: number;
  createFailed: number;
  updated: number;
  updateFailed: number;
  destroyed: number;
  destroyFailed: number;
}

export interface ConntrackdStats {
  /** "cache internal:" and "cache external:"; absent when the cache is disabled. */
  internal?: ConntrackdCacheCounters;
  external?: ConntrackdCacheCounters;
  /** Every section, as label → number (the "failed" of a line becomes "<label> failed"). */
  sections: Record<string, Record<string, number>>;
}

/**
 * Splits conntrackd statistics text into sections (a line at column 0 that
 * ends in ':') of label → number. Handles both layouts it uses:
 * `label:\t N` (with an optional `\tfailed:\t N`) and `   N Label   N Label`.
 */
export function parseConntrackdSections(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  let section: Record<string, number> | undefined;
  let sub = '';
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line) && line.trimEnd().endsWith(':')) {
      section = {};
      sub = '';
      out[line.trim().slice(0, -1)] = section;
      continue;
    }
    if (!section) continue;
    const trimmed = line.trim();
    // Sub-headings such as "recv:" / "send:" in -s network.
    if (/^[a-z]+:$/.test(trimmed)) {
      sub = `${trimmed.slice(0, -1)} `;
      continue;
    }
    const labelled = /^([^:\t]+?):\s+(-?\d+)(?:\s+failed:\s+(-?\d+))?$/.exec(trimmed);
    if (labelled) {
      section[`${sub}${labelled[1]}`] = Number(labelled[2]);
      if (labelled[3] !== undefined) section[`${sub}${labelled[1]} failed`] = Number(labelled[3]);
      continue;
    }
    // "    720 Bytes sent    712 Bytes recv"
    const pairs = trimmed.matchAll(/(\d+) ([A-Za-z][A-Za-z ]*?[a-z])(?=\s+\d|\s*$)/g);
    for (const p of pairs) section[`${sub}${p[2]}`] = Number(p[1]);
  }
  return out;
}

function cacheCounters(s: Record<string, number> | undefined): ConntrackdCacheCounters | undefined {
  if (!s) return undefined;
  const get = (k: string): number => {
    const v = s[k];
    if (v === undefined) throw new Error(`conntrackd stats: no "${k}"`);
    return v;
  };
  return {
    active: get('current active connections'),
    created: get('connections created'),
    createFailed: get('connections created failed'),
    updated: get('connections updated'),
    updateFailed: get('connections updated failed'),
    destroyed: get('connections destroyed'),
    destroyFailed: get('connections destroyed failed'),
  };
}

/** Parses `conntrackd -s` (or `-s ct`). */
export function parseConntrackdStats(text: string): ConntrackdStats {
  const sections = parseConntrackdSections(text);
  const out: ConntrackdStats = { sections };
  const internal = cacheCounters(sections['cache internal']);
  const external = cacheCounters(sections['cache external']);
  if (internal) out.internal = internal;
  if (external) out.external = external;
  return out;
}

export interface ConntrackdCacheStats {
  /** "active objects": live entries plus DEAD ones still referenced by the resend queue. */
  objects: number;
  active: number;
  total: number;
  createOk: number;
  createFailed: number;
  noMemory: number;
  noSpace: number;
  updateOk: number;
  updateFailed: number;
  updateNotFound: number;
  deleteOk: number;
  deleteFailed: number;
  deleteNotFound: number;
}

/** Parses `conntrackd -s cache`: one block per cache ("cache:internal", "cache:external", ...). */
export function parseConntrackdCacheStats(text: string): Record<string, ConntrackdCacheStats> {
  const out: Record<string, ConntrackdCacheStats> = {};
  let cur: Partial<ConntrackdCacheStats> | undefined;
  let lastPair = '';
  const pair = (v: string): [number, number] => {
    const m = /^\s*(\d+)\/\s*(\d+)\s*$/.exec(v);
    if (!m) throw new Error(`conntrackd -s cache: expected N/N, got ${JSON.stringify(v)}`);
    return [Number(m[1]), Number(m[2])];
  };
  for (const line of text.split('\n')) {
    const head = /^cache:(\S+)\s+active objects:\s+(\d+)\s*$/.exec(line);
    if (head) {
      cur = { objects: Number(head[2]) };
      out[head[1]!] = cur as ConntrackdCacheStats;
      continue;
    }
    const m = /^\s+([^:]+):\s+(.+)$/.exec(line);
    if (!cur || !m) continue;
    const label = m[1]!.trim();
    const value = m[2]!;
    switch (label) {
      case 'active/total entries':
        [cur.active, cur.total] = pair(value);
        break;
      case 'creation OK/failed':
        [cur.createOk, cur.createFailed] = pair(value);
        lastPair = 'create';
        break;
      case 'no memory available':
        cur.noMemory = Number(value);
        break;
      case 'no space left in cache':
        cur.noSpace = Number(value);
        break;
      case 'update OK/failed':
        [cur.updateOk, cur.updateFailed] = pair(value);
        lastPair = 'update';
        break;
      case 'deletion created/failed':
        [cur.deleteOk, cur.deleteFailed] = pair(value);
        lastPair = 'delete';
        break;
      case 'entry not found':
        // Printed under both update and deletion.
        if (lastPair === 'update') cur.updateNotFound = Number(value);
        else cur.deleteNotFound = Number(value);
        break;
    }
  }
  return out;
}
