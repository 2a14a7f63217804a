// The flow log's syslog output (issue 16): the RFC 5424 message, the drops
// a busy or missing syslog socket costs, the config, and a daemon whose flow
// log goes only to syslog and IPFIX (no file), on the FakeKernel.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseConfig, SYSLOG_FACILITIES } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon.js';
import { type DatagramSender, type FlowRecord, SyslogSink, syslogMessage, type UnixDatagramPort } from '../../src/flowlog/index.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { type Logger, silentLogger } from '../../src/log.js';

const T = Date.UTC(2026, 11, 7, 2, 0, 0, 123);
const { EAGAIN, ENOENT } = constants.errno;

/** A syslog socket that takes what it is given, or answers with the errnos queued for it. */
class FakePort implements UnixDatagramPort {
  readonly got: { path: string; text: string }[] = [];
  readonly answers: number[] = [];
  closed = false;
  sendTo(path: string, data: Buffer, offset: number, length: number): number {
    const errno = this.answers.shift() ?? 0;
    if (errno === 0) this.got.push({ path, text: data.subarray(offset, offset + length).toString('utf8') });
    return errno;
  }
  close(): void {
    this.closed = true;
  }
}

class RecordingLogger {
  readonly lines: string[] = [];
  readonly logger: Logger = {
    ...silentLogger,
    warn: (msg: string) => void this.lines.push(msg),
    info: (msg: string) => void this.lines.push(msg),
  };
}

const entry: ConntrackEntry = {
  family: AF_INET,
  orig: { src: '10.99.1.5', dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 50005, dport: 443 },
  reply: { src: '198.51.100.9', dst: '203.0.113.7', proto: IPPROTO.TCP, sport: 443, dport: 40005 },
  status: IPS.SEEN_REPLY | IPS.SRC_NAT,
};

describe('the syslog message (RFC 5424)', () => {
  it('PRI from facility and severity info, version 1, time, host, app, pid, the event as MSGID, no structured data, the record', () => {
    const o = { facility: SYSLOG_FACILITIES.local4, appName: 'ctsyncd', hostname: 'fw1.example', pid: 4242 };
    // local4 = 20: 20 × 8 + 6 = 166.
    expect(syslogMessage(o, 'destroy', '{"a":1}', T)).toBe('<166>1 2026-12-07T02:00:00.123Z fw1.example ctsyncd 4242 destroy - {"a":1}');
    expect(syslogMessage({ ...o, facility: SYSLOG_FACILITIES.daemon }, 'new', '{}', T)).toMatch(/^<30>1 /);
  });

  it('header fields: spaces and non-ASCII removed, a missing host is "-"', () => {
    expect(syslogMessage({ facility: 1, appName: 'ct syncd', hostname: '', pid: 1 }, 'new', '{}', T)).toBe('<14>1 2026-12-07T02:00:00.123Z - ctsyncd 1 new - {}');
  });
});

describe('SyslogSink', () => {
  const sink = (port: FakePort, log = silentLogger) =>
    new SyslogSink({ port, path: '/run/test/log', facility: 3, appName: 'ctsyncd', hostname: 'fw1', pid: 7, log });

  it('one datagram per record, the line formatted once', () => {
    const port = new FakePort();
    const s = sink(port);
    let formatted = 0;
    s.write('new', entry, () => (formatted++, '{"n":1}'), T);
    s.write('destroy', entry, () => '{"n":2}', T + 1);
    expect(port.got).toEqual([
      { path: '/run/test/log', text: '<30>1 2026-12-07T02:00:00.123Z fw1 ctsyncd 7 new - {"n":1}' },
      { path: '/run/test/log', text: '<30>1 2026-12-07T02:00:00.124Z fw1 ctsyncd 7 destroy - {"n":2}' },
    ]);
    expect(formatted).toBe(1);
    expect(s.counters).toEqual({ sent: 2, unsent: 0, busy: 0 });
  });

  it('a full receiver (EAGAIN) or a missing one (ENOENT): dropped and counted, one warning per change', () => {
    const port = new FakePort();
    const log = new RecordingLogger();
    const s = sink(port, log.logger);
    port.answers.push(EAGAIN, EAGAIN, ENOENT, 0);
    for (let i = 0; i < 5; i++) s.write('new', entry, () => `{"n":${i}}`, T);
    expect(s.counters).toEqual({ sent: 2, unsent: 3, busy: 2 });
    expect(port.got.map((g) => g.text.slice(-7))).toEqual(['{"n":3}', '{"n":4}']);
    expect(log.lines).toEqual([
      'syslog socket refused a flow record; records are counted unsent',
      'syslog socket refused a flow record; records are counted unsent',
      'syslog socket takes flow records again',
    ]);
  });

  it('a message longer than 8 KiB is dropped whole, never cut', () => {
    const port = new FakePort();
    const s = sink(port);
    s.write('new', entry, () => `{"x":"${'a'.repeat(9000)}"}`, T);
    expect(port.got).toEqual([]);
    expect(s.counters.unsent).toBe(1);
  });
});

