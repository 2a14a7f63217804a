// ChannelSet on fake channels with scripted link states and a hand-cranked
// link timer, plus the real channels' behaviour that needs no namespace.
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  ChannelError,
  type ChannelLog,
  type DatagramListener,
  type DatagramSource,
  type LinkState,
  type SendErrorListener,
  type SyncChannel,
} from '../../src/sync/transport/channel.js';
import { type ActiveChangeInfo, type ActiveChangeReason, ChannelSet } from '../../src/sync/transport/channel-set.js';
import { createChannels } from '../../src/sync/transport/channel-factory.js';
import { MulticastChannel } from '../../src/sync/transport/multicast-channel.js';
import { UdpChannel } from '../../src/sync/transport/udp-channel.js';
import { LoopChannel } from './doubles.js';

class FakeChannel implements SyncChannel {
  readonly kind = 'udp' as const;
  readonly counters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendErrors: 0,
    receiveErrors: 0,
  };
  readonly sent: string[] = [];
  started = false;
  closed = false;
  failStart: Error | undefined;
  linkUp = true;
  private readonly datagramListeners: DatagramListener[] = [];
  private readonly sendErrorListeners: SendErrorListener[] = [];

  readonly interfaceName: string | undefined;

  /** `iface` null: a channel that does not know its link. */
  constructor(
    readonly name: string,
    iface: string | null = name,
  ) {
    this.interfaceName = iface ?? undefined;
  }

  async start(): Promise<void> {
    if (this.failStart) throw this.failStart;
    this.started = true;
  }

  send(datagram: Buffer): void {
    this.sent.push(datagram.toString());
    this.counters.datagramsSent++;
  }

  onDatagram(cb: DatagramListener): void {
    this.datagramListeners.push(cb);
  }

  onSendError(cb: SendErrorListener): void {
    this.sendErrorListeners.push(cb);
  }

  isLinkUp(): boolean {
    return this.linkUp;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  receive(data: string, from: DatagramSource = { address: '10.99.0.2', port: 3780 }): void {
    this.counters.datagramsReceived++;
    for (const cb of this.datagramListeners) cb(Buffer.from(data), from);
  }

  failSend(code: string): void {
    this.failSendWith(Object.assign(new Error(`send ${code}`), { code }));
  }

  failSendWith(err: NodeJS.ErrnoException): void {
    this.counters.sendErrors++;
    for (const cb of this.sendErrorListeners) cb(err);
  }
}

interface Harness {
  set: ChannelSet;
  chans: FakeChannel[];
  links: Map<string, LinkState>;
  changes: Array<{ name: string; reason: ActiveChangeReason; info: ActiveChangeInfo }>;
  logs: Array<{ level: string; msg: string; ctx?: Record<string, unknown> | undefined }>;
  tick(): void;
  advance(ms: number): void;
  timerStopped(): boolean;
}

function harness(names: string[], opts: { intervalMs?: number } = {}): Harness {
  const chans = names.map((n) => new FakeChannel(n));
  const links = new Map<string, LinkState>();
  const changes: Harness['changes'] = [];
  const logs: Harness['logs'] = [];
  let timerFn: (() => void) | undefined;
  let stopped = false;
  let now = 0;
  const log: ChannelLog = (level, msg, ctx) => logs.push({ level, msg, ctx });
  const set = new ChannelSet(chans, {
    checkIntervalMs: opts.intervalMs ?? 1000,
    readLinkState: (ifname) => links.get(ifname) ?? 'up',
    schedule: (fn) => {
      timerFn = fn;
      return () => {
        stopped = true;
      };
    },
    now: () => now,
    onActiveChange: (name, reason, info) => changes.push({ name, reason, info }),
    log,
  });
  return {
    set,
    chans,
    links,
    changes,
    logs,
    tick: () => timerFn?.(),
    advance: (ms) => {
      now += ms;
    },
    timerStopped: () => stopped,
  };
}

function sentBy(h: Harness): Record<string, string[]> {
  return Object.fromEntries(h.chans.map((c) => [c.name, c.sent]));
}

