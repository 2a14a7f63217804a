import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { parseDocument } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import {
  ConntrackdConfError,
  formatImportWarning,
  type ImportResult,
  type ImportWarning,
  importConntrackdCommand,
  importConntrackdConf,
  isConntrackdConfError,
  nodeIdFromHostname,
} from '../../src/config/import-conntrackd.js';
import { type Config, isConfigError, loadConfig, parseConfig } from '../../src/config/index.js';
import { runs } from './fc-runs.js';

const EXAMPLES = '/usr/share/doc/conntrackd/examples/sync';
const FILE = 'conntrackd.conf';

/** Debian's example, gzipped or not. The package is a system test dependency (scripts/install-system-deps.sh). */
function example(mode: 'ftfw' | 'notrack' | 'alarm' | 'stats'): { path: string; text: string } {
  // Debian: examples/sync/{ftfw,notrack,alarm} and examples/stats.
  const plain = mode === 'stats' ? join(EXAMPLES, '..', 'stats', 'conntrackd.conf') : join(EXAMPLES, mode, 'conntrackd.conf');
  const path = existsSync(plain) ? plain : `${plain}.gz`;
  if (!existsSync(path)) {
    throw new Error(`${plain}[.gz] is missing: install Debian's conntrackd package (scripts/install-system-deps.sh)`);
  }
  const raw = readFileSync(path);
  return { path, text: (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8') };
}

/** 1-based number of the first line of `text` matching `re`. */
function lineOf(text: string, re: RegExp): number {
  const i = text.split('\n').findIndex((l) => re.test(l));
  if (i < 0) throw new Error(`no line matches ${re}`);
  return i + 1;
}

const convert = (text: string, nodeId = 'fw1'): ImportResult => importConntrackdConf(text, { file: FILE, nodeId });

/** Converts and validates with the daemon's own parser. */
function convertValid(text: string): { result: ImportResult; cfg: Config } {
  const result = convert(text);
  return { result, cfg: parseConfig(result.yaml, 'converted.yaml') };
}

const y = (...lines: string[]): string => `${lines.join('\n')}\n`;

/** A complete Multicast block on one line. */
const MCAST = 'Multicast { IPv4_address 225.0.0.50 Group 3780 Interface eth2 }';

const warningAt = (result: ImportResult, line: number): ImportWarning[] =>
  result.warnings.filter((w) => w.line === line);

/** The error a conversion throws; fails the test when it converts. */
function conversionError(text: string): ConntrackdConfError {
  try {
    convert(text);
  } catch (err) {
    if (isConntrackdConfError(err)) return err;
    throw err;
  }
  throw new Error('converted, but an error was expected');
}

describe('sync.auth', () => {
  it('is none, as conntrackd has no authentication, with a comment on how to sign instead', () => {
    const { result, cfg } = convertValid(example('ftfw').text);
    expect(cfg.sync!.auth).toBeNull();
    const lines = result.yaml.split('\n');
    const at = lines.findIndex((l) => /^ {2}auth: none$/.test(l));
    expect(at).toBeGreaterThan(0);
    expect(lines.slice(at - 5, at).join('\n')).toMatch(
      /no message authentication[\s\S]*protocol: ctsyncd[\s\S]*keyFile: \/etc\/ctsyncd\/sync\.key/,
    );
  });

  it('speaks conntrackd’s protocol, so the converted node works beside a conntrackd peer, and says how to leave it', () => {
    const { result, cfg } = convertValid(example('ftfw').text);
    expect(cfg.sync?.protocol).toBe('conntrackd');
    const lines = result.yaml.split('\n');
    const at = lines.findIndex((l) => /^ {2}protocol: conntrackd$/.test(l));
    expect(at).toBeGreaterThan(0);
    expect(lines.slice(at - 3, at).join('\n')).toMatch(/one node at a time[\s\S]*protocol: ctsyncd/);
  });
});

describe("Debian's example configurations", () => {
  /** Every warning that names a line names one that holds its option. */
  function expectWarningsPointAtTheirOptions(text: string, result: ImportResult): void {
    const lines = text.split('\n');
    for (const w of result.warnings) {
      expect(w.line, w.message).toBeGreaterThan(0);
      expect(lines[w.line - 1]!.toLowerCase(), w.message).toContain(w.option.split(' ')[0]!.toLowerCase());
    }
  }

  it('ftfw converts to a valid ftfw over multicast config', () => {
    const { text } = example('ftfw');
    const { result, cfg } = convertValid(text);
    expect(cfg.node.id).toBe('fw1');
    expect(cfg.cluster!.id).toBe(1);
    expect(cfg.sync!.mode).toBe('ftfw');
    expect(cfg.sync!.transport).toBe('multicast');
    expect(cfg.sync!.multicast).toEqual({
      group: '225.0.0.50',
      port: 3780,
      interface: 'eth2',
      sendBufferBytes: 1249280,
      receiveBufferBytes: 1249280,
    });
    expect(cfg.sync!.backupLinks).toEqual([]);
    expect(cfg.filter.protocols).toEqual({ accept: ['tcp', 'sctp', 'dccp'] });
    expect(cfg.filter.addresses).toEqual({
      ignore: ['127.0.0.1', '192.168.0.100', '192.168.1.100', '192.168.0.1', '192.168.1.1', '192.168.100.100'],
    });
    expect(cfg.filter.tcpStates).toEqual({ ignore: [] });
    expect(cfg.cache).toEqual({ internalLimit: 131072, externalLimit: 131072 });
    // NetlinkBufferSize where the buffer starts, NetlinkBufferSizeMaxGrowth how far overruns grow it.
    expect(cfg.kernel.netlinkBufferBytes).toBe(2097152);
    expect(cfg.kernel.netlinkBufferMaxBytes).toBe(8388608);
    expect(cfg.kernel.eventsReliable).toBe(false);
    // The example has no ExpectationSync: conntrackd syncs no expectation there.
    expect(cfg.filter.expectations).toBe('none');
    expect(cfg.process.scheduler).toBeUndefined();
    expect(cfg.control.socket).toBe('/var/run/conntrackd.ctl');
    expect(cfg.failover.purgeTimeoutSeconds).toBe(60);

    const options = result.warnings.map((w) => w.option);
    expect(options).toEqual([
      'IPv4_interface',
      'Checksum',
      'HashSize',
      'LogFile',
      'LockFile',
      'Path',
    ]);
    const checksum = lineOf(text, /^\s*Checksum on/);
    expect(warningAt(result, checksum)[0]!.message).toMatch(/^Checksum on needs no setting in ctsyncd: /);
    const lockFile = lineOf(text, /^\s*LockFile /);
    expect(formatImportWarning(FILE, warningAt(result, lockFile)[0]!)).toMatch(
      new RegExp(`^conntrackd\\.conf:${lockFile}: LockFile /var/lock/conntrack.lock is not supported by ctsyncd: `),
    );
    expectWarningsPointAtTheirOptions(text, result);
  });

  it('notrack converts to notrack', () => {
    const { text } = example('notrack');
    const { result, cfg } = convertValid(text);
    expect(cfg.sync!.mode).toBe('notrack');
    expect(cfg.sync!.multicast?.interface).toBe('eth2');
    expect(cfg.sync!.reliability.refreshIntervalMs).toBe(60000);
    expect(result.yaml).toMatch(new RegExp(`mode: notrack # line ${lineOf(text, /^\s*Mode NOTRACK/)}: Mode NOTRACK`));
    expectWarningsPointAtTheirOptions(text, result);
  });

  it('alarm becomes notrack with a periodic refresh of RefreshTime, and says so', () => {
    const { text } = example('alarm');
    const { result, cfg } = convertValid(text);
    expect(cfg.sync!.mode).toBe('notrack');
    expect(cfg.sync!.reliability.refreshIntervalMs).toBe(15000);
    const [alarm] = warningAt(result, lineOf(text, /^\s*Mode ALARM/));
    expect(alarm?.option).toBe('Mode');
    expect(alarm?.message).toMatch(/^Mode ALARM is not supported by ctsyncd: converted to mode notrack/);
    expect(alarm?.message).toContain('every 15 s');
    const [cacheTimeout] = warningAt(result, lineOf(text, /^\s*CacheTimeout/));
    expect(cacheTimeout?.message).toMatch(/^CacheTimeout 180 is not supported by ctsyncd: /);
    expectWarningsPointAtTheirOptions(text, result);
  });

  it.each(['ftfw', 'notrack', 'alarm'] as const)(
    '%s: the YAML says where it came from and what was dropped',
    (mode) => {
      const { text } = example(mode);
      const { yaml, warnings } = convert(text);
      expect(yaml).toMatch(/^# ctsyncd configuration converted by `ctsyncd import-conntrackd` from conntrackd\.conf\./);
      for (const w of warnings) expect(yaml).toContain(`#   line ${w.line}: ${w.message}`);
      expect(yaml).toMatch(
        new RegExp(`group: 225\\.0\\.0\\.50 # line ${lineOf(text, /^\s*IPv4_address 225/)}: IPv4_address`),
      );
      // The operators' own comments travel with the addresses.
      expect(yaml).toContain('- 127.0.0.1 # line');
      expect(yaml).toMatch(/- 127\.0\.0\.1 # line \d+: loopback/);
    },
  );
});

describe('mapping', () => {
  const FULL = y(
    'Sync {',
    '  Mode FTFW {',
    '    ResendQueueSize 65536',
    '    ACKWindowSize 300',
    '    PurgeTimeout 15',
    '    DisableExternalCache On',
    '    StartupResync on',
    '    CommitTimeout 180',
    '  }',
    '  UDP {',
    '    IPv4_address 10.99.1.1',
    '    IPv4_Destination_Address 10.99.1.2',
    '    Port 3781',
    '    Interface sync0',
    '    SndSocketBuffer 2097152',
    '    RcvSocketBuffer 2097152',
    '    Checksum off',
    '  }',
    '  UDP Default {',
    '    IPv4_address 10.99.2.1',
    '    IPv4_Destination_Address 10.99.2.2',
    '    Port 3780',
    '  }',
    '  Options {',
    '    TCPWindowTracking Off',
    '    ExpectationSync {',
    '      ftp',
    '      sip',
    '    }',
    '  }',
    '}',
    'General {',
    '  Systemd on',
    '  Nice -20',
    '  Scheduler {',
    '    Type FIFO',
    '    Priority 99',
    '  }',
    '  HashLimit 524288',
    '  NetlinkBufferSize 16777216',
    '  NetlinkEventsReliable Off',
    '  NetlinkOverrunResync off',
    '  PollSecs 15',
    '  EventIterationLimit 200',
    '  Syslog local0',
    '  UNIX { Path /run/conntrackd.ctl',
    '    Backlog 20 }',
    '  Filter From Kernelspace {',
    '    Protocol Ignore { ICMP IPv6-ICMP ESP }',
    '    Address Accept {',
    '      IPv4_address 10.0.0.0/8 # inside',
    '      IPv4_address 192.168.1.7/24',
    '      IPv4_address 172.16.0.1/32',
    '      IPv6_address 2001:db8::/32',
    '      IPv4_address 300.1.1.1',
    '    }',
    '    State Accept {',
    '      ESTABLISHED CLOSED TIME_WAIT for TCP',
    '      CLOSE_WAIT LISTEN for TCP',
    '      BOGUS for TCP',
    '    }',
    '  }',
    '}',
  );

  it('maps every option that has a ctsyncd key', () => {
    const { cfg } = convertValid(FULL);
    expect(cfg.sync!.mode).toBe('ftfw');
    expect(cfg.sync!.transport).toBe('udp');
    // The Default link is the main one; the other becomes a backup link, in file order.
    expect(cfg.sync!.udp).toEqual({
      bind: '10.99.2.1',
      port: 3780,
      peers: ['10.99.2.2'],
      sendBufferBytes: 4194304,
      receiveBufferBytes: 4194304,
    });
    expect(cfg.sync!.backupLinks).toEqual([
      {
        udp: {
          bind: '10.99.1.1',
          port: 3781,
          peers: ['10.99.1.2'],
          sendBufferBytes: 2097152,
          receiveBufferBytes: 2097152,
        },
      },
    ]);
    expect(cfg.sync!.reliability).toMatchObject({ resendQueueSize: 65536, ackWindow: 300 });
    expect(cfg.failover).toMatchObject({ purgeTimeoutSeconds: 15, inject: true });
    expect(cfg.cache).toEqual({ internalLimit: 524288, externalLimit: 524288 });
    expect(cfg.kernel.netlinkBufferBytes).toBe(16777216);
    expect(cfg.control.socket).toBe('/run/conntrackd.ctl');
    expect(cfg.filter.protocols).toEqual({ ignore: ['icmp', 'icmpv6'] });
    expect(cfg.filter.addresses).toEqual({ accept: ['10.0.0.0/8', '192.168.1.0/24', '172.16.0.1', '2001:db8::/32'] });
    expect(cfg.filter.tcpStates).toEqual({ accept: ['ESTABLISHED', 'CLOSE', 'TIME_WAIT', 'CLOSE_WAIT', 'SYN_SENT2'] });
    expect(cfg.filter.expectations).toEqual({ helpers: ['ftp', 'sip'] });
    expect(cfg.process.scheduler).toEqual({ policy: 'fifo', priority: 99 });
    expect(cfg.kernel.eventsReliable).toBe(false);
  });

  it('warns, naming the line, for everything it drops or changes', () => {
    const result = convert(FULL);
    const byLine = new Map(result.warnings.map((w) => [w.line, w]));
    const expectWarning = (re: RegExp, message: RegExp) => {
      const w = byLine.get(lineOf(FULL, re));
      expect(w, String(re)).toBeDefined();
      expect(w!.message).toMatch(message);
    };
    expectWarning(/StartupResync/, /^StartupResync on needs no setting in ctsyncd: /);
    expectWarning(/CommitTimeout/, /^CommitTimeout 180 is not supported by ctsyncd: /);
    expectWarning(/Interface sync0/, /^Interface sync0 needs no setting in ctsyncd: .*bind address/);
    expectWarning(/Checksum off/, /^Checksum off is not supported by ctsyncd: .*sync\.auth/);
    expectWarning(/TCPWindowTracking/, /^TCPWindowTracking Off needs no setting/);
    expectWarning(/Systemd/, /^Systemd on needs no setting in ctsyncd: .*Type=notify/);
    expectWarning(/Nice/, /^Nice -20 is not supported by ctsyncd: /);
    // Mapped, so not warned about.
    for (const re of [/ExpectationSync/, /Scheduler/, /Type FIFO/, /Priority 99/, /NetlinkEventsReliable/]) {
      expect(byLine.get(lineOf(FULL, re)), String(re)).toBeUndefined();
    }
    expectWarning(/NetlinkOverrunResync/, /^NetlinkOverrunResync off is not supported by ctsyncd: /);
    expectWarning(/PollSecs/, /^PollSecs 15 is not supported by ctsyncd: /);
    expectWarning(/EventIterationLimit/, /^EventIterationLimit 200 is not supported/);
    expectWarning(/Syslog/, /^Syslog local0 is not supported by ctsyncd: /);
    expectWarning(/Path \/run/, /control\.socket.*own protocol/);
    expectWarning(/Backlog/, /^Backlog 20 needs no setting/);
    expectWarning(/Kernelspace/, /^From Kernelspace needs no setting in ctsyncd: .*kernel\.filterEvents/);
    expectWarning(/IPv6-ICMP ESP/, /^ESP is not supported by ctsyncd's filter/);
    expectWarning(/192\.168\.1\.7/, /host bits set.*192\.168\.1\.0\/24/);
    expectWarning(/300\.1\.1\.1/, /is not an IPv4 address or prefix; skipped/);
    expectWarning(/LISTEN/, /SYN_SENT2/);
    expectWarning(/BOGUS/, /^BOGUS is not a conntrack TCP state/);
    // Nothing left that does not validate.
    expect(result.warnings.filter((w) => w.line === 0)).toEqual([]);
    // Mapped without a word: ResendQueueSize, ACKWindowSize, PurgeTimeout, DisableExternalCache, ports, addresses, HashLimit.
    for (const re of [
      /ResendQueueSize/,
      /ACKWindowSize/,
      /PurgeTimeout/,
      /DisableExternalCache/,
      /HashLimit/,
      /Port 3781/,
    ]) {
      expect(byLine.has(lineOf(FULL, re)), String(re)).toBe(false);
    }
  });

  it('converts a minimal file written in any case, values on the next line too', () => {
    const { result, cfg } = convertValid(y('sync { mode notrack { } multicast {', 'interface', '  eth1 } }'));
    expect(cfg.sync!.mode).toBe('notrack');
    expect(cfg.sync!.multicast?.interface).toBe('eth1');
    // No IPv4_address or Group: ctsyncd's defaults, with a warning each.
    expect(cfg.sync!.multicast?.group).toBe('225.0.0.50');
    expect(result.warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/has no IPv4_address: ctsyncd's default group 225\.0\.0\.50 is used/),
      expect.stringMatching(/has no Group \(the port\): ctsyncd's default port 3780 is used/),
    ]);
  });

  it('takes an IPv6 link, with the IPv6 MTU', () => {
    const { cfg } = convertValid(
      y(
        'Sync {',
        ' Mode FTFW { }',
        ' Multicast {',
        '  IPv6_address ff02::1:3',
        '  Group 3780',
        '  Interface eth2',
        ' }',
        '}',
      ),
    );
    expect(cfg.sync!.multicast?.group).toBe('ff02::1:3');
    expect(cfg.sync!.mtu).toBe(1452);
  });

  it('sends redundant multicast links to backupLinks and starts on the last Default one', () => {
    const link = (group: string, iface: string, def = '') => [
      ` Multicast ${def}{`,
      `  IPv4_address ${group}`,
      '  Group 3780',
      `  Interface ${iface}`,
      ' }',
    ];
    const { cfg } = convertValid(
      y(
        'Sync {',
        ' Mode FTFW { }',
        ...link('225.0.0.50', 'eth2'),
        ...link('225.0.0.51', 'eth3', 'Default '),
        ...link('225.0.0.52', 'eth4'),
        '}',
      ),
    );
    expect(cfg.sync!.multicast?.interface).toBe('eth3');
    expect(cfg.sync!.backupLinks.map((l) => ('multicast' in l ? l.multicast.interface : ''))).toEqual(['eth2', 'eth4']);
  });

  it('converts a TCP link to udp, with a warning', () => {
    const text = y(
      'Sync {',
      ' Mode NOTRACK { }',
      ' TCP {',
      '  IPv4_address 10.0.0.1',
      '  IPv4_Destination_Address 10.0.0.2',
      '  Port 3780',
      '  ErrorQueueLength 128',
      ' }',
      '}',
    );
    const { result, cfg } = convertValid(text);
    expect(cfg.sync!.transport).toBe('udp');
    expect(cfg.sync!.udp?.peers).toEqual(['10.0.0.2']);
    expect(warningAt(result, 3)[0]?.message).toMatch(/^TCP is not supported by ctsyncd: converted to transport udp/);
    expect(warningAt(result, 7)[0]?.message).toMatch(/^ErrorQueueLength 128 is not supported by ctsyncd/);
  });

  it('keeps the last of a repeated option, as conntrackd does, and warns at the overridden one', () => {
    const { result, cfg } = convertValid(
      y(
        'Sync { Mode FTFW { } Multicast { Interface eth2 } }',
        'General {',
        '  HashLimit 1000',
        '  HashLimit 2000',
        '}',
      ),
    );
    expect(cfg.cache.internalLimit).toBe(2000);
    expect(warningAt(result, 3)[0]?.message).toBe(
      'HashLimit 1000 is overridden by HashLimit 2000 on line 4, as in conntrackd',
    );
  });

  it('clamps values outside the range ctsyncd accepts, with a warning', () => {
    const { result, cfg } = convertValid(
      y(
        'Sync {',
        ' Mode FTFW { ResendQueueSize 10',
        '   PurgeTimeout 0 }',
        ' Multicast { Interface eth2',
        '   SndSocketBuffer 2147483648 }',
        '}',
      ),
    );
    expect(cfg.sync!.reliability.resendQueueSize).toBe(256);
    expect(cfg.failover.purgeTimeoutSeconds).toBe(1);
    expect(cfg.sync!.multicast?.sendBufferBytes).toBe(1073741824);
    expect(warningAt(result, 2)[0]?.message).toMatch(
      /outside ctsyncd's range for sync\.reliability\.resendQueueSize \(256\.\./,
    );
    expect(warningAt(result, 3)[0]?.message).toMatch(/PurgeTimeout 0 is outside .* 1 is used/);
    expect(warningAt(result, 5)[0]?.message).toMatch(/sync\.multicast\.sendBufferBytes/);

    const alarm = convertValid(y(`Sync { Mode ALARM { RefreshTime 0 } ${MCAST} }`));
    expect(alarm.cfg.sync!.reliability.refreshIntervalMs).toBe(1000);
    expect(alarm.result.warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/^RefreshTime 0 is outside ctsyncd's range for sync\.reliability\.refreshIntervalMs/),
      expect.stringMatching(/^Mode ALARM is not supported by ctsyncd: .* every 1 s /),
    ]);
  });

  it('NetlinkBufferSize is the start, NetlinkBufferSizeMaxGrowth the cap of the growth; a start above the cap is lowered', () => {
    const base = `Sync { Mode FTFW { } ${MCAST} }`;
    const alone = convertValid(y(base, 'General { NetlinkBufferSize 2097152 }'));
    expect(alone.cfg.kernel.netlinkBufferBytes).toBe(2097152);
    expect(alone.cfg.kernel.netlinkBufferMaxBytes).toBe(268435456);
    expect(alone.result.warnings).toEqual([]);
    const both = convertValid(
      y(base, 'General {', ' NetlinkBufferSize 2097152', ' NetlinkBufferSizeMaxGrowth 67108864', '}'),
    );
    expect(both.cfg.kernel).toMatchObject({ netlinkBufferBytes: 2097152, netlinkBufferMaxBytes: 67108864 });
    expect(both.result.warnings).toEqual([]);
    const above = convertValid(
      y(base, 'General {', ' NetlinkBufferSize 67108864', ' NetlinkBufferSizeMaxGrowth 2097152', '}'),
    );
    expect(above.cfg.kernel).toMatchObject({ netlinkBufferBytes: 2097152, netlinkBufferMaxBytes: 2097152 });
    expect(warningAt(above.result, 3)[0]?.message).toMatch(/conntrackd ignores it for; kernel\.netlinkBufferBytes starts at the cap/);
    const capOnly = convertValid(y(base, 'General { NetlinkBufferSizeMaxGrowth 4194304 }'));
    expect(capOnly.cfg.kernel).toMatchObject({ netlinkBufferBytes: 4194304, netlinkBufferMaxBytes: 4194304 });
  });

  it('NetlinkEventsReliable maps to kernel.eventsReliable', () => {
    const base = `Sync { Mode FTFW { } ${MCAST} }`;
    for (const [word, value] of [['On', true], ['off', false]] as const) {
      const r = convertValid(y(base, `General { NetlinkEventsReliable ${word} }`));
      expect(r.cfg.kernel.eventsReliable).toBe(value);
      expect(r.result.warnings).toEqual([]);
    }
  });

  it('ExpectationSync: on is all, off none, a list its helpers; without it none, as conntrackd', () => {
    const opt = (o: string) => `Sync { Mode FTFW { } ${MCAST} Options { ${o} } }`;
    expect(convertValid(y(opt('ExpectationSync on'))).cfg.filter.expectations).toBe('all');
    expect(convertValid(y(opt('ExpectationSync off'))).cfg.filter.expectations).toBe('none');
    expect(convertValid(y(opt('ExpectationSync { ftp sip h323 }'))).cfg.filter.expectations).toEqual({
      helpers: ['ftp', 'sip', 'h323'],
    });
    expect(convertValid(y(`Sync { Mode FTFW { } ${MCAST} }`)).cfg.filter.expectations).toBe('none');
    const empty = convertValid(y(opt('ExpectationSync { }')));
    expect(empty.cfg.filter.expectations).toBe('none');
    expect(empty.result.warnings[0]?.message).toMatch(/lists no helper/);
  });

  it('Scheduler as conntrackd applies it: Type and Priority; no Type is RR 99; no priority the normal policy', () => {
    const base = `Sync { Mode FTFW { } ${MCAST} }`;
    const sch = (body: string) => convertValid(y(base, `General { Scheduler { ${body} } }`));
    const rr = sch('Type RR Priority 50');
    expect(rr.cfg.process.scheduler).toEqual({ policy: 'rr', priority: 50 });
    expect(rr.result.warnings).toEqual([]);
    const noType = sch('Priority 10');
    expect(noType.cfg.process.scheduler).toEqual({ policy: 'rr', priority: 99 });
    expect(noType.result.warnings[0]?.message).toMatch(/no Type: conntrackd then uses SCHED_RR at priority 99, not Priority 10/);
    const noPrio = sch('Type FIFO');
    expect(noPrio.cfg.process.scheduler).toEqual({ policy: 'other', priority: 0 });
    expect(noPrio.result.warnings[0]?.message).toMatch(/the kernel refuses it/);
    expect(() => convert(y(base, 'General { Scheduler { Type IDLE } }'))).toThrow(/unknown scheduler 'IDLE'/);
  });

  it('ALARM without RefreshTime refreshes every 60 s; RefreshTime elsewhere is only warned about', () => {
    const alarm = convertValid(y('Sync { Mode ALARM { } Multicast { Interface eth2 } }'));
    expect(alarm.cfg.sync!.reliability.refreshIntervalMs).toBe(60000);
    expect(alarm.result.warnings[0]?.message).toMatch(/every 60 s .*ALARM's default RefreshTime/);
    const ftfw = convertValid(y('Sync {', ' RefreshTime 5', ' Mode FTFW { }', ' Multicast { Interface eth2 }', '}'));
    expect(ftfw.cfg.sync!.reliability.refreshIntervalMs).toBe(60000);
    expect(warningAt(ftfw.result, 2)[0]?.message).toMatch(
      /^RefreshTime 5 is not supported by ctsyncd: .*only in Mode ALARM/,
    );
  });

  it('assumes FTFW without a Mode, as conntrackd does', () => {
    const { result, cfg } = convertValid(y('Sync {', ' Multicast { Interface eth2 }', '}'));
    expect(cfg.sync!.mode).toBe('ftfw');
    expect(warningAt(result, 1)[0]?.message).toMatch(/^Sync has no Mode; conntrackd then uses FTFW/);
  });

  it('skips options and sections it does not know, with their blocks', () => {
    const { result, cfg } = convertValid(
      y(
        'Sync {',
        ' Mode FTFW { FutureOption 1 2 3 }',
        ` ${MCAST}`,
        ' NewBlock with words {',
        '   Nested { deeper { } }',
        ' }',
        '}',
        'Stats { LogFile on FutureStat 1 }',
        'Helper {',
        ' Type ftp inet tcp { QueueNum 0 }',
        '}',
        'Frobnicate yes',
      ),
    );
    expect(cfg.sync!.mode).toBe('ftfw');
    // Stats beside Sync: a flow log beside sync.
    expect(cfg.flowlog?.file?.path).toBe('/var/log/ctsyncd/flows.jsonl');
    expect(result.warnings.map((w) => [w.line, w.option])).toEqual([
      [2, 'FutureOption'],
      [4, 'NewBlock'],
      [8, 'FutureStat'],
      [9, 'Helper'],
      [12, 'Frobnicate'],
    ]);
    expect(result.warnings[0]!.message).toBe(
      'FutureOption is not a conntrackd.conf option this importer knows in Mode FTFW; skipped',
    );
  });

  it('still converts a config that needs a hand edit, and says which key', () => {
    const text = y(
      'Sync {',
      ' Mode FTFW { }',
      ' Multicast {',
      '  IPv4_address 225.0.0.50',
      '  Group 3780',
      '  IPv4_interface 10.0.0.1',
      ' }',
      '}',
    );
    const result = convert(text);
    expect(warningAt(result, 6)[0]?.message).toMatch(
      /needs the interface by name .* set sync\.multicast\.interface to the interface that holds 10\.0\.0\.1/,
    );
    const invalid = warningAt(result, 0);
    expect(invalid.map((w) => w.message)).toEqual([
      expect.stringMatching(/^the result does not pass check-config yet: sync\.multicast\.interface required/),
    ]);
    expect(() => parseConfig(result.yaml, 'x.yaml')).toThrow(/sync\.multicast\.interface/);
    expect(formatImportWarning(FILE, invalid[0]!)).toMatch(/^conntrackd\.conf: the result does not pass/);
  });

  it('warns about an accept list left with nothing ctsyncd knows, and drops it', () => {
    const { result, cfg } = convertValid(
      y('Sync { Mode FTFW { } Multicast { Interface eth2 } }', 'General { Filter { Protocol Accept { ESP AH } } }'),
    );
    expect(cfg.filter.protocols).toEqual({ ignore: [] });
    expect(result.warnings.map((w) => w.message)).toContainEqual(
      expect.stringMatching(/empty accept list would sync nothing/),
    );
  });

  it('merges repeated filter blocks with the logic of the last, as conntrackd does', () => {
    const text = y(
      'Sync { Mode FTFW { } Multicast { Interface eth2 } }',
      'General { Filter {',
      ' Protocol Accept { TCP }',
      ' Protocol Ignore { UDP }',
      '} }',
    );
    const { result, cfg } = convertValid(text);
    expect(cfg.filter.protocols).toEqual({ ignore: ['tcp', 'udp'] });
    expect(warningAt(result, 4)[0]?.message).toMatch(/applies the last block's Ignore/);
  });
});

describe('input it cannot convert', () => {
  it.each([
    ['an unclosed block', y('Sync {', ' Mode FTFW {', ' }'), 1, /the \{ of Sync \(line 1\) is never closed/],
    ['a stray }', y('General {', '}', '}'), 3, /unexpected \} outside any section/],
    ['a stray {', y('Sync {', '  { }', '}'), 2, /unexpected \{/],
    ['a number that is none', y('General {', '  HashLimit lots', '}'), 2, /HashLimit needs a number, got 'lots'/],
    ['a missing value', y('General {', '  HashLimit', '}'), 3, /HashLimit needs a number, got '\}'/],
    ['a value at the end of the file', 'General { HashLimit', 1, /HashLimit needs a number before the end of the file/],
    ['an unknown mode', y('Sync {', '  Mode FAST { }', '}'), 2, /unknown Mode 'FAST'/],
    ['a Mode without its block', y('Sync {', '  Mode FTFW', '}'), 3, /expected \{ after FTFW, got '\}'/],
    ['on/off that is neither', y('Sync { Mode FTFW {', '  DisableExternalCache maybe } }'), 2, /takes on or off/],
    [
      'states without for TCP',
      y('General { Filter { State Accept {', ' ESTABLISHED', '} } }'),
      2,
      /expected 'for TCP'/,
    ],
    ['states for UDP', y('General { Filter { State Accept {', ' ESTABLISHED for UDP', '} } }'), 2, /TCP only/],
    ['bad Filter From', y('General {', ' Filter From Somewhere { }', '}'), 2, /Userspace or Kernelspace/],
    [
      'mixed link types',
      y('Sync {', ' Multicast { Interface eth2 }', ' UDP { IPv4_address 10.0.0.1 }', '}'),
      3,
      /UDP cannot be mixed with Multicast \(line 2\)/,
    ],
    [
      'five links',
      y('Sync {', ...Array.from({ length: 5 }, (_, i) => ` Multicast { Interface eth${i} }`), '}'),
      6,
      /at most 4 dedicated links/,
    ],
  ])('%s: error names the line', (_what, text, line, message) => {
    const err = conversionError(text);
    expect(err).toBeInstanceOf(ConntrackdConfError);
    expect(err.line).toBe(line);
    expect(err.file).toBe(FILE);
    expect(err.message).toMatch(new RegExp(`^conntrackd\\.conf:${line}:\\d+: `));
    expect(err.message).toMatch(message);
  });

  it("converts Debian's Stats example to a flow log without sync (conntrackd's Stats mode)", () => {
    const { text } = example('stats');
    const { result, cfg } = convertValid(text);
    expect(cfg.sync).toBeUndefined();
    expect(cfg.cluster).toBeUndefined();
    expect(cfg.flowlog).toMatchObject({ events: ['destroy'], file: { path: '/var/log/ctsyncd/flows.jsonl' } });
    // General's Filter carries over: it decides what is logged too.
    expect(cfg.filter.protocols).toEqual({ accept: ['tcp'] });
    expect(cfg.filter.addresses).toEqual({ ignore: ['127.0.0.1'] });
    expect(result.warnings.every((w) => w.line > 0)).toBe(true);
    expect(result.yaml).toContain(`# line ${lineOf(text, /^\s*LogFile on/)}: LogFile on; one JSON object per line`);
  });

  it('Stats: a LogFile name is kept, Syslog becomes flowlog.syslog, a missing LogFile is reported', () => {
    const named = convertValid(y('Stats {', ' LogFile /var/log/nat.jsonl', ' Syslog on', ' NetlinkEventsReliable on', '}'));
    expect(named.cfg.flowlog?.file?.path).toBe('/var/log/nat.jsonl');
    // conntrackd's Syslog on: LOG_DAEMON.
    expect(named.cfg.flowlog?.syslog).toEqual({ facility: 'daemon', path: '/dev/log', appName: 'ctsyncd' });
    expect(named.cfg.kernel.eventsReliable).toBe(true);
    expect(named.result.warnings).toEqual([]);
    expect(named.result.yaml).toMatch(/# line 3: Syslog on; RFC 5424 messages to \/dev\/log/);
    // Syslog alone: no file, no warning about one.
    const syslogOnly = convertValid(y('Stats {', ' Syslog local4', '}'));
    expect(syslogOnly.cfg.flowlog?.syslog?.facility).toBe('local4');
    expect(syslogOnly.cfg.flowlog?.file).toBeUndefined();
    expect(syslogOnly.result.warnings).toEqual([]);
    const offAndUnknown = convertValid(y('Stats {', ' LogFile on', ' Syslog off', '}'));
    expect(offAndUnknown.cfg.flowlog?.syslog).toBeUndefined();
    const unknown = convertValid(y('Stats {', ' LogFile on', ' Syslog local9', '}'));
    expect(unknown.cfg.flowlog?.syslog).toBeUndefined();
    expect(unknown.result.warnings.map((w) => [w.line, w.option, w.message])).toEqual([[3, 'Syslog', expect.stringMatching(/local9 is not supported.*expected on, off or a facility/)]]);
    const none = convertValid(y('Stats {', '}'));
    expect(none.cfg.flowlog?.file?.path).toBe('/var/log/ctsyncd/flows.jsonl');
    expect(none.result.warnings.map((w) => [w.line, w.option])).toEqual([[1, 'LogFile']]);
  });

  it('keeps control characters in comments and the file name out of the YAML structure', () => {
    const text = y(
      `Sync { Mode FTFW { } ${MCAST} }`,
      'General { Filter { Address Ignore {',
      ' IPv4_address 10.0.0.1 # a\rb: c\u2028d',
      '} } }',
    );
    const result = importConntrackdConf(text, { file: 'x\ny: 1', nodeId: 'fw1' });
    const cfg = parseConfig(result.yaml, 'x.yaml');
    expect(cfg.filter.addresses).toEqual({ ignore: ['10.0.0.1'] });
    expect(result.yaml).toContain('- 10.0.0.1 # line 3: a?b: c?d');
  });

  it('an empty file has no Sync or Stats section', () => {
    const err = conversionError('# nothing\n');
    expect(err.line).toBe(0);
    expect(err.message).toBe('conntrackd.conf: no Sync or Stats section: nothing to convert');
    expect(conversionError('General { HashLimit 10 }\n').line).toBe(0);
  });

  /** Words that steer the parser into every section, so garbage gets deep. */
  const WORDS = [
    'Sync',
    'General',
    'Mode',
    'FTFW',
    'ALARM',
    'NOTRACK',
    'Multicast',
    'UDP',
    'TCP',
    'Default',
    'Options',
    'Filter',
    'From',
    'Kernelspace',
    'Protocol',
    'Address',
    'State',
    'Accept',
    'Ignore',
    'for',
    'IPv4_address',
    'IPv6_address',
    'IPv4_Destination_Address',
    'Interface',
    'Group',
    'Port',
    'HashLimit',
    'UNIX',
    'Path',
    'RefreshTime',
    'ExpectationSync',
    'on',
    'off',
    '{',
    '}',
    '#',
    '3780',
    '0',
    '99999999999',
    '225.0.0.50',
    '10.0.0.1/33',
    '::1',
    'eth0',
    '/run/x',
    'ESTABLISHED',
    'LISTEN',
    'constructor',
    '__proto__',
    '\n',
    ' ',
    '\r',
    '\u2028',
    '\u0085',
    '\u0000',
    '# a\rb: c',
  ];

  it('never throws anything but ConntrackdConfError, and what it converts is YAML the daemon judges', () => {
    const check = (text: string) => {
      let result: ImportResult;
      try {
        result = convert(text);
      } catch (err) {
        if (isConntrackdConfError(err)) return;
        throw err;
      }
      expect(parseDocument(result.yaml).errors).toEqual([]);
      let valid = true;
      try {
        parseConfig(result.yaml, 'fuzz.yaml');
      } catch (err) {
        if (!isConfigError(err)) throw err;
        valid = false;
      }
      // Line 0 warnings are exactly the validation failures.
      expect(result.warnings.some((w) => w.line === 0)).toBe(!valid);
    };
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...WORDS), { maxLength: 80 }), (words) => check(words.join(' '))),
      { numRuns: runs(3000) },
    );
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), check), { numRuns: runs(1000) });
    // Deep nesting is skipped without recursion.
    check(`Sync { Multicast { Interface eth2 } X ${'{'.repeat(100_000)}${'}'.repeat(100_000)} }`);
  });
});

describe('node id from the host name', () => {
  it.each([
    ['fw1', 'fw1'],
    ['fw1.example.com', 'fw1'],
    ['FW-2_b', 'FW-2_b'],
    ['localhost', undefined],
    ['localhost.localdomain', undefined],
    ['', undefined],
    ['bad host', undefined],
    ['x'.repeat(65), undefined],
  ])('%j → %j', (host, id) => {
    expect(nodeIdFromHostname(host)).toBe(id);
  });
});

describe('ctsyncd import-conntrackd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-import-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], hostname = 'fw1.example.com') => {
    const out: string[] = [];
    const err: string[] = [];
    const code = importConntrackdCommand(
      args,
      { out: (t) => out.push(t), err: (t) => err.push(t) },
      { hostname: () => hostname },
    );
    return { code, out: out.join(''), err: err.join('\n') };
  };

  it('writes --output, warnings on stderr as FILE:LINE:, and the result loads', () => {
    const { path, text } = example('ftfw');
    const output = join(dir, 'ftfw.yaml');
    const r = run([path, '--output', output]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/with 6 warnings; check it with: ctsyncd check-config/);
    const stderr = r.err.split('\n');
    expect(stderr).toHaveLength(6);
    expect(stderr).toContain(
      `${path}:${lineOf(text, /^\s*Checksum on/)}: Checksum on needs no setting in ctsyncd: its sync datagrams always carry UDP checksums; dropped`,
    );
    const cfg = loadConfig(output);
    expect(cfg.node.id).toBe('fw1');
    expect(readFileSync(output, 'utf8')).toContain(
      'This one is the short name of the host it was converted on (fw1.example.com).',
    );
  });

  it('prints to stdout by default, takes --node-id= and --cluster-id, reads gzip and stdin names', () => {
    const gz = join(dir, 'conntrackd.conf.gz');
    writeFileSync(gz, gzipSync(example('notrack').text));
    const r = run([gz, '--node-id=fw-b', '--cluster-id', '42']);
    expect(r.code).toBe(0);
    const cfg = parseConfig(r.out, 'stdout.yaml');
    expect(cfg.node.id).toBe('fw-b');
    expect(cfg.cluster!.id).toBe(42);
    expect(cfg.sync!.mode).toBe('notrack');
  });

  it.each([
    [[], /needs the conntrackd\.conf FILE/],
    [['a', 'b'], /takes one FILE, got 'a' and 'b'/],
    [['a', '--frob'], /unknown option --frob/],
    [['a', '--output'], /--output needs a value/],
    [['a', '--node-id', 'no spaces'], /--node-id takes 1-64 characters/],
    [['a', '--cluster-id', '-1'], /--cluster-id takes 0\.\.4294967295/],
    [['a', '--cluster-id=4294967296'], /--cluster-id takes/],
  ])('%j is a usage error', (args, message) => {
    const r = run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  it('needs --node-id when the host name makes no id', () => {
    const r = run([example('ftfw').path], 'localhost');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot make a node id from the host name 'localhost': give --node-id ID/);
  });

  it('exits 1 for a file it cannot read or parse, naming FILE:LINE', () => {
    expect(run([join(dir, 'missing.conf')])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/cannot read .*missing\.conf/),
    });
    const bad = join(dir, 'bad.conf');
    writeFileSync(bad, 'Sync {\n  Mode FTFW {\n}\n');
    expect(run([bad])).toEqual({ code: 1, out: '', err: `${bad}:1:6: the { of Sync (line 1) is never closed` });
    const output = join(dir, 'no-such-dir', 'x.yaml');
    expect(run([example('ftfw').path, '-o', output]).code).toBe(1);
  });

  it('is wired into the CLI, with its own options and help', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
    const output = join(dir, 'via-main.yaml');
    expect(await main(['import-conntrackd', example('alarm').path, '--node-id', 'fw2', '-o', output], io)).toBe(0);
    expect(loadConfig(output).sync?.mode).toBe('notrack');
    expect(err.join('\n')).toMatch(/Mode ALARM is not supported by ctsyncd: converted to mode notrack/);
    out.length = 0;
    expect(await main(['import-conntrackd', '--help'], io)).toBe(0);
    expect(out.join('')).toMatch(/^Usage: ctsyncd import-conntrackd FILE \[--output OUT\]/);
    out.length = 0;
    expect(await main(['--help'], io)).toBe(0);
    expect(out.join('')).toContain('import-conntrackd FILE');
  });
});