describe('flowlog.syslog in the config', () => {
  const parse = (flowlog: string) => parseConfig(`node: { id: fw1 }\nflowlog: ${flowlog}\n`, 'sl.yaml');
  it("defaults: facility daemon (conntrackd's Syslog on), /dev/log, app ctsyncd", () => {
    expect(parse('{ syslog: {} }').flowlog?.syslog).toEqual({ facility: 'daemon', path: '/dev/log', appName: 'ctsyncd' });
  });
  it.each([
    ['{ facility: local9 }', /flowlog\.syslog\.facility/],
    ['{ path: dev/log }', /flowlog\.syslog\.path.*absolute path/],
    ['{ appName: "ct syncd" }', /flowlog\.syslog\.appName.*APP-NAME/],
  ])('refuses %s', (syslog, error) => {
    expect(() => parse(`{ syslog: ${syslog} }`)).toThrow(error);
  });
});

class FakeSender implements DatagramSender {
  readonly sent: Buffer[] = [];
  send(msg: Buffer, done: (err: Error | null) => void): void {
    this.sent.push(msg);
    queueMicrotask(() => done(null));
  }
  async close(): Promise<void> {}
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('Daemon with a flow log to syslog and IPFIX only', () => {
  it('each record goes to both; the stats count them per output; no file is opened', async () => {
    const port = new FakePort();
    const sender = new FakeSender();
    const yaml = [
      'node: { id: fw1 }',
      'flowlog:',
      '  events: [new, destroy]',
      '  syslog: { facility: local4, path: /run/test/log }',
      '  ipfix: { collector: "192.0.2.10:4739" }',
      '',
    ].join('\n');
    const kernel = new FakeKernel();
    const d = new Daemon(parseConfig(yaml, 'sl.yaml'), {
      kernelTransport: kernel.openSocket,
      noControl: true,
      noMetrics: true,
      localAddresses: [],
      stateDir: '/nonexistent-unused',
      epochs: { take: () => 1 },
      syslogPort: port,
      ipfixSender: sender,
    });
    await d.start();
    await until(() => d.ready, 'ready');
    kernel.packetNew(entry);
    kernel.expire(entry);
    await until(() => (d.statsSnapshot().flowlog.syslog?.sent ?? 0) >= 2 && (d.statsSnapshot().flowlog.ipfix?.records ?? 0) >= 2, 'both outputs');
    const stats = d.statsSnapshot().flowlog;
    await d.stop();
    expect(port.got.map((g) => g.text.split(' ').slice(0, 1).concat(g.text.split(' ')[5]!))).toEqual([
      ['<166>1', 'new'],
      ['<166>1', 'destroy'],
    ]);
    const rec = JSON.parse(port.got[0]!.text.slice(port.got[0]!.text.indexOf(' - ') + 3)) as FlowRecord;
    expect(rec).toMatchObject({ event: 'new', nat: { src: '203.0.113.7', sport: 40005 } });
    expect(stats).toMatchObject({
      logged: 2,
      dropped: 0,
      syslog: { path: '/run/test/log', sent: 2, unsent: 0 },
      ipfix: { collector: '192.0.2.10:4739', records: 2, unsent: 0 },
    });
    expect(stats.file).toBeUndefined();
    expect(port.closed).toBe(true);
  });
});
