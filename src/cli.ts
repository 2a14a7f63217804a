// One binary for the daemon and every client command.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Client commands run from keepalived's notify path at failover, so they load
// only what they use: the daemon, the kernel link, the schema validator, the
// logger, the help files and the rest are imported where they are needed.
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './common/command-io.js';
import { type LocalCommandName, localCommand } from './cli/local-commands.js';
import { type Invocation, parseArgs, UsageError } from './cli/parse.js';
import { scanControlSocket } from './cli/socket-path.js';
import type { Config } from './config/index.js';
import { ConntrackdConfGivenError, detectConntrackdConf } from './config/conntrackd-detect.js';
import { ControlError, controlRequest } from './control/client.js';
import { cliControlCommand } from './control/commands.js';

const DEFAULT_CONFIG = '/etc/ctsyncd/conntrackd.yaml';
/** DEFAULTS.control.socket, restated so client commands need not load the schema (a test keeps them equal). */
export const DEFAULT_SOCKET = '/run/ctsyncd/ctsyncd.sock';

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE };
type Io = CommandIo;

const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

/**
 * The package root: the nearest directory above this file with a
 * package.json. This file runs as dist/cli.js or inside a chunk of
 * dist/bundle/ (scripts/bundle.mjs), one level deeper.
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = dirname(dir); !existsSync(join(dir, 'package.json')) && up !== dir; up = dirname(up)) dir = up;
  return dir;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
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
  if (inv.help || inv.command === 'help') return showHelp(inv, io);
  const local = localCommand(inv.command);
  return local ? LOCAL_RUNNERS[local.name](inv, io) : clientCommand(inv, io);
}

type Runner = (inv: Invocation, io: Io) => Promise<number>;

/** How each local command runs (src/cli/local-commands.ts declares them); heavy modules load inside. */
const LOCAL_RUNNERS: { readonly [N in LocalCommandName]: Runner } = {
  'check-config': (inv, io) => checkConfig(inv.args[0] ?? inv.config, io),
  'import-conntrackd': async (inv, io) =>
    (await import('./config/import-conntrackd.js')).importConntrackdCommand(inv.args, io),
  kernel: async (inv, io) => (await import('./cli/kernel-dump.js')).kernelCommand(inv, io),
  flows: async (inv, io) =>
    (await import('./flowlog/find.js')).flowsCommand(
      inv.args,
      io,
      async () => (await loadOrReport(inv.config ?? DEFAULT_CONFIG, io))?.flowlog?.file?.path,
      inv.json,
    ),
  daemon: (inv, io) => (inv.detach ? detachDaemon(inv, io) : runDaemon(inv.config ?? DEFAULT_CONFIG, io)),
  'keepalived-fifo': (inv, io) => keepalivedFifo(inv, io),
  demo: async (_inv, io) => (await import('./demo/demo.js')).runDemo(io),
  help: (inv, io) => showHelp(inv, io),
};

/** --help, COMMAND --help and help [COMMAND]; the help files are read only here. */
async function showHelp(inv: Invocation, io: Io): Promise<number> {
  const { hasHelp, helpText } = await import('./cli/help.js');
  const topic = inv.command === 'help' ? inv.args[0] : inv.command;
  if (topic !== undefined && !hasHelp(topic) && inv.command === 'help') {
    io.err(`ctsyncd: no help for unknown command '${topic}' (see ctsyncd --help)`);
    return EXIT_USAGE;
  }
  io.out(topic !== undefined && hasHelp(topic) ? helpText(topic) : helpText());
  return EXIT_OK;
}

/** The validated config, or undefined after printing each issue as file:line:col. `text`: the file as already read. */
async function loadOrReport(file: string, io: Io, text?: string): Promise<Config | undefined> {
  const { ConfigError, loadConfig, parseConfig } = await import('./config/index.js');
  try {
    return text === undefined ? loadConfig(file) : parseConfig(text, file);
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const i of e.issues) io.err(`${i.file}:${i.line}:${i.column} ${i.path || '(root)'} ${i.message}`);
      return undefined;
    }
    if (reportConntrackdConf(e, io)) return undefined;
    throw e;
  }
}

