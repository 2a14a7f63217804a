// One binary for the daemon and every client command.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from './config/index.js';
import { ConntrackLink } from './kernel/conntrack-link.js';
import { protoName, TCP_STATES } from './kernel/constants.js';
import type { ConntrackEntry } from './kernel/entry.js';

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

const HELP = `Usage: ctsyncd [--config FILE] <command> [options]

Commands:
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
    case undefined:
      io.err('ctsyncd: no command given (see ctsyncd --help)');
      return EXIT_USAGE;
    default:
      io.err(`ctsyncd: unknown command '${command}' (see ctsyncd --help)`);
      return EXIT_USAGE;
  }
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

/** The JSON shape of an entry in dumps (shared with the daemon's dump command). */
export function entryToJson(e: ConntrackEntry): Record<string, unknown> {
  const t = (x: ConntrackEntry['orig']) => ({
    src: x.src,
    dst: x.dst,
    sport: x.sport ?? x.icmpId ?? 0,
    dport: x.dport ?? x.icmpType ?? 0,
  });
  const tcp = e.protoinfo?.tcp;
  return {
    proto: protoName(e.orig.proto),
    ...t(e.orig),
    reply: t(e.reply),
    ...(tcp ? { state: TCP_STATES[tcp.state] ?? tcp.state } : {}),
    timeout: e.timeout ?? 0,
    zone: e.zone ?? 0,
    mark: e.mark ?? 0,
    status: e.status ?? 0,
  };
}

function entryToText(e: ConntrackEntry): string {
  const j = entryToJson(e);
  const r = j.reply as { src: string; dst: string; sport: number; dport: number };
  return `${j.proto} ${j.timeout} ${j.state ?? ''} src=${j.src} dst=${j.dst} sport=${j.sport} dport=${j.dport} src=${r.src} dst=${r.dst} sport=${r.sport} dport=${r.dport} mark=${j.mark} zone=${j.zone}`.replace(
    /\s+/g,
    ' ',
  );
}