describe('ChannelSet', () => {
  it('transmits on the first channel only and reports the start choice', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    expect(h.chans.every((c) => c.started)).toBe(true);
    h.set.send(Buffer.from('x'));
    expect(sentBy(h)).toEqual({ a: ['x'], b: [] });
    expect(h.set.active).toBe('a');
    expect(h.changes).toEqual([{ name: 'a', reason: 'start', info: { previous: undefined } }]);
    expect(Object.keys(h.changes[0]!.info)).toEqual(['previous']);
    expect(h.set.counters).toEqual({ failovers: 0, peerMoves: 0 });
  });

  it('starts on the first channel whose link is up', async () => {
    const h = harness(['a', 'b', 'c']);
    h.links.set('a', 'down');
    await h.set.start();
    expect(h.set.active).toBe('b');
  });

  it('receives on every channel, active or not, and names the channel', async () => {
    const h = harness(['a', 'b']);
    const got: string[] = [];
    h.set.onDatagram((buf, from, ch) => got.push(`${ch.name}:${buf.toString()}:${from.address}`));
    await h.set.start();
    h.chans[0]?.receive('one');
    h.chans[1]?.receive('two', { address: '10.99.1.2', port: 3780 });
    expect(got).toEqual(['a:one:10.99.0.2', 'b:two:10.99.1.2']);
    // Receiving alone does not move transmission; only the daemon's verdict does.
    expect(h.set.active).toBe('a');
  });

  it('fails over to the next live link when the active link goes down', async () => {
    const h = harness(['a', 'b', 'c']);
    await h.set.start();
    h.links.set('a', 'down');
    h.links.set('b', 'down');
    h.tick();
    expect(h.set.active).toBe('c');
    expect(h.changes.at(-1)).toEqual({ name: 'c', reason: 'link-down', info: { previous: 'a', detail: 'a' } });
    expect(h.set.counters.failovers).toBe(1);
    h.set.send(Buffer.from('after'));
    expect(sentBy(h)).toEqual({ a: [], b: [], c: ['after'] });
    // A link returning does not pull transmission back (no preemption).
    h.links.set('a', 'up');
    h.tick();
    expect(h.set.active).toBe('c');
  });

  it('goes round-robin from the active channel, wrapping around', async () => {
    const h = harness(['a', 'b', 'c']);
    await h.set.start();
    h.links.set('a', 'down');
    h.tick();
    expect(h.set.active).toBe('b');
    h.links.set('a', 'up');
    h.links.set('b', 'down');
    h.tick();
    // From b the next is c, not a.
    expect(h.set.active).toBe('c');
    h.links.set('c', 'down');
    h.tick();
    expect(h.set.active).toBe('a');
    expect(h.set.counters.failovers).toBe(3);
  });

  it('stays on a dead link when no other is up, logs that once, and moves when one returns', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('a', 'down');
    h.links.set('b', 'down');
    h.tick();
    h.tick();
    h.tick();
    expect(h.set.active).toBe('a');
    expect(h.logs.filter((l) => l.level === 'error')).toHaveLength(1);
    h.links.set('b', 'up');
    h.tick();
    expect(h.set.active).toBe('b');
    expect(h.set.counters.failovers).toBe(1);
  });

  it('follows the peer to the channel a valid datagram came in on', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('a', 'down');
    h.tick();
    expect(h.set.active).toBe('b');
    h.links.set('a', 'up');
    h.tick();
    h.set.noteValidReceive(h.chans[0] as FakeChannel);
    expect(h.set.active).toBe('a');
    expect(h.changes.at(-1)).toEqual({ name: 'a', reason: 'peer-moved', info: { previous: 'b', detail: 'a' } });
    expect(h.set.counters).toEqual({ failovers: 1, peerMoves: 1 });
    // By name too; the active channel and unknown names change nothing.
    h.set.noteValidReceive('b');
    expect(h.set.active).toBe('b');
    h.set.noteValidReceive('b');
    h.set.noteValidReceive('nope');
    expect(h.set.counters.peerMoves).toBe(2);
  });

  it('does not follow the peer onto a link it last saw down', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('b', 'down');
    h.tick();
    h.set.noteValidReceive('b');
    expect(h.set.active).toBe('a');
    expect(h.set.counters.peerMoves).toBe(0);
  });

  it('fails over at once on a link-level send error, at most once per interval', async () => {
    const h = harness(['a', 'b', 'c'], { intervalMs: 1000 });
    await h.set.start();
    h.chans[0]?.failSend('ENETUNREACH');
    expect(h.set.active).toBe('b');
    expect(h.changes.at(-1)).toEqual({
      name: 'b',
      reason: 'send-error',
      info: { previous: 'a', detail: 'ENETUNREACH' },
    });
    h.advance(200);
    h.chans[1]?.failSend('EPERM');
    expect(h.set.active).toBe('b');
    h.advance(1000);
    h.chans[1]?.failSend('EPERM');
    expect(h.set.active).toBe('c');
    expect(h.set.counters.failovers).toBe(2);
  });

  it('ignores send errors that are not about the link, and those of backup channels', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.chans[0]?.failSend('ENOBUFS');
    h.chans[0]?.failSend('EMSGSIZE');
    h.chans[1]?.failSend('ENETDOWN');
    expect(h.set.active).toBe('a');
    expect(h.set.counters.failovers).toBe(0);
  });

  it('does not hop to a channel whose link is down after a send error', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('b', 'down');
    h.chans[0]?.failSend('ENETDOWN');
    expect(h.set.active).toBe('a');
  });

  it('uses isLinkUp() for channels without an interface name', async () => {
    const a = new FakeChannel('a', null);
    const b = new FakeChannel('b', null);
    let tick: () => void = () => {};
    const set = new ChannelSet([a, b], {
      readLinkState: () => 'up',
      schedule: (fn) => {
        tick = fn;
        return () => {};
      },
    });
    await set.start();
    a.linkUp = false;
    tick();
    expect(set.active).toBe('b');
    await set.close();
  });

  it('reports one stats row per channel', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('b', 'down');
    h.tick();
    h.set.send(Buffer.from('x'));
    const [a, b] = h.set.stats();
    expect(a).toMatchObject({ name: 'a', kind: 'udp', interfaceName: 'a', link: 'up', active: true });
    expect(a?.counters.datagramsSent).toBe(1);
    expect(b).toMatchObject({ name: 'b', link: 'down', active: false });
  });

  it('keeps delivering when a listener throws, and logs it', async () => {
    const h = harness(['a']);
    const got: string[] = [];
    h.set.onDatagram(() => {
      throw new Error('boom');
    });
    h.set.onDatagram((buf) => got.push(buf.toString()));
    await h.set.start();
    expect(() => h.chans[0]?.receive('x')).not.toThrow();
    expect(got).toEqual(['x']);
    expect(h.logs.some((l) => l.level === 'error' && l.msg.includes('listener threw'))).toBe(true);
  });

  it('closes every channel when one fails to start, and rethrows its error', async () => {
    const h = harness(['a', 'b']);
    const boom = new ChannelError('ECHANNEL_IFACE', 'b', 'sync interface b does not exist');
    (h.chans[1] as FakeChannel).failStart = boom;
    await expect(h.set.start()).rejects.toBe(boom);
    expect(h.chans.every((c) => c.closed)).toBe(true);
  });

  it('close() stops the link timer and closes every channel', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    await h.set.close();
    expect(h.timerStopped()).toBe(true);
    expect(h.chans.every((c) => c.closed)).toBe(true);
    h.links.set('a', 'down');
    h.tick();
    expect(h.set.active).toBe('a');
  });

  it('rejects an empty set, duplicate names and a second start', async () => {
    expect(() => new ChannelSet([])).toThrow(ChannelError);
    try {
      new ChannelSet([new FakeChannel('a'), new FakeChannel('a')]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ChannelError);
      expect((err as ChannelError).code).toBe('ECHANNEL_CONFIG');
    }
    const h = harness(['a']);
    await h.set.start();
    await expect(h.set.start()).rejects.toMatchObject({ code: 'ECHANNEL_CONFIG' });
  });
});

