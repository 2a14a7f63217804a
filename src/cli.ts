// One binary for the daemon and every client command.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Client commands run from keepalived's notify path at failover, so they load
// only what they use: the daemon, the kernel link, the schema validator and
// the rest are imported where they are needed.
import { entryText, expectText, resultText, statsSection, statsText } from './cli/format.js';
import { type Invocation, parseArgs, STATS_KINDS, UsageError } from './cli/parse.js';
import { DAEMON_NODE_FLAGS } from './cli/node-flags.js';
import { scanControlSocket } from './cli/socket-path.js';
import type { Config } from './config/index.js';
import { ControlError, controlRequest } from './control/client.js';
import { createLogger } from './log.js';

const DEFAULT_CONFIG = '/etc/ctsyncd/conntrackd.yaml';
/** DEFAULTS.control.socket, restated so client commands need not load the schema (a test keeps them equal). */
export const DEFAULT_SOCKET = '/run/ctsyncd/ctsyncd.sock';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

const HELP = `Usage: ctsyncd --config FILE                 run the daemon in the foreground
       ctsyncd --config FILE <command> [options]
       ctsyncd -C FILE <conntrackd flag>          conntrackd-compatible form

Commands (talk to the running daemon over its control socket):
  commit [--peer ID]         external cache -> kernel (conntrackd -c)
  flush [internal|external]  empty one cache, or both (-f)
  flush-kernel               delete the kernel entries the filter accepts (-F)
  resync                     kernel -> internal cache, replicating differences (-R)
  request-resync             ask every peer for its full state (-n)
  bulk-send                  push the internal cache to every peer (-B)
  purge-timeout              shorten the kernel timeouts of connections this node
                             does not own to failover.purgeTimeoutSeconds (-t)
  failover primary|backup|fault
                             run keepalived's step sequence for that state inside
                             the daemon, in arrival order (one notify command)
  shutdown                   stop the daemon (-k)
  stats [KIND] [--json]      counters; KIND: ct expect network cache runtime link
                             rsqueue queue process peers commit (-s [KIND])
  dump internal|external [ct|expect] [--json]
                             the entries of one cache (-i, -e)
  keepalived-fifo PATH       follow keepalived's notify_fifo and run the failover
                             sequence in keepalived's order (notify_fifo_script)

Local commands:
  daemon [--detach]          run the daemon; --detach (-d) returns once it answers
  check-config FILE          validate a configuration file; errors as file:line:col
  import-conntrackd FILE     convert a conntrackd.conf to ctsyncd YAML
  kernel dump [--netns PATH] [--json]
                             list this host's kernel conntrack table (ctnetlink)
  demo                       two firewalls in network namespaces, a failover that
                             keeps 20 NATed TCP connections alive (root, < 1 min)
  help [COMMAND]             show help

conntrackd flags: -C FILE -d -c -f [internal|external] -F -i [ct|expect]
  -e [ct|expect] -x -k -s [KIND] -R -n -B -t

Options:
  -C, --config FILE          configuration file (default /etc/ctsyncd/conntrackd.yaml)
  --json                     print the daemon's answer as JSON
  -h, --help                 show help (also: ctsyncd COMMAND --help)
  -V, --version              print the version

Exit status: 0 on success; 1 when the command failed (daemon not running,
permission denied, a failed commit, ...), with one line on stderr; 2 on a
usage error.
`;

