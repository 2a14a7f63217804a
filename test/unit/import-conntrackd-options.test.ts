// The importer option by option (issue 18): every conntrackd.conf option it
// maps, with the exact value and the comment naming its line, and every one
// it drops, changes or refuses, with the exact warning or error. The tests in
// import-conntrackd.test.ts convert whole files and match messages by their
// start; here a message cut short, a warning at another line or a comment
// lost from the YAML fails.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseDocument } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConntrackdConfError,
  importConntrackdCommand,
  importConntrackdConf,
  type ImportResult,
  nodeIdFromHostname,
} from '../../src/config/import-conntrackd.js';
import { type Config, parseConfig } from '../../src/config/index.js';

const FILE = 'c.conf';
const y = (...lines: string[]): string => `${lines.join('\n')}\n`;
const convert = (text: string): ImportResult => importConntrackdConf(text, { file: FILE, nodeId: 'fw1' });

type Row = [line: number, option: string, message: string];
const rowsOf = (r: ImportResult): Row[] => r.warnings.map((w) => [w.line, w.option, w.message]);

/** A complete sync section on line 1, so a case's own lines start at 2. */
const BASE = 'Sync { Mode FTFW { } Multicast { IPv4_address 225.0.0.50 Group 3780 Interface eth2 } }';

/** The error a conversion throws; fails the test when it converts. */
function conversionError(text: string): ConntrackdConfError {
  try {
    convert(text);
  } catch (err) {
    if (err instanceof ConntrackdConfError) return err;
    throw err;
  }
  throw new Error('converted, but an error was expected');
}

/**
 * The comment the YAML carries for the value at `path`: on its line, or above
 * its key (read back as the comment before the map or list when the key is
 * its first).
 */
function noteAt(yaml: string, path: (string | number)[]): string | undefined {
  type Commented = { comment?: string | null; commentBefore?: string | null };
  const doc = parseDocument(yaml);
  const node = doc.getIn(path, true) as Commented | undefined;
  if (node?.comment) return node.comment.trim();
  const parent = (path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true)) as
    | (Commented & { items: (Commented & { key?: Commented & { value?: unknown } })[] })
    | undefined;
  const last = path[path.length - 1];
  const index = typeof last === 'number' ? last : (parent?.items.findIndex((p) => p.key?.value === last) ?? -1);
  const item = parent?.items[index];
  const before = (typeof last === 'number' ? item?.commentBefore : item?.key?.commentBefore) ?? undefined;
  if (before) return before.trim();
  return index === 0 && parent?.commentBefore ? parent.commentBefore.trim() : undefined;
}

const MCAST_NOTES: Row[] = [
  [3, 'Multicast', "Multicast on line 3 has no IPv4_address: ctsyncd's default group 225.0.0.50 is used"],
  [3, 'Multicast', "Multicast on line 3 has no Group (the port): ctsyncd's default port 3780 is used"],
];

