// One binary for the daemon and every client command.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Config, ConfigError, loadConfig } from './config/index.js';
import { ControlError, controlRequest } from './control/client.js';
import { Daemon } from './daemon.js';
import { ConntrackLink } from './kernel/conntrack-link.js';
import type { ConntrackEntry } from './kernel/entry.js';
import { entryToJson } from './kernel/entry-json.js';
import { createLogger } from './log.js';

const DEFAULT_CONFIG = '/etc/ctsyncd/conntrackd.yaml';

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

Commands (talk to the running daemon over its control socket):
  stats [--json]             caches, peers, kernel link and sync counters
  dump internal|external [--json]
                             the entries of one cache
  shutdown                   stop the daemon

Local commands:
  check-config FILE          validate a configuration file; errors as file:line:col
  kernel dump [--netns PATH] [--json]
                             list this host's kernel conntrack table (ctnetlink)
  help [COMMAND]             show help

Options:
  -C, --config FILE          configuration file (default /etc/ctsyncd/conntrackd.yaml)
  -h, --help                 show help
  -V, --version              print the version
`;

const COMMAND_HELP: Record<string, string> = {
  'check-config': `Usage: ctsyncd check-config FILE

Validates FILE against the configuration schema. Prints "FILE: ok" and exits 0,
or prints one line per problem as FILE:LINE:COLUMN FIELD MESSAGE and exits 1.
`,
  stats: `Usage: ctsyncd --config FILE stats [--json]

Prints the daemon's state: readiness, cache sizes and counters, peers, kernel
link and sync counters. --json prints one JSON object.
`,
  dump: `Usage: ctsyncd --config FILE dump internal|external [--json]

Prints the entries of the internal cache (this node's connections) or the
external cache (connections learned from peers, with their origin).
`,
  shutdown: `Usage: ctsyncd --config FILE shutdown

Asks the daemon to stop cleanly (like SIGTERM).
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

interface Parsed {
  config?: string;
  help: boolean;
  version: boolean;
  json: boolean;
  netns?: string;
  positional: string[];
}

function parse(argv: string[]): Parsed | string {
  const p: Parsed = { help: false, version: false, json: false, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string | undefined => argv[++i];
    switch (a) {
      case '-C':
      case '--config': {
        const v = value();
        if (!v) return `${a} needs a file`;
        p.config = v;
        break;
      }
      case '--netns': {
        const v = value();
        if (!v) return '--netns needs a path';
        p.netns = v;
        break;
      }
      case '-h':
      case '--help':
        p.help = true;
        break;
      case '-V':
      case '--version':
        p.version = true;
        break;
      case '--json':
        p.json = true;
        break;
      default:
        if (a.startsWith('-') && a !== '-') return `unknown option ${a}`;
        p.positional.push(a);
    }
  }
  return p;
}

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const p = parse(argv);
  if (typeof p === 'string') {
    io.err(`ctsyncd: ${p} (see ctsyncd --help)`);
    return EXIT_USAGE;
  }
  if (p.version) {
    io.out(version());
    return EXIT_OK;
  }
  const [command, ...rest] = p.positional;
  if (p.help || command === 'help') {
    const topic = command === 'help' ? rest[0] : command;
    io.out(topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : HELP);
    return EXIT_OK;
  }
  switch (command) {
    case 'check-config':
      return checkConfig(rest[0] ?? p.config, io);
    case 'kernel':
      return kernelCommand(rest, p, io);
    case 'stats':
    case 'dump':
    case 'shutdown':
      return clientCommand(command, rest, p, io);
    case undefined:
      if (p.config) return runDaemon(p.config, io);
      io.err('ctsyncd: no command given (see ctsyncd --help)');
      return EXIT_USAGE;
    default:
      io.err(`ctsyncd: unknown command '${command}' (see ctsyncd --help)`);
      return EXIT_USAGE;
  }
}

function loadOrReport(file: string, io: Io): Config | undefined {
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

async function runDaemon(file: string, io: Io): Promise<number> {
  const cfg = loadOrReport(file, io);
  if (!cfg) return EXIT_FAILURE;
  const log = createLogger({
    level: cfg.log.level === 'trace' ? 'debug' : cfg.log.level,
    format: cfg.log.format,
  });
  const daemon = new Daemon(cfg, { log });
  const stop = (signal: string) => {
    log.info('signal received, stopping', { signal });
    void daemon.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
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

async function clientCommand(command: string, rest: string[], p: Parsed, io: Io): Promise<number> {
  const file = p.config ?? DEFAULT_CONFIG;
  const cfg = loadOrReport(file, io);
  if (!cfg) return EXIT_FAILURE;
  let args: Record<string, unknown> = {};
  if (command === 'dump') {
    const which = rest[0];
    if (which !== 'internal' && which !== 'external') {
      io.err('ctsyncd: dump needs internal or external');
      return EXIT_USAGE;
    }
    args = { cache: which };
  }
  try {
    const result = await controlRequest(cfg.control.socket, command, args, { timeoutMs: 60_000 });
    if (p.json) io.out(JSON.stringify(result));
    else if (command === 'dump') for (const e of result as Record<string, unknown>[]) io.out(jsonEntryToText(e));
    else if (command === 'stats') io.out(statsToText(result as Record<string, unknown>));
    else io.out(JSON.stringify(result));
    return EXIT_OK;
  } catch (e) {
    if (e instanceof ControlError) {
      io.err(`ctsyncd: ${command}: ${e.message}`);
      return EXIT_FAILURE;
    }
    throw e;
  }
}

function statsToText(s: Record<string, unknown>): string {
  const lines: string[] = [];
  const walk = (prefix: string, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    } else if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(`${prefix}[${i}]`, x);
    } else {
      lines.push(`${prefix} ${String(v)}`);
    }
  };
  walk('', s);
  return lines.join('\n');
}

function jsonEntryToText(j: Record<string, unknown>): string {
  const r = j.reply as { src: string; dst: string; sport: number; dport: number };
  const origin = j.origin ? ` origin=${String(j.origin)}` : '';
  return `${j.proto} ${j.timeout} ${j.state ?? ''} src=${j.src} dst=${j.dst} sport=${j.sport} dport=${j.dport} src=${r.src} dst=${r.dst} sport=${r.sport} dport=${r.dport} mark=${j.mark} zone=${j.zone}${origin}`.replace(
    /\s+/g,
    ' ',
  );
}

function checkConfig(file: string | undefined, io: Io): number {
  if (!file) {
    io.err('ctsyncd: check-config needs a FILE');
    return EXIT_USAGE;
  }
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

async function kernelCommand(rest: string[], p: Parsed, io: Io): Promise<number> {
  if (rest[0] !== 'dump') {
    io.err(`ctsyncd: unknown kernel subcommand '${rest[0] ?? ''}' (try: kernel dump)`);
    return EXIT_USAGE;
  }
  let link: ConntrackLink;
  try {
    link = new ConntrackLink({ netns: p.netns });
  } catch (e) {
    io.err(`ctsyncd: cannot open ctnetlink: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  try {
    const entries = await link.list();
    if (p.json) io.out(JSON.stringify(entries.map(entryToJson)));
    else for (const e of entries) io.out(entryToText(e));
    return EXIT_OK;
  } catch (e) {
    io.err(`ctsyncd: kernel dump failed: ${(e as Error).message}`);
    return EXIT_FAILURE;
  } finally {
    link.close();
  }
}

function entryToText(e: ConntrackEntry): string {
  return jsonEntryToText(entryToJson(e));
}