const COMMAND_HELP: Record<string, string> = {
  daemon: `Usage: ctsyncd --config FILE [daemon] [--detach]
       ctsyncd -C FILE -d

Runs the daemon in the foreground (systemd, keepalived-managed setups), or
with --detach / -d in the background: the command returns 0 once the new
daemon answers on its control socket, 1 if it could not start.
`,
  commit: `Usage: ctsyncd --config FILE commit [--peer ID] [--json]
       ctsyncd -C FILE -c

Writes the external cache (the connections peers replicated) into the kernel,
so they survive this node becoming primary. Masters go in before related
entries, expectations last. An entry the kernel already holds is replaced by
the replicated one (its NAT mapping and TCP state), unless this very version
was committed before: a second commit changes nothing. --peer limits the
commit to one peer's entries. Prints counts of committed, updated, unchanged
and failed entries (failures by errno) and the duration; exits 1 if any entry
failed.
`,
  flush: `Usage: ctsyncd --config FILE flush [internal|external]
       ctsyncd -C FILE -f [internal|external]

Empties the internal cache (this node's connections), the external cache
(peers' connections), or both when no argument is given. Nothing is sent to
peers and the kernel is not touched.
`,
  'flush-kernel': `Usage: ctsyncd --config FILE flush-kernel
       ctsyncd -C FILE -F

Deletes every kernel conntrack entry the configured filter accepts, and all
expectations. Entries the filter ignores (the sync link, loopback) stay. The
deletions are not replicated.
`,
  resync: `Usage: ctsyncd --config FILE resync
       ctsyncd -C FILE -R

Dumps the kernel table into the internal cache and replicates the
differences (new, changed and vanished connections) to the peers.
`,
  'request-resync': `Usage: ctsyncd --config FILE request-resync
       ctsyncd -C FILE -n

Asks every peer to send its full state; the external cache is refilled
and entries the peers no longer have are removed.
`,
  'bulk-send': `Usage: ctsyncd --config FILE bulk-send
       ctsyncd -C FILE -B

Sends this node's whole internal cache to every peer.
`,
  'purge-timeout': `Usage: ctsyncd --config FILE purge-timeout
       ctsyncd -C FILE -t

Shortens to failover.purgeTimeoutSeconds (default 60) the kernel timeouts of
the connections this node does not own (every entry the filter accepts whose
endpoints are not this node's addresses), and drops them from the internal
cache. Run when this node becomes backup: its stale entries then expire
unless traffic still flows through it.
`,
  failover: `Usage: ctsyncd --config FILE failover primary|backup|fault

Runs the failover sequence for a keepalived state inside the daemon, in one
request: primary -> commit, flush, resync, bulk-send; backup -> purge-timeout,
request-resync; fault -> purge-timeout. States from concurrent callers (and
from failover.notifyFifo) are applied in arrival order; a state equal to the
current one does nothing. Exits 1 if a step failed. For keepalived.conf:
  notify_master "/usr/local/bin/ctsyncd --config /etc/ctsyncd/conntrackd.yaml failover primary"
`,
  shutdown: `Usage: ctsyncd --config FILE shutdown
       ctsyncd -C FILE -k

Asks the daemon to stop cleanly (like SIGTERM).
`,
  stats: `Usage: ctsyncd --config FILE stats [KIND] [--json]
       ctsyncd -C FILE -s [KIND]

Prints the daemon's counters. KIND narrows them down: ct (caches and sync),
expect, network, cache, runtime (kernel link, events, overruns), link
(sync channels), rsqueue (resend queue), queue, process, peers, commit.
--json prints the same numbers as one JSON object.
`,
  dump: `Usage: ctsyncd --config FILE dump internal|external [ct|expect] [--json]
       ctsyncd -C FILE -i [ct|expect]     (internal)
       ctsyncd -C FILE -e [ct|expect]     (external)

Prints the entries of the internal cache (this node's connections) or the
external cache (connections learned from peers, with their origin), in
conntrack(8)'s layout, or as a JSON array with --json. XML (-x) is not
supported: use --json.
`,
  'keepalived-fifo': `Usage: ctsyncd --config FILE keepalived-fifo PATH

Reads keepalived's notify FIFO at PATH (keepalived.conf: notify_fifo PATH, or
notify_fifo_script "ctsyncd --config FILE keepalived-fifo", which passes PATH
last) and runs the failover sequence for each state change, in keepalived's
order: MASTER -> commit, flush, resync, bulk-send; BACKUP -> purge-timeout,
request-resync; FAULT -> purge-timeout. Runs until stopped.
`,
  'check-config': `Usage: ctsyncd check-config FILE

Validates FILE against the configuration schema. Prints "FILE: ok" and exits 0,
or prints one line per problem as FILE:LINE:COLUMN FIELD MESSAGE and exits 1.
`,
  'import-conntrackd': `Usage: ctsyncd import-conntrackd FILE [--output OUT] [--node-id ID] [--cluster-id N]

Converts a conntrackd.conf (Sync with Mode FTFW, NOTRACK or ALARM, its
Multicast, UDP or TCP links and Options; General with its Filter) to ctsyncd
YAML, written to OUT or standard output. FILE may be gzipped, or - for
standard input. The comment on each value names the line it came from.

Every option that cannot be carried over as written is reported on stderr as
FILE:LINE: and listed at the top of the output. ALARM becomes notrack, which
re-sends the whole table every RefreshTime. A result that still fails
check-config (e.g. a Multicast block without Interface) is converted anyway,
with a warning saying which key to fill in.

conntrackd.conf has no node or cluster id: node.id is the short host name
unless --node-id is given (convert each node's file on that node), and
cluster.id is 1 unless --cluster-id is given.

Exits 0 when converted (also with warnings), 1 when FILE cannot be read or
parsed (FILE:LINE:COLUMN: why), 2 on a usage error.
`,
  demo: `Usage: sudo ctsyncd demo        (or: sudo npx ctsyncd demo, sudo npm run demo)

Builds two firewalls in network namespaces on this machine (client - LAN -
fw1/fw2 - WAN - server, SNAT to a WAN virtual address, a sync link between
the firewalls), runs ctsyncd on both with the shipped conntrackd.yaml, opens
20 TCP connections through fw1, shows them replicate to fw2, kills fw1,
commits on fw2 and shows the connections carry on. Only 10.99.x.y addresses
inside the namespaces are used; everything is removed afterwards, also on
Ctrl-C. Exits 0 when every connection survived.
`,
  kernel: `Usage: ctsyncd kernel dump [--netns PATH] [--json]

Dumps the kernel conntrack table over ctnetlink. --netns opens the socket in
the network namespace at PATH (e.g. /var/run/netns/fw1).
`,
};