describe('ChannelSet: what it logs and reports, exactly', () => {
  it('logs each link change, failover, stranding and peer move with its context', async () => {
    const h = harness(['a', 'b', 'c']);
    await h.set.start();
    h.links.set('a', 'down');
    h.tick(); // a down: over to b
    h.links.set('b', 'down');
    h.links.set('c', 'down');
    h.tick(); // b down, nothing up: stranded on b
    h.tick(); // still stranded: not logged again
    h.links.set('a', 'up');
    h.tick(); // a up: over to a
    h.links.set('b', 'up');
    h.tick(); // b up: a stays
    h.set.noteValidReceive('b');
    expect(h.logs).toEqual([
      { level: 'info', msg: 'sync channel active', ctx: { channel: 'a', reason: 'start' } },
      { level: 'warn', msg: 'sync link down', ctx: { channel: 'a', interface: 'a' } },
      { level: 'warn', msg: 'sync channel active', ctx: { channel: 'b', previous: 'a', reason: 'link-down', detail: 'a' } },
      { level: 'warn', msg: 'sync link down', ctx: { channel: 'b', interface: 'b' } },
      { level: 'warn', msg: 'sync link down', ctx: { channel: 'c', interface: 'c' } },
      {
        level: 'error',
        msg: 'sync link failed and no other link is up; still transmitting on it',
        ctx: { channel: 'b', reason: 'link-down', detail: 'b' },
      },
      { level: 'info', msg: 'sync link up', ctx: { channel: 'a', interface: 'a' } },
      { level: 'warn', msg: 'sync channel active', ctx: { channel: 'a', previous: 'b', reason: 'link-down', detail: 'b' } },
      { level: 'info', msg: 'sync link up', ctx: { channel: 'b', interface: 'b' } },
      { level: 'info', msg: 'sync channel active', ctx: { channel: 'b', previous: 'a', reason: 'peer-moved', detail: 'b' } },
    ]);
    expect(h.changes.map((c) => `${c.name} ${c.reason}`)).toEqual(['a start', 'b link-down', 'a link-down', 'b peer-moved']);
    expect(h.set.counters).toEqual({ failovers: 2, peerMoves: 1 });
  });

  it('logs stranding again after a link came back in between', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('a', 'down');
    h.links.set('b', 'down');
    h.tick();
    h.links.set('a', 'up');
    h.tick(); // the active link is back: no longer stranded
    h.links.set('a', 'down');
    h.tick();
    expect(h.logs.filter((l) => l.level === 'error').length).toBe(2);
    expect(h.set.active).toBe('a');
  });

  it('a send-error failover names the errno, with no detail key when the channel has no interface', async () => {
    const chans = [new FakeChannel('a', null), new FakeChannel('b', null)];
    const changes: ActiveChangeInfo[] = [];
    const logs: Array<{ level: string; msg: string; ctx: unknown }> = [];
    const set = new ChannelSet(chans, {
      schedule: () => () => {},
      now: () => 5000,
      onActiveChange: (_n, _r, info) => changes.push(info),
      log: (level, msg, ctx) => logs.push({ level, msg, ctx }),
    });
    await set.start();
    chans[0]!.failSend('ENETUNREACH');
    expect(set.active).toBe('b');
    expect(changes).toEqual([{ previous: undefined }, { previous: 'a', detail: 'ENETUNREACH' }]);
    expect(logs.at(-1)).toEqual({
      level: 'warn',
      msg: 'sync channel active',
      ctx: { channel: 'b', previous: 'a', reason: 'send-error', detail: 'ENETUNREACH' },
    });
    // A peer move to a channel without an interface: no detail at all.
    set.noteValidReceive('a');
    expect(changes.at(-1)).toEqual({ previous: 'b' });
    expect(Object.keys(changes.at(-1)!)).toEqual(['previous']);
    expect(logs.at(-1)?.ctx).toStrictEqual({ channel: 'a', previous: 'b', reason: 'peer-moved' });
  });

  // [errno, fails over]
  const errnos: Array<[string | undefined, boolean]> = [
    ['ENETDOWN', true],
    ['ENETUNREACH', true],
    ['EHOSTUNREACH', true],
    ['EPERM', true],
    ['ENODEV', true],
    ['ENXIO', true],
    ['EADDRNOTAVAIL', true],
    ['ENOBUFS', false],
    ['EMSGSIZE', false],
    [undefined, false],
  ];
  for (const [code, moves] of errnos) {
    it(`a send error ${code}: ${moves ? 'fails over' : 'stays'}`, async () => {
      const h = harness(['a', 'b']);
      await h.set.start();
      const err: NodeJS.ErrnoException = Object.assign(new Error('send'), code === undefined ? {} : { code });
      h.chans[0]!.failSendWith(err);
      expect(h.set.active).toBe(moves ? 'b' : 'a');
    });
  }

  it('send-error failovers are spaced by the check interval: not sooner, at it yes', async () => {
    const h = harness(['a', 'b'], { intervalMs: 1000 });
    await h.set.start();
    h.advance(10);
    h.chans[0]!.failSend('ENETDOWN');
    expect(h.set.active).toBe('b');
    h.advance(999);
    h.chans[1]!.failSend('ENETDOWN');
    expect(h.set.active).toBe('b');
    h.advance(1);
    h.chans[1]!.failSend('ENETDOWN');
    expect(h.set.active).toBe('a');
  });

  it('a send error before start, or after close, changes nothing', async () => {
    const h = harness(['a', 'b']);
    h.chans[0]!.failSend('ENETDOWN');
    await h.set.start();
    expect(h.set.active).toBe('a');
    await h.set.close();
    h.chans[0]!.failSend('ENETDOWN');
    h.links.set('a', 'down');
    h.tick();
    h.set.noteValidReceive('b');
    expect(h.set.active).toBe('a');
    expect(h.set.counters).toEqual({ failovers: 0, peerMoves: 0 });
  });

  it('noteValidReceive and checkLinks do nothing before start', async () => {
    const h = harness(['a', 'b']);
    h.links.set('a', 'down');
    h.set.checkLinks();
    h.set.noteValidReceive('b');
    expect(h.set.active).toBe('a');
    expect(h.logs).toEqual([]);
  });

  it('a link state reader that throws reads as down', async () => {
    const chans = [new FakeChannel('a'), new FakeChannel('b')];
    const set = new ChannelSet(chans, {
      schedule: () => () => {},
      readLinkState: (ifname) => {
        if (ifname === 'a') throw new Error('sysfs gone');
        return 'up';
      },
    });
    await set.start();
    expect(set.active).toBe('b');
    expect(set.stats().map((r) => r.link)).toEqual(['down', 'up']);
  });

  it("without a link state reader, each channel's isLinkUp() decides, interface or not", async () => {
    const chans = [new FakeChannel('a'), new FakeChannel('b')];
    chans[0]!.linkUp = false;
    const set = new ChannelSet(chans, { schedule: () => () => {} });
    await set.start();
    expect(set.active).toBe('b');
  });

  it('starts on the first channel when no link is up', async () => {
    const h = harness(['a', 'b']);
    h.links.set('a', 'down');
    h.links.set('b', 'down');
    await h.set.start();
    expect(h.set.active).toBe('a');
    expect(h.set.stats().map((r) => [r.name, r.link, r.active])).toEqual([
      ['a', 'down', true],
      ['b', 'down', false],
    ]);
  });

  it('logs an onActiveChange listener that throws and carries on', async () => {
    const logs: Array<{ level: string; msg: string; ctx: unknown }> = [];
    const set = new ChannelSet([new FakeChannel('a')], {
      schedule: () => () => {},
      onActiveChange: () => {
        throw new Error('nope');
      },
      log: (level, msg, ctx) => logs.push({ level, msg, ctx }),
    });
    await set.start();
    expect(logs.at(-1)).toEqual({ level: 'error', msg: 'onActiveChange listener threw', ctx: { error: 'Error: nope' } });
  });

  it('logs a throwing datagram listener with its channel and error, and still calls the next', async () => {
    const h = harness(['a']);
    const got: string[] = [];
    h.set.onDatagram(() => {
      throw new Error('bad');
    });
    h.set.onDatagram((buf) => got.push(buf.toString()));
    await h.set.start();
    h.chans[0]!.receive('z');
    expect(got).toEqual(['z']);
    expect(h.logs.at(-1)).toEqual({ level: 'error', msg: 'sync datagram listener threw', ctx: { channel: 'a', error: 'Error: bad' } });
  });

  it('the default timer polls the links on its own, and close() stops it', async () => {
    const chans = [new FakeChannel('a'), new FakeChannel('b')];
    const set = new ChannelSet(chans, { checkIntervalMs: 5 });
    await set.start();
    chans[0]!.linkUp = false;
    for (let i = 0; i < 400 && set.active !== 'b'; i++) await new Promise((r) => setTimeout(r, 5));
    expect(set.active).toBe('b');
    await set.close();
    await set.close();
    expect(chans.every((c) => c.closed)).toBe(true);
  });

  it('refusals name what is wrong', async () => {
    expect(() => new ChannelSet([])).toThrow(
      expect.objectContaining({ code: 'ECHANNEL_CONFIG', channel: '', message: 'a channel set needs at least one channel' }),
    );
    expect(() => new ChannelSet([new FakeChannel('a'), new FakeChannel('a')])).toThrow(
      expect.objectContaining({ channel: 'a', message: 'two channels are named a' }),
    );
    const h = harness(['a']);
    await h.set.start();
    await expect(h.set.start()).rejects.toMatchObject({ channel: '', message: 'a channel set can be started once' });
  });

  it('closes each channel once, however often it is closed, and after a failed start', async () => {
    const closes: string[] = [];
    const counted = (name: string): FakeChannel => {
      const ch = new FakeChannel(name);
      ch.close = async () => {
        closes.push(name);
      };
      return ch;
    };
    const set = new ChannelSet([counted('a'), counted('b')], { schedule: () => () => {} });
    // Before start there is no timer to stop.
    await set.close();
    await set.close();
    expect(closes).toEqual(['a', 'b']);
    closes.length = 0;
    const bad = counted('c');
    bad.failStart = new Error('no');
    const failing = new ChannelSet([counted('d'), bad], { schedule: () => () => {} });
    await expect(failing.start()).rejects.toThrow('no');
    await failing.close();
    expect(closes).toEqual(['d', 'c']);
  });

  it('links read up before start; the channels and a quiet listener list are as given', () => {
    const chans = [new FakeChannel('a'), new FakeChannel('b')];
    const logs: string[] = [];
    const set = new ChannelSet(chans, { log: (_l, msg) => logs.push(msg) });
    expect(set.channels).toEqual(chans);
    expect(set.stats().map((r) => r.link)).toEqual(['up', 'up']);
    chans[1]!.receive('x');
    expect(logs).toEqual([]);
  });

  it('takes channels without onSendError, and works without onActiveChange', async () => {
    const logs: string[] = [];
    const set = new ChannelSet([new LoopChannel('x')], { schedule: () => () => {}, log: (_l, msg) => logs.push(msg) });
    await set.start();
    expect(logs).toEqual(['sync channel active']);
  });

  it('a link reader that throws at a check makes the active link down and moves', async () => {
    let broken = false;
    const chans = [new FakeChannel('a'), new FakeChannel('b')];
    let tick: (() => void) | undefined;
    const set = new ChannelSet(chans, {
      schedule: (fn) => {
        tick = fn;
        return () => {};
      },
      readLinkState: (ifname) => {
        if (broken && ifname === 'a') throw new Error('sysfs gone');
        return 'up';
      },
    });
    await set.start();
    broken = true;
    tick?.();
    expect(set.active).toBe('b');
  });

  it('a send error with every other link down stays put and is not a switch to itself', async () => {
    const h = harness(['a', 'b']);
    await h.set.start();
    h.links.set('b', 'down');
    h.chans[0]!.failSend('ENETDOWN');
    expect(h.set.active).toBe('a');
    expect(h.set.counters.failovers).toBe(0);
    expect(h.changes).toHaveLength(1);
    expect(h.logs.at(-1)?.level).toBe('error');
  });

  it('the default clock spaces send-error failovers by the default interval (1000 ms)', async () => {
    const chans = [new FakeChannel('a'), new FakeChannel('b')];
    const set = new ChannelSet(chans, { schedule: () => () => {} });
    await set.start();
    chans[0]!.failSend('ENETDOWN');
    expect(set.active).toBe('b');
    // Well within a second of the first.
    chans[1]!.failSend('ENETDOWN');
    expect(set.active).toBe('b');
  });
});