describe('General, option by option', () => {
  const general = (...lines: string[]): string => y(BASE, 'General {', ...lines.map((l) => ` ${l}`), '}');
  const unsupported = (text: string, why: string): string => `${text} is not supported by ctsyncd: ${why}`;
  const implied = (text: string, why: string): string => `${text} needs no setting in ctsyncd: ${why}; dropped`;
  const journal = 'ctsyncd logs to standard error, i.e. the journal';

  it.each<[string, Row[]]>([
    [
      'HashSize 8192',
      [[3, 'HashSize', unsupported('HashSize 8192', "ctsyncd's caches size their hash tables themselves; only their limits are set (HashLimit)")]],
    ],
    ['LogFile off', [[3, 'LogFile', implied('LogFile off', journal)]]],
    ['LogFile No', [[3, 'LogFile', implied('LogFile No', journal)]]],
    [
      'LogFile on',
      [
        [
          3,
          'LogFile',
          unsupported(
            'LogFile on',
            'ctsyncd logs to standard error (the systemd journal); for a file, add StandardError=append:/var/log/ctsyncd.log to its unit',
          ),
        ],
      ],
    ],
    ['Syslog OFF', [[3, 'Syslog', implied('Syslog OFF', journal)]]],
    ['Syslog no', [[3, 'Syslog', implied('Syslog no', journal)]]],
    [
      'Syslog local3',
      [
        [
          3,
          'Syslog',
          unsupported(
            'Syslog local3',
            'ctsyncd logs to standard error; journald forwards it to syslog (set SyslogFacility= in the unit for a facility)',
          ),
        ],
      ],
    ],
    [
      'LockFile /var/lock/x',
      [
        [
          3,
          'LockFile',
          unsupported(
            'LockFile /var/lock/x',
            'ctsyncd needs no lock file: a second daemon refuses to start while the control socket answers',
          ),
        ],
      ],
    ],
    [
      'EventIterationLimit 10',
      [[3, 'EventIterationLimit', unsupported('EventIterationLimit 10', 'ctsyncd reads events in batches and yields to the network by itself')]],
    ],
    ['PollSecs 5', [[3, 'PollSecs', unsupported('PollSecs 5', 'ctsyncd always follows kernel events; there is no polling mode')]]],
    [
      'NetlinkOverrunResync 30',
      [
        [
          3,
          'NetlinkOverrunResync',
          unsupported(
            'NetlinkOverrunResync 30',
            'after an overrun ctsyncd resyncs with the kernel once the event queue is drained and overruns have stopped for 250 ms, and sends only the differences; this is not configurable',
          ),
        ],
      ],
    ],
    ['Nice -1', [[3, 'Nice', unsupported('Nice -1', 'set Nice= in the systemd unit (conntrackd ignores Nice too)')]]],
    [
      'Systemd on',
      [
        [
          3,
          'Systemd',
          implied(
            'Systemd on',
            'ctsyncd notifies systemd (READY=1, STATUS=, WATCHDOG=1) whenever its unit is Type=notify, as in contrib/systemd/ctsyncd.service',
          ),
        ],
      ],
    ],
    [
      'Systemd off',
      [[3, 'Systemd', implied('Systemd off', 'ctsyncd notifies systemd only under a Type=notify unit; use Type=simple for none')]],
    ],
    [
      'UNIX { Path run/x.ctl }',
      [
        [
          3,
          'Path',
          "Path run/x.ctl is not an absolute path of at most 107 bytes; ctsyncd's default control socket /run/ctsyncd/ctsyncd.sock is used",
        ],
      ],
    ],
    [
      `UNIX { Path /${'x'.repeat(107)} }`,
      [
        [
          3,
          'Path',
          `Path /${'x'.repeat(107)} is not an absolute path of at most 107 bytes; ctsyncd's default control socket /run/ctsyncd/ctsyncd.sock is used`,
        ],
      ],
    ],
    [
      'UNIX {\n  Backlog 20\n  Frob 1 2\n }',
      [
        [4, 'Backlog', implied('Backlog 20', 'conntrackd ignores Backlog too')],
        [5, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in UNIX; skipped'],
      ],
    ],
    ['Frob 1 2', [[3, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in General; skipped']]],
    ['HashLimit 0', [[3, 'HashLimit', "HashLimit 0 is outside ctsyncd's range for cache limits (1..16777216); 1 is used"]]],
    ['HashLimit 1', []],
    ['HashLimit 16777216', []],
    [
      'HashLimit 16777217',
      [[3, 'HashLimit', "HashLimit 16777217 is outside ctsyncd's range for cache limits (1..16777216); 16777216 is used"]],
    ],
    [
      'Scheduler {\n  Type RR\n  Priority 99\n  Frob 1\n }',
      [[6, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in Scheduler; skipped']],
    ],
    [
      'Scheduler { }',
      [[3, 'Scheduler', 'Scheduler has no Type: conntrackd then uses SCHED_RR at priority 99, and so does this conversion']],
    ],
    [
      'Scheduler {\n  Type fifo\n  Priority 0\n }',
      [
        [
          4,
          'Type',
          'Type fifo with priority 0: the kernel refuses it, and conntrackd goes on under the normal policy; so does this conversion (policy other)',
        ],
      ],
    ],
    ['Scheduler { Type fifo Priority 1 }', []],
    [
      'NetlinkBufferSizeMaxGrowth 4095',
      [
        [
          3,
          'NetlinkBufferSizeMaxGrowth',
          "NetlinkBufferSizeMaxGrowth 4095 is outside ctsyncd's range for kernel.netlinkBufferMaxBytes (4096..1073741824); 4096 is used",
        ],
      ],
    ],
    [
      'NetlinkBufferSize 1073741825',
      [
        [
          3,
          'NetlinkBufferSize',
          "NetlinkBufferSize 1073741825 is outside ctsyncd's range for kernel.netlinkBufferBytes (4096..1073741824); 1073741824 is used",
        ],
      ],
    ],
    [
      'NetlinkBufferSize 8192\n NetlinkBufferSizeMaxGrowth 8192',
      [],
    ],
  ])('%s', (lines, rows) => {
    expect(rowsOf(convert(general(lines)))).toEqual(rows);
  });

  it.each<[string, (c: Config) => unknown, unknown, string | undefined, (string | number)[]]>([
    ['SocketBufferSize 8192', (c) => c.kernel.netlinkBufferBytes, 8192, 'line 3: SocketBufferSize 8192', ['kernel', 'netlinkBufferBytes']],
    [
      'SocketBufferSizeMaxGrowth 8192',
      (c) => c.kernel.netlinkBufferMaxBytes,
      8192,
      'line 3: SocketBufferSizeMaxGrowth 8192',
      ['kernel', 'netlinkBufferMaxBytes'],
    ],
    [
      'SocketBufferSizeMaxGrown 8192',
      (c) => c.kernel.netlinkBufferMaxBytes,
      8192,
      'line 3: SocketBufferSizeMaxGrown 8192',
      ['kernel', 'netlinkBufferMaxBytes'],
    ],
    // A cap below ctsyncd's default start lowers the start to it, and says why.
    [
      'NetlinkBufferSizeMaxGrowth 8192',
      (c) => c.kernel.netlinkBufferBytes,
      8192,
      "no NetlinkBufferSize: ctsyncd's default 8388608 is above the cap",
      ['kernel', 'netlinkBufferBytes'],
    ],
    // A cap at the default start leaves the start alone.
    ['NetlinkBufferSizeMaxGrowth 8388608', (c) => c.kernel.netlinkBufferBytes, 8388608, undefined, ['kernel', 'netlinkBufferBytes']],
    ['NetlinkBufferSize 8192\n NetlinkBufferSizeMaxGrowth 8192', (c) => c.kernel.netlinkBufferBytes, 8192, 'line 3: NetlinkBufferSize 8192', ['kernel', 'netlinkBufferBytes']],
    ['HashLimit 16777216', (c) => c.cache, { internalLimit: 16777216, externalLimit: 16777216 }, 'line 3: HashLimit 16777216', ['cache', 'externalLimit']],
    ['UNIX { Path /run/c.ctl }', (c) => c.control.socket, '/run/c.ctl', 'line 3: Path /run/c.ctl', ['control', 'socket']],
    [`UNIX { Path /${'x'.repeat(106)} }`, (c) => c.control.socket, `/${'x'.repeat(106)}`, `line 3: Path /${'x'.repeat(106)}`, ['control', 'socket']],
    ['UNIX { Path run/x.ctl }', (c) => c.control.socket, '/run/ctsyncd/ctsyncd.sock', undefined, ['control', 'socket']],
    ['Scheduler { Type RR Priority 5 }', (c) => c.process.scheduler, { policy: 'rr', priority: 5 }, 'line 3: Type RR; Priority 5', ['process', 'scheduler']],
    ['Scheduler { Type fifo Priority 1 }', (c) => c.process.scheduler, { policy: 'fifo', priority: 1 }, 'line 3: Type fifo; Priority 1', ['process', 'scheduler']],
    ['Scheduler { Type FIFO }', (c) => c.process.scheduler, { policy: 'other', priority: 0 }, 'line 3: Type FIFO; what conntrackd ended up with', ['process', 'scheduler']],
    ['Scheduler { Priority 5 }', (c) => c.process.scheduler, { policy: 'rr', priority: 99 }, 'line 3: Scheduler without Type', ['process', 'scheduler']],
    ['NetlinkEventsReliable yes', (c) => c.kernel.eventsReliable, true, 'line 3: NetlinkEventsReliable yes', ['kernel', 'eventsReliable']],
    ['NetlinkEventsReliable no', (c) => c.kernel.eventsReliable, false, 'line 3: NetlinkEventsReliable no', ['kernel', 'eventsReliable']],
  ])('%s: the value and its comment', (lines, get, value, note, path) => {
    const r = convert(general(lines));
    expect(get(parseConfig(r.yaml, 'x.yaml'))).toEqual(value);
    expect(noteAt(r.yaml, path)).toBe(note);
  });

  it.each([
    ['Scheduler { Priority 100 }', 3, 14, "`Priority' must be [0, 99], as conntrackd says"],
    ['Scheduler { Type BATCH }', 3, 14, "unknown scheduler 'BATCH': expected RR or FIFO"],
    ['HashLimit 1e3', 3, 12, "HashLimit needs a number, got '1e3'"],
    ['HashLimit -1', 3, 12, "HashLimit needs a number, got '-1'"],
    [`HashLimit ${'9'.repeat(16)}`, 3, 12, `HashLimit needs a number, got '${'9'.repeat(16)}'`],
    ['Systemd maybe', 3, 10, "Systemd takes on or off, got 'maybe'"],
    ['Filter From { }', 3, 14, "From needs Userspace or Kernelspace, got '{'"],
    ['Filter { Protocol Sometimes { TCP } }', 3, 20, "Protocol takes Accept or Ignore, got 'Sometimes'"],
    ['Filter { State Accept { ESTABLISHED for } }', 3, 42, "for needs TCP, got '}'"],
    ['Filter { State Accept { ESTABLISHED for UDP } }', 3, 42, "State filters apply to TCP only, got for 'UDP'"],
    ['Filter { State Accept { SYN_SENT\n  ESTABLISHED } }', 3, 26, "expected 'for TCP' after the states of State Accept"],
  ])('%s is refused at its line and column', (lines, line, column, reason) => {
    const err = conversionError(general(lines));
    expect([err.line, err.column, err.reason]).toEqual([line, column, reason]);
  });
});

describe('Sync, option by option', () => {
  it.each<[string, string, Row[]]>([
    [
      'NACK is FTFW',
      y('Sync {', ' Mode NACK { }', ' Multicast { Interface eth2 }', '}'),
      MCAST_NOTES,
    ],
    [
      'PERSISTENT is ALARM',
      y('Sync {', ' Mode PERSISTENT { RefreshTime 5 }', ' Multicast { Interface eth2 }', '}'),
      [
        [
          2,
          'Mode',
          'Mode PERSISTENT is not supported by ctsyncd: converted to mode notrack, which re-sends the whole table to every peer every 5 s (sync.reliability.refreshIntervalMs, from RefreshTime on line 2) instead of refreshing each entry at its own random time, and whose peers\' entries do not expire (CacheTimeout); consider mode ftfw, which resends only what was lost',
        ],
        ...MCAST_NOTES,
      ],
    ],
    [
      'the internal cache and the startup resync, both ways, and RefreshTime outside ALARM',
      y(
        'Sync {',
        ' Mode NOTRACK {',
        '  DisableInternalCache on',
        '  DisableInternalCache off',
        '  StartupResync off',
        '  StartupResync on',
        ' }',
        ' Multicast { Interface eth2 IPv4_address 225.0.0.50 Group 3780 }',
        ' RefreshTime 5',
        '}',
      ),
      [
        [
          3,
          'DisableInternalCache',
          'DisableInternalCache on is not supported by ctsyncd: ctsyncd always keeps the internal cache (it is what resync, bulk-send and purge-timeout work from)',
        ],
        [4, 'DisableInternalCache', 'DisableInternalCache off needs no setting in ctsyncd: the internal cache is always on; dropped'],
        [5, 'StartupResync', 'StartupResync off is not supported by ctsyncd: ctsyncd always asks its peers for their state when it starts'],
        [
          6,
          'StartupResync',
          'StartupResync on needs no setting in ctsyncd: ctsyncd always asks its peers for their state when it starts; dropped',
        ],
        [
          9,
          'RefreshTime',
          "RefreshTime 5 is not supported by ctsyncd: conntrackd uses it only in Mode ALARM; ctsyncd's notrack refresh is sync.reliability.refreshIntervalMs (default 60 s)",
        ],
      ],
    ],
    [
      'CacheTimeout, CommitTimeout and the bounds of the FTFW numbers',
      y(
        'Sync {',
        ' Mode FTFW {',
        '  CacheTimeout 10',
        '  ACKWindowSize 0',
        '  CommitTimeout 5',
        '  ResendQueueSize 99999999',
        ' }',
        ' PurgeTimeout 99999999',
        ' Multicast { Interface eth2 IPv4_address 225.0.0.50 Group 3780 }',
        '}',
      ),
      [
        [
          3,
          'CacheTimeout',
          "CacheTimeout 10 is not supported by ctsyncd: peers' entries stay in ctsyncd's external cache until the peer deletes them, flushes, or is purged by a resync; they do not expire",
        ],
        [4, 'ACKWindowSize', "ACKWindowSize 0 is outside ctsyncd's range for sync.reliability.ackWindow (1..65536); 1 is used"],
        [
          5,
          'CommitTimeout',
          'CommitTimeout 5 is not supported by ctsyncd: commit gives each entry the timeout last replicated for it; a fixed commit timeout is not configurable',
        ],
        [
          6,
          'ResendQueueSize',
          "ResendQueueSize 99999999 is outside ctsyncd's range for sync.reliability.resendQueueSize (256..16777216); 16777216 is used",
        ],
        [
          8,
          'PurgeTimeout',
          "PurgeTimeout 99999999 is outside ctsyncd's range for failover.purgeTimeoutSeconds (1..86400); 86400 is used",
        ],
      ],
    ],
    [
      'Options: window tracking on, a bad helper name, a repeated helper, an unknown option',
      y(
        BASE,
        'Sync {',
        ' Options {',
        '  TCPWindowTracking on',
        '  ExpectationSync { ftp bad/name ftp }',
        '  Frob 1',
        ' }',
        '}',
      ),
      [
        [
          4,
          'TCPWindowTracking',
          'TCPWindowTracking on is not supported by ctsyncd: ctsyncd commits TCP entries with window tracking relaxed (BE_LIBERAL), as conntrackd does by default; ctnetlink cannot carry the window positions',
        ],
        [5, 'bad/name', "'bad/name' is not a conntrack helper name; dropped from ExpectationSync"],
        [6, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in Options; skipped'],
      ],
    ],
    [
      'TCPWindowTracking off',
      y(BASE, 'Sync { Options { TCPWindowTracking off } }'),
      [
        [
          2,
          'TCPWindowTracking',
          'TCPWindowTracking off needs no setting in ctsyncd: committed TCP entries always have window tracking relaxed (BE_LIBERAL); dropped',
        ],
      ],
    ],
    [
      'an unknown option in Sync, with its block',
      y('Sync {', ' Mode FTFW { }', ' Frob x { y }', ' Multicast { Interface eth2 IPv4_address 225.0.0.50 Group 3780 }', '}'),
      [[3, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in Sync; skipped']],
    ],
    [
      'options a Multicast block does not take',
      y(
        'Sync {',
        ' Mode FTFW { }',
        ' Multicast {',
        '  IPv4_Destination_Address 10.0.0.1',
        '  Port 1',
        '  ErrorQueueLength 1',
        '  IPv6_interface fe80::1',
        '  Interface eth2',
        '  IPv4_address 225.0.0.50',
        '  Group 3780',
        ' }',
        '}',
      ),
      [
        [4, 'IPv4_Destination_Address', 'IPv4_Destination_Address is not a conntrackd.conf option this importer knows in Multicast; skipped'],
        [5, 'Port', 'Port is not a conntrackd.conf option this importer knows in Multicast (its port is Group); skipped'],
        [6, 'ErrorQueueLength', 'ErrorQueueLength is not a conntrackd.conf option this importer knows in Multicast; skipped'],
        [
          7,
          'IPv6_interface',
          'IPv6_interface fe80::1 is not supported by ctsyncd: ctsyncd sends and joins the group on Interface (conntrackd ignores IPv6_interface too)',
        ],
      ],
    ],
    [
      'addresses of the wrong family, and a group that is not multicast',
      y(
        'Sync {',
        ' Mode FTFW { }',
        ' Multicast {',
        '  IPv4_address 10.0.0.300',
        '  IPv6_address 225.0.0.1',
        '  IPv4_interface fe80::1',
        '  Interface eth2',
        '  Group 0',
        '  RcvSocketBuffer 1',
        '  IPv4_address 10.0.0.1',
        ' }',
        '}',
      ),
      [
        [4, 'IPv4_address', "IPv4_address 10.0.0.300: '10.0.0.300' is not an IPv4 address; skipped (conntrackd skips it too)"],
        [5, 'IPv6_address', "IPv6_address 225.0.0.1: '225.0.0.1' is not an IPv6 address; skipped (conntrackd skips it too)"],
        [6, 'IPv4_interface', "IPv4_interface fe80::1: 'fe80::1' is not an IPv4 address; skipped (conntrackd skips it too)"],
        [8, 'Group', "Group 0 is outside ctsyncd's range for sync.multicast.port (1..65535); 1 is used"],
        [9, 'RcvSocketBuffer', "RcvSocketBuffer 1 is outside ctsyncd's range for sync.multicast.receiveBufferBytes (4096..1073741824); 4096 is used"],
        [10, 'IPv4_address', 'IPv4_address 10.0.0.1 is not a multicast address; fix sync.multicast.group'],
        [
          0,
          '',
          'the result does not pass check-config yet: sync.multicast.group expected a multicast group (224.0.0.0/4 or ff00::/8), got string "10.0.0.1"',
        ],
      ],
    ],
    [
      'IPv4_interface beside Interface',
      y('Sync {', ' Mode FTFW { }', ' Multicast {', '  IPv4_interface 10.0.0.1', '  Interface eth2', '  IPv4_address 225.0.0.50', '  Group 3780', ' }', '}'),
      [
        [
          4,
          'IPv4_interface',
          'IPv4_interface 10.0.0.1 is not supported by ctsyncd: ctsyncd sends and joins the group on the interface by name (Interface eth2, line 5); dropped',
        ],
      ],
    ],
    [
      'a Multicast block with nothing in it',
      y('Sync {', ' Mode FTFW { }', ' Multicast { }', '}'),
      [
        ...MCAST_NOTES,
        [3, 'Multicast', 'Multicast on line 3 has no Interface; set sync.multicast.interface by hand'],
        [
          0,
          '',
          'the result does not pass check-config yet: sync.multicast required when transport is multicast: expected a mapping with at least interface',
        ],
      ],
    ],
    [
      'options a UDP block does not take',
      y(
        'Sync {',
        ' Mode FTFW { }',
        ' UDP {',
        '  Group 1',
        '  IPv4_interface 10.0.0.1',
        '  IPv6_interface ::1',
        '  ErrorQueueLength 1',
        '  IPv4_address 10.0.0.1',
        '  IPv4_Destination_Address 10.0.0.2',
        '  Port 3780',
        '  Interface eth0',
        ' }',
        '}',
      ),
      [
        [4, 'Group', 'Group is not a conntrackd.conf option this importer knows in UDP; skipped'],
        [5, 'IPv4_interface', 'IPv4_interface is not a conntrackd.conf option this importer knows in UDP; skipped'],
        [6, 'IPv6_interface', 'IPv6_interface is not a conntrackd.conf option this importer knows in UDP; skipped'],
        [7, 'ErrorQueueLength', 'ErrorQueueLength is not a conntrackd.conf option this importer knows in UDP; skipped'],
        [11, 'Interface', 'Interface eth0 needs no setting in ctsyncd: ctsyncd finds the interface from the bind address; dropped'],
      ],
    ],
    [
      'a UDP block with nothing in it',
      y('Sync {', ' Mode FTFW { }', ' UDP { }', '}'),
      [
        [3, 'UDP', 'UDP on line 3 has no IPv4_address (the local address); set sync.udp.bind by hand'],
        [3, 'UDP', "UDP on line 3 has no Port: ctsyncd's default port 3780 is used"],
        [3, 'UDP', 'UDP on line 3 has no IPv4_Destination_Address (the peer); set sync.udp.peers by hand'],
        [
          0,
          '',
          'the result does not pass check-config yet: sync.udp required when transport is udp: expected a mapping with at least bind and peers',
        ],
      ],
    ],
    [
      'a link-local UDP address and a port out of range',
      y('Sync {', ' Mode FTFW { }', ' UDP {', '  IPv6_address fe80::1', '  IPv6_Destination_Address fe80::2', '  Port 70000', ' }', '}'),
      [
        [
          4,
          'IPv6_address',
          'IPv6_address fe80::1 is link-local: ctsyncd cannot bind an address that needs an interface scope; use a global or ULA address on the sync link',
        ],
        [6, 'Port', "Port 70000 is outside ctsyncd's range for sync.udp.port (1..65535); 65535 is used"],
      ],
    ],
    [
      'a Sync without links',
      y('Sync {', ' Mode FTFW { }', '}'),
      [
        [1, 'Sync', 'Sync has no Multicast, UDP or TCP block: set sync.multicast (or sync.transport: udp and sync.udp) by hand'],
        [
          0,
          '',
          'the result does not pass check-config yet: sync.multicast required when transport is multicast: expected a mapping with at least interface',
        ],
      ],
    ],
    [
      'TCP links, warned about at the first',
      y(
        'Sync {',
        ' Mode FTFW { }',
        ' TCP { IPv4_address 10.0.0.1 IPv4_Destination_Address 10.0.0.2 Port 3780 }',
        ' TCP Default { IPv4_address 10.0.1.1 IPv4_Destination_Address 10.0.1.2 Port 3781 }',
        '}',
      ),
      [
        [
          3,
          'TCP',
          'TCP is not supported by ctsyncd: converted to transport udp with the same addresses and port; ctsyncd has no TCP transport, and its ftfw makes UDP reliable',
        ],
      ],
    ],
  ])('%s', (_what, text, rows) => {
    expect(rowsOf(convert(text))).toEqual(rows);
  });

  it('ALARM with RefreshTime: the interval, scaled to ms, and the note saying so', () => {
    const r = convert(y('Sync {', ' Mode ALARM { RefreshTime 10 }', ' Multicast { Interface eth2 }', '}'));
    const cfg = parseConfig(r.yaml, 'x.yaml');
    expect(cfg.sync!.reliability.refreshIntervalMs).toBe(10000);
    expect(noteAt(r.yaml, ['sync', 'reliability', 'refreshIntervalMs'])).toBe('line 2: RefreshTime 10; seconds → ms');
    expect(noteAt(r.yaml, ['sync', 'mode'])).toBe('line 2: Mode ALARM; ALARM has no ctsyncd equivalent, see the warning');
    const dflt = convert(y('Sync {', ' Mode ALARM { }', ' Multicast { Interface eth2 }', '}'));
    expect(noteAt(dflt.yaml, ['sync', 'reliability', 'refreshIntervalMs'])).toBe("ALARM's default RefreshTime, 60 s");
    // Out of range: one warning, though the interval is used twice (the warning and the key).
    const big = convert(y('Sync {', ' Mode ALARM { RefreshTime 99999999 }', ' Multicast { Interface eth2 }', '}'));
    expect(rowsOf(big).filter(([, o]) => o === 'RefreshTime')).toEqual([
      [
        2,
        'RefreshTime',
        "RefreshTime 99999999 is outside ctsyncd's range for sync.reliability.refreshIntervalMs (1000..86400000); 86400000 is used",
      ],
    ]);
  });

  it('an IPv6 link sets the MTU with its reason; an IPv4 one leaves it', () => {
    const v6 = convert(
      y('Sync {', ' Mode FTFW { }', ' UDP {', '  IPv6_address 2001:db8::1', '  IPv6_Destination_Address 2001:db8::2', '  Port 3780', ' }', '}'),
    );
    expect(rowsOf(v6)).toEqual([]);
    const cfg = parseConfig(v6.yaml, 'x.yaml');
    expect(cfg.sync!.mtu).toBe(1452);
    expect(cfg.sync!.udp).toMatchObject({ bind: '2001:db8::1', port: 3780, peers: ['2001:db8::2'] });
    expect(noteAt(v6.yaml, ['sync', 'mtu'])).toBe('IPv6 sync link: 1500 - 40 (IPv6) - 8 (UDP)');
    expect(noteAt(v6.yaml, ['sync', 'udp', 'peers', 0])).toBe('line 5: IPv6_Destination_Address 2001:db8::2');
    expect(noteAt(v6.yaml, ['sync', 'udp', 'port'])).toBe('line 6: Port 3780');
    // Only the destination given: its family decides.
    const peerOnly = convert(y('Sync {', ' Mode FTFW { }', ' UDP { IPv6_Destination_Address 2001:db8::2 }', '}'));
    expect(parseDocument(peerOnly.yaml).getIn(['sync', 'mtu'])).toBe(1452);
    const v4 = convert(y('Sync {', ' Mode FTFW { }', ' UDP { IPv4_address 10.0.0.1 IPv4_Destination_Address 10.0.0.2 Port 3780 }', '}'));
    expect(parseDocument(v4.yaml).getIn(['sync', 'mtu'])).toBeUndefined();
  });

  it('the FTFW numbers, inject and ExpectationSync carry their lines', () => {
    const r = convert(
      y(
        'Sync {',
        ' Mode FTFW {',
        '  DisableExternalCache on',
        '  ResendQueueSize 1000',
        '  ACKWindowSize 10',
        '  PurgeTimeout 30',
        ' }',
        ' Multicast { Interface eth2 IPv4_address 225.0.0.50 Group 3780 SndSocketBuffer 4096 RcvSocketBuffer 1073741824 }',
        ' Options { ExpectationSync on }',
        '}',
      ),
    );
    expect(rowsOf(r)).toEqual([]);
    const cfg = parseConfig(r.yaml, 'x.yaml');
    expect(cfg.sync!.reliability).toMatchObject({ resendQueueSize: 1000, ackWindow: 10 });
    expect(cfg.failover).toEqual({ purgeTimeoutSeconds: 30, inject: true });
    expect(cfg.filter.expectations).toBe('all');
    expect(cfg.sync!.multicast).toMatchObject({ sendBufferBytes: 4096, receiveBufferBytes: 1073741824 });
    expect(noteAt(r.yaml, ['failover', 'inject'])).toBe('line 3: DisableExternalCache on; inject mode');
    expect(noteAt(r.yaml, ['sync', 'reliability', 'resendQueueSize'])).toBe('line 4: ResendQueueSize 1000');
    expect(noteAt(r.yaml, ['sync', 'reliability', 'ackWindow'])).toBe('line 5: ACKWindowSize 10; ctsyncd also acks after ackDelayMs');
    expect(noteAt(r.yaml, ['failover', 'purgeTimeoutSeconds'])).toBe('line 6: PurgeTimeout 30');
    expect(noteAt(r.yaml, ['filter', 'expectations'])).toBe('line 9: ExpectationSync on');
    expect(noteAt(r.yaml, ['sync', 'mode'])).toBe('line 2: Mode FTFW');
    expect(noteAt(r.yaml, ['sync', 'transport'])).toBe('line 8: Multicast');
    const off = convert(y(BASE, 'Sync { Mode FTFW { DisableExternalCache no } Options { ExpectationSync { ftp sip } } }'));
    expect(noteAt(off.yaml, ['failover', 'inject'])).toBe('line 2: DisableExternalCache no');
    expect(noteAt(off.yaml, ['filter', 'expectations'])).toBe('line 2: ExpectationSync { ftp sip }');
  });

  it.each([
    ['a Mode with no word after it', y('Sync {', ' Mode { }', '}'), 2, 7, "Mode needs FTFW, NOTRACK or ALARM, got '{'"],
    ['an ExpectationSync neither block nor on/off', y('Sync { Options {', ' ExpectationSync ftp } }'), 2, 18, "ExpectationSync takes on or off, got 'ftp'"],
    ['a UDP link after Multicast ones', y('Sync {', ' Multicast { }', ' Multicast { }', '  UDP { }', '}'), 4, 3, 'UDP cannot be mixed with Multicast (line 2): all dedicated links use one protocol (conntrackd refuses this too)'],
    ['a fifth link', y('Sync {', ' UDP { }', ' UDP { }', ' UDP { }', ' UDP { }', '  UDP { }', '}'), 6, 3, 'at most 4 dedicated links are possible (conntrackd refuses more too)'],
  ])('%s is refused at its line and column', (_what, text, line, column, reason) => {
    const err = conversionError(text);
    expect([err.line, err.column, err.reason]).toEqual([line, column, reason]);
  });
});

describe('Filter', () => {
  const filter = (...lines: string[]): string => y(BASE, 'General {', ' Filter {', ...lines.map((l) => `  ${l}`), ' }', '}');

  it.each<[string, string[], Row[]]>([
    ['From Userspace says nothing', [], []],
    [
      'an unknown option',
      ['Frob 1 { 2 }'],
      [[4, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in Filter; skipped']],
    ],
    [
      'a protocol ctsyncd does not filter on',
      ['Protocol Ignore { ESP }'],
      [[4, 'ESP', "ESP is not supported by ctsyncd's filter, which knows tcp udp udplite sctp dccp gre icmp icmpv6; dropped from Protocol Ignore"]],
    ],
    [
      'an address option of another kind',
      ['Address Accept { Frob 1', '}'],
      [
        [4, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in Address Accept; skipped'],
        [4, 'Address Accept', 'Address Accept has no address ctsyncd knows; an empty accept list would sync nothing, so filter.addresses is left out (everything passes)'],
      ],
    ],
    [
      'addresses that are none',
      [
        'Address Ignore {',
        '  IPv4_address 10.0.0.1/33',
        '  IPv6_address ::1/129',
        '  IPv4_address 10.0.0.0/8/8',
        '  IPv4_address 10.0.0.0/a',
        '  IPv4_address 10.0.0.0/0008',
        '  IPv6_address 10.0.0.1',
        '}',
      ],
      [
        [5, 'IPv4_address', "IPv4_address 10.0.0.1/33: '10.0.0.1/33' is not an IPv4 address or prefix; skipped (conntrackd skips it too)"],
        [6, 'IPv6_address', "IPv6_address ::1/129: '::1/129' is not an IPv6 address or prefix; skipped (conntrackd skips it too)"],
        [7, 'IPv4_address', "IPv4_address 10.0.0.0/8/8: '10.0.0.0/8/8' is not an IPv4 address or prefix; skipped (conntrackd skips it too)"],
        [8, 'IPv4_address', "IPv4_address 10.0.0.0/a: '10.0.0.0/a' is not an IPv4 address or prefix; skipped (conntrackd skips it too)"],
        [9, 'IPv4_address', "IPv4_address 10.0.0.0/0008: '10.0.0.0/0008' is not an IPv4 address or prefix; skipped (conntrackd skips it too)"],
        [10, 'IPv6_address', "IPv6_address 10.0.0.1: '10.0.0.1' is not an IPv6 address or prefix; skipped (conntrackd skips it too)"],
      ],
    ],
    [
      'the widest prefixes and host bits',
      ['Address Ignore {', '  IPv4_address 10.0.0.0/0', '  IPv6_address ::/0', '  IPv6_address 2001:db8::1/64', '}'],
      [
        [5, 'IPv4_address', 'IPv4_address 10.0.0.0/0 has host bits set; conntrackd matches the network 0.0.0.0/0, and so does this conversion'],
        [7, 'IPv6_address', 'IPv6_address 2001:db8::1/64 has host bits set; conntrackd matches the network 2001:db8::/64, and so does this conversion'],
      ],
    ],
    [
      'a state that is none, LISTEN, and an empty ignore list',
      ['State Ignore { BOGUS LISTEN for TCP }', 'Protocol Ignore { }'],
      [
        [4, 'BOGUS', 'BOGUS is not a conntrack TCP state (NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2); dropped from State Ignore'],
        [4, 'LISTEN', 'LISTEN is the old name of conntrack TCP state 9, which the kernel calls SYN_SENT2 (simultaneous open); converted to SYN_SENT2'],
      ],
    ],
    [
      'blocks of one kind with another logic',
      ['State Ignore { CLOSE for TCP }', 'State Accept { NONE for TCP }', 'Address Accept { }', 'Address Accept { }'],
      [
        [5, 'State', 'State Accept follows State Ignore (line 4): conntrackd applies the last block\'s Accept to the items of both, and so does this conversion'],
        [6, 'Address Accept', 'Address Accept has no address ctsyncd knows; an empty accept list would sync nothing, so filter.addresses is left out (everything passes)'],
      ],
    ],
  ])('%s', (_what, lines, rows) => {
    expect(rowsOf(convert(filter(...lines)))).toEqual(rows);
  });

  it('Filter From Kernelspace is said to be implied, at the Filter line', () => {
    const r = convert(y(BASE, 'General {', ' Filter From kernelspace { Protocol Accept { tcp } }', '}'));
    expect(rowsOf(r)).toEqual([
      [
        3,
        'From Kernelspace',
        'From Kernelspace needs no setting in ctsyncd: ctsyncd applies the filter rules in userspace, and in the kernel too where that is safe (kernel.filterEvents, on by default); the rules are converted; dropped',
      ],
    ]);
    expect(parseConfig(r.yaml, 'x.yaml').filter.protocols).toEqual({ accept: ['tcp'] });
  });

  it('the values: respelt names, /0, whole prefixes, repeated items once, in file order', () => {
    const r = convert(
      filter(
        'Protocol Accept { UDP ipv6-icmp icmp6 udp }',
        'Address Ignore {',
        '  IPv4_address 10.0.0.0/0',
        '  IPv6_address ::/0',
        '  IPv4_address 10.1.0.0/16',
        '  IPv4_address 10.1.0.0/16',
        '  IPv6_address 2001:db8::/128',
        '}',
        'State Accept { CLOSED SYN_SENT2 close for TCP }',
      ),
    );
    const cfg = parseConfig(r.yaml, 'x.yaml');
    expect(cfg.filter.protocols).toEqual({ accept: ['udp', 'icmpv6'] });
    expect(cfg.filter.addresses).toEqual({ ignore: ['0.0.0.0/0', '::/0', '10.1.0.0/16', '2001:db8::'] });
    expect(cfg.filter.tcpStates).toEqual({ accept: ['CLOSE', 'SYN_SENT2'] });
    expect(noteAt(r.yaml, ['filter', 'protocols'])).toBe('line 4: Protocol Accept');
    expect(noteAt(r.yaml, ['filter', 'protocols', 'accept', 1])).toBe('line 4: ipv6-icmp');
    expect(noteAt(r.yaml, ['filter', 'addresses', 'ignore', 2])).toBe('line 8');
    expect(noteAt(r.yaml, ['filter', 'addresses', 'ignore', 3])).toBe('line 10: 2001:db8::/128');
    expect(noteAt(r.yaml, ['filter', 'tcpStates', 'accept', 0])).toBe('line 12: CLOSED');
  });
});

describe('Stats', () => {
  it.each<[string, string[], Row[], unknown]>([
    ['LogFile no, no syslog', ['LogFile no'], [[2, 'LogFile', 'LogFile no: conntrackd would log nowhere; the flow log needs a file and writes /var/log/ctsyncd/flows.jsonl']], { events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } }],
    ['LogFile off, Syslog no', ['LogFile off', 'Syslog no'], [[2, 'LogFile', 'LogFile off: conntrackd would log nowhere; the flow log needs a file and writes /var/log/ctsyncd/flows.jsonl']], { events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } }],
    ['LogFile yes', ['LogFile yes'], [], { events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } }],
    ['Syslog yes alone', ['Syslog yes'], [], { events: ['destroy'], syslog: { facility: 'daemon' } }],
    ['Syslog LOCAL2 beside a file', ['Syslog LOCAL2', 'LogFile /f.jsonl'], [], { events: ['destroy'], syslog: { facility: 'local2' }, file: { path: '/f.jsonl' } }],
    ['an unknown option', ['Frob 1', 'LogFile on'], [[2, 'Frob', 'Frob is not a conntrackd.conf option this importer knows in Stats; skipped']], { events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } }],
  ])('%s', (_what, lines, rows, flowlog) => {
    const r = convert(y('Stats {', ...lines.map((l) => ` ${l}`), '}'));
    expect(rowsOf(r)).toEqual(rows);
    expect(parseConfig(r.yaml, 'x.yaml').flowlog).toMatchObject(flowlog as object);
    expect((parseDocument(r.yaml).toJS() as { flowlog: { file?: unknown } }).flowlog.file).toEqual((flowlog as { file?: unknown }).file);
  });

  it('the Stats line names the flow log; the syslog facility its line', () => {
    const r = convert(y('', 'Stats {', ' Syslog on', '}'));
    expect(noteAt(r.yaml, ['flowlog', 'events'])).toBe(
      'line 2: Stats logs destroyed connections; add new for flows find to stop reading early (README, "Flow log")',
    );
    expect(noteAt(r.yaml, ['flowlog', 'syslog', 'facility'])).toBe(
      'line 3: Syslog on; RFC 5424 messages to /dev/log, the JSON record as their text',
    );
    // A Stats-only file has no cluster and no sync.
    expect(parseDocument(r.yaml).toJS()).toEqual({
      node: { id: 'fw1' },
      filter: { expectations: 'none' },
      flowlog: { events: ['destroy'], syslog: { facility: 'daemon' } },
    });
  });
});

describe('links, states and helpers: what repeats and what bounds', () => {
  const link = (i: number, def = ''): string => ` UDP ${def}{ IPv4_address 10.0.${i}.1 IPv4_Destination_Address 10.0.${i}.2 Port 3780 }`;

  it('four links are the most: the main one and three backups', () => {
    const r = convert(y('Sync {', ' Mode FTFW { }', link(1), link(2), link(3), link(4), '}'));
    expect(rowsOf(r)).toEqual([]);
    const cfg = parseConfig(r.yaml, 'x.yaml');
    expect(cfg.sync!.udp?.bind).toBe('10.0.1.1');
    expect(cfg.sync!.backupLinks.map((l) => ('udp' in l ? l.udp.bind : ''))).toEqual(['10.0.2.1', '10.0.3.1', '10.0.4.1']);
    expect(noteAt(r.yaml, ['sync', 'backupLinks', 2])).toBe('line 6: UDP, a redundant dedicated link');
  });

  it('of two Default links the last is the main one', () => {
    const r = convert(y('Sync {', ' Mode FTFW { }', link(1, 'Default '), link(2), link(3, 'Default '), '}'));
    const cfg = parseConfig(r.yaml, 'x.yaml');
    expect(cfg.sync!.udp?.bind).toBe('10.0.3.1');
    expect(cfg.sync!.backupLinks.map((l) => ('udp' in l ? l.udp.bind : ''))).toEqual(['10.0.1.1', '10.0.2.1']);
    expect(noteAt(r.yaml, ['sync', 'transport'])).toBe('line 5: UDP');
  });

  it('several "for TCP" groups in one State block', () => {
    const r = convert(y(BASE, 'General { Filter { State Accept {', ' ESTABLISHED for TCP', ' CLOSE SYN_SENT for TCP', '} } }'));
    expect(rowsOf(r)).toEqual([]);
    expect(parseConfig(r.yaml, 'x.yaml').filter.tcpStates).toEqual({ accept: ['ESTABLISHED', 'CLOSE', 'SYN_SENT'] });
  });

  it('a helper listed twice is synced once', () => {
    const r = convert(y(BASE, 'Sync { Options { ExpectationSync { ftp sip ftp } } }'));
    expect(parseConfig(r.yaml, 'x.yaml').filter.expectations).toEqual({ helpers: ['ftp', 'sip'] });
  });

  it('a result that does not validate says so in its header, without a line', () => {
    const r = convert(y('Sync {', ' Mode FTFW { }', ' UDP { IPv4_address 10.0.0.1 Port 3780 }', '}'));
    expect(r.yaml.split('\n').slice(0, 9)).toEqual([
      '# ctsyncd configuration converted by `ctsyncd import-conntrackd` from c.conf.',
      '# The comment on each value names the conntrackd.conf line it came from; keys',
      "# not written here take ctsyncd's defaults (see conntrackd.yaml in the package).",
      '# Review it, then validate it with: ctsyncd check-config FILE',
      '',
      '# Not carried over as written (2, also printed as warnings):',
      '#   line 3: UDP on line 3 has no IPv4_Destination_Address (the peer); set sync.udp.peers by hand',
      '#   the result does not pass check-config yet: sync.udp.peers required: expected a list',
      '',
    ]);
  });

  it('comments keep tabs and turn other control characters and line breaks into ?', () => {
    const r = convert(y(BASE, 'General { Filter { Address Ignore {', ' IPv4_address 10.0.0.1 # a\tb\u2029c\ufeffd\u0007e', '} } }'));
    expect(noteAt(r.yaml, ['filter', 'addresses', 'ignore', 0])).toBe('line 3: a\tb?c?d?e');
  });
});

describe('the Importer at its edges', () => {
  it.each([
    ['a bool', 'Sync { Mode FTFW { DisableExternalCache', 'DisableExternalCache needs on or off before the end of the file'],
    ['a Stats LogFile', 'Stats { LogFile', 'LogFile needs on, off or a file name before the end of the file'],
    ['an address', 'Sync { Multicast { IPv4_address', 'IPv4_address needs an IPv4 address before the end of the file'],
    ['an IPv6_interface', 'Sync { Multicast { IPv6_interface', 'IPv6_interface needs an address before the end of the file'],
    ['an Interface', 'Sync { Multicast { Interface', 'Interface needs an interface name before the end of the file'],
    ['ExpectationSync', 'Sync { Options { ExpectationSync', 'ExpectationSync needs on or off before the end of the file'],
    ['a link block', 'Sync { Multicast', 'expected { after Multicast'],
    ['a link block with a word before it', 'Sync { Multicast Frob { } }', "expected { after Multicast, got 'Frob'"],
  ])('%s cut short or misspelt: %s', (_what, text, reason) => {
    expect(conversionError(text).reason).toBe(reason);
  });

  it('Helper is skipped with its block and said to be unsupported', () => {
    expect(rowsOf(convert(y(BASE, 'Helper { Type ftp inet tcp { QueueNum 0 } }')))).toEqual([
      [
        2,
        'Helper',
        'Helper is not supported by ctsyncd: ctsyncd has no userspace helpers; keep the kernel helpers (nft ct helper) or run conntrackd for them alone',
      ],
    ]);
  });

  it('a bad address after a good one keeps the good one', () => {
    const udp = convert(
      y(
        'Sync {',
        ' Mode FTFW { }',
        ' UDP {',
        '  IPv4_address 10.0.0.1',
        '  IPv4_address 10.0.0.300',
        '  IPv4_Destination_Address 10.0.0.2',
        '  IPv4_Destination_Address x',
        '  Port 3780',
        ' }',
        '}',
      ),
    );
    expect(rowsOf(udp)).toEqual([
      [5, 'IPv4_address', "IPv4_address 10.0.0.300: '10.0.0.300' is not an IPv4 address; skipped (conntrackd skips it too)"],
      [7, 'IPv4_Destination_Address', "IPv4_Destination_Address x: 'x' is not an IPv4 address; skipped (conntrackd skips it too)"],
    ]);
    expect(parseConfig(udp.yaml, 'x.yaml').sync!.udp).toMatchObject({ bind: '10.0.0.1', peers: ['10.0.0.2'] });
    const mc = convert(y('Sync {', ' Mode FTFW { }', ' Multicast {', '  IPv4_interface 10.0.0.1', '  IPv4_interface y', ' }', '}'));
    expect(rowsOf(mc).filter(([, o]) => o === 'IPv4_interface')).toEqual([
      [4, 'IPv4_interface', expect.stringMatching(/^IPv4_interface 10\.0\.0\.1: ctsyncd needs the interface by name/)],
      [5, 'IPv4_interface', "IPv4_interface y: 'y' is not an IPv4 address; skipped (conntrackd skips it too)"],
    ]);
  });

  it('a TCP link’s ErrorQueueLength, its reason whole', () => {
    const r = convert(y('Sync {', ' Mode FTFW { }', ' TCP { IPv4_address 10.0.0.1 IPv4_Destination_Address 10.0.0.2 Port 3780', '  ErrorQueueLength 128 }', '}'));
    expect(rowsOf(r)[1]).toEqual([
      4,
      'ErrorQueueLength',
      'ErrorQueueLength 128 is not supported by ctsyncd: ctsyncd has no TCP transport (see the warning on the TCP line)',
    ]);
  });
});

describe('nodeIdFromHostname, more', () => {
  it.each([
    ['LOCALHOST', undefined],
    ['Localhost.example', undefined],
    ['localhost2', 'localhost2'],
    ['.example.com', undefined],
    ['x'.repeat(64), 'x'.repeat(64)],
  ])('%j → %j', (host, id) => {
    expect(nodeIdFromHostname(host)).toBe(id);
  });
});

describe('a whole file, to the byte', () => {
  const RICH = y(
    'Sync {',
    ' Mode NOTRACK { }',
    ' Multicast {',
    '  IPv4_address 225.0.0.50 # grp',
    '  Group 3780',
    '  Interface eth2',
    '  SndSocketBuffer 8192',
    ' }',
    ' Multicast Default {',
    '  IPv4_address 225.0.0.51',
    '  Group 3781',
    '  Interface eth3',
    ' }',
    '}',
    'General {',
    ' HashLimit 1000',
    ' UNIX { Path /run/c.ctl }',
    ' NetlinkBufferSize 8192',
    ' NetlinkBufferSizeMaxGrowth 4096',
    ' NetlinkEventsReliable on',
    ' Scheduler { Type RR Priority 5 }',
    ' Filter From Userspace {',
    '  Protocol Accept { TCP tcp UDP-Lite }',
    '  Address Ignore { IPv4_address 10.0.0.1/32 # one',
    ' IPv6_address 2001:db8::1/128 IPv6_address 2001:db8::/032',
    ' IPv4_address 10.0.0.1 }',
    '  State Ignore { CLOSED ESTABLISHED CLOSED for TCP }',
    ' }',
    '}',
    'Stats { LogFile /var/log/f.jsonl }',
  );
  const RICH_YAML = y(
    '# ctsyncd configuration converted by `ctsyncd import-conntrackd` from c.conf.',
    '# The comment on each value names the conntrackd.conf line it came from; keys',
    '# not written here take ctsyncd\'s defaults (see conntrackd.yaml in the package).',
    '# Review it, then validate it with: ctsyncd check-config FILE',
    '',
    '# Not carried over as written (2, also printed as warnings):',
    '#   line 17: Path /run/c.ctl became control.socket, but ctsyncd\'s control socket speaks its own protocol: conntrackd\'s own client cannot drive it. Use `ctsyncd -C FILE` with the same flags (-c, -f, -R, -n, -B, -t, -k, -s, -i, -e) in primary-backup.sh (contrib/keepalived/primary-backup.sh drives either daemon), and never run conntrackd with this path at the same time (or drop the key for ctsyncd\'s default /run/ctsyncd/ctsyncd.sock)',
    '#   line 18: NetlinkBufferSize 8192 is above NetlinkBufferSizeMaxGrowth 4096 (line 19), which conntrackd ignores it for; kernel.netlinkBufferBytes starts at the cap, 4096',
    '',
    'node:',
    '  # conntrackd.conf has no node name. This one is given to the importer.',
    '  # It must be unique within the cluster: convert each node\'s own conntrackd.conf',
    '  # on that node, or edit the id.',
    '  id: fw1',
    '',
    'cluster:',
    '  # conntrackd.conf has no cluster id: the default 1.',
    '  # Use the same value on every node of this cluster, and another one for any',
    '  # other cluster whose messages can reach this sync link.',
    '  id: 1',
    '',
    'sync:',
    '  # conntrackd\'s own messages, so this node replicates with a peer that still runs conntrackd',
    '  # (replace one node at a time). Once every node runs ctsyncd, switch each to protocol: ctsyncd',
    '  # with a key in sync.auth, one node at a time.',
    '  protocol: conntrackd',
    '  mode: notrack # line 2: Mode NOTRACK; ctsyncd also re-sends the whole table every refreshIntervalMs',
    '  transport: multicast # line 9: Multicast',
    '  multicast:',
    '    group: 225.0.0.51 # line 10: IPv4_address 225.0.0.51',
    '    port: 3781 # line 11: Group 3781; conntrackd\'s Group is the UDP port',
    '    interface: eth3 # line 12: Interface eth3',
    '  backupLinks:',
    '    # line 3: Multicast, a redundant dedicated link',
    '    - multicast:',
    '        group: 225.0.0.50 # line 4: IPv4_address 225.0.0.50 (grp)',
    '        port: 3780 # line 5: Group 3780; conntrackd\'s Group is the UDP port',
    '        interface: eth2 # line 6: Interface eth2',
    '        sendBufferBytes: 8192 # line 7: SndSocketBuffer 8192',
    '  # conntrackd has no message authentication, so neither does this conversion: anything',
    '  # that reaches the sync port can write into the state table. To sign the sync traffic,',
    '  # put one key on every node (umask 077; openssl rand -hex 32 > /etc/ctsyncd/sync.key),',
    '  # set protocol: ctsyncd (conntrackd peers cannot check keys) and replace none with:',
    '  # { keyFile: /etc/ctsyncd/sync.key }',
    '  auth: none',
    '',
    'filter:',
    '  # line 23: Protocol Accept',
    '  protocols:',
    '    accept:',
    '      - tcp # line 23',
    '      - udplite # line 23: UDP-Lite',
    '  # line 24: Address Ignore',
    '  addresses:',
    '    ignore:',
    '      - 10.0.0.1 # line 24: 10.0.0.1/32, one',
    '      - 2001:db8::1 # line 25: 2001:db8::1/128',
    '      - 2001:db8::/32 # line 25: 2001:db8::/032',
    '  # line 27: State Ignore',
    '  tcpStates:',
    '    ignore:',
    '      - CLOSE # line 27: CLOSED',
    '      - ESTABLISHED # line 27',
    '  expectations: none # no ExpectationSync in conntrackd.conf: conntrackd syncs no expectation. all, or { helpers: [ftp, sip] }, syncs them',
    '',
    'kernel:',
    '  netlinkBufferMaxBytes: 4096 # line 19: NetlinkBufferSizeMaxGrowth 4096',
    '  netlinkBufferBytes: 4096 # line 18: NetlinkBufferSize 8192',
    '  eventsReliable: true # line 20: NetlinkEventsReliable on',
    '',
    'process:',
    '  # line 21: Type RR; Priority 5',
    '  scheduler:',
    '    policy: rr',
    '    priority: 5',
    '',
    'cache:',
    '  internalLimit: 1000 # line 16: HashLimit 1000',
    '  externalLimit: 1000 # line 16: HashLimit 1000',
    '',
    'control:',
    '  socket: /run/c.ctl # line 17: Path /run/c.ctl',
    '',
    'flowlog:',
    '  # line 30: Stats logs destroyed connections; add new for flows find to stop reading early (README, "Flow log")',
    '  events:',
    '    - destroy',
    '  file:',
    '    path: /var/log/f.jsonl # line 30: LogFile /var/log/f.jsonl; one JSON object per line, not conntrackd\'s text format',
  );

  it('converts with every comment in its place', () => {
    expect(convert(RICH).yaml).toBe(RICH_YAML);
  });
});

describe('ctsyncd import-conntrackd, its words exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-import-mcf-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const conf = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const run = (args: string[], hostname = 'fw1.example.com') => {
    const out: string[] = [];
    const err: string[] = [];
    const code = importConntrackdCommand(args, { out: (t) => out.push(t), err: (t) => err.push(t) }, { hostname: () => hostname });
    return { code, out, err };
  };
  const usage = (m: string): string => `ctsyncd: import-conntrackd: ${m} (see ctsyncd import-conntrackd --help)`;

  it.each<[string[], string]>([
    [[], 'needs the conntrackd.conf FILE to convert (- for standard input)'],
    [['a', 'b'], "takes one FILE, got 'a' and 'b'"],
    [['a', '-x'], 'unknown option -x'],
    [['a', '-o=x'], 'unknown option -o=x'],
    [['a', '-'], "takes one FILE, got 'a' and '-'"],
    [['a', '--frob=1'], 'unknown option --frob=1'],
    [['a', '--output='], '--output needs a value'],
    [['a', '-o'], '-o needs a value'],
    [['a', '--node-id='], '--node-id needs a value'],
    [['a', '--cluster-id'], '--cluster-id needs a value'],
    [['a', '--cluster-id', '12345678901'], "--cluster-id takes 0..4294967295, not '12345678901'"],
    [['a', '--cluster-id', '1x'], "--cluster-id takes 0..4294967295, not '1x'"],
    [['a', '--node-id', 'x'.repeat(65)], `--node-id takes 1-64 characters from A-Z a-z 0-9 _ . -, not '${'x'.repeat(65)}'`],
  ])('%j: exit 2, %s', (args, message) => {
    const r = run(args);
    expect(r).toEqual({ code: 2, out: [], err: [usage(message)] });
  });

  it('writes OUT and says how many warnings, one or none', () => {
    const one = conf('one.conf', y(BASE, 'General { PollSecs 5 }'));
    const out = join(dir, 'one.yaml');
    expect(run([one, `--output=${out}`, '--node-id=fw-9', '--cluster-id=4294967295'])).toEqual({
      code: 0,
      out: [`${out}: converted from ${one} with 1 warning; check it with: ctsyncd check-config ${out}`],
      err: [
        `${one}:2: PollSecs 5 is not supported by ctsyncd: ctsyncd always follows kernel events; there is no polling mode`,
      ],
    });
    const yaml = readFileSync(out, 'utf8');
    expect(noteAt(yaml, ['node', 'id'])).toBe(
      "conntrackd.conf has no node name. This one is given with --node-id.\n It must be unique within the cluster: convert each node's own conntrackd.conf\n on that node, or edit the id.",
    );
    expect(noteAt(yaml, ['cluster', 'id'])).toMatch(/^conntrackd\.conf has no cluster id: from --cluster-id\.\n/);
    expect(parseConfig(yaml, 'x.yaml').cluster!.id).toBe(4294967295);
    expect(yaml).toMatch(new RegExp(`^# ctsyncd configuration converted by \`ctsyncd import-conntrackd\` from ${one.replaceAll('.', '\\.')}\\.\n`));

    const none = conf('none.conf', y(BASE));
    const out0 = join(dir, 'none.yaml');
    expect(run([none, '-o', out0, '--cluster-id', '0'])).toEqual({
      code: 0,
      out: [`${out0}: converted from ${none}; check it with: ctsyncd check-config ${out0}`],
      err: [],
    });
    expect(noteAt(readFileSync(out0, 'utf8'), ['node', 'id'])).toMatch(
      /^conntrackd\.conf has no node name\. This one is the short name of the host it was converted on \(fw1\.example\.com\)\.\n/,
    );
  });

  it('a file whose first byte is gzip’s but not its second is read as text', () => {
    // Gunzipped, it would fail as unreadable ("cannot read"); as text its first word is no section.
    const odd = conf('odd.conf', `\u001f${y(BASE)}`);
    expect(run([odd])).toEqual({ code: 1, out: [], err: [`${odd}: no Sync or Stats section: nothing to convert`] });
  });

  it('a file it cannot convert: exit 1, the error alone', () => {
    const bad = conf('bad.conf', 'General { }\n');
    expect(run([bad])).toEqual({ code: 1, out: [], err: [`${bad}: no Sync or Stats section: nothing to convert`] });
  });

  it('an output it cannot write: exit 1, naming it', () => {
    const ok = conf('ok.conf', y(BASE));
    const r = run([ok, '-o', join(dir, 'missing', 'x.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual([expect.stringMatching(/^ctsyncd: import-conntrackd: cannot write .*missing\/x\.yaml: ENOENT/)]);
  });
});

describe('General and Filter words cut short, and Filter heads misspelt', () => {
  const general = (line: string): string => y(BASE, 'General {', ` ${line}`, '}');

  it.each([
    ['UNIX { Path }', "c.conf:3:14: Path needs a path, got '}'"],
    ['LogFile }', "c.conf:3:10: LogFile needs on, off or a path, got '}'"],
    ['Syslog }', "c.conf:3:9: Syslog needs on, off or a facility, got '}'"],
    ['LockFile }', "c.conf:3:11: LockFile needs a path, got '}'"],
    ['NetlinkOverrunResync }', "c.conf:3:23: NetlinkOverrunResync needs on, off or seconds, got '}'"],
    ['Nice }', "c.conf:3:7: Nice needs a number, got '}'"],
    ['HashLimit }', "c.conf:3:12: HashLimit needs a number, got '}'"],
    ['NetlinkEventsReliable }', "c.conf:3:24: NetlinkEventsReliable needs on or off, got '}'"],
    ['Scheduler { Type } }', "c.conf:3:19: Type needs RR or FIFO, got '}'"],
    ['Filter Frob { }', "c.conf:3:9: expected { after Filter, got 'Frob'"],
    ['Filter From Frob { }', "c.conf:3:14: Filter From takes Userspace or Kernelspace, got 'Frob'"],
    ['Filter From Userspace Frob { }', "c.conf:3:24: expected { after Userspace, got 'Frob'"],
    ['Filter { Address Accept { IPv4_address } } }', "c.conf:3:41: IPv4_address needs an IPv4 address or prefix, got '}'"],
    ['Filter { Address Accept { IPv6_address } } }', "c.conf:3:41: IPv6_address needs an IPv6 address or prefix, got '}'"],
    ['Filter { Protocol } }', "c.conf:3:20: Protocol needs Accept or Ignore, got '}'"],
  ])('%s: %s', (line, message) => {
    expect(conversionError(general(line)).message).toBe(message);
  });

  it('Filter at the end of the file: no From to peek at, the block it needs', () => {
    expect(conversionError(y(BASE, 'General { Filter')).message).toBe('c.conf:2:11: expected { after Filter');
  });

  // Only the words off and no, whole, turn LogFile and Syslog off; one that starts or ends with them is a file or a facility.
  it.each([
    ['LogFile', '/var/log/casino', 'ctsyncd logs to standard error (the systemd journal); for a file, add StandardError=append:/var/log/ctsyncd.log to its unit'],
    ['LogFile', 'nowhere', 'ctsyncd logs to standard error (the systemd journal); for a file, add StandardError=append:/var/log/ctsyncd.log to its unit'],
    ['LogFile', 'offline.log', 'ctsyncd logs to standard error (the systemd journal); for a file, add StandardError=append:/var/log/ctsyncd.log to its unit'],
    ['Syslog', 'casino', 'ctsyncd logs to standard error; journald forwards it to syslog (set SyslogFacility= in the unit for a facility)'],
    ['Syslog', 'nowhere', 'ctsyncd logs to standard error; journald forwards it to syslog (set SyslogFacility= in the unit for a facility)'],
    ['Syslog', 'kickoff', 'ctsyncd logs to standard error; journald forwards it to syslog (set SyslogFacility= in the unit for a facility)'],
  ])('General %s %s is not supported', (option, value, why) => {
    expect(rowsOf(convert(general(`${option} ${value}`)))).toEqual([
      [3, option, `${option} ${value} is not supported by ctsyncd: ${why}`],
    ]);
  });
});

describe('Stats without a file, or with Syslog off or unknown', () => {
  it.each<[string, string[], Row[], unknown]>([
    [
      'an empty Stats: the default file, the warning at the Stats line',
      [],
      [[1, 'LogFile', 'Stats has no LogFile: conntrackd would log nowhere; the flow log needs a file and writes /var/log/ctsyncd/flows.jsonl']],
      { events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } },
    ],
    ['Syslog off beside a file: the file alone', ['Syslog off', 'LogFile /f.jsonl'], [], { events: ['destroy'], file: { path: '/f.jsonl' } }],
    [
      'an unknown facility: no syslog, and no file either',
      ['Syslog frob'],
      [
        [1, 'LogFile', 'Stats has no LogFile: conntrackd would log nowhere; the flow log needs a file and writes /var/log/ctsyncd/flows.jsonl'],
        [
          2,
          'Syslog',
          'Syslog frob is not supported by ctsyncd: expected on, off or a facility (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0, local1, local2, local3, local4, local5, local6, local7)',
        ],
      ],
      { events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } },
    ],
  ])('%s', (_what, lines, rows, flowlog) => {
    const r = convert(y('Stats {', ...lines.map((l) => ` ${l}`), '}'));
    expect(rowsOf(r)).toEqual(rows);
    expect((parseDocument(r.yaml).toJS() as { flowlog: unknown }).flowlog).toEqual(flowlog);
  });
});

describe('a Sync without Mode', () => {
  it('is FTFW, warned about at the Sync line, with the note saying why', () => {
    const r = convert(y('', 'Sync {', ' Multicast { IPv4_address 225.0.0.50 Group 3780 Interface eth2 }', '}'));
    expect(rowsOf(r)).toEqual([
      [2, 'Mode', 'Sync has no Mode; conntrackd then uses FTFW, and so does this conversion (sync.mode: ftfw)'],
    ]);
    expect(parseConfig(r.yaml, 'x.yaml').sync!.mode).toBe('ftfw');
    expect(noteAt(r.yaml, ['sync', 'mode'])).toBe('no Mode in conntrackd.conf: FTFW, its default');
  });
});

describe('link-local, exactly', () => {
  // fe80::/10 is link-local (fe80 to febf); fec0 is past it; an fe80 inside the address is not its start.
  it.each([
    ['fe80::1', true],
    ['FE80::1', true],
    ['febf::1', true],
    ['fe9a::1', true],
    ['fec0::1', false],
    ['fe7f::1', false],
    ['2001:db8::fe80', false],
  ])('UDP IPv6_address %s warns: %s', (addr, warns) => {
    const r = convert(y('Sync {', ' Mode FTFW { }', ' UDP {', `  IPv6_address ${addr}`, '  IPv6_Destination_Address 2001:db8::2', '  Port 3780', ' }', '}'));
    const warning: Row = [
      4,
      'IPv6_address',
      `IPv6_address ${addr} is link-local: ctsyncd cannot bind an address that needs an interface scope; use a global or ULA address on the sync link`,
    ];
    expect(rowsOf(r)).toEqual(warns ? [warning] : []);
    expect(parseConfig(r.yaml, 'x.yaml').sync!.udp?.bind).toBe(addr);
  });
});

describe('ctsyncd import-conntrackd, more of its words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-import-more-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = importConntrackdCommand(args, { out: (t) => out.push(t), err: (t) => err.push(t) }, { hostname: () => 'fw1' });
    return { code, out, err };
  };
  const usage = (m: string): string => `ctsyncd: import-conntrackd: ${m} (see ctsyncd import-conntrackd --help)`;

  it.each([
    ['4294967296', "--cluster-id takes 0..4294967295, not '4294967296'"],
    ['x1', "--cluster-id takes 0..4294967295, not 'x1'"],
  ])('--cluster-id %s: exit 2, %s', (id, message) => {
    expect(run(['a', '--cluster-id', id])).toEqual({ code: 2, out: [], err: [usage(message)] });
  });

  it('two warnings are warnings', () => {
    const conf = join(dir, 'two.conf');
    writeFileSync(conf, y(BASE, 'General { PollSecs 5 Nice 1 }'));
    const out = join(dir, 'two.yaml');
    expect(run([conf, '-o', out])).toEqual({
      code: 0,
      out: [`${out}: converted from ${conf} with 2 warnings; check it with: ctsyncd check-config ${out}`],
      err: [
        `${conf}:2: PollSecs 5 is not supported by ctsyncd: ctsyncd always follows kernel events; there is no polling mode`,
        `${conf}:2: Nice 1 is not supported by ctsyncd: set Nice= in the systemd unit (conntrackd ignores Nice too)`,
      ],
    });
  });
});

describe('the converter: FTFW RefreshTime, empty accept lists, a result without warnings', () => {
  it('RefreshTime in FTFW is dropped without the notrack hint', () => {
    const r = convert(y('Sync {', ' Mode FTFW { RefreshTime 5 }', ' Multicast { IPv4_address 225.0.0.50 Group 3780 Interface eth2 }', '}'));
    expect(rowsOf(r)).toEqual([[2, 'RefreshTime', 'RefreshTime 5 is not supported by ctsyncd: conntrackd uses it only in Mode ALARM']]);
  });

  it.each<[string, Row[]]>([
    [
      'Protocol Accept { ESP }',
      [
        [4, 'ESP', "ESP is not supported by ctsyncd's filter, which knows tcp udp udplite sctp dccp gre icmp icmpv6; dropped from Protocol Accept"],
        [4, 'Protocol Accept', 'Protocol Accept has no protocol ctsyncd knows; an empty accept list would sync nothing, so filter.protocols is left out (everything passes)'],
      ],
    ],
    [
      'State Accept { BOGUS for TCP }',
      [
        [4, 'BOGUS', 'BOGUS is not a conntrack TCP state (NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2); dropped from State Accept'],
        [4, 'State Accept', 'State Accept has no state ctsyncd knows; an empty accept list would sync nothing, so filter.tcpStates is left out (everything passes)'],
      ],
    ],
  ])('an accept list left empty: %s', (line, rows) => {
    const r = convert(y(BASE, 'General {', ' Filter {', `  ${line}`, ' }', '}'));
    expect(rowsOf(r)).toEqual(rows);
    expect(parseConfig(r.yaml, 'x.yaml').filter).toMatchObject({ protocols: {}, tcpStates: {} });
  });

  it('a result without warnings has the four header lines alone', () => {
    const r = convert(y(BASE));
    expect(r.warnings).toEqual([]);
    expect(r.yaml.split('\n').slice(0, 6)).toEqual([
      '# ctsyncd configuration converted by `ctsyncd import-conntrackd` from c.conf.',
      '# The comment on each value names the conntrackd.conf line it came from; keys',
      "# not written here take ctsyncd's defaults (see conntrackd.yaml in the package).",
      '# Review it, then validate it with: ctsyncd check-config FILE',
      '',
      'node:',
    ]);
  });

  it('a file whose second byte is gzip’s but not its first is read as text', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-import-gz-'));
    try {
      const conf = join(dir, 'odd.conf');
      // "#" and a byte that is no UTF-8: a comment line, then the file.
      writeFileSync(conf, Buffer.concat([Buffer.from([0x23, 0x8b, 0x0a]), Buffer.from(y(BASE))]));
      const out: string[] = [];
      const err: string[] = [];
      const code = importConntrackdCommand([conf, '--node-id', 'fw1'], { out: (t) => out.push(t), err: (t) => err.push(t) });
      expect([code, err]).toEqual([0, []]);
      expect(parseConfig(out.join(''), 'x.yaml').sync!.multicast?.interface).toBe('eth2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ctsyncd import-conntrackd -: the file from standard input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-import-stdin-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[], readStdin: () => Buffer) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = importConntrackdCommand(args, { out: (t) => out.push(t), err: (t) => err.push(t) }, { hostname: () => 'fw1', readStdin });
    return { code, out, err };
  };

  it('reads standard input, gzipped or not, and names it (stdin) in warnings and the summary', () => {
    const text = y(BASE, 'General { PollSecs 5 }');
    const out = join(dir, 'stdin.yaml');
    const fromFile = join(dir, 'file.conf');
    writeFileSync(fromFile, text);
    const viaFile = run([fromFile], () => {
      throw new Error('standard input read for a named file');
    });
    expect(viaFile.code).toBe(0);
    for (const input of [Buffer.from(text), gzipSync(Buffer.from(text))]) {
      expect(run(['-', '-o', out], () => input)).toEqual({
        code: 0,
        out: [`${out}: converted from (stdin) with 1 warning; check it with: ctsyncd check-config ${out}`],
        err: ['(stdin):2: PollSecs 5 is not supported by ctsyncd: ctsyncd always follows kernel events; there is no polling mode'],
      });
      expect(readFileSync(out, 'utf8')).toBe(viaFile.out.join('').replaceAll(fromFile, '(stdin)'));
    }
  });

  it('standard input that cannot be read: exit 1, named -', () => {
    expect(
      run(['-'], () => {
        throw new Error('EAGAIN: resource temporarily unavailable, read');
      }),
    ).toEqual({ code: 1, out: [], err: ['ctsyncd: import-conntrackd: cannot read -: EAGAIN: resource temporarily unavailable, read'] });
  });
});
