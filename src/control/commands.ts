// Every control command, declared once: its name, conntrackd flags, the
// validation of its args on the command line and in the daemon, the
// handler, the text the CLI prints and when it exits 1. Its help text is
// help/<name>.txt, and the CLI's parser, help, dispatch and output all
// derive from this table; adding a command means adding it here (and its
// help file and test).
// Runtime imports stay light (format helpers only): the client loads this on
// keepalived's notify path.
import type { CommitReport } from '../cache/commit.js';
import {
  entryText,
  expectText,
  failuresText,
  STATS_KINDS,
  type StatsKind,
  statsSection,
  statsText,
} from './format.js';
import {
  type CliEntry,
  type CommandLine,
  ControlArgsError,
  defineCliCommand,
  defineCommand,
  type DispatchEntry,
  isOneOf,
  type RawArgs,
} from './command.js';
import type { CacheName, ControlTarget, DumpKind, FailoverState, FlushKernelResult, TableKind } from './target.js';

const CACHES: readonly CacheName[] = ['internal', 'external'];
const KINDS: readonly DumpKind[] = ['ct', 'expect'];
const STATES: readonly FailoverState[] = ['primary', 'backup', 'fault'];
/** conntrackd's optional ct|expect after -c, -F, -R: only that table; without it, both. */
const CT_OR_EXPECT: readonly TableKind[] = ['ct', 'expect'];

/** The optional ct|expect of commit, flush-kernel and resync, from argv; `extra` says what else the command takes. */
function tableKindArgv(line: CommandLine, extra = ''): { kind?: TableKind } | string {
  const [a0, a1] = line.args;
  if (a0 !== undefined && !isOneOf(CT_OR_EXPECT, a0)) return `${line.via} takes ct, expect or nothing, not '${a0}'${extra}`;
  if (a1 !== undefined) return `${line.via} takes one of ct or expect, not '${a1}'`;
  return a0 === undefined ? {} : { kind: a0 };
}

/** The same from a request's JSON args. */
function tableKindJson(raw: RawArgs): { kind?: TableKind } {
  const kind = raw.kind;
  if (kind === undefined) return {};
  if (!isOneOf(CT_OR_EXPECT, kind)) throw new ControlArgsError('kind must be ct or expect (or absent: both)');
  return { kind };
}

/** Commands without args: extra JSON args are ignored, as they always were. */
const noArgs = (_raw: RawArgs): Record<string, never> => ({});

/** For commands that take no positional argument at all. */
function noArgv(line: CommandLine): { args: Record<string, never> } | string {
  return line.args.length > 0 ? `${line.via} takes no argument '${line.args[0]}'` : { args: {} };
}

const joinPeers = (peers: unknown, none: string): string =>
  Array.isArray(peers) && peers.length > 0 ? peers.join(', ') : none;

const commit = defineCliCommand({
  name: 'commit',
  conntrackd: [{ flag: '-c', optional: CT_OR_EXPECT }],
  fromArgv(line) {
    // conntrackd's -c ct / -c expect: only that table; both (masters, related, expectations) without.
    const kind = tableKindArgv(line, ' (use --peer ID for one peer)');
    if (typeof kind === 'string') return kind;
    return { args: { ...kind, ...(line.peer === undefined ? {} : { peer: line.peer }) } };
  },
  fromJson(raw): { peer?: string; kind?: TableKind } {
    const peer = raw.peer;
    if (peer !== undefined && (typeof peer !== 'string' || peer === '')) {
      throw new ControlArgsError('peer must be a node id');
    }
    return { ...tableKindJson(raw), ...(peer === undefined ? {} : { peer }) };
  },
  run: (t, { peer, kind }): Promise<CommitReport> => t.commit(peer, kind),
  text(r) {
    const x: Partial<CommitReport['expectations']> = r.expectations ?? {};
    return (
      `committed ${String(r.committed)}, updated ${String(r.updated)}, unchanged ${String(r.unchanged)}, ` +
      `failed ${String(r.failed)}${failuresText(r.failures)} of ${String(r.entries)} entries` +
      ` from ${joinPeers(r.peers, 'no peer')}; ` +
      `expectations committed ${String(x.committed ?? 0)}, failed ${String(x.failed ?? 0)}${failuresText(x.failures)}; ` +
      `${String(r.durationMs)} ms`
    );
  },
  failure(r) {
    const failed = Number(r.failed ?? 0) + Number(r.expectations?.failed ?? 0);
    return failed > 0 ? `commit: ${failed} entries failed to go into the kernel` : undefined;
  },
});