describe('channels from the config', () => {
  const base = 'node: { id: fw1 }\ncluster: { id: 1 }\n';

  it('builds one multicast channel named after its interface', () => {
    const cfg = parseConfig(`${base}sync: { multicast: { interface: sync0, group: 225.0.0.51 }, auth: none }\n`, 'test.yaml');
    const [ch, ...rest] = createChannels({ sync: cfg.sync! });
    expect(rest).toHaveLength(0);
    expect(ch).toBeInstanceOf(MulticastChannel);
    expect(ch).toMatchObject({ name: 'sync0', kind: 'multicast', interfaceName: 'sync0', family: 4 });
  });

  it('builds one UDP channel that sends to every peer', () => {
    const cfg = parseConfig(
      `${base}sync: { transport: udp, udp: { bind: 'fd99::1', peers: ['fd99::2', 'fd99::3'] }, auth: none }\n`,
      'test.yaml',
    );
    const [ch] = createChannels({ sync: cfg.sync! });
    expect(ch).toBeInstanceOf(UdpChannel);
    expect(ch).toMatchObject({ name: 'udp:fd99::1', kind: 'udp' });
  });

  it('rejects inconsistent options with ECHANNEL_CONFIG', () => {
    expect(() => new MulticastChannel({ group: '10.0.0.1', port: 1, interface: 'lo' })).toThrow(
      expect.objectContaining({ code: 'ECHANNEL_CONFIG' }),
    );
    expect(() => new UdpChannel({ bind: '10.0.0.1', port: 1, peers: ['fd99::1'] })).toThrow(
      expect.objectContaining({ code: 'ECHANNEL_CONFIG' }),
    );
    expect(() => new UdpChannel({ bind: '10.0.0.1', port: 1, peers: [] })).toThrow(
      expect.objectContaining({ code: 'ECHANNEL_CONFIG' }),
    );
  });
});