function version(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  let inv: Invocation;
  try {
    inv = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`ctsyncd: ${e.message} (see ctsyncd --help)`);
      return EXIT_USAGE;
    }
    throw e;
  }
  if (inv.version) {
    io.out(version());
    return EXIT_OK;
  }
  if (inv.help || inv.command === 'help') {
    const topic = inv.command === 'help' ? inv.args[0] : inv.command;
    if (topic !== undefined && COMMAND_HELP[topic] === undefined && inv.command === 'help') {
      io.err(`ctsyncd: no help for unknown command '${topic}' (see ctsyncd --help)`);
      return EXIT_USAGE;
    }
    io.out(topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : HELP);
    return EXIT_OK;
  }
  switch (inv.command) {
    case 'check-config':
      return checkConfig(inv.args[0] ?? inv.config, io);
    case 'import-conntrackd':
      return (await import('./config/import-conntrackd.js')).importConntrackdCommand(inv.args, io);
    case 'kernel':
      return kernelCommand(inv, io);
    case 'daemon':
      return inv.detach ? detachDaemon(inv, io) : runDaemon(inv.config ?? DEFAULT_CONFIG, io);
    case 'keepalived-fifo':
      return keepalivedFifo(inv, io);
    case 'demo':
      return (await import('./demo/demo.js')).runDemo(io);
    default:
      return clientCommand(inv, io);
  }
}

async function loadOrReport(file: string, io: Io): Promise<Config | undefined> {
  const { ConfigError, loadConfig } = await import('./config/index.js');
  try {
    return loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const i of e.issues) io.err(`${i.file}:${i.line}:${i.column} ${i.path || '(root)'} ${i.message}`);
      return undefined;
    }
    throw e;
  }
}

/**
 * The control socket a client command talks to. Only control.socket is read
 * (a client has no use for the rest, and skipping the full schema halves its
 * start-up time), by a plain scan of the common spellings when it can tell
 * (src/cli/socket-path.ts: no YAML parser to load), else by the YAML parser.
 * A typo elsewhere in the file does not stop a notify step from reaching the
 * daemon; when the socket itself cannot be read, the full validation's
 * file:line:col report is printed.
 */
