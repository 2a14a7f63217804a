// `ctsyncd import-conntrackd FILE`: conntrackd.conf → ctsyncd YAML.
//
// importConntrackdConf() is pure (text in, YAML and warnings out). It reads
// the file with conntrackd's grammar (Sync with Mode FTFW/NOTRACK/ALARM and
// its Multicast/UDP/TCP channels and Options, General with its Filter), maps
// what has a ctsyncd key, and returns one warning per line it could not carry
// over, naming the line. Every value in the YAML carries a comment naming the
// conntrackd.conf line it came from. The result is validated with the
// daemon's own parser, so a conversion that still needs a hand edit (e.g. a
// Multicast block without Interface) says so instead of failing at start.
//
// node.id has no conntrackd equivalent: the caller provides it (the CLI uses
// this host's short name unless --node-id is given). cluster.id neither: it
// is 1 unless the caller says otherwise, with a comment saying so.

import { readFileSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { Document, isMap, isScalar, isSeq } from 'yaml';
import { TCP_STATES, type TcpStateName } from '../kernel/constants.js';
import {
  ConntrackdConfError,
  Cursor,
  isConntrackdConfError,
  type Lexed,
  show,
  type Token,
  tokenize,
} from './conntrackd-conf-parser.js';
import { DEFAULTS, LIMITS } from './defaults.js';
import { isConfigError } from './errors.js';
import { formatPath, parseConfig } from './load.js';
import { isMulticast, networkOf } from '../common/address.js';
import { PROTOCOLS, type ProtocolName, SYSLOG_FACILITIES } from './schema.js';
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/command-io.js';

export { ConntrackdConfError, isConntrackdConfError } from './conntrackd-conf-parser.js';

/** One conntrackd.conf line that was not carried over as written. */
export interface ImportWarning {
  /** 1-based line in the conntrackd.conf; 0 when the warning is about the result as a whole. */
  line: number;
  /** The option or section concerned, as spelt in the file, e.g. "Checksum"; '' for the result as a whole. */
  option: string;
  message: string;
}

export interface ImportOptions {
  /** Name of the input in the header and in errors, normally its path. */
  file: string;
  /** node.id of the result. */
  nodeId: string;
  /** Where nodeId came from, for the comment above it, e.g. "the host name fw1.example.com". */
  nodeIdSource?: string;
  /** cluster.id of the result. Default 1. */
  clusterId?: number;
}

export interface ImportResult {
  yaml: string;
  warnings: ImportWarning[];
}

export function formatImportWarning(file: string, w: ImportWarning): string {
  return w.line > 0 ? `${file}:${w.line}: ${w.message}` : `${file}: ${w.message}`;
}

/** The schema's node.id rule, restated so the CLI can reject a bad --node-id before converting. */
const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** A node id from a host name: its first label, if that is a valid id and not "localhost". */
export function nodeIdFromHostname(host: string): string | undefined {
  const short = host.split('.')[0] ?? '';
  return NODE_ID.test(short) && short.toLowerCase() !== 'localhost' ? short : undefined;
}

// ---------------------------------------------------------------------------
// What the file says, before it is turned into YAML.

type Mode = 'ftfw' | 'notrack' | 'alarm';
type ChannelKind = 'multicast' | 'udp' | 'tcp';
type Logic = 'accept' | 'ignore';

/** A value and the line it came from. */
interface Src<T> {
  value: T;
  line: number;
  /** The option as spelt in the file. */
  option: string;
  /** The directive as written, e.g. "Group 3780", for the YAML comment. */
  text: string;
  /** The line's own # comment, if any. */
  comment?: string;
}

interface Channel {
  kind: ChannelKind;
  keyword: Token;
  isDefault: boolean;
  /** Multicast: the group. UDP/TCP: the local address. */
  address?: Src<string>;
  destination?: Src<string>;
  /** Multicast: Group. UDP/TCP: Port. */
  port?: Src<number>;
  iface?: Src<string>;
  ifaceAddress?: Src<string>;
  sendBuffer?: Src<number>;
  receiveBuffer?: Src<number>;
}

interface ListFilter<T> {
  logic: Logic;
  line: number;
  text: string;
  items: Src<T>[];
}

interface Model {
  sync?: Token;
  stats?: Token;
  /** Stats LogFile: on, off or a file name. */
  logFile?: Src<string>;
  /** Stats Syslog: on, off or a facility name. */
  statsSyslog?: Src<string>;
  mode?: Src<Mode>;
  refreshTime?: Src<number>;
  resendQueueSize?: Src<number>;
  ackWindow?: Src<number>;
  purgeTimeout?: Src<number>;
  inject?: Src<boolean>;
  channels: Channel[];
  hashLimit?: Src<number>;
  netlinkSize?: Src<number>;
  netlinkMax?: Src<number>;
  eventsReliable?: Src<boolean>;
  /** ExpectationSync on|off, or its helper list. */
  expectationSync?: Src<'all' | 'none' | string[]>;
  scheduler?: { line: number; option: string; type?: Src<'fifo' | 'rr'>; priority?: Src<number> };
  socket?: Src<string>;
  protocols?: ListFilter<ProtocolName>;
  addresses?: ListFilter<string>;
  tcpStates?: ListFilter<TcpStateName>;
}

/** Keys of T that hold a Src. */
type SrcKey<T> = { [K in keyof T]-?: NonNullable<T[K]> extends Src<unknown> ? K : never }[keyof T];

const MODES = new Map<string, Mode>([
  ['ftfw', 'ftfw'],
  ['nack', 'ftfw'], // conntrackd's old name for FTFW
  ['notrack', 'notrack'],
  ['alarm', 'alarm'],
  ['persistent', 'alarm'], // conntrackd's old name for ALARM
]);

/** /etc/protocols names and aliases (conntrackd resolves them with getprotobyname) → ctsyncd names. */
const PROTOCOL_NAMES = new Map<string, ProtocolName>([
  ...PROTOCOLS.map((p): [string, ProtocolName] => [p, p]),
  ['ipv6-icmp', 'icmpv6'],
  ['icmp6', 'icmpv6'],
  ['udp-lite', 'udplite'],
]);

/** conntrackd's TCP state keywords, plus ctsyncd's own spellings. LISTEN is handled apart. */
const TCP_STATE_NAMES = new Map<string, TcpStateName>([
  ...TCP_STATES.map((s): [string, TcpStateName] => [s, s]),
  ['CLOSED', 'CLOSE'],
]);

/** A conntrack helper's name (kernel NF_CT_HELPER_NAME_LEN), as filter.expectations takes it. */
const HELPER_NAME = new RegExp(`^[A-Za-z0-9_.-]{1,${LIMITS.helperNameBytes}}$`);

const lc = (s: string): string => s.toLowerCase();

/** The position and name of an option given as a bare keyword. */
const at = (t: Token): { line: number; option: string } => ({ line: t.line, option: t.text });

function isAddressOf(text: string, family: 4 | 6): boolean {
  return family === 4 ? isIPv4(text) : isIPv6(text);
}

function isLinkLocalV6(addr: string): boolean {
  return isIPv6(addr) && /^fe[89ab]/i.test(addr);
}

class Importer {
  readonly warnings: ImportWarning[] = [];
  readonly m: Model = { channels: [] };
  private readonly c: Cursor;
  private readonly comments: Map<number, string>;

  constructor(
    lexed: Lexed,
    readonly file: string,
  ) {
    this.c = new Cursor(lexed.tokens, file);
    this.comments = lexed.comments;
  }

  warn(line: number, option: string, message: string): void {
    this.warnings.push({ line, option, message });
  }

  /** "X is not supported by ctsyncd: why". */
  unsupported(src: { line: number; option: string; text?: string }, why: string): void {
    this.warn(src.line, src.option, `${src.text ?? src.option} is not supported by ctsyncd: ${why}`);
  }

  /** "X needs no setting in ctsyncd: why" — the option is dropped but ctsyncd already behaves that way. */
  implied(src: { line: number; option: string; text?: string }, why: string): void {
    this.warn(src.line, src.option, `${src.text ?? src.option} needs no setting in ctsyncd: ${why}; dropped`);
  }

  private unknown(t: Token, where: string): void {
    this.warn(t.line, t.text, `${t.text} is not a conntrackd.conf option this importer knows ${where}; skipped`);
    this.c.skipStatement(t);
  }

  // ----- values

  private src<T>(kw: Token, v: Token, value: T): Src<T> {
    const comment = this.comments.get(v.line);
    return {
      value,
      line: kw.line,
      option: kw.text,
      text: `${kw.text} ${v.text}`,
      ...(comment === undefined ? {} : { comment }),
    };
  }

  private int(kw: Token): Src<number> {
    const v = this.c.value(kw, 'a number');
    if (!/^[0-9]{1,15}$/.test(v.text)) throw this.c.error(v, `${kw.text} needs a number, got ${show(v.text)}`);
    return this.src(kw, v, Number(v.text));
  }

  private bool(kw: Token): Src<boolean> {
    const v = this.c.value(kw, 'on or off');
    const t = lc(v.text);
    if (t === 'on' || t === 'yes') return this.src(kw, v, true);
    if (t === 'off' || t === 'no') return this.src(kw, v, false);
    throw this.c.error(v, `${kw.text} takes on or off, got ${show(v.text)}`);
  }

  private word(kw: Token, what: string): Src<string> {
    const v = this.c.value(kw, what);
    return this.src(kw, v, v.text);
  }

  /** Sets a scalar; a repeated option overrides the earlier one, as in conntrackd. */
  private put<T extends object, K extends SrcKey<T>>(target: T, key: K, value: NonNullable<T[K]>): void {
    const prev = target[key] as Src<unknown> | undefined;
    const next = value as unknown as Src<unknown>;
    if (prev !== undefined) {
      this.warn(
        prev.line,
        prev.option,
        `${prev.text} is overridden by ${next.text} on line ${next.line}, as in conntrackd`,
      );
    }
    target[key] = value;
  }

  // ----- sections

  run(): void {
    for (;;) {
      const t = this.c.next();
      if (t === undefined) return;
      if (t.kind !== 'word') throw this.c.error(t, `unexpected ${t.text} outside any section`);
      switch (lc(t.text)) {
        case 'sync':
          this.m.sync ??= t;
          this.c.block(t, (x) => this.syncItem(x));
          break;
        case 'general':
          this.c.block(t, (x) => this.general(x));
          break;
        case 'stats':
          this.m.stats ??= t;
          this.c.block(t, (x) => this.statsItem(x));
          break;
        case 'helper':
          this.c.skipBlock(t);
          this.unsupported(
            at(t),
            'ctsyncd has no userspace helpers; keep the kernel helpers (nft ct helper) or run conntrackd for them alone',
          );
          break;
        default:
          this.unknown(t, 'at the top level (expected Sync, General, Stats or Helper)');
      }
    }
  }

  /** Stats (flow accounting) becomes flowlog. */
  private statsItem(t: Token): void {
    switch (lc(t.text)) {
      case 'logfile':
        return this.put(this.m, 'logFile', this.word(t, 'on, off or a file name'));
      case 'netlinkeventsreliable':
        return this.put(this.m, 'eventsReliable', this.bool(t));
      case 'syslog':
        return this.put(this.m, 'statsSyslog', this.word(t, 'on, off or a facility'));
      default:
        return this.unknown(t, 'in Stats');
    }
  }

  private syncItem(t: Token): void {
    switch (lc(t.text)) {
      case 'mode':
        return this.mode(t);
      case 'multicast':
      case 'udp':
      case 'tcp':
        return this.channel(t, lc(t.text) as ChannelKind);
      case 'options':
        return this.c.block(t, (x) => this.syncOption(x));
      default:
        // conntrackd also takes RefreshTime, CacheTimeout, CommitTimeout and PurgeTimeout right in Sync.
        if (!this.modeOption(t)) this.unknown(t, 'in Sync');
    }
  }

  private mode(kw: Token): void {
    const v = this.c.value(kw, 'FTFW, NOTRACK or ALARM');
    const mode = MODES.get(lc(v.text));
    if (mode === undefined) throw this.c.error(v, `unknown Mode ${show(v.text)}: expected FTFW, NOTRACK or ALARM`);
    this.put(this.m, 'mode', this.src(kw, v, mode));
    this.c.block(v, (t) => {
      if (!this.modeOption(t)) this.unknown(t, `in Mode ${v.text}`);
    });
  }

  /** Options of the Mode blocks (and of Sync itself). False when `t` is none of them. */
  private modeOption(t: Token): boolean {
    switch (lc(t.text)) {
      case 'resendqueuesize':
        this.put(this.m, 'resendQueueSize', this.int(t));
        return true;
      case 'ackwindowsize':
        this.put(this.m, 'ackWindow', this.int(t));
        return true;
      case 'purgetimeout':
        this.put(this.m, 'purgeTimeout', this.int(t));
        return true;
      case 'refreshtime':
        this.put(this.m, 'refreshTime', this.int(t));
        return true;
      case 'disableexternalcache':
        this.put(this.m, 'inject', this.bool(t));
        return true;
      case 'cachetimeout':
        this.unsupported(
          this.int(t),
          "peers' entries stay in ctsyncd's external cache until the peer deletes them, flushes, or is purged by a resync; they do not expire",
        );
        return true;
      case 'committimeout':
        this.unsupported(
          this.int(t),
          'commit gives each entry the timeout last replicated for it; a fixed commit timeout is not configurable',
        );
        return true;
      case 'disableinternalcache': {
        const v = this.bool(t);
        if (v.value) {
          this.unsupported(
            v,
            'ctsyncd always keeps the internal cache (it is what resync, bulk-send and purge-timeout work from)',
          );
        } else this.implied(v, 'the internal cache is always on');
        return true;
      }
      case 'startupresync': {
        const v = this.bool(t);
        if (v.value) this.implied(v, 'ctsyncd always asks its peers for their state when it starts');
        else this.unsupported(v, 'ctsyncd always asks its peers for their state when it starts');
        return true;
      }
      default:
        return false;
    }
  }

  private channel(kw: Token, kind: ChannelKind): void {
    const next = this.c.peek();
    let isDefault = false;
    if (next?.kind === 'word' && lc(next.text) === 'default') {
      this.c.next();
      isDefault = true;
    }
    const ch: Channel = { kind, keyword: kw, isDefault };
    this.m.channels.push(ch);
    this.c.block(kw, (t) => this.channelOption(ch, t));
  }

  private address(kw: Token, family: 4 | 6): Src<string> | undefined {
    const v = this.word(kw, `an IPv${family} address`);
    if (isAddressOf(v.value, family)) return v;
    this.warn(
      kw.line,
      kw.text,
      `${v.text}: ${show(v.value)} is not an IPv${family} address; skipped (conntrackd skips it too)`,
    );
    return undefined;
  }

  private channelOption(ch: Channel, t: Token): void {
    const name = lc(t.text);
    const where = `in ${ch.keyword.text}`;
    switch (name) {
      case 'ipv4_address':
      case 'ipv6_address': {
        const v = this.address(t, name === 'ipv4_address' ? 4 : 6);
        if (v) this.put(ch, 'address', v);
        return;
      }
      case 'ipv4_destination_address':
      case 'ipv6_destination_address': {
        if (ch.kind === 'multicast') return this.unknown(t, where);
        const v = this.address(t, name === 'ipv4_destination_address' ? 4 : 6);
        if (v) this.put(ch, 'destination', v);
        return;
      }
      case 'ipv4_interface': {
        if (ch.kind !== 'multicast') return this.unknown(t, where);
        const v = this.address(t, 4);
        if (v) this.put(ch, 'ifaceAddress', v);
        return;
      }
      case 'ipv6_interface':
        if (ch.kind !== 'multicast') return this.unknown(t, where);
        this.unsupported(
          this.word(t, 'an address'),
          'ctsyncd sends and joins the group on Interface (conntrackd ignores IPv6_interface too)',
        );
        return;
      case 'interface':
        this.put(ch, 'iface', this.word(t, 'an interface name'));
        return;
      case 'group':
        if (ch.kind !== 'multicast') return this.unknown(t, where);
        this.put(ch, 'port', this.int(t));
        return;
      case 'port':
        if (ch.kind === 'multicast') return this.unknown(t, `${where} (its port is Group)`);
        this.put(ch, 'port', this.int(t));
        return;
      case 'sndsocketbuffer':
        this.put(ch, 'sendBuffer', this.int(t));
        return;
      case 'rcvsocketbuffer':
        this.put(ch, 'receiveBuffer', this.int(t));
        return;
      case 'checksum': {
        const v = this.bool(t);
        if (v.value) this.implied(v, 'its sync datagrams always carry UDP checksums');
        else {
          this.unsupported(
            v,
            'ctsyncd always sends UDP checksums; for integrity against more than bit errors set sync.auth',
          );
        }
        return;
      }
      case 'errorqueuelength':
        if (ch.kind !== 'tcp') return this.unknown(t, where);
        this.unsupported(this.int(t), 'ctsyncd has no TCP transport (see the warning on the TCP line)');
        return;
      default:
        return this.unknown(t, where);
    }
  }

  private syncOption(t: Token): void {
    switch (lc(t.text)) {
      case 'tcpwindowtracking': {
        const v = this.bool(t);
        if (v.value) {
          this.unsupported(
            v,
            'ctsyncd commits TCP entries with window tracking relaxed (BE_LIBERAL), as conntrackd does by default; ctnetlink cannot carry the window positions',
          );
        } else this.implied(v, 'committed TCP entries always have window tracking relaxed (BE_LIBERAL)');
        return;
      }
      case 'expectationsync': {
        if (this.c.peek()?.kind === 'open') {
          const helpers: string[] = [];
          this.c.block(t, (x) => {
            if (!HELPER_NAME.test(x.text)) {
              this.warn(x.line, x.text, `${show(x.text)} is not a conntrack helper name; dropped from ${t.text}`);
              return;
            }
            if (!helpers.includes(x.text)) helpers.push(x.text);
          });
          this.put(this.m, 'expectationSync', {
            value: helpers.length > 0 ? helpers : 'none',
            line: t.line,
            option: t.text,
            text: `${t.text} { ${helpers.join(' ')} }`,
          });
          if (helpers.length === 0) {
            this.warn(t.line, t.text, `${t.text} lists no helper: no expectation is synced (filter.expectations: none)`);
          }
          return;
        }
        const v = this.bool(t);
        this.put(this.m, 'expectationSync', { ...v, value: v.value ? 'all' : 'none' });
        return;
      }
      default:
        return this.unknown(t, 'in Options');
    }
  }

  private general(t: Token): void {
    switch (lc(t.text)) {
      case 'hashlimit':
        return this.put(this.m, 'hashLimit', this.int(t));
      case 'netlinkbuffersize':
      case 'socketbuffersize':
        return this.put(this.m, 'netlinkSize', this.int(t));
      case 'netlinkbuffersizemaxgrowth':
      case 'socketbuffersizemaxgrowth':
      case 'socketbuffersizemaxgrown':
        return this.put(this.m, 'netlinkMax', this.int(t));
      case 'unix':
        return this.c.block(t, (x) => {
          switch (lc(x.text)) {
            case 'path':
              return this.put(this.m, 'socket', this.word(x, 'a path'));
            case 'backlog':
              return this.implied(this.int(x), 'conntrackd ignores Backlog too');
            default:
              return this.unknown(x, 'in UNIX');
          }
        });
      case 'filter':
        return this.filter(t);
      case 'hashsize':
        return this.unsupported(
          this.int(t),
          "ctsyncd's caches size their hash tables themselves; only their limits are set (HashLimit)",
        );
      case 'logfile': {
        const v = this.word(t, 'on, off or a path');
        if (/^(off|no)$/i.test(v.value)) return this.implied(v, 'ctsyncd logs to standard error, i.e. the journal');
        return this.unsupported(
          v,
          'ctsyncd logs to standard error (the systemd journal); for a file, add StandardError=append:/var/log/ctsyncd.log to its unit',
        );
      }
      case 'syslog': {
        const v = this.word(t, 'on, off or a facility');
        if (/^(off|no)$/i.test(v.value)) return this.implied(v, 'ctsyncd logs to standard error, i.e. the journal');
        return this.unsupported(
          v,
          'ctsyncd logs to standard error; journald forwards it to syslog (set SyslogFacility= in the unit for a facility)',
        );
      }
      case 'lockfile':
        return this.unsupported(
          this.word(t, 'a path'),
          'ctsyncd needs no lock file: a second daemon refuses to start while the control socket answers',
        );
      case 'eventiterationlimit':
        return this.unsupported(this.int(t), 'ctsyncd reads events in batches and yields to the network by itself');
      case 'pollsecs':
        return this.unsupported(this.int(t), 'ctsyncd always follows kernel events; there is no polling mode');
      case 'netlinkoverrunresync': {
        const v = this.word(t, 'on, off or seconds');
        return this.unsupported(
          v,
          'after an overrun ctsyncd resyncs with the kernel once the event queue is drained and overruns have stopped for 250 ms, and sends only the differences; this is not configurable',
        );
      }
      case 'netlinkeventsreliable':
        return this.put(this.m, 'eventsReliable', this.bool(t));
      case 'nice':
        return this.unsupported(
          this.word(t, 'a number'),
          'set Nice= in the systemd unit (conntrackd ignores Nice too)',
        );
      case 'scheduler': {
        const sch: NonNullable<Model['scheduler']> = { line: t.line, option: t.text };
        this.c.block(t, (x) => {
          switch (lc(x.text)) {
            case 'type': {
              const v = this.word(x, 'RR or FIFO');
              const type = lc(v.value);
              // conntrackd itself refuses any other word (read_config_yy.y).
              if (type !== 'rr' && type !== 'fifo') throw this.c.error(x, `unknown scheduler ${show(v.value)}: expected RR or FIFO`);
              sch.type = { ...v, value: type };
              return;
            }
            case 'priority': {
              const v = this.int(x);
              if (v.value > 99) throw this.c.error(x, '`Priority\' must be [0, 99], as conntrackd says');
              sch.priority = v;
              return;
            }
            default:
              return this.unknown(x, 'in Scheduler');
          }
        });
        this.m.scheduler = sch;
        return;
      }
      case 'systemd': {
        const v = this.bool(t);
        if (v.value) {
          return this.implied(
            v,
            'ctsyncd notifies systemd (READY=1, STATUS=, WATCHDOG=1) whenever its unit is Type=notify, as in contrib/systemd/ctsyncd.service',
          );
        }
        return this.implied(v, 'ctsyncd notifies systemd only under a Type=notify unit; use Type=simple for none');
      }
      default:
        return this.unknown(t, 'in General');
    }
  }

  // ----- Filter

  private filter(kw: Token): void {
    let owner = kw;
    const next = this.c.peek();
    if (next?.kind === 'word' && lc(next.text) === 'from') {
      this.c.next();
      const where = this.c.value(next, 'Userspace or Kernelspace');
      const w = lc(where.text);
      if (w !== 'userspace' && w !== 'kernelspace') {
        throw this.c.error(where, `Filter From takes Userspace or Kernelspace, got ${show(where.text)}`);
      }
      if (w === 'kernelspace') {
        this.implied(
          { line: kw.line, option: 'From Kernelspace' },
          'ctsyncd applies the filter rules in userspace, and in the kernel too where that is safe (kernel.filterEvents, on by default); the rules are converted',
        );
      }
      owner = where;
    }
    this.c.block(owner, (t) => {
      switch (lc(t.text)) {
        case 'protocol':
          return this.protocolFilter(t);
        case 'address':
          return this.addressFilter(t);
        case 'state':
          return this.stateFilter(t);
        default:
          return this.unknown(t, 'in Filter');
      }
    });
  }

  private openList<T>(prev: ListFilter<T> | undefined, kw: Token): { list: ListFilter<T>; logicToken: Token } {
    const v = this.c.value(kw, 'Accept or Ignore');
    const logic = lc(v.text);
    if (logic !== 'accept' && logic !== 'ignore') {
      throw this.c.error(v, `${kw.text} takes Accept or Ignore, got ${show(v.text)}`);
    }
    const text = `${kw.text} ${v.text}`;
    if (prev === undefined) return { list: { logic, line: kw.line, text, items: [] }, logicToken: v };
    if (prev.logic !== logic) {
      this.warn(
        kw.line,
        kw.text,
        `${text} follows ${prev.text} (line ${prev.line}): conntrackd applies the last block's ${v.text} to the items of both, and so does this conversion`,
      );
    }
    prev.logic = logic;
    return { list: prev, logicToken: v };
  }

  private protocolFilter(kw: Token): void {
    const { list, logicToken } = this.openList(this.m.protocols, kw);
    this.m.protocols = list;
    this.c.block(logicToken, (t) => {
      const p = PROTOCOL_NAMES.get(lc(t.text));
      if (p === undefined) {
        this.warn(
          t.line,
          t.text,
          `${t.text} is not supported by ctsyncd's filter, which knows ${PROTOCOLS.join(' ')}; dropped from ${list.text}`,
        );
        return;
      }
      if (!list.items.some((i) => i.value === p)) list.items.push({ ...this.src(t, t, p), text: t.text });
    });
  }

  private addressFilter(kw: Token): void {
    const { list, logicToken } = this.openList(this.m.addresses, kw);
    this.m.addresses = list;
    this.c.block(logicToken, (t) => {
      const name = lc(t.text);
      if (name !== 'ipv4_address' && name !== 'ipv6_address') return this.unknown(t, `in ${list.text}`);
      const family = name === 'ipv4_address' ? 4 : 6;
      const v = this.word(t, `an IPv${family} address or prefix`);
      const [addr = '', len, ...rest] = v.value.split('/');
      const max = family === 4 ? 32 : 128;
      const okLen = len === undefined || (/^[0-9]{1,3}$/.test(len) && Number(len) <= max);
      if (!isAddressOf(addr, family) || !okLen || rest.length > 0) {
        this.warn(
          t.line,
          t.text,
          `${v.text}: ${show(v.value)} is not an IPv${family} address or prefix; skipped (conntrackd skips it too)`,
        );
        return;
      }
      // conntrackd treats a /32 (/128) as the address itself and masks host bits off a prefix.
      let value = len === undefined || Number(len) === max ? addr : `${addr}/${Number(len)}`;
      const net = networkOf(value);
      if (net !== value) {
        this.warn(
          t.line,
          t.text,
          `${v.text} has host bits set; conntrackd matches the network ${net}, and so does this conversion`,
        );
        value = net;
      }
      if (!list.items.some((i) => i.value === value)) list.items.push({ ...v, value });
    });
  }

  private stateFilter(kw: Token): void {
    const { list, logicToken } = this.openList(this.m.tcpStates, kw);
    this.m.tcpStates = list;
    let pending: Src<TcpStateName>[] = [];
    let firstPending: Token | undefined;
    this.c.block(logicToken, (t) => {
      if (lc(t.text) === 'for') {
        const proto = this.c.value(t, 'TCP');
        if (lc(proto.text) !== 'tcp')
          throw this.c.error(proto, `State filters apply to TCP only, got for ${show(proto.text)}`);
        for (const s of pending) if (!list.items.some((i) => i.value === s.value)) list.items.push(s);
        pending = [];
        firstPending = undefined;
        return;
      }
      firstPending ??= t;
      const upper = t.text.toUpperCase();
      let state = TCP_STATE_NAMES.get(upper);
      if (upper === 'LISTEN') {
        state = 'SYN_SENT2';
        this.warn(
          t.line,
          t.text,
          'LISTEN is the old name of conntrack TCP state 9, which the kernel calls SYN_SENT2 (simultaneous open); converted to SYN_SENT2',
        );
      }
      if (state === undefined) {
        this.warn(
          t.line,
          t.text,
          `${t.text} is not a conntrack TCP state (${TCP_STATES.join(' ')}); dropped from ${list.text}`,
        );
        return;
      }
      pending.push({ ...this.src(t, t, state), text: t.text });
    });
    if (firstPending !== undefined)
      throw this.c.error(firstPending, `expected 'for TCP' after the states of ${list.text}`);
  }
}

// ---------------------------------------------------------------------------
// Model → YAML.

type Path = (string | number)[];
type Container = { [key: string]: unknown };

interface Note {
  path: Path;
  text: string;
}

class Emitter {
  readonly root: Container = {};
  readonly notes: Note[] = [];

  set(path: Path, value: unknown, note?: string): void {
    let node = this.root;
    for (let i = 0; i < path.length - 1; i++) {
      const key = String(path[i]);
      if (node[key] === undefined) node[key] = typeof path[i + 1] === 'number' ? [] : {};
      node = node[key] as Container;
    }
    node[String(path[path.length - 1])] = value;
    if (note !== undefined) this.note(path, note);
  }

  note(path: Path, text: string): void {
    this.notes.push({ path, text });
  }
}

/** Where `LogFile on` (or a LogFile that is off) puts the flow log. */
const DEFAULT_FLOW_LOG = '/var/log/ctsyncd/flows.jsonl';

const fromLine = (s: Src<unknown>, extra?: string): string =>
  `line ${s.line}: ${s.text}${s.comment === undefined ? '' : ` (${s.comment})`}${extra === undefined ? '' : `; ${extra}`}`;

class Converter {
  private readonly e = new Emitter();
  private refreshMs: number | undefined;

  constructor(
    private readonly imp: Importer,
    private readonly options: ImportOptions,
  ) {}

  private get m(): Model {
    return this.imp.m;
  }

  private bounded(s: Src<number>, min: number, max: number, key: string, scale = 1): number {
    const v = s.value * scale;
    if (v >= min && v <= max) return v;
    const used = v < min ? min : max;
    this.imp.warn(
      s.line,
      s.option,
      `${s.text} is outside ctsyncd's range for ${key} (${min}..${max}); ${used} is used`,
    );
    return used;
  }

  build(): Emitter {
    const { e, m } = this;
    const clusterId = this.options.clusterId ?? 1;
    e.set(['node', 'id'], this.options.nodeId);
    e.note(['node', 'id'], this.nodeIdComment());
    // A Stats-only file: a node that logs flows and replicates nothing.
    if (m.sync === undefined) return this.statsOnly();
    e.set(['cluster', 'id'], clusterId);
    e.note(
      ['cluster', 'id'],
      [
        `conntrackd.conf has no cluster id: ${this.options.clusterId === undefined ? 'the default 1' : 'from --cluster-id'}.`,
        'Use the same value on every node of this cluster, and another one for any',
        'other cluster whose messages can reach this sync link.',
      ].join('\n'),
    );
    this.sync();
    this.common();
    if (m.stats !== undefined) this.flowlog(m.stats);
    return e;
  }

  private statsOnly(): Emitter {
    this.common();
    this.flowlog(this.m.stats!);
    return this.e;
  }

  /** General's settings, the same with or without Sync. */
  private common(): void {
    const { e, m } = this;
    this.filter();
    if (m.netlinkSize !== undefined || m.netlinkMax !== undefined) this.netlink();
    if (m.eventsReliable !== undefined) {
      e.set(['kernel', 'eventsReliable'], m.eventsReliable.value, fromLine(m.eventsReliable));
    }
    this.expectations();
    this.scheduler();
    if (m.hashLimit !== undefined) {
      const limit = this.bounded(m.hashLimit, LIMITS.cacheEntries.min, LIMITS.cacheEntries.max, 'cache limits');
      e.set(['cache', 'internalLimit'], limit, fromLine(m.hashLimit));
      e.set(['cache', 'externalLimit'], limit, fromLine(m.hashLimit));
    }
    if (m.purgeTimeout !== undefined) {
      const s = this.bounded(
        m.purgeTimeout,
        LIMITS.purgeTimeoutSeconds.min,
        LIMITS.purgeTimeoutSeconds.max,
        'failover.purgeTimeoutSeconds',
      );
      e.set(['failover', 'purgeTimeoutSeconds'], s, fromLine(m.purgeTimeout));
    }
    if (m.inject !== undefined) {
      e.set(['failover', 'inject'], m.inject.value, fromLine(m.inject, m.inject.value ? 'inject mode' : undefined));
    }
    if (m.socket !== undefined) this.socket(m.socket);
  }

  /**
   * Stats → flowlog. conntrackd logs destroyed connections (events:
   * [destroy]) in its own text format; ctsyncd writes JSON lines, so
   * `LogFile on` gets ctsyncd's own file rather than conntrackd's name.
   */
  private flowlog(stats: Token): void {
    const { e, m, imp } = this;
    e.set(['flowlog', 'events'], ['destroy']);
    e.note(
      ['flowlog', 'events'],
      `line ${stats.line}: Stats logs destroyed connections; add new for flows find to stop reading early (README, "Flow log")`,
    );
    const toSyslog = this.statsSyslog();
    const lf = m.logFile;
    const v = lf === undefined ? 'off' : lc(lf.value);
    const fileOff = lf === undefined || v === 'off' || v === 'no';
    // Syslog alone is a flow log too: no file then, as in conntrackd.
    if (fileOff && toSyslog) return;
    const path = v === 'on' || v === 'off' || v === 'yes' || v === 'no' ? DEFAULT_FLOW_LOG : lf!.value;
    e.set(['flowlog', 'file', 'path'], path);
    if (fileOff) {
      imp.warn(
        lf?.line ?? stats.line,
        'LogFile',
        `${lf === undefined ? 'Stats has no LogFile' : lf.text}: conntrackd would log nowhere; the flow log needs a file and writes ${DEFAULT_FLOW_LOG}`,
      );
    } else {
      e.note(['flowlog', 'file', 'path'], fromLine(lf!, 'one JSON object per line, not conntrackd\'s text format'));
    }
  }

  /**
   * Stats Syslog → flowlog.syslog: on is conntrackd's LOG_DAEMON, a name its
   * facility. True when the flow log goes to syslog.
   */
  private statsSyslog(): boolean {
    const { e, m, imp } = this;
    const sl = m.statsSyslog;
    if (sl === undefined) return false;
    const v = lc(sl.value);
    if (v === 'off' || v === 'no') return false;
    const facility = v === 'on' || v === 'yes' ? DEFAULTS.flowlog.syslog.facility : v;
    if (!Object.hasOwn(SYSLOG_FACILITIES, facility)) {
      imp.unsupported(sl, `expected on, off or a facility (${Object.keys(SYSLOG_FACILITIES).join(', ')})`);
      return false;
    }
    e.set(['flowlog', 'syslog', 'facility'], facility);
    e.note(['flowlog', 'syslog', 'facility'], fromLine(sl, 'RFC 5424 messages to /dev/log, the JSON record as their text'));
    return true;
  }

  private nodeIdComment(): string {
    const source = this.options.nodeIdSource ?? 'given to the importer';
    return [
      `conntrackd.conf has no node name. This one is ${source}.`,
      "It must be unique within the cluster: convert each node's own conntrackd.conf",
      'on that node, or edit the id.',
    ].join('\n');
  }

  private sync(): void {
    const { e, m, imp } = this;
    const syncLine = m.sync?.line ?? 0;
    // A converted node usually replaces one of a conntrackd pair whose other node still runs conntrackd.
    e.set(
      ['sync', 'protocol'],
      'conntrackd',
      [
        "conntrackd's own messages, so this node replicates with a peer that still runs conntrackd",
        '(replace one node at a time). Once every node runs ctsyncd, switch each to protocol: ctsyncd',
        'with a key in sync.auth, one node at a time.',
      ].join('\n'),
    );
    let mode: 'ftfw' | 'notrack' = 'ftfw';
    if (m.mode === undefined) {
      imp.warn(
        syncLine,
        'Mode',
        'Sync has no Mode; conntrackd then uses FTFW, and so does this conversion (sync.mode: ftfw)',
      );
      e.set(['sync', 'mode'], 'ftfw', 'no Mode in conntrackd.conf: FTFW, its default');
    } else if (m.mode.value === 'alarm') {
      mode = 'notrack';
      const refreshMs = this.alarmRefreshMs();
      const from =
        m.refreshTime === undefined ? "ALARM's default RefreshTime" : `RefreshTime on line ${m.refreshTime.line}`;
      imp.warn(
        m.mode.line,
        m.mode.option,
        `${m.mode.text} is not supported by ctsyncd: converted to mode notrack, which re-sends the whole table to every ` +
          `peer every ${refreshMs / 1000} s (sync.reliability.refreshIntervalMs, from ${from}) instead of refreshing ` +
          "each entry at its own random time, and whose peers' entries do not expire (CacheTimeout); consider mode " +
          'ftfw, which resends only what was lost',
      );
      e.set(['sync', 'mode'], 'notrack', fromLine(m.mode, 'ALARM has no ctsyncd equivalent, see the warning'));
    } else {
      mode = m.mode.value;
      e.set(
        ['sync', 'mode'],
        mode,
        fromLine(
          m.mode,
          mode === 'notrack' ? 'ctsyncd also re-sends the whole table every refreshIntervalMs' : undefined,
        ),
      );
    }

    this.channels();

    const r = ['sync', 'reliability'];
    if (m.ackWindow !== undefined) {
      const v = this.bounded(m.ackWindow, LIMITS.ackWindow.min, LIMITS.ackWindow.max, 'sync.reliability.ackWindow');
      e.set([...r, 'ackWindow'], v, fromLine(m.ackWindow, 'ctsyncd also acks after ackDelayMs'));
    }
    if (m.resendQueueSize !== undefined) {
      const v = this.bounded(
        m.resendQueueSize,
        LIMITS.resendQueueSize.min,
        LIMITS.resendQueueSize.max,
        'sync.reliability.resendQueueSize',
      );
      e.set([...r, 'resendQueueSize'], v, fromLine(m.resendQueueSize));
    }
    if (m.mode?.value === 'alarm') {
      const note =
        m.refreshTime === undefined ? "ALARM's default RefreshTime, 60 s" : fromLine(m.refreshTime, 'seconds → ms');
      e.set([...r, 'refreshIntervalMs'], this.alarmRefreshMs(), note);
    } else if (m.refreshTime !== undefined) {
      imp.unsupported(
        m.refreshTime,
        `conntrackd uses it only in Mode ALARM${mode === 'notrack' ? "; ctsyncd's notrack refresh is sync.reliability.refreshIntervalMs (default 60 s)" : ''}`,
      );
    }

    // Required in ctsyncd, absent from conntrackd: the conversion keeps what the node did, and says so.
    e.set(
      ['sync', 'auth'],
      'none',
      [
        'conntrackd has no message authentication, so neither does this conversion: anything',
        'that reaches the sync port can write into the state table. To sign the sync traffic,',
        'put one key on every node (umask 077; openssl rand -hex 32 > /etc/ctsyncd/sync.key),',
        'set protocol: ctsyncd (conntrackd peers cannot check keys) and replace none with:',
        '{ keyFile: /etc/ctsyncd/sync.key }',
      ].join('\n'),
    );
  }

  /** ALARM's RefreshTime (seconds, default 60) as refreshIntervalMs; warns once if out of range. */
  private alarmRefreshMs(): number {
    const { refreshTime } = this.m;
    if (refreshTime === undefined) return DEFAULTS.sync.reliability.refreshIntervalMs;
    this.refreshMs ??= this.bounded(
      refreshTime,
      LIMITS.refreshIntervalMs.min,
      LIMITS.refreshIntervalMs.max,
      'sync.reliability.refreshIntervalMs',
      1000,
    );
    return this.refreshMs;
  }

  private channels(): void {
    const { e, m, imp } = this;
    const all = m.channels;
    if (all.length === 0) {
      imp.warn(
        m.sync?.line ?? 0,
        'Sync',
        'Sync has no Multicast, UDP or TCP block: set sync.multicast (or sync.transport: udp and sync.udp) by hand',
      );
      return;
    }
    const first = all[0]!;
    for (const ch of all) {
      if (ch.kind !== first.kind) {
        throw new ConntrackdConfError(
          this.imp.file,
          ch.keyword.line,
          ch.keyword.column,
          `${ch.keyword.text} cannot be mixed with ${first.keyword.text} (line ${first.keyword.line}): all dedicated links use one protocol (conntrackd refuses this too)`,
        );
      }
    }
    if (all.length > 1 + LIMITS.backupLinks.max) {
      const extra = all[1 + LIMITS.backupLinks.max]!.keyword;
      throw new ConntrackdConfError(
        this.imp.file,
        extra.line,
        extra.column,
        `at most ${1 + LIMITS.backupLinks.max} dedicated links are possible (conntrackd refuses more too)`,
      );
    }
    const transport = first.kind === 'multicast' ? 'multicast' : 'udp';
    if (first.kind === 'tcp') {
      imp.unsupported(
        { line: first.keyword.line, option: first.keyword.text },
        'converted to transport udp with the same addresses and port; ctsyncd has no TCP transport, and its ftfw makes UDP reliable',
      );
    }
    // conntrackd starts on the last channel marked Default, else on the first one.
    const main = [...all].reverse().find((c) => c.isDefault) ?? first;
    e.set(['sync', 'transport'], transport, `line ${main.keyword.line}: ${main.keyword.text}`);
    const address = main.address ?? main.destination;
    if (address !== undefined && isIPv6(address.value)) {
      e.set(['sync', 'mtu'], 1452, 'IPv6 sync link: 1500 - 40 (IPv6) - 8 (UDP)');
    }
    this.channel(main, ['sync', transport]);
    let i = 0;
    for (const ch of all) {
      if (ch === main) continue;
      const path = ['sync', 'backupLinks', i, transport];
      this.channel(ch, path);
      e.note(['sync', 'backupLinks', i], `line ${ch.keyword.line}: ${ch.keyword.text}, a redundant dedicated link`);
      i++;
    }
  }

  /** Writes one channel at `path`. */
  private channel(ch: Channel, path: Path): void {
    const { e, imp } = this;
    const block = `${ch.keyword.text} on line ${ch.keyword.line}`;
    const buffers = () => {
      for (const [src, key] of [
        [ch.sendBuffer, 'sendBufferBytes'],
        [ch.receiveBuffer, 'receiveBufferBytes'],
      ] as const) {
        if (src === undefined) continue;
        const v = this.bounded(src, LIMITS.bufferBytes.min, LIMITS.bufferBytes.max, `${formatPath(path)}.${key}`);
        e.set([...path, key], v, fromLine(src));
      }
    };
    if (ch.kind === 'multicast') {
      if (ch.address === undefined) {
        imp.warn(
          ch.keyword.line,
          ch.keyword.text,
          `${block} has no IPv4_address: ctsyncd's default group ${DEFAULTS.sync.multicastGroup} is used`,
        );
      } else {
        if (!isMulticast(ch.address.value)) {
          imp.warn(
            ch.address.line,
            ch.address.option,
            `${ch.address.text} is not a multicast address; fix ${formatPath(path)}.group`,
          );
        }
        e.set([...path, 'group'], ch.address.value, fromLine(ch.address));
      }
      if (ch.port === undefined) {
        imp.warn(
          ch.keyword.line,
          ch.keyword.text,
          `${block} has no Group (the port): ctsyncd's default port ${DEFAULTS.sync.port} is used`,
        );
      } else {
        const v = this.bounded(ch.port, LIMITS.port.min, LIMITS.port.max, `${formatPath(path)}.port`);
        e.set([...path, 'port'], v, fromLine(ch.port, "conntrackd's Group is the UDP port"));
      }
      if (ch.iface !== undefined) {
        e.set([...path, 'interface'], ch.iface.value, fromLine(ch.iface));
        if (ch.ifaceAddress !== undefined) {
          imp.unsupported(
            ch.ifaceAddress,
            `ctsyncd sends and joins the group on the interface by name (Interface ${ch.iface.value}, line ${ch.iface.line}); dropped`,
          );
        }
      } else if (ch.ifaceAddress !== undefined) {
        imp.warn(
          ch.ifaceAddress.line,
          ch.ifaceAddress.option,
          `${ch.ifaceAddress.text}: ctsyncd needs the interface by name and ${block} has no Interface; set ${formatPath(path)}.interface to the interface that holds ${ch.ifaceAddress.value}`,
        );
      } else {
        imp.warn(
          ch.keyword.line,
          ch.keyword.text,
          `${block} has no Interface; set ${formatPath(path)}.interface by hand`,
        );
      }
      buffers();
      return;
    }
    // UDP (and TCP, converted to UDP).
    if (ch.address === undefined) {
      imp.warn(
        ch.keyword.line,
        ch.keyword.text,
        `${block} has no IPv4_address (the local address); set ${formatPath(path)}.bind by hand`,
      );
    } else {
      e.set([...path, 'bind'], ch.address.value, fromLine(ch.address));
      if (isLinkLocalV6(ch.address.value)) {
        imp.warn(
          ch.address.line,
          ch.address.option,
          `${ch.address.text} is link-local: ctsyncd cannot bind an address that needs an interface scope; use a global or ULA address on the sync link`,
        );
      }
    }
    if (ch.port === undefined) {
      imp.warn(
        ch.keyword.line,
        ch.keyword.text,
        `${block} has no Port: ctsyncd's default port ${DEFAULTS.sync.port} is used`,
      );
    } else {
      const v = this.bounded(ch.port, LIMITS.port.min, LIMITS.port.max, `${formatPath(path)}.port`);
      e.set([...path, 'port'], v, fromLine(ch.port));
    }
    if (ch.destination === undefined) {
      imp.warn(
        ch.keyword.line,
        ch.keyword.text,
        `${block} has no IPv4_Destination_Address (the peer); set ${formatPath(path)}.peers by hand`,
      );
    } else {
      e.set([...path, 'peers'], [ch.destination.value]);
      e.note([...path, 'peers', 0], fromLine(ch.destination));
    }
    if (ch.iface !== undefined) {
      imp.implied(ch.iface, 'ctsyncd finds the interface from the bind address');
    }
    buffers();
  }

  /**
   * NetlinkBufferSize is where the buffer starts, NetlinkBufferSizeMaxGrowth
   * how far overruns double it; conntrackd ignores a start size above the
   * cap, which the conversion lowers to the cap instead.
   */
  private netlink(): void {
    const { e, m, imp } = this;
    const size = m.netlinkSize;
    const max = m.netlinkMax;
    const b = LIMITS.bufferBytes;
    const cap = max === undefined ? undefined : this.bounded(max, b.min, b.max, 'kernel.netlinkBufferMaxBytes');
    if (cap !== undefined) e.set(['kernel', 'netlinkBufferMaxBytes'], cap, fromLine(max!));
    if (size !== undefined) {
      let bytes = this.bounded(size, b.min, b.max, 'kernel.netlinkBufferBytes');
      if (cap !== undefined && bytes > cap) {
        imp.warn(
          size.line,
          size.option,
          `${size.text} is above ${max!.text} (line ${max!.line}), which conntrackd ignores it for; kernel.netlinkBufferBytes starts at the cap, ${cap}`,
        );
        bytes = cap;
      }
      e.set(['kernel', 'netlinkBufferBytes'], bytes, fromLine(size));
    } else if (cap !== undefined && cap < DEFAULTS.kernel.netlinkBufferBytes) {
      e.set(['kernel', 'netlinkBufferBytes'], cap, `no NetlinkBufferSize: ctsyncd's default ${DEFAULTS.kernel.netlinkBufferBytes} is above the cap`);
    }
  }

  /** ExpectationSync; conntrackd without it syncs no expectation, so neither does the conversion. */
  private expectations(): void {
    const x = this.m.expectationSync;
    if (x === undefined) {
      this.e.set(
        ['filter', 'expectations'],
        'none',
        'no ExpectationSync in conntrackd.conf: conntrackd syncs no expectation. all, or { helpers: [ftp, sip] }, syncs them',
      );
      return;
    }
    this.e.set(['filter', 'expectations'], Array.isArray(x.value) ? { helpers: x.value } : x.value, fromLine(x));
  }

  /**
   * Scheduler as conntrackd applies it (run.c set_scheduler): without Type it
   * uses SCHED_RR at priority 99 whatever Priority says; a Type without a
   * priority of 1 or more is refused by the kernel, and conntrackd goes on
   * under the normal policy. Without the block, conntrackd runs at SCHED_RR
   * 99 too; the conversion then leaves the policy to the unit.
   */
  private scheduler(): void {
    const { e, m, imp } = this;
    const sch = m.scheduler;
    // No block: conntrackd ran at SCHED_RR 99; ctsyncd leaves the policy to its unit (README, differences).
    if (sch === undefined) return;
    const path = ['process', 'scheduler'];
    if (sch.type === undefined) {
      imp.warn(
        sch.line,
        sch.option,
        `Scheduler has no Type: conntrackd then uses SCHED_RR at priority 99${sch.priority === undefined ? '' : `, not ${sch.priority.text}`}, and so does this conversion`,
      );
      e.set(path, { policy: 'rr', priority: 99 }, `line ${sch.line}: Scheduler without Type`);
      return;
    }
    const prio = sch.priority?.value ?? 0;
    if (prio < 1) {
      imp.warn(
        sch.type.line,
        sch.type.option,
        `${sch.type.text} with priority 0: the kernel refuses it, and conntrackd goes on under the normal policy; so does this conversion (policy other)`,
      );
      e.set(path, { policy: 'other' }, fromLine(sch.type, 'what conntrackd ended up with'));
      return;
    }
    e.set(path, { policy: sch.type.value, priority: prio }, fromLine(sch.type, sch.priority && `Priority ${prio}`));
  }

  private socket(s: Src<string>): void {
    const { e, imp } = this;
    if (!s.value.startsWith('/') || Buffer.byteLength(s.value) > LIMITS.unixSocketPathBytes) {
      imp.warn(
        s.line,
        s.option,
        `${s.text} is not an absolute path of at most ${LIMITS.unixSocketPathBytes} bytes; ctsyncd's default control socket ${DEFAULTS.control.socket} is used`,
      );
      return;
    }
    imp.warn(
      s.line,
      s.option,
      `${s.text} became control.socket, but ctsyncd's control socket speaks its own protocol: conntrackd's own client cannot drive it. ` +
        'Use `ctsyncd -C FILE` with the same flags (-c, -f, -R, -n, -B, -t, -k, -s, -i, -e) in primary-backup.sh ' +
        '(contrib/keepalived/primary-backup.sh drives either daemon), ' +
        `and never run conntrackd with this path at the same time (or drop the key for ctsyncd's default ${DEFAULTS.control.socket})`,
    );
    e.set(['control', 'socket'], s.value, fromLine(s));
  }

  private filter(): void {
    const { e, m } = this;
    const list = <T>(key: string, l: ListFilter<T> | undefined, what: string) => {
      if (l === undefined) return;
      if (l.items.length === 0) {
        if (l.logic === 'accept') {
          this.imp.warn(
            l.line,
            l.text,
            `${l.text} has no ${what} ctsyncd knows; an empty accept list would sync nothing, so filter.${key} is left out (everything passes)`,
          );
        }
        // An empty ignore list filters nothing, which is what leaving it out means.
        return;
      }
      const path = ['filter', key, l.logic];
      e.set(
        path,
        l.items.map((i) => i.value),
      );
      e.note(['filter', key], `line ${l.line}: ${l.text}`);
      l.items.forEach((item, i) => {
        // Name the item as written when the conversion respelt it (CLOSED → CLOSE, a /32, host bits).
        const spelt = item.text.split(' ').pop() ?? '';
        const said = [spelt.toLowerCase() === String(item.value).toLowerCase() ? undefined : spelt, item.comment];
        const extra = said.filter((x) => x !== undefined).join(', ');
        e.note([...path, i], `line ${item.line}${extra === '' ? '' : `: ${extra}`}`);
      });
    };
    list('protocols', m.protocols, 'protocol');
    list('addresses', m.addresses, 'address');
    list('tcpStates', m.tcpStates, 'state');
  }
}

/**
 * Comment text carries pieces of the input (the operator's own comments, the
 * file name); control characters and Unicode line breaks in them would end
 * the YAML comment early, so they become '?'.
 */
const commentSafe = (text: string): string =>
  text.replace(/[\p{Cc}\u2028\u2029\ufeff]/gu, (c) => (c === '\t' ? c : '?'));

/** Where a note goes: after a scalar on its line, else before the key (or list item). */
function applyNote(doc: Document, note: Note): void {
  const lines = note.text.split('\n').map(commentSafe);
  const prefix = () => lines.map((l) => ` ${l}`).join('\n');
  const node = doc.getIn(note.path, true);
  if (isScalar(node) && lines.length === 1) {
    node.comment = ` ${lines[0]}`;
    return;
  }
  const parent = note.path.length === 1 ? doc.contents : doc.getIn(note.path.slice(0, -1), true);
  const last = note.path[note.path.length - 1];
  if (isMap(parent)) {
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    if (pair !== undefined && isScalar(pair.key)) pair.key.commentBefore = prefix();
  } else if (isSeq(parent) && typeof last === 'number') {
    const item = parent.items[last];
    if (isScalar(item) || isMap(item) || isSeq(item)) item.commentBefore = prefix();
  }
}

function render(e: Emitter, header: string[]): string {
  const doc = new Document(e.root);
  for (const note of e.notes) applyNote(doc, note);
  if (isMap(doc.contents)) {
    doc.contents.items.forEach((pair, i) => {
      if (i > 0 && isScalar(pair.key)) pair.key.spaceBefore = true;
    });
  }
  doc.commentBefore = header.map((l) => (l === '' ? '' : ` ${commentSafe(l)}`)).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** The file name the result is validated under; issues are reported by key path, not position. */
const VALIDATED_AS = 'converted';

function validationWarnings(yaml: string): ImportWarning[] {
  try {
    parseConfig(yaml, VALIDATED_AS);
    return [];
  } catch (err) {
    const issues = isConfigError(err)
      ? err.issues.map((i) => `${i.path === '' ? '(root)' : i.path} ${i.message}`)
      : [err instanceof Error ? err.message : String(err)];
    return issues.map((text) => ({
      line: 0,
      option: '',
      message: `the result does not pass check-config yet: ${text}`,
    }));
  }
}

/**
 * Converts the text of a conntrackd.conf to ctsyncd YAML. Warnings name the
 * conntrackd.conf line of every option that was dropped or changed meaning;
 * line 0 warnings say the result still fails validation and why.
 * @throws ConntrackdConfError when the text is not a conntrackd.conf that can be read.
 */
export function importConntrackdConf(text: string, options: ImportOptions): ImportResult {
  const imp = new Importer(tokenize(text), options.file);
  imp.run();
  if (imp.m.sync === undefined && imp.m.stats === undefined) {
    throw new ConntrackdConfError(options.file, 0, 0, 'no Sync or Stats section: nothing to convert');
  }
  const e = new Converter(imp, options).build();
  const warnings = [...imp.warnings].sort((a, b) => a.line - b.line);
  const headerFor = (all: ImportWarning[]): string[] => {
    const lines = [
      `ctsyncd configuration converted by \`ctsyncd import-conntrackd\` from ${options.file}.`,
      'The comment on each value names the conntrackd.conf line it came from; keys',
      "not written here take ctsyncd's defaults (see conntrackd.yaml in the package).",
      'Review it, then validate it with: ctsyncd check-config FILE',
    ];
    if (all.length > 0) {
      lines.push('', `Not carried over as written (${all.length}, also printed as warnings):`);
      for (const w of all) lines.push(`  ${w.line > 0 ? `line ${w.line}: ` : ''}${w.message}`);
    }
    return lines;
  };
  const draft = render(e, headerFor(warnings));
  const invalid = validationWarnings(draft);
  if (invalid.length === 0) return { yaml: draft, warnings };
  const all = [...warnings, ...invalid];
  return { yaml: render(e, headerFor(all)), warnings: all };
}

// ---------------------------------------------------------------------------
// The CLI command.

export interface CommandEnv {
  /** os.hostname by default; node.id comes from it unless --node-id is given. */
  hostname?: () => string;
  /** What FILE `-` reads: all of standard input (fd 0) by default. */
  readStdin?: () => Buffer;
}

/**
 * `ctsyncd import-conntrackd FILE [--output OUT] [--node-id ID] [--cluster-id N]`.
 * `args` are the words after the command name. Returns the exit status: 0
 * converted (warnings or not), 1 FILE unreadable or not a conntrackd.conf,
 * 2 usage.
 */
export function importConntrackdCommand(args: readonly string[], io: CommandIo, env: CommandEnv = {}): number {
  const usage = (message: string): number => {
    io.err(`ctsyncd: import-conntrackd: ${message} (see ctsyncd import-conntrackd --help)`);
    return EXIT_USAGE;
  };
  let file: string | undefined;
  let output: string | undefined;
  let nodeId: string | undefined;
  let clusterText: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    if (name === '-o' || name === '--output' || name === '--node-id' || name === '--cluster-id') {
      const v = inline ?? args[++i];
      if (v === undefined || v === '') return usage(`${name} needs a value`);
      if (name === '--node-id') nodeId = v;
      else if (name === '--cluster-id') clusterText = v;
      else output = v;
      continue;
    }
    if (a.startsWith('-') && a !== '-') return usage(`unknown option ${a}`);
    if (file !== undefined) return usage(`takes one FILE, got '${file}' and '${a}'`);
    file = a;
  }
  if (file === undefined) return usage('needs the conntrackd.conf FILE to convert (- for standard input)');

  let clusterId: number | undefined;
  if (clusterText !== undefined) {
    if (!/^[0-9]{1,10}$/.test(clusterText) || Number(clusterText) > LIMITS.clusterIdMax) {
      return usage(`--cluster-id takes 0..${LIMITS.clusterIdMax}, not '${clusterText}'`);
    }
    clusterId = Number(clusterText);
  }
  let nodeIdSource = 'given with --node-id';
  if (nodeId === undefined) {
    const host = (env.hostname ?? osHostname)();
    nodeId = nodeIdFromHostname(host);
    if (nodeId === undefined) {
      return usage(`cannot make a node id from the host name '${host}': give --node-id ID`);
    }
    nodeIdSource = `the short name of the host it was converted on (${host})`;
  } else if (!NODE_ID.test(nodeId)) {
    return usage(`--node-id takes 1-64 characters from A-Z a-z 0-9 _ . -, not '${nodeId}'`);
  }

  let text: string;
  try {
    const raw = file === '-' ? (env.readStdin ?? (() => readFileSync(0)))() : readFileSync(file);
    // Debian ships some examples gzipped; read those as they are.
    text = (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8');
  } catch (err) {
    io.err(`ctsyncd: import-conntrackd: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILURE;
  }
  const shown = file === '-' ? '(stdin)' : file;

  let result: ImportResult;
  try {
    result = importConntrackdConf(text, {
      file: shown,
      nodeId,
      nodeIdSource,
      ...(clusterId === undefined ? {} : { clusterId }),
    });
  } catch (err) {
    if (isConntrackdConfError(err)) {
      io.err(err.message);
      return EXIT_FAILURE;
    }
    throw err;
  }
  for (const w of result.warnings) io.err(formatImportWarning(shown, w));
  if (output === undefined) {
    io.out(result.yaml);
    return EXIT_OK;
  }
  try {
    writeFileSync(output, result.yaml);
  } catch (err) {
    io.err(`ctsyncd: import-conntrackd: cannot write ${output}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILURE;
  }
  const n = result.warnings.length;
  io.out(
    `${output}: converted from ${shown}${n > 0 ? ` with ${n} warning${n === 1 ? '' : 's'}` : ''}; check it with: ctsyncd check-config ${output}`,
  );
  return EXIT_OK;
}