/** A port that was free a moment ago, for channels that must use the same port on both ends. */
async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('real channels without a namespace', () => {
  it('UDP channels on loopback addresses exchange datagrams and count them', async () => {
    const port = await freePort();
    const a = new UdpChannel({ bind: '127.0.0.1', port, peers: ['127.0.0.2'] });
    const b = new UdpChannel({ bind: '127.0.0.2', port, peers: ['127.0.0.1'] });
    const got: string[] = [];
    b.onDatagram((buf, from) => got.push(`${buf.toString()} from ${from.address}:${from.port}`));
    try {
      await a.start();
      await b.start();
      expect(a.interfaceName).toBe('lo');
      expect(a.granted?.receiveBufferBytes).toBeGreaterThan(0);
      a.send(Buffer.from('hello'));
      a.send(Buffer.from('world'));
      await until(() => got.length === 2, 'two datagrams');
      expect(got).toEqual([`hello from 127.0.0.1:${port}`, `world from 127.0.0.1:${port}`]);
      await until(() => a.counters.datagramsSent === 2, 'send callbacks');
      expect(a.counters).toMatchObject({ datagramsSent: 2, bytesSent: 10, sendErrors: 0 });
      expect(b.counters).toMatchObject({ datagramsReceived: 2, bytesReceived: 10, receiveErrors: 0 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('counts, never throws, sends on a channel that is not open', async () => {
    const a = new UdpChannel({ bind: '127.0.0.1', port: 9, peers: ['127.0.0.2', '127.0.0.3'] });
    expect(() => a.send(Buffer.from('x'))).not.toThrow();
    expect(a.counters.sendErrors).toBe(2);
    await a.close();
    expect(() => a.send(Buffer.from('x'))).not.toThrow();
  });

  it('a second channel on the same address and port fails with ECHANNEL_BIND and closes its socket', async () => {
    const port = await freePort();
    const a = new UdpChannel({ bind: '127.0.0.1', port, peers: ['127.0.0.2'] });
    const b = new UdpChannel({ bind: '127.0.0.1', port, peers: ['127.0.0.2'] });
    try {
      await a.start();
      await expect(b.start()).rejects.toMatchObject({ code: 'ECHANNEL_BIND', channel: 'udp:127.0.0.1' });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('multicast on a missing interface fails with ECHANNEL_IFACE naming it', async () => {
    const ch = new MulticastChannel({ group: '225.99.0.1', port: 3780, interface: 'nosuchif0' });
    await expect(ch.start()).rejects.toMatchObject({
      code: 'ECHANNEL_IFACE',
      message: expect.stringContaining('nosuchif0'),
    });
  });

  it('multicast on an interface without an address of the group family fails with ECHANNEL_IFACE', async () => {
    const ch = new MulticastChannel({
      group: '225.99.0.1',
      port: 3780,
      interface: 'lo',
      resolveAddresses: async () => [],
    });
    await expect(ch.start()).rejects.toThrow(/lo has no IPv4 address yet/);
  });
});
