// The commands the CLI runs itself, without the daemon's control socket,
// declared once: name, conntrackd flag and help. Their help text is
// help/<name>.txt; the control commands live in src/control/commands.ts.
// parse.ts derives the command words and flags from both tables, and
// cli.ts's runner map must cover every name here (the compiler checks).

export interface LocalFlag {
  readonly flag: string;
  /** -d: start the daemon in the background. */
  readonly detach?: true;
}

export interface LocalCommand {
  readonly name: string;
  readonly conntrackd?: readonly LocalFlag[];
  /** false: no help/<name>.txt (`help help` is an unknown topic, as it always was). */
  readonly help?: false;
  /** The command parses its own options: every later word is its argument. */
  readonly ownOptions?: true;
}

export const LOCAL_COMMANDS = [
  { name: 'daemon', conntrackd: [{ flag: '-d', detach: true }] },
  { name: 'keepalived-fifo' },
  { name: 'check-config' },
  // import-conntrackd parses its own options (--output, --node-id, --cluster-id).
  { name: 'import-conntrackd', ownOptions: true },
  { name: 'kernel' },
  // flows find parses its own options (--nat, --at, --json).
  { name: 'flows', ownOptions: true },
  { name: 'demo' },
  { name: 'help', help: false },
] as const satisfies readonly LocalCommand[];

export type LocalCommandName = (typeof LOCAL_COMMANDS)[number]['name'];

type LocalEntry = (typeof LOCAL_COMMANDS)[number];

export function localCommand(name: string): (LocalCommand & { readonly name: LocalCommandName }) | undefined {
  return LOCAL_COMMANDS.find((c: LocalEntry) => c.name === name);
}
