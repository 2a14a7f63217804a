// Fault injection on the sync link for the reliability tests. The kernel here
// has no netem, so:
// - loss: an nftables rule in a netdev egress hook on a node's sync0 drops a
//   random share of the UDP datagrams to the sync port as they leave the
//   namespace (a drop in the OUTPUT hook would return EPERM to the sender,
//   which is no lost datagram). Named counters tell how many were seen and
//   dropped.
// - reordering and duplication: a relay (udp-relay.mjs) in its own namespace
//   on the sync link between the nodes, for the UDP transport.
// Children run with `ip netns exec`, which execs node itself, so the PID we
// hold is the process we kill.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Netns } from './netns.js';

const RELAY_SCRIPT = resolve(import.meta.dirname, 'udp-relay.mjs');

export interface EgressLossOptions {
  /** Share of matching datagrams dropped, in percent (integer 0..100). */
  percent: number;
  device?: string;
  /** UDP destination port that is hit (the sync port). */
  port?: number;
}

/** The nftables ruleset text that drops `percent`% of UDP datagrams to `port` leaving `device`. */
export function egressLossRuleset(opts: EgressLossOptions): string {
  const { percent, device = 'sync0', port = 3780 } = opts;
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`bad loss percent ${percent}`);
  return [
    'table netdev ctloss {',
    '  counter seen {}',
    '  counter dropped {}',
    '  chain eg {',
    `    type filter hook egress device "${device}" priority 0; policy accept;`,
    `    udp dport ${port} counter name "seen" numgen random mod 100 < ${percent} counter name "dropped" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Installs random egress loss on a namespace's sync interface (replacing an earlier one). */
export async function addEgressLoss(ns: Netns, opts: EgressLossOptions): Promise<void> {
  await removeEgressLoss(ns);
  const child = spawn('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(egressLossRuleset(opts));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  if (code !== 0) throw new Error(`nft in ${ns.name} failed (${code}): ${stderr}`);
  // A hook on a device that does not exist is accepted: make sure it is there.
  const { stdout } = await ns.exec('ip', ['-o', 'link', 'show', 'dev', opts.device ?? 'sync0']);
  if (!stdout.includes(opts.device ?? 'sync0')) throw new Error(`no ${opts.device ?? 'sync0'} in ${ns.name}`);
}

export async function removeEgressLoss(ns: Netns): Promise<void> {
  await ns.exec('nft', ['delete', 'table', 'netdev', 'ctloss']).catch(() => undefined);
}

export interface LossCounters {
  /** UDP datagrams to the sync port that left (or tried to leave) the interface. */
  seen: number;
  dropped: number;
}

export async function egressLossCounters(ns: Netns): Promise<LossCounters> {
  const { stdout } = await ns.exec('nft', ['-j', 'list', 'counters', 'table', 'netdev', 'ctloss']);
  const out: LossCounters = { seen: 0, dropped: 0 };
  const doc = JSON.parse(stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> };
  for (const item of doc.nftables) {
    if (item.counter?.name === 'seen') out.seen = item.counter.packets;
    if (item.counter?.name === 'dropped') out.dropped = item.counter.packets;
  }
  return out;
}

interface Waiter {
  what: string;
  match: (e: Record<string, unknown>) => boolean;
  resolve: (e: Record<string, unknown>) => void;
  reject: (err: Error) => void;
}

/** A child process inside a namespace speaking JSON lines (udp-relay.mjs). */
export class JsonlChild {
  readonly events: Array<Record<string, unknown>> = [];
  readonly stderr: string[] = [];
  private waiters: Waiter[] = [];
  private nextId = 1;
  private exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((r) =>
      child.once('exit', (code, sig) => {
        for (const w of this.waiters.splice(0)) {
          w.reject(new Error(`${name} exited (${code ?? sig}) before ${w.what}: ${this.stderr.join('').slice(-2000)}`));
        }
        r();
      }),
    );
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr.push(d);
      if (this.stderr.length > 200) this.stderr.splice(0, 100);
    });
    if (child.stdout) {
      createInterface({ input: child.stdout }).on('line', (line) => {
        let ev: Record<string, unknown>;
        try {
          ev = JSON.parse(line) as Record<string, unknown>;
        } catch {
          this.stderr.push(`(stdout) ${line}\n`);
          return;
        }
        this.events.push(ev);
        if (this.events.length > 1000) this.events.splice(0, 500);
        for (const w of [...this.waiters]) {
          if (w.match(ev)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(ev);
          }
        }
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The next event that matches (also one that came already, if `past`). */
  waitEvent(
    match: (e: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs = 15_000,
    past = true,
  ): Promise<Record<string, unknown>> {
    const earlier = past ? this.events.find(match) : undefined;
    if (earlier) return Promise.resolve(earlier);
    if (!this.running) return Promise.reject(new Error(`${this.name} is not running (waiting for ${what})`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        what,
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.name}: timed out waiting for ${what}; stderr: ${this.stderr.join('').slice(-2000)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  async ready(timeoutMs = 15_000): Promise<void> {
    const ev = await this.waitEvent((e) => e.ev === 'ready' || e.ev === 'error', 'ready', timeoutMs);
    if (ev.ev === 'error') throw new Error(`${this.name}: ${String(ev.code)} ${String(ev.message)}`);
  }

  async stats<T = Record<string, unknown>>(timeoutMs = 5_000): Promise<T> {
    const id = this.nextId++;
    const reply = this.waitEvent((e) => e.ev === 'stats' && e.id === id, `stats #${id}`, timeoutMs, false);
    this.command({ op: 'stats', id });
    return (await reply) as T;
  }

  /** Writes one command line to the child. */
  command(cmd: Record<string, unknown>): void {
    this.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
  }

  /** SIGKILL by PID (the process we started); resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

function spawnScript(ns: Netns, mode: 'relay' | 'probe' | 'recorder', spec: unknown): JsonlChild {
  const child = spawn('ip', ['netns', 'exec', ns.name, 'node', RELAY_SCRIPT, mode, JSON.stringify(spec)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // The child may die before we write to it; its exit is reported elsewhere.
  child.stdin.on('error', () => undefined);
  return new JsonlChild(`${mode}@${ns.name}`, child);
}

export interface RelaySpec {
  port: number;
  /** Node j is reached at routes[j].listen and lives at routes[j].forwardTo. */
  routes: Array<{ listen: string; forwardTo: string }>;
  delayMs?: [number, number];
  /** Share of the datagrams leaving the relay that were held back behind the next one, in percent. */
  reorderPct?: number;
  duplicatePct?: number;
  /** A held datagram goes anyway after this long without a next one. */
  holdMaxMs?: number;
  /** Keep every datagram received, for relayReplay(). */
  record?: boolean;
}

