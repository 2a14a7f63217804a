// `ctsyncd flows find --nat ADDR[:PORT] --at TIME [FILES...]`: which inside
// host held a public address and port at a moment, from the flow log and
// its rotated (gzipped) files. Everything streams line by line; a line's
// time is read from its prefix and the address is looked for as text before
// any line is parsed. Files are read in the order of their first record,
// and reading stops as soon as the answer cannot change any more: past the
// moment asked about, once every flow that was open then has been seen to
// end (a log of destroy events only has no opening records to go by, and is
// read to its end).
import { createReadStream } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { canonicalAddress, ipFamily } from '../common/address.js';
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/command-io.js';
import { errorMessage } from '../common/errors.js';
import { type FlowRecord, lineTime, TIME_AT } from './record.js';

export interface NatQuery {
  /** The public address, spelled as the flow log spells it. */
  addr: string;
  port?: number | undefined;
  /** Milliseconds since the epoch. */
  at: number;
}

/** One flow that held the address (and port) at the moment asked about. */
export interface FlowMatch {
  proto: string | number;
  /** The host behind the translation: the original source (SNAT) or the reply source (DNAT). */
  inside: { addr: string; port: number };
  /** The public side as the far end saw it. */
  public: { addr: string; port: number };
  /** The far end. */
  remote: { addr: string; port: number };
  nat: 'snat' | 'dnat';
  /** The flow's start and end, ISO 8601; null when the log does not say (began before it, or still open at its end). */
  start: string | null;
  stop: string | null;
  id: number | null;
  counters: FlowRecord['counters'] | null;
  /** The file of the record that answered. */
  file: string;
}

export interface FindResult {
  matches: FlowMatch[];
  /** Files opened, and of them the ones read to their end. */
  filesRead: number;
  linesRead: number;
}

/** Where a line's event name starts: after `{"time":"<24 characters>","event":"`. */
const EVENT_AT = TIME_AT + 24 + 11;

/**
 * How much later than its event a record may be logged: the flow log's
 * queue and the buffered flush (flowlog.file.flushIntervalMs at most 60 s)
 * sit between them. An opening logged within this of the moment asked
 * about, whose destroy record carries the kernel's start, is judged by that.
 */
const LOG_DELAY_MS = 60_000;

interface Open {
  start: number | undefined;
  match: FlowMatch;
}

/** The side of a record that is `q`'s address (and port), if any. */
function natSide(r: FlowRecord, q: NatQuery): 'snat' | 'dnat' | undefined {
  const n = r.nat;
  if (!n) return undefined;
  if (n.src === q.addr && (q.port === undefined || n.sport === q.port)) return 'snat';
  if (n.dst === q.addr && (q.port === undefined || n.dport === q.port)) return 'dnat';
  return undefined;
}

function matchOf(r: FlowRecord, side: 'snat' | 'dnat', file: string): FlowMatch {
  const n = r.nat!;
  const o = r.orig;
  // Which side was translated decides who is inside, what the public address was, and who the remote end.
  const [inside, pub, remote] =
    side === 'snat'
      ? [{ addr: o.src, port: o.sport }, { addr: n.src!, port: n.sport ?? o.sport }, { addr: o.dst, port: o.dport }]
      : [{ addr: r.reply.src, port: r.reply.sport }, { addr: n.dst!, port: n.dport ?? o.dport }, { addr: o.src, port: o.sport }];
  return {
    proto: r.proto,
    inside,
    public: pub,
    remote,
    nat: side,
    start: r.start ?? null,
    stop: r.stop ?? null,
    id: r.id ?? null,
    counters: r.counters ?? null,
    file,
  };
}

