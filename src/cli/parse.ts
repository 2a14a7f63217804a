// Command-line parsing: ctsyncd's own subcommands and conntrackd's flags,
// which map onto the same subcommands so an existing primary-backup.sh can
// drive ctsyncd unchanged. Pure: argv in, a command or a usage error out.

export type CommandName =
  | 'daemon'
  | 'commit'
  | 'flush'
  | 'flush-kernel'
  | 'resync'
  | 'request-resync'
  | 'bulk-send'
  | 'purge-timeout'
  | 'failover'
  | 'shutdown'
  | 'stats'
  | 'dump'
  | 'keepalived-fifo'
  | 'check-config'
  | 'import-conntrackd'
  | 'kernel'
  | 'demo'
  | 'help';

export interface Invocation {
  command: CommandName;
  /** Positional arguments after the command. */
  args: string[];
  config?: string;
  json: boolean;
  xml: boolean;
  help: boolean;
  version: boolean;
  /** -d / daemon --detach: start the daemon in the background and return once it answers. */
  detach: boolean;
  peer?: string;
  netns?: string;
  /** The conntrackd flag the command came from, for messages. */
  via?: string;
}

/** The daemon's own subcommands, spelled as on the command line. */
export const COMMANDS: readonly CommandName[] = [
  'daemon',
  'commit',
  'flush',
  'flush-kernel',
  'resync',
  'request-resync',
  'bulk-send',
  'purge-timeout',
  'failover',
  'shutdown',
  'stats',
  'dump',
  'keepalived-fifo',
  'check-config',
  'import-conntrackd',
  'kernel',
  'demo',
  'help',
];

export const STATS_KINDS = [
  'all',
  'ct',
  'expect',
  'network',
  'cache',
  'runtime',
  'link',
  'rsqueue',
  'queue',
  'process',
  'multicast',
  'peers',
  'commit',
] as const;

interface FlagSpec {
  command: CommandName;
  /** Words the flag may take as an optional argument (conntrackd's syntax). */
  optional?: readonly string[];
  /** Fixed leading arguments. */
  prefix?: string[];
}

/** conntrackd(8)'s client flags. */
const CONNTRACKD_FLAGS: Record<string, FlagSpec> = {
  '-d': { command: 'daemon' },
  '-c': { command: 'commit', optional: ['ct', 'expect'] },
  '-f': { command: 'flush', optional: ['internal', 'external'] },
  '-F': { command: 'flush-kernel', optional: ['ct', 'expect'] },
  '-i': { command: 'dump', prefix: ['internal'], optional: ['ct', 'expect'] },
  '-e': { command: 'dump', prefix: ['external'], optional: ['ct', 'expect'] },
  '-k': { command: 'shutdown' },
  '-s': { command: 'stats', optional: STATS_KINDS },
  '-R': { command: 'resync', optional: ['ct', 'expect'] },
  '-n': { command: 'request-resync' },
  '-B': { command: 'bulk-send' },
  '-t': { command: 'purge-timeout' },
};

export class UsageError extends Error {
  readonly code = 'EUSAGE';
}

export function parseArgs(argv: readonly string[]): Invocation {
  const inv: Invocation = {
    command: 'help',
    args: [],
    json: false,
    xml: false,
    help: false,
    version: false,
    detach: false,
  };
  let command: CommandName | undefined;
  const setCommand = (c: CommandName, via: string) => {
    if (command !== undefined) {
      throw new UsageError(`${via} cannot be combined with ${inv.via ?? command}: one command at a time`);
    }
    command = c;
    inv.via = via;
  };
  const value = (i: number, flag: string, what: string): string => {
    const v = argv[i];
    if (v === undefined || v === '') throw new UsageError(`${flag} needs ${what}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // import-conntrackd parses its own options (--output, --node-id, --cluster-id).
    if (command === 'import-conntrackd' && a !== '-h' && a !== '--help') {
      inv.args.push(a);
      continue;
    }
    switch (a) {
      case '-C':
      case '--config':
        inv.config = value(++i, a, 'a file');
        continue;
      case '--netns':
        inv.netns = value(++i, a, 'a path');
        continue;
      case '--peer':
        inv.peer = value(++i, a, 'a node id');
        continue;
      case '-h':
      case '--help':
        inv.help = true;
        continue;
      case '-V':
      case '--version':
        inv.version = true;
        continue;
      case '--json':
        inv.json = true;
        continue;
      case '-x':
      case '--xml':
        inv.xml = true;
        continue;
      case '--detach':
        inv.detach = true;
        continue;
    }
    if (a.startsWith('--peer=')) {
      inv.peer = a.slice('--peer='.length);
      if (inv.peer === '') throw new UsageError('--peer needs a node id');
      continue;
    }
    if (a.startsWith('--config=')) {
      inv.config = a.slice('--config='.length);
      continue;
    }
    const flag = CONNTRACKD_FLAGS[a];
    if (flag) {
      setCommand(flag.command, a);
      inv.args.push(...(flag.prefix ?? []));
      const next = argv[i + 1];
      if (next !== undefined && flag.optional?.includes(next)) {
        inv.args.push(next);
        i++;
      }
      if (a === '-d') inv.detach = true;
      continue;
    }
    if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    if (command === undefined) {
      if (!(COMMANDS as readonly string[]).includes(a)) throw new UsageError(`unknown command '${a}'`);
      setCommand(a as CommandName, a);
    } else {
      inv.args.push(a);
    }
  }
  // A bare `ctsyncd --config FILE` runs the daemon, as before; bare `ctsyncd` asks for help.
  inv.command = command ?? (inv.config !== undefined && !inv.help && !inv.version ? 'daemon' : 'help');
  return inv;
}
