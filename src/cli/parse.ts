// Command-line parsing: ctsyncd's own subcommands and conntrackd's flags,
// which map onto the same subcommands so an existing primary-backup.sh can
// drive ctsyncd unchanged. Pure: argv in, a command or a usage error out.
// The command words and flags come from the command tables
// (src/control/commands.ts, src/cli/local-commands.ts).
import { STATS_KINDS } from '../control/format.js';
import { CtsyncdError } from '../common/errors.js';
import { type LocalCommand, type LocalCommandName, LOCAL_COMMANDS, localCommand } from './local-commands.js';
import { CLI_CONTROL_COMMANDS, type ControlCommandName } from '../control/commands.js';

/** Every command word: the control commands' and the local ones', from their declarations. */
export type CommandName = ControlCommandName | LocalCommandName;

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
  ...CLI_CONTROL_COMMANDS.map((c) => c.name),
  ...LOCAL_COMMANDS.map((c) => c.name),
];

// Re-exported: parse.ts was its home before the command tables.
export { STATS_KINDS };

interface FlagSpec {
  command: CommandName;
  /** Words the flag may take as an optional argument (conntrackd's syntax), in the order conntrackd tries them. */
  optional?: readonly string[];
  /** Fixed leading arguments. */
  prefix?: readonly string[];
  detach?: true;
}

/** conntrackd(8)'s client flags, from both command tables. */
const CONNTRACKD_FLAGS: ReadonlyMap<string, FlagSpec> = new Map([
  ...CLI_CONTROL_COMMANDS.flatMap((c) =>
    c.conntrackd.map((f): [string, FlagSpec] => [f.flag, { command: c.name, optional: f.optional, prefix: f.prefix }]),
  ),
  ...LOCAL_COMMANDS.flatMap((c: LocalCommand & { name: LocalCommandName }) =>
    (c.conntrackd ?? []).map((f): [string, FlagSpec] => [f.flag, { command: c.name, detach: f.detach }]),
  ),
]);

export class UsageError extends CtsyncdError {
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
    // A command that parses its own options (import-conntrackd) gets every later word.
    if (command !== undefined && localCommand(command)?.ownOptions && a !== '-h' && a !== '--help') {
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
      case '-v': // conntrackd's
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
    const flag = CONNTRACKD_FLAGS.get(a);
    if (flag) {
      setCommand(flag.command, a);
      inv.args.push(...(flag.prefix ?? []));
      // As conntrackd: the next word, unless it is an option, may be any
      // leading part of one of the flag's words, tried in conntrackd's order
      // (`-s c` is cache, `-F e` is expect); anything else is not consumed.
      const next = argv[i + 1];
      const word =
        next === undefined || next === '' || next.startsWith('-')
          ? undefined
          : flag.optional?.find((w) => w.startsWith(next));
      if (word !== undefined) {
        inv.args.push(word);
        i++;
      }
      if (flag.detach) inv.detach = true;
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