/** `-C conntrackd.conf`: one line pointing at import-conntrackd, with its code; true when `e` was that. */
function reportConntrackdConf(e: unknown, io: Io): boolean {
  if (!(e instanceof ConntrackdConfGivenError)) return false;
  io.err(`ctsyncd: ${e.message} (${e.code})`);
  return true;
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
  // Before the scan, which finds no control.socket in a conntrackd.conf and would take the default.
  const conntrackd = detectConntrackdConf(text);
  if (conntrackd) {
    reportConntrackdConf(new ConntrackdConfGivenError(file, conntrackd.line, conntrackd.section), io);
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

/** Identifies this build (dist/build-id, written by `npm run build`); undefined in a tree built without it. */
function buildId(): string | undefined {
  try {
    return readFileSync(join(packageRoot(), 'dist', 'build-id'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The daemon's config. A restart usually finds the file this build validated
 * last time: then the resolved config comes from the validated-config cache
 * (src/config/cache.ts) and neither the YAML parser nor the schema is loaded,
 * about a third of a start. Otherwise it is validated in full, exactly as
 * before (same errors), and kept for the next start. `cache` says which, for
 * the log: 'hit', why it missed, or 'off' (no dist/build-id); `stored` is
 * 'ok' or the error code of a failed store.
 */
async function daemonConfig(
  file: string,
  io: Io,
): Promise<{ cfg: Config; cache: string; stored?: string } | undefined> {
  const fingerprint = buildId();
  const { CONFIG_CACHE_DIR, ConfigCache } = await import('./config/cache.js');
  const cache = fingerprint
    ? new ConfigCache({ dir: CONFIG_CACHE_DIR, fingerprint, uid: process.getuid?.(), pid: process.pid })
    : undefined;
  const found = cache?.lookup(file);
  if (found?.hit) return { cfg: found.config, cache: 'hit' };
  // Unreadable file or no build id: the full load (and its error report) as before.
  const cfg = await loadOrReport(file, io, found?.source.text);
  if (!cfg) return undefined;
  if (!cache || !found) return { cfg, cache: 'off' };
  return { cfg, cache: found.miss, stored: cache.store(file, found.source, cfg) ?? 'ok' };
}

async function runDaemon(file: string, io: Io): Promise<number> {
  const loaded = await daemonConfig(file, io);
  if (!loaded) return EXIT_FAILURE;
  const { cfg } = loaded;
  const [{ Daemon }, { SystemdNotifier }, { createLogger }] = await Promise.all([
    import('./daemon.js'),
    import('./systemd/notify.js'),
    import('./log.js'),
  ]);
  const log = createLogger({
    level: cfg.log.level === 'trace' ? 'debug' : cfg.log.level,
    format: cfg.log.format,
  });
  const stored = loaded.stored === undefined ? {} : { cacheStored: loaded.stored };
  log.info('configuration loaded', { file, validatedCache: loaded.cache, ...stored });
  const daemon = new Daemon(cfg, { log, notifier: new SystemdNotifier({ log }), flowlogThread: true });
  const stop = (signal: string) => {
    log.info('signal received, stopping', { signal });
    void daemon.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A live reload would have to re-open sockets, re-key the wire and re-filter
  // both caches while peers keep sending; a restart does all of that cleanly
  // (peers resync us by themselves). SIGHUP only checks the file and says so.
  // The schema is loaded here, on demand: a start from the validated-config cache did not load it.
  const checkOnHangup = async () => {
    const { ConfigError, loadConfig } = await import('./config/index.js');
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
  };
  process.on('SIGHUP', () => void checkOnHangup());
  // logrotate's postrotate: the flow log file is reopened (Node's own use of SIGUSR1, the inspector, is then off).
  if (cfg.flowlog) process.on('SIGUSR1', () => void daemon.reopenFlowLog());
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

/** A control command (src/control/commands.ts): its args from argv, one request, its output and exit rule. */
async function clientCommand(inv: Invocation, io: Io): Promise<number> {
  const command = cliControlCommand(inv.command);
  const call = command
    ? command.prepare({ via: inv.via ?? inv.command, args: inv.args, peer: inv.peer, xml: inv.xml })
    : `${inv.command} is not a client command`;
  if (typeof call === 'string') {
    io.err(`ctsyncd: ${call} (see ctsyncd ${inv.command} --help)`);
    return EXIT_USAGE;
  }
  const socket = await clientSocket(inv.config ?? DEFAULT_CONFIG, io);
  if (!socket) return EXIT_FAILURE;
  let result: unknown;
  try {
    result = await controlRequest(socket, inv.command, call.args, { timeoutMs: CLIENT_TIMEOUT_MS });
  } catch (e) {
    if (e instanceof ControlError) {
      io.err(`ctsyncd: ${inv.command}: ${e.message}`);
      return EXIT_FAILURE;
    }
    throw e;
  }
  const shown = call.render(result, inv.json);
  if (shown.out !== undefined) io.out(shown.out);
  if (shown.err !== undefined) {
    io.err(`ctsyncd: ${shown.err}`);
    return EXIT_FAILURE;
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
  const bin = join(packageRoot(), 'bin', 'ctsyncd');
  const [{ DAEMON_NODE_FLAGS }, { spawn }] = await Promise.all([
    import('./daemon/node-flags.js'),
    // Only here: node:child_process costs every other command ~10 ms to load.
    import('node:child_process'),
  ]);
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
  const [{ FailoverSequencer, runNotifyFifo }, { createLogger }] = await Promise.all([
    import('./keepalived/index.js'),
    import('./log.js'),
  ]);
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
    const what = [
      ...(cfg.sync && cfg.cluster ? [`cluster ${cfg.cluster.id}`, `${cfg.sync.mode} over ${cfg.sync.transport}`] : ['no sync']),
      ...(cfg.flowlog
        ? [
            `flow log ${[
              cfg.flowlog.file?.path,
              cfg.flowlog.ipfix && `ipfix ${cfg.flowlog.ipfix.collector}`,
              cfg.flowlog.syslog && `syslog ${cfg.flowlog.syslog.path}`,
            ]
              .filter((t) => t !== undefined)
              .join(' + ')}`,
          ]
        : []),
    ];
    io.out(`${file}: ok (node ${cfg.node.id}, ${what.join(', ')})`);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const i of e.issues) io.err(`${i.file}:${i.line}:${i.column} ${i.path || '(root)'} ${i.message}`);
      return EXIT_FAILURE;
    }
    if (reportConntrackdConf(e, io)) return EXIT_FAILURE;
    throw e;
  }
}