const flush = defineCliCommand({
  name: 'flush',
  conntrackd: [{ flag: '-f', optional: CACHES }],
  fromArgv(line) {
    const [a0, a1] = line.args;
    if (a1 !== undefined) return `flush takes one argument, not '${a1}'`;
    if (a0 !== undefined && !isOneOf(CACHES, a0)) return `flush takes internal, external or nothing, not '${a0}'`;
    return { args: a0 === undefined ? {} : { cache: a0 } };
  },
  fromJson(raw): { cache?: CacheName } {
    const cache = raw.cache;
    if (cache === undefined) return {};
    if (!isOneOf(CACHES, cache)) throw new ControlArgsError('flush takes internal, external or nothing (both)');
    return { cache };
  },
  run: (t, { cache }) => t.flush(cache),
  text: (r) =>
    Object.entries(r)
      .map(([k, n]) => `flushed ${String(n)} entries from the ${k} cache`)
      .join('\n'),
});

const flushKernel = defineCliCommand({
  name: 'flush-kernel',
  conntrackd: [{ flag: '-F', optional: CT_OR_EXPECT }],
  fromArgv(line) {
    // -F ct: conntrack entries only; -F expect: expectations only; -F: both.
    const kind = tableKindArgv(line);
    return typeof kind === 'string' ? kind : { args: kind };
  },
  fromJson: tableKindJson,
  run: (t, { kind }) => t.flushKernel(kind),
  text: (r, call) => flushKernelText(r, call.args.kind),
});

function flushKernelText(r: FlushKernelResult, kind: TableKind | undefined): string {
  const ms = `${String(r.durationMs)} ms`;
  const x = r.expectations;
  const expectations =
    x === undefined
      ? 'expectations are not replicated (filter.expectations: none), none deleted'
      : `deleted ${String(x.deleted)} kernel expectations`;
  if (kind === 'expect') return `${expectations}; ${ms}`;
  const ct = `deleted ${String(r.deleted)} kernel entries, failed ${String(r.failed)}${failuresText(r.failures)}`;
  return kind === 'ct' || x === undefined ? `${ct}; ${ms}` : `${ct}; ${expectations}; ${ms}`;
}

const resync = defineCliCommand({
  name: 'resync',
  conntrackd: [{ flag: '-R', optional: CT_OR_EXPECT }],
  fromArgv(line) {
    // -R ct: the conntrack table only; -R expect: the expectations only; -R: both.
    const kind = tableKindArgv(line);
    return typeof kind === 'string' ? kind : { args: kind };
  },
  fromJson: tableKindJson,
  run: (t, { kind }) => t.resync(kind),
  text(r, call) {
    const ms = `${String(r.durationMs)} ms`;
    const ct = `${String(r.created)} new, ${String(r.updated)} updated, ${String(r.deleted)} gone`;
    const x = r.expectations;
    const xs = x && `expectations ${String(x.created)} new, ${String(x.updated)} updated, ${String(x.deleted)} gone`;
    if (call.args.kind === 'expect') return `resynced with the kernel: ${xs ?? 'expectations are not replicated (filter.expectations: none)'}; ${ms}`;
    return `resynced with the kernel: ${ct}${xs === undefined ? '' : `; ${xs}`}; ${ms}`;
  },
});

const requestResync = defineCliCommand({
  name: 'request-resync',
  conntrackd: [{ flag: '-n' }],
  fromArgv: noArgv,
  fromJson: noArgs,
  run: (t) => ({ requested: true, peers: [...t.requestResync()] }),
  text: (r) => `asked ${joinPeers(r.peers, 'every peer')} for a full resync`,
});

const bulkSend = defineCliCommand({
  name: 'bulk-send',
  conntrackd: [{ flag: '-B' }],
  fromArgv: noArgv,
  fromJson: noArgs,
  run: (t) => ({ entries: t.bulkSend() }),
  text: (r) => `queued ${String(r.entries)} entries for every peer`,
});

const purgeTimeout = defineCliCommand({
  name: 'purge-timeout',
  conntrackd: [{ flag: '-t' }],
  fromArgv: noArgv,
  fromJson: noArgs,
  run: (t) => t.purgeTimeout(),
  text: (r) =>
    `shortened ${String(r.shortened)} kernel timeouts to ${String(r.timeoutSeconds)} s (${String(r.local)} local connections kept, ${String(r.examined)} examined), failed ${String(r.failed)}${failuresText(r.failures)}`,
});

const failover = defineCliCommand({
  name: 'failover',
  fromArgv(line) {
    const [a0, a1] = line.args;
    if (!isOneOf(STATES, a0)) return 'failover takes primary, backup or fault';
    if (a1 !== undefined) return `failover takes one state, not '${a1}'`;
    return { args: { state: a0 } };
  },
  fromJson(raw): { state: FailoverState } {
    const state = raw.state;
    if (!isOneOf(STATES, state)) throw new ControlArgsError('failover takes primary, backup or fault');
    return { state };
  },
  run: (t, { state }) => t.failover(state),
  text: (r) => `failover ${String(r.state)}: ${String(r.steps)} steps run, ${String(r.failed)} failed`,
  failure: (r) =>
    Number(r.failed ?? 0) > 0
      ? `failover ${String(r.state)}: ${String(r.failed)} of ${String(r.steps)} steps failed (see the daemon's log)`
      : undefined,
});