/** A flow's identity in the log: its conntrack id and original tuple. */
function flowKey(r: FlowRecord): string {
  const o = r.orig;
  return `${r.id ?? ''}|${r.proto}|${o.src}|${o.sport}|${o.dst}|${o.dport}`;
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

async function lines(path: string): Promise<{ rl: AsyncIterableIterator<string>; close: () => void }> {
  const gz = await isGzip(path);
  const file = createReadStream(path);
  const stream: Readable = gz ? file.pipe(createGunzip()) : file;
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  return {
    rl: rl[Symbol.asyncIterator](),
    close: () => {
      rl.close();
      file.destroy();
      if (stream !== file) stream.destroy();
    },
  };
}

/** The time of a file's first record, NaN when it has none. */
async function firstTime(path: string): Promise<number> {
  const l = await lines(path);
  try {
    for (let i = 0; i < 1000; i++) {
      const next = await l.rl.next();
      if (next.done) return Number.NaN;
      const t = lineTime(next.value);
      if (!Number.isNaN(t)) return t;
    }
    return Number.NaN;
  } finally {
    l.close();
  }
}

/**
 * The flows that held `q.addr`(:`q.port`) at `q.at`, from `files` in any
 * order (rotated and gzipped ones included).
 */
export async function findNat(files: readonly string[], q: NatQuery): Promise<FindResult> {
  const timed = await Promise.all(files.map(async (f) => ({ f, t: await firstTime(f) })));
  const ordered = timed.filter((x) => !Number.isNaN(x.t)).sort((a, b) => a.t - b.t);
  const needle = `"${q.addr}"`;
  const open = new Map<string, Open>();
  const matches: FlowMatch[] = [];
  let sawOpening = false;
  let past = false;
  let linesRead = 0;
  let filesRead = 0;
  /** Once past the moment: still needed only for the end of flows open then, or for a log without openings. */
  const done = () => past && sawOpening && open.size === 0;
  for (const { f } of ordered) {
    if (done()) break;
    filesRead++;
    const l = await lines(f);
    try {
      for (;;) {
        const next = await l.rl.next();
        if (next.done) break;
        const line = next.value;
        linesRead++;
        const t = lineTime(line);
        // A record is written a little after its event (the queue): lines up to LOG_DELAY_MS later still count.
        if (t > q.at + LOG_DELAY_MS) past = true;
        // Any opening record (not only this address's) says the log has them to go by.
        if (!sawOpening && !Number.isNaN(t) && !line.startsWith('destroy', EVENT_AT)) sawOpening = true;
        if (done()) break;
        if (!line.includes(needle)) continue;
        let r: FlowRecord;
        try {
          r = JSON.parse(line) as FlowRecord;
        } catch {
          continue;
        }
        const side = natSide(r, q);
        if (side === undefined) continue;
        const key = flowKey(r);
        if (r.event !== 'destroy') {
          // A flow opening after the moment is not an answer.
          if (past || open.has(key)) continue;
          open.set(key, { start: r.start ? Date.parse(r.start) : t, match: matchOf(r, side, f) });
          continue;
        }
        const o = open.get(key);
        // Past the moment, in a log with openings, an end without a start we know of began after it.
        if (past && sawOpening && o === undefined && !r.start) continue;
        open.delete(key);
        const start = r.start ? Date.parse(r.start) : o?.start;
        const stop = r.stop ? Date.parse(r.stop) : t;
        if (stop < q.at || (start !== undefined && start > q.at)) continue;
        const m = matchOf(r, side, f);
        m.start = start === undefined ? null : new Date(start).toISOString();
        m.stop = new Date(stop).toISOString();
        matches.push(m);
      }
    } finally {
      l.close();
    }
  }
  // Opened by the moment and not seen to end: they held it then.
  for (const o of open.values()) {
    if (o.start !== undefined && o.start > q.at) continue;
    o.match.start = o.start === undefined ? null : new Date(o.start).toISOString();
    matches.push(o.match);
  }
  return { matches, filesRead, linesRead };
}

/** ADDR, ADDR:PORT (IPv4) or [ADDR]:PORT (IPv6); undefined when not one. */
export function parseNatTarget(text: string): { addr: string; port?: number } | undefined {
  let addr = text;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  if (v6) {
    addr = v6[1]!;
    port = v6[2];
  } else if (text.split(':').length === 2) {
    [addr, port] = text.split(':') as [string, string];
    if (!/^\d{1,5}$/.test(port)) return undefined;
  }
  if (ipFamily(addr) === undefined) return undefined;
  const n = port === undefined ? undefined : Number(port);
  if (n !== undefined && (n < 1 || n > 65535)) return undefined;
  return { addr: canonicalAddress(addr), ...(n === undefined ? {} : { port: n }) };
}

/** ISO 8601 (a time without a zone is local time, as date(1) prints it) or seconds since the epoch. */
export function parseTime(text: string): number | undefined {
  if (/^\d{9,11}(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}

/** The flow log and its rotated files next to it: FILE, FILE.rotating, FILE.N.gz. */
export async function logFiles(path: string): Promise<string[]> {
  const dir = dirname(path);
  const base = basename(path);
  const names = await readdir(dir).catch(() => [] as string[]);
  const rotated = names.filter((n) => n === `${base}.rotating` || new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d+\\.gz$`).test(n));
  return [path, ...rotated.map((n) => join(dir, n))];
}

function endpoint(e: { addr: string; port: number }): string {
  return e.addr.includes(':') ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`;
}

/** One line per flow: when, protocol, inside host, far end, public address. */
export function formatMatch(m: FlowMatch): string {
  return `${m.start ?? '?'} .. ${m.stop ?? 'open'}  ${m.proto}  ${endpoint(m.inside)} -> ${endpoint(m.remote)}  as ${endpoint(m.public)} (${m.nat}${m.id === null ? '' : `, id ${m.id}`})`;
}

export const FLOWS_USAGE = 'flows find --nat ADDR[:PORT] --at TIME [--json] [FILES...]';

/**
 * `ctsyncd flows find ...`; `args` are the words after `flows`. Without FILES
 * the config's flowlog.file.path and its rotated files are read (`defaultLog`).
 * Exits 0 with at least one flow, 1 with none (or a file unreadable), 2 on usage.
 */
export async function flowsCommand(
  args: readonly string[],
  io: CommandIo,
  defaultLog: () => Promise<string | undefined>,
  json: boolean,
): Promise<number> {
  const usage = (m: string): number => {
    io.err(`ctsyncd: flows: ${m} (usage: ctsyncd ${FLOWS_USAGE})`);
    return EXIT_USAGE;
  };
  if (args[0] !== 'find') return usage(args[0] === undefined ? 'needs a subcommand' : `unknown subcommand '${args[0]}'`);
  let nat: { addr: string; port?: number } | undefined;
  let at: number | undefined;
  let asJson = json;
  const files: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    if (name === '--json') {
      asJson = true;
    } else if (name === '--nat' || name === '--at') {
      const v = inline ?? args[++i];
      if (v === undefined) return usage(`${name} needs a value`);
      if (name === '--nat') {
        nat = parseNatTarget(v);
        if (!nat) return usage(`--nat takes ADDR, ADDR:PORT or [IPv6]:PORT, not '${v}'`);
      } else {
        at = parseTime(v);
        if (at === undefined) return usage(`--at takes an ISO 8601 time or seconds since the epoch, not '${v}'`);
      }
    } else if (a.startsWith('-')) {
      return usage(`unknown option ${a}`);
    } else {
      files.push(a);
    }
  }
  if (!nat) return usage('--nat is required');
  if (at === undefined) return usage('--at is required');
  if (files.length === 0) {
    const path = await defaultLog();
    if (path === undefined) return usage('no FILES given and the config has no flowlog.file.path');
    files.push(...(await logFiles(path)));
  }
  let result: FindResult;
  try {
    result = await findNat(files, { ...nat, at });
  } catch (e) {
    io.err(`ctsyncd: flows find: ${errorMessage(e)}`);
    return EXIT_FAILURE;
  }
  if (asJson) io.out(JSON.stringify({ query: { addr: nat.addr, port: nat.port ?? null, at: new Date(at).toISOString() }, ...result }));
  else if (result.matches.length === 0) io.out(`no flow held ${nat.addr}${nat.port === undefined ? '' : `:${nat.port}`} at ${new Date(at).toISOString()}`);
  else for (const m of result.matches) io.out(formatMatch(m));
  return result.matches.length > 0 ? EXIT_OK : EXIT_FAILURE;
}