async function clientSocket(file: string, io: Io): Promise<string | undefined> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    io.err(`ctsyncd: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return undefined;
  }
  const scanned = scanControlSocket(text, DEFAULT_SOCKET);
  if (scanned !== undefined) return scanned;
  try {
    const { parse: parseYaml } = await import('yaml');
    const doc = parseYaml(text) as { control?: { socket?: unknown } } | null;
    const socket = doc?.control?.socket;
    if (socket === undefined) return DEFAULT_SOCKET;
    if (typeof socket === 'string' && socket.startsWith('/')) return socket;
  } catch {
    // reported below
  }
  return (await loadOrReport(file, io))?.control.socket;
}

async function runDaemon(file: string, io: Io): Promise<number> {
  const cfg = await loadOrReport(file, io);
  if (!cfg) return EXIT_FAILURE;
  const [{ Daemon }, { SystemdNotifier }, { ConfigError, loadConfig }] = await Promise.all([
    import('./daemon.js'),
    import('./systemd/notify.js'),
    import('./config/index.js'),
  ]);
  const log = createLogger({
    level: cfg.log.level === 'trace' ? 'debug' : cfg.log.level,
    format: cfg.log.format,
  });
  const daemon = new Daemon(cfg, { log, notifier: new SystemdNotifier({ log }) });
  const stop = (signal: string) => {
    log.info('signal received, stopping', { signal });
    void daemon.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A live reload would have to re-open sockets, re-key the wire and re-filter
  // both caches while peers keep sending; a restart does all of that cleanly
  // (peers resync us by themselves). SIGHUP only checks the file and says so.
  process.on('SIGHUP', () => {
    try {
      const next = loadConfig(file);
      const changed = Object.keys(next).filter(
        (k) => JSON.stringify(next[k as keyof Config]) !== JSON.stringify(cfg[k as keyof Config]),
      );
      log.warn('SIGHUP: configuration is not reloaded live; restart ctsyncd to apply it', {
        file,
        valid: true,
        changedSections: changed,
      });
    } catch (e) {
      const issues = e instanceof ConfigError ? e.issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.path} ${i.message}`) : [String(e)];
      log.error('SIGHUP: configuration file is invalid; the running configuration stays', { file, issues });
    }
  });
  const stopped = daemon.waitForStop();
  try {
    await daemon.start();
  } catch (e) {
    const err = e as Error & { code?: string };
    log.error('start failed', { code: err.code ?? 'EINTERNAL', error: err.message });
    io.err(`ctsyncd: cannot start: ${err.message}`);
    await daemon.stop().catch(() => undefined);
    return EXIT_FAILURE;
  }
  await stopped;
  return EXIT_OK;
}

/** How long a client waits for the daemon: a commit of a large table takes a while. */
const CLIENT_TIMEOUT_MS = 600_000;

interface ControlCall {
  cmd: string;
  args: Record<string, unknown>;
}