const shutdown = defineCliCommand({
  name: 'shutdown',
  conntrackd: [{ flag: '-k' }],
  fromArgv: noArgv,
  fromJson: noArgs,
  run: (t) => {
    t.shutdown();
    return { stopping: true };
  },
  text: () => 'ctsyncd is stopping',
});

/** conntrackd's -s words in the order its parser tries a leading part of them (`-s c` is cache); ours after. */
const CONNTRACKD_STATS_ORDER: readonly StatsKind[] = [
  'network',
  'cache',
  'runtime',
  'multicast',
  'link',
  'rsqueue',
  'process',
  'queue',
  'ct',
  'expect',
];
const STATS_WORDS: readonly StatsKind[] = [
  ...CONNTRACKD_STATS_ORDER,
  ...STATS_KINDS.filter((k) => !CONNTRACKD_STATS_ORDER.includes(k)),
];

const stats = defineCliCommand({
  name: 'stats',
  conntrackd: [{ flag: '-s', optional: STATS_WORDS }],
  fromArgv(line): { args: Record<string, never>; options: { kind?: StatsKind } } | string {
    const [a0, a1] = line.args;
    if (a0 !== undefined && !isOneOf(STATS_KINDS, a0)) {
      return `unknown stats kind '${a0}' (one of: ${STATS_KINDS.join(' ')})`;
    }
    if (a1 !== undefined) return `stats takes one kind, not '${a1}'`;
    // KIND narrows what the client prints; the daemon always sends everything.
    return { args: {}, options: a0 === undefined ? {} : { kind: a0 } };
  },
  fromJson: noArgs,
  run: (t) => t.stats(),
  text: (r, call) => statsText(r, call.options?.kind),
  json: (r, call) => statsSection(r, call.options?.kind),
});

const dump = defineCliCommand({
  name: 'dump',
  conntrackd: [
    { flag: '-i', prefix: ['internal'], optional: KINDS },
    { flag: '-e', prefix: ['external'], optional: KINDS },
  ],
  fromArgv(line) {
    const [a0, a1, ...extra] = line.args;
    if (!isOneOf(CACHES, a0)) return 'dump needs internal or external';
    if (a1 !== undefined && !isOneOf(KINDS, a1)) return `dump takes ct or expect, not '${a1}'`;
    if (extra.length > 0) return `dump takes no argument '${extra[0]}'`;
    if (line.xml) return 'XML output (-x) is not supported; use --json';
    return { args: { cache: a0, kind: a1 ?? 'ct' } };
  },
  fromJson(raw): { cache: CacheName; kind: DumpKind } {
    const cache = raw.cache;
    if (!isOneOf(CACHES, cache)) throw new ControlArgsError('dump needs cache: internal or external');
    const kind = raw.kind ?? 'ct';
    if (!isOneOf(KINDS, kind)) throw new ControlArgsError('dump kind must be ct or expect');
    return { cache, kind };
  },
  run: (t, { cache, kind }) => (kind === 'ct' ? t.dump(cache) : t.dumpExpect(cache)),
  text(r, call) {
    const list = Array.isArray(r) ? r : [];
    // An empty cache prints nothing, like conntrack -L.
    return list.length > 0 ? list.map(call.args.kind === 'expect' ? expectText : entryText).join('\n') : undefined;
  },
});

/** The control commands the CLI offers, in the order of `ctsyncd --help`. */
export const CLI_CONTROL_COMMANDS = [
  commit,
  flush,
  flushKernel,
  resync,
  requestResync,
  bulkSend,
  purgeTimeout,
  failover,
  shutdown,
  stats,
  dump,
] as const;

/** The CLI's liveness probe (daemon --detach): not a command line of its own. */
const ping = defineCommand({
  name: 'ping',
  fromJson: noArgs,
  run: () => ({ pong: true }),
});

/** Every request the daemon answers. */
export const CONTROL_COMMANDS: readonly DispatchEntry[] = [...CLI_CONTROL_COMMANDS, ping];

export type ControlCommandName = (typeof CLI_CONTROL_COMMANDS)[number]['name'];

/**
 * What the control server still answers when every regular connection is
 * taken (ControlServer's reserve): the failover path (failover, commit), a
 * look at the daemon (stats) and the liveness probe. Each is one small
 * request with a bounded reply.
 */
export const RESERVED_COMMANDS: readonly (ControlCommandName | 'ping')[] = ['failover', 'commit', 'stats', 'ping'];

export function cliControlCommand(name: string): CliEntry | undefined {
  return CLI_CONTROL_COMMANDS.find((c) => c.name === name);
}

/**
 * The daemon's handler map (ControlServer's `handlers`), every request's args
 * validated by its declaration before the target sees them.
 */
export function dispatchTable(target: ControlTarget): Record<string, (args: RawArgs) => unknown> {
  const out: Record<string, (args: RawArgs) => unknown> = {};
  for (const c of CONTROL_COMMANDS) out[c.name] = c.handler(target);
  return out;
}
