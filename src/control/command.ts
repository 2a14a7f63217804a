// The shape of a control command's declaration, and what the CLI parser,
// the client and the daemon's dispatch derive from it. One declaration
// (src/control/commands.ts) carries a command's name, argument validation on
// both ends, handler, output and exit rule; its help is help/<name>.txt.
// Kept free of runtime imports: the client loads it on keepalived's notify path.
import type { ControlTarget } from './target.js';
import { CtsyncdError } from '../common/errors.js';

/** A request's args as they arrive in JSON, before validation: the daemon does not trust the client. */
export interface RawArgs {
  readonly [key: string]: unknown;
}

/** The args a command sends: small JSON objects of words. */
export interface WireArgs {
  readonly [key: string]: string | undefined;
}

/** Bad args in a control request; the reply carries this code and the client exits 1 with the message. */
export class ControlArgsError extends CtsyncdError {
  readonly code = 'EBAD_ARGS';
  constructor(message: string) {
    super(message);
  }
}

/** How a command is spelled among conntrackd(8)'s flags. */
export interface ConntrackdFlag {
  readonly flag: string;
  /** Fixed leading arguments: -i is `dump internal`. */
  readonly prefix?: readonly string[];
  /**
   * Words the flag may take as an optional argument (conntrackd's syntax), in
   * the order conntrackd tries them: like conntrackd, the CLI also takes a
   * leading part of one (`-s net`, `-F e`).
   */
  readonly optional?: readonly string[];
}

/** The part of the command line a command's argv parser sees. */
export interface CommandLine {
  /** The command word or conntrackd flag the command came from, for messages. */
  readonly via: string;
  /** Positional arguments after the command (with a flag's prefix). */
  readonly args: readonly string[];
  readonly peer?: string;
  readonly xml: boolean;
}

/** A parsed command line: the request's args, and options only the client uses (stats KIND). */
export interface ParsedCall<A, O> {
  readonly args: A;
  readonly options?: O;
}

/** The daemon's half: every control request, including those the CLI does not offer (ping). */
export interface ControlCommand<N extends string, A extends WireArgs, R> {
  readonly name: N;
  /** Validates a request's JSON args; throws ControlArgsError (EBAD_ARGS). */
  fromJson(raw: RawArgs): A;
  run(target: ControlTarget, args: A): R | Promise<R>;
}

/** A command the CLI offers: the daemon's half plus its command line, output and exit rule. */
export interface CliControlCommand<N extends string, A extends WireArgs, R, O = never> extends ControlCommand<N, A, R> {
  readonly conntrackd?: readonly ConntrackdFlag[];
  /** argv → args, or the usage message (the CLI exits 2 with "ctsyncd: MESSAGE (see ctsyncd NAME --help)"). */
  fromArgv(line: CommandLine): ParsedCall<A, O> | string;
  /** The text printed without --json; undefined prints nothing. */
  text(result: R, call: ParsedCall<A, O>): string | undefined;
  /** What --json prints; the reply as it came when absent. */
  json?(result: R, call: ParsedCall<A, O>): unknown;
  /** A reply that means failure: the stderr line (after "ctsyncd: "), and the CLI exits 1. */
  failure?(result: R, call: ParsedCall<A, O>): string | undefined;
}

/** The daemon's view of a declared command, its types closed over. */
export interface DispatchEntry<N extends string = string> {
  readonly name: N;
  handler(target: ControlTarget): (raw: RawArgs) => unknown;
}

/** What the client prints for a reply. */
export interface Rendered {
  /** stdout; absent prints nothing. */
  readonly out?: string;
  /** The failure line for stderr; present means the command failed (exit 1). */
  readonly err?: string;
}

/** A command line ready to send. */
export interface PreparedCall {
  readonly args: WireArgs;
  /** `reply` is the daemon's JSON result, unvalidated: client and daemon are one release. */
  render(reply: unknown, json: boolean): Rendered;
}

/** The CLI's view of a declared command. */
export interface CliEntry<N extends string = string> extends DispatchEntry<N> {
  readonly conntrackd: readonly ConntrackdFlag[];
  prepare(line: CommandLine): PreparedCall | string;
}

export function defineCommand<N extends string, A extends WireArgs, R>(d: ControlCommand<N, A, R>): DispatchEntry<N> {
  return {
    name: d.name,
    handler: (target) => (raw) => d.run(target, d.fromJson(raw)),
  };
}

export function defineCliCommand<N extends string, A extends WireArgs, R, O = never>(
  d: CliControlCommand<N, A, R, O>,
): CliEntry<N> {
  return {
    ...defineCommand(d),
    conntrackd: d.conntrackd ?? [],
    prepare(line) {
      const call = d.fromArgv(line);
      if (typeof call === 'string') return call;
      return {
        args: call.args,
        render(reply, json) {
          // The JSON boundary on the client: a null result reads as an empty object, as it always has.
          const result = (reply ?? {}) as R;
          const out = json ? JSON.stringify(d.json ? d.json(result, call) : reply) : d.text(result, call);
          const err = d.failure?.(result, call);
          return { ...(out === undefined ? {} : { out }), ...(err === undefined ? {} : { err }) };
        },
      };
    },
  };
}

/** True when `v` is one of `words` (validation of both argv words and JSON values). */
export function isOneOf<T extends string>(words: readonly T[], v: unknown): v is T {
  return typeof v === 'string' && (words as readonly string[]).includes(v);
}