export interface RelayCounters {
  received: number;
  unknownSource: number;
  duplicated: number;
  heldBack: number;
  releasedAfterNext: number;
  releasedByTimer: number;
  forwarded: number;
  sendErrors: number;
  maxDelayMs: number;
}

export interface RelayStats {
  counters: RelayCounters;
  flows: Record<string, { received: number; forwarded: number; duplicated: number; heldBack: number }>;
}

/** Plays a recording relay's whole recording back `times` times, each datagram from the side that sent it. */
export async function relayReplay(
  relay: JsonlChild,
  id: number,
  times: number,
  timeoutMs = 120_000,
): Promise<{ sent: number; sendErrors: number; recorded: number }> {
  const done = relay.waitEvent((e) => e.ev === 'replayed' && e.id === id, `replay #${id}`, timeoutMs, false);
  relay.command({ op: 'replay', id, times });
  return (await done) as unknown as { sent: number; sendErrors: number; recorded: number };
}

/** A host on the sync link that records what is sent to a multicast group and can replay it (relayReplay). */
export async function startRecorder(
  ns: Netns,
  spec: { group: string; port: number; interfaceAddress: string },
): Promise<JsonlChild> {
  const rec = spawnScript(ns, 'recorder', spec);
  try {
    await rec.ready();
  } catch (e) {
    await rec.kill();
    throw e;
  }
  return rec;
}

export async function startRelay(ns: Netns, spec: RelaySpec): Promise<JsonlChild> {
  const relay = spawnScript(ns, 'relay', spec);
  try {
    await relay.ready();
  } catch (e) {
    await relay.kill();
    throw e;
  }
  return relay;
}

export interface ProbeSpec {
  bind: string;
  port: number;
  join?: { group: string; interfaceAddress: string };
  send?: {
    to: string[];
    port: number;
    count: number;
    burst?: number;
    intervalMs?: number;
    size?: number;
    /** Local address whose interface multicast leaves by. */
    multicastInterface?: string;
  };
}

export interface ProbeReport {
  received: number;
  foreign: number;
  unique: number;
  duplicates: number;
  /** Datagrams that arrived after one with a higher sequence number. */
  inversions: number;
  maxSeq: number;
  sources: Record<string, number>;
}

/** A numbered-datagram endpoint (sender and/or receiver) inside a namespace. */
export async function startProbe(ns: Netns, spec: ProbeSpec): Promise<JsonlChild> {
  const probe = spawnScript(ns, 'probe', spec);
  try {
    await probe.ready();
  } catch (e) {
    await probe.kill();
    throw e;
  }
  return probe;
}

/** Has a probe send its datagrams; resolves when all were handed to the kernel. */
export async function probeSend(probe: JsonlChild, timeoutMs = 60_000): Promise<{ count: number; sendErrors: number }> {
  const done = probe.waitEvent((e) => e.ev === 'sent', 'sent', timeoutMs, false);
  probe.command({ op: 'send' });
  return (await done) as unknown as { count: number; sendErrors: number };
}

export async function probeReport(probe: JsonlChild): Promise<ProbeReport> {
  return (await probe.stats<{ report: ProbeReport }>()).report;
}