/** The control request for a client command, or a usage error. */
function controlCall(inv: Invocation): ControlCall | string {
  const [a0, a1, ...extra] = inv.args;
  const none = (): string | undefined =>
    inv.args.length > 0 ? `${inv.via ?? inv.command} takes no argument '${inv.args[0]}'` : undefined;
  switch (inv.command) {
    case 'commit':
      // conntrackd's -c ct / -c expect: ctsyncd always commits both, masters first.
      if (a0 !== undefined && a0 !== 'ct' && a0 !== 'expect') return `commit takes no argument '${a0}' (use --peer ID)`;
      return { cmd: 'commit', args: inv.peer === undefined ? {} : { peer: inv.peer } };
    case 'flush':
      if (a1 !== undefined) return `flush takes one argument, not '${a1}'`;
      if (a0 !== undefined && a0 !== 'internal' && a0 !== 'external') {
        return `flush takes internal, external or nothing, not '${a0}'`;
      }
      return { cmd: 'flush', args: a0 === undefined ? {} : { cache: a0 } };
    case 'dump': {
      if (a0 !== 'internal' && a0 !== 'external') return 'dump needs internal or external';
      if (a1 !== undefined && a1 !== 'ct' && a1 !== 'expect') return `dump takes ct or expect, not '${a1}'`;
      if (extra.length > 0) return `dump takes no argument '${extra[0]}'`;
      if (inv.xml) return 'XML output (-x) is not supported; use --json';
      return { cmd: 'dump', args: { cache: a0, kind: a1 ?? 'ct' } };
    }
    case 'stats': {
      if (a0 !== undefined && !(STATS_KINDS as readonly string[]).includes(a0)) {
        return `unknown stats kind '${a0}' (one of: ${STATS_KINDS.join(' ')})`;
      }
      if (a1 !== undefined) return `stats takes one kind, not '${a1}'`;
      return { cmd: 'stats', args: {} };
    }
    case 'flush-kernel':
    case 'resync':
      // -F ct|expect and -R ct|expect: ctsyncd handles both kinds together.
      if (a0 !== undefined && a0 !== 'ct' && a0 !== 'expect') return `${inv.command} takes no argument '${a0}'`;
      return { cmd: inv.command, args: {} };
    case 'failover':
      if (a0 !== 'primary' && a0 !== 'backup' && a0 !== 'fault') return 'failover takes primary, backup or fault';
      if (a1 !== undefined) return `failover takes one state, not '${a1}'`;
      return { cmd: 'failover', args: { state: a0 } };
    case 'request-resync':
    case 'bulk-send':
    case 'purge-timeout':
    case 'shutdown': {
      const bad = none();
      return bad ?? { cmd: inv.command, args: {} };
    }
    default:
      return `${inv.command} is not a client command`;
  }
}

async function clientCommand(inv: Invocation, io: Io): Promise<number> {
  const call = controlCall(inv);
  if (typeof call === 'string') {
    io.err(`ctsyncd: ${call} (see ctsyncd ${inv.command} --help)`);
    return EXIT_USAGE;
  }
  const socket = await clientSocket(inv.config ?? DEFAULT_CONFIG, io);
  if (!socket) return EXIT_FAILURE;
  let result: unknown;
  try {
    result = await controlRequest(socket, call.cmd, call.args, { timeoutMs: CLIENT_TIMEOUT_MS });
  } catch (e) {
    if (e instanceof ControlError) {
      io.err(`ctsyncd: ${inv.command}: ${e.message}`);
      return EXIT_FAILURE;
    }
    throw e;
  }
  const obj = (result ?? {}) as Record<string, unknown>;
  if (inv.command === 'stats') {
    const section = statsSection(obj, inv.args[0]);
    io.out(inv.json ? JSON.stringify(section) : statsText(obj, inv.args[0]));
    return EXIT_OK;
  }
  if (inv.json) io.out(JSON.stringify(result));
  else if (inv.command === 'dump') {
    const list = result as Record<string, unknown>[];
    const text = call.args.kind === 'expect' ? list.map(expectText) : list.map(entryText);
    if (text.length > 0) io.out(text.join('\n'));
  } else io.out(resultText(call.cmd, obj));
  if (inv.command === 'failover' && Number(obj.failed ?? 0) > 0) {
    io.err(`ctsyncd: failover ${String(obj.state)}: ${String(obj.failed)} of ${String(obj.steps)} steps failed (see the daemon's log)`);
    return EXIT_FAILURE;
  }
  if (inv.command === 'commit') {
    const failed = Number(obj.failed ?? 0) + Number((obj.expectations as { failed?: number } | undefined)?.failed ?? 0);
    if (failed > 0) {
      io.err(`ctsyncd: commit: ${failed} entries failed to go into the kernel`);
      return EXIT_FAILURE;
    }
  }
  return EXIT_OK;
}

