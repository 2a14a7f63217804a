// Text output helpers of the client commands (each command's own one-line
// summary is in its declaration, src/control/commands.ts). Everything is
// derived from the same JSON the daemon answers with (and `--json` prints),
// so text and JSON never disagree.
import { IPS, protoNumber } from '../kernel/constants.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Flattens nested objects into aligned "path value" lines. */
export function flatLines(v: unknown, prefix = ''): string[] {
  const lines: string[] = [];
  const walk = (p: string, x: unknown) => {
    if (isObj(x)) {
      const keys = Object.keys(x);
      if (keys.length === 0) lines.push(`${p} {}`);
      for (const k of keys) walk(p ? `${p}.${k}` : k, x[k]);
    } else if (Array.isArray(x)) {
      if (x.length === 0) lines.push(`${p} []`);
      for (const [i, y] of x.entries()) walk(`${p}[${i}]`, y);
    } else if (x !== undefined) {
      lines.push(`${p} ${x === null ? '-' : String(x)}`);
    }
  };
  walk(prefix, v);
  const width = Math.min(48, Math.max(0, ...lines.map((l) => l.indexOf(' '))));
  return lines.map((l) => {
    const at = l.indexOf(' ');
    return `${l.slice(0, at).padEnd(width)} ${l.slice(at + 1)}`;
  });
}

/** The kinds of `stats KIND` (conntrackd's -s KIND); see statsSection. */
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

export type StatsKind = (typeof STATS_KINDS)[number];

const get = (o: unknown, path: string): unknown => {
  let x: unknown = o;
  for (const k of path.split('.')) x = isObj(x) ? x[k] : undefined;
  return x;
};

/**
 * The part of the stats object that `stats KIND` (conntrackd's -s KIND)
 * shows. Kinds conntrackd has keep their meaning; peers and commit are ours.
 */
export function statsSection(stats: Obj, kind: string | undefined): Obj {
  const pick = (...paths: string[]): Obj => {
    const out: Obj = {};
    for (const p of paths) out[p] = get(stats, p);
    return out;
  };
  switch (kind) {
    case undefined:
    case 'all':
      return stats;
    case 'ct':
      return pick('ready', 'internal', 'external', 'commit', 'inject', 'sync.inSync', 'sync.counters');
    case 'expect':
      return pick('internal.expectations', 'external.expectations');
    case 'network':
      return pick('sync.auth', 'sync.counters', 'sync.sender', 'sync.activeChannel');
    case 'cache':
      return pick('internal', 'external');
    case 'runtime':
      return pick('node', 'epoch', 'uptimeSeconds', 'ready', 'kernel');
    case 'link':
    case 'multicast':
      return pick('sync.auth', 'sync.activeChannel', 'sync.channels');
    case 'rsqueue':
      return pick('sync.resendQueue');
    case 'queue':
      return pick('sync.sender', 'sync.resendQueue', 'inject');
    case 'process':
      // conntrackd forks children for dumps and flushes; ctsyncd does all in one process.
      return pick('pid', 'uptimeSeconds');
    case 'peers':
      return pick('sync.inSync', 'sync.firstSyncDone', 'peers', 'sync.admission');
    case 'commit':
      return pick('commit', 'inject');
    default:
      return { error: `unknown stats kind ${kind}` };
  }
}

export function statsText(stats: Obj, kind: string | undefined): string {
  return flatLines(statsSection(stats, kind)).join('\n');
}

interface TupleJson {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  code?: number;
}

/**
 * A tuple as conntrack(8) prints it: ICMP and ICMPv6 as type, code and id
 * (entryToJson carries the id in sport and the type in dport), GRE keys in
 * hex, ports otherwise.
 */
function tupleText(proto: string, x: TupleJson): string {
  const a = `src=${x.src} dst=${x.dst}`;
  if (proto === 'icmp' || proto === 'icmpv6') return `${a} type=${x.dport} code=${x.code ?? 0} id=${x.sport}`;
  if (proto === 'gre') return `${a} srckey=0x${x.sport.toString(16)} dstkey=0x${x.dport.toString(16)}`;
  return `${a} sport=${x.sport} dport=${x.dport}`;
}

/** One dump entry in conntrack(8)'s layout, plus origin for external entries. */
export function entryText(j: Obj): string {
  const t = (x: TupleJson) => `src=${x.src} dst=${x.dst} sport=${x.sport} dport=${x.dport}`;
  const status = typeof j.status === 'number' ? j.status : 0;
  const proto = String(j.proto);
  const parts = [proto, String(protoNumber(proto) ?? j.proto), String(j.timeout ?? 0)];
  if (j.state !== undefined) parts.push(String(j.state));
  parts.push(tupleText(proto, j as unknown as TupleJson));
  if (!(status & IPS.SEEN_REPLY)) parts.push('[UNREPLIED]');
  parts.push(tupleText(proto, j.reply as TupleJson));
  if (status & IPS.ASSURED) parts.push('[ASSURED]');
  parts.push(`mark=${String(j.mark ?? 0)}`);
  if (j.zone) parts.push(`zone=${String(j.zone)}`);
  if (j.helper !== undefined) parts.push(`helper=${String(j.helper)}`);
  if (isObj(j.master)) parts.push(`master=${t(j.master as unknown as TupleJson).replace(/ /g, ',')}`);
  if (j.origin !== undefined) parts.push(`origin=${String(j.origin)}`);
  return parts.join(' ');
}

/** One expectation, as conntrack -L expect prints it. */
export function expectText(j: Obj): string {
  const m = j.master as Obj & TupleJson;
  const parts = [
    String(j.timeout ?? 0),
    String(j.proto),
    `src=${String(j.src)} dst=${String(j.dst)} sport=${String(j.sport)} dport=${String(j.dport)}`,
    `master=${String(m.proto)},src=${m.src},dst=${m.dst},sport=${m.sport},dport=${m.dport}`,
  ];
  if (j.helper !== undefined) parts.push(`helper=${String(j.helper)}`);
  if (j.origin !== undefined) parts.push(`origin=${String(j.origin)}`);
  return parts.join(' ');
}

/** " (EPERM: 2, ENOENT: 1)" for a failures-by-errno object, "" when there are none. */
export function failuresText(f: unknown): string {
  return isObj(f) && Object.keys(f).length > 0
    ? ` (${Object.entries(f)
        .map(([k, n]) => `${k}: ${String(n)}`)
        .join(', ')})`
    : '';
}