/** Starts the daemon in the background (conntrackd -d) and returns once it answers, or fails. */
async function detachDaemon(inv: Invocation, io: Io): Promise<number> {
  const file = inv.config ?? DEFAULT_CONFIG;
  const cfg = await loadOrReport(file, io);
  if (!cfg) return EXIT_FAILURE;
  const running = await controlRequest(cfg.control.socket, 'ping', {}, { timeoutMs: 2000 }).then(
    () => true,
    () => false,
  );
  if (running) {
    io.err(`ctsyncd: already running (control socket ${cfg.control.socket} answers)`);
    return EXIT_FAILURE;
  }
  const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'ctsyncd');
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, bin, '--config', file], {
    detached: true,
    stdio: 'ignore',
  });
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  child.unref();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      io.err(`ctsyncd: the daemon exited during start (status ${String(exited)}); run it in the foreground to see why`);
      return EXIT_FAILURE;
    }
    const up = await controlRequest(cfg.control.socket, 'ping', {}, { timeoutMs: 1000 }).then(
      () => true,
      () => false,
    );
    if (up) {
      io.out(`ctsyncd started (pid ${String(child.pid)})`);
      return EXIT_OK;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  io.err('ctsyncd: the daemon did not answer within 30 s');
  return EXIT_FAILURE;
}

/**
 * keepalived-fifo PATH: a long-running client that follows keepalived's
 * notify FIFO and asks the daemon for each failover step in order.
 */
async function keepalivedFifo(inv: Invocation, io: Io): Promise<number> {
  // keepalived's notify_fifo_script passes the FIFO as the last argument.
  const path = inv.args[inv.args.length - 1];
  if (!path) {
    io.err('ctsyncd: keepalived-fifo needs the FIFO path (see ctsyncd keepalived-fifo --help)');
    return EXIT_USAGE;
  }
  const cfg = await loadOrReport(inv.config ?? DEFAULT_CONFIG, io);
  if (!cfg) return EXIT_FAILURE;
  const { FailoverSequencer, runNotifyFifo } = await import('./keepalived/index.js');
  const log = createLogger({ level: cfg.log.level === 'trace' ? 'debug' : cfg.log.level, format: cfg.log.format });
  const sequencer = new FailoverSequencer({
    log,
    name: cfg.failover.vrrpName,
    run: async (step) => {
      await controlRequest(cfg.control.socket, step, {}, { timeoutMs: CLIENT_TIMEOUT_MS });
    },
  });
  let handle: ReturnType<typeof runNotifyFifo>;
  try {
    handle = runNotifyFifo(path, sequencer, log);
  } catch (e) {
    io.err(`ctsyncd: keepalived-fifo: cannot read ${path}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  log.info('following keepalived notify FIFO', { path, socket: cfg.control.socket });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  handle.close();
  await sequencer.idle();
  return EXIT_OK;
}

async function checkConfig(file: string | undefined, io: Io): Promise<number> {
  if (!file) {
    io.err('ctsyncd: check-config needs a FILE');
    return EXIT_USAGE;
  }
  const { ConfigError, loadConfig } = await import('./config/index.js');
  try {
    const cfg = loadConfig(file);
    io.out(`${file}: ok (node ${cfg.node.id}, cluster ${cfg.cluster.id}, ${cfg.sync.mode} over ${cfg.sync.transport})`);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const i of e.issues) io.err(`${i.file}:${i.line}:${i.column} ${i.path || '(root)'} ${i.message}`);
      return EXIT_FAILURE;
    }
    throw e;
  }
}

async function kernelCommand(p: Invocation, io: Io): Promise<number> {
  if (p.args[0] !== 'dump') {
    io.err(`ctsyncd: unknown kernel subcommand '${p.args[0] ?? ''}' (try: kernel dump)`);
    return EXIT_USAGE;
  }
  const [{ ConntrackLink }, { entryToJson }] = await Promise.all([
    import('./kernel/conntrack-link.js'),
    import('./kernel/entry-json.js'),
  ]);
  let link: InstanceType<typeof ConntrackLink>;
  try {
    link = new ConntrackLink({ netns: p.netns });
  } catch (e) {
    io.err(`ctsyncd: cannot open ctnetlink: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  try {
    const entries = await link.list();
    if (p.json) io.out(JSON.stringify(entries.map(entryToJson)));
    else for (const e of entries) io.out(entryText(entryToJson(e)));
    return EXIT_OK;
  } catch (e) {
    io.err(`ctsyncd: kernel dump failed: ${(e as Error).message}`);
    return EXIT_FAILURE;
  } finally {
    link.close();
  }
}

