// The datagram channels on a scripted socket (their `createSocket` option):
// every call they make on it in order, and the socket events loopback cannot
// produce (an error after bind, a datagram or a send between bind and open,
// a membership refused with or without an errno). Then what needs a real
// socket only to be believed: a port free again after close(), two
// multicast channels on one group and port, an IPv6 UDP channel, and the
// channels a configuration with backup links asks for.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { LogContext } from '../../src/log.js';
import { ChannelError, type ChannelLog, isChannelError } from '../../src/sync/transport/channel.js';
import { type ChannelLinks, createChannels } from '../../src/sync/transport/channel-factory.js';
import type { ChannelSocket, SocketFactory } from '../../src/sync/transport/dgram-channel.js';
import { MulticastChannel, type MulticastChannelOptions } from '../../src/sync/transport/multicast-channel.js';
import { UdpChannel } from '../../src/sync/transport/udp-channel.js';

interface Line {
  level: string;
  msg: string;
  ctx: LogContext | undefined;
}

function recorder(): { log: ChannelLog; lines: Line[] } {
  const lines: Line[] = [];
  return { log: (level, msg, ctx) => lines.push({ level, msg, ctx }), lines };
}

type Method =
  | 'bind'
  | 'close'
  | 'send'
  | 'setSendBufferSize'
  | 'setRecvBufferSize'
  | 'getSendBufferSize'
  | 'getRecvBufferSize'
  | 'addMembership'
  | 'setMulticastInterface'
  | 'setMulticastTTL'
  | 'setMulticastLoopback';

interface Script {
  /** Run inside the call, after it is recorded and before it returns (for bind: before its callback). */
  during?: Partial<Record<Method, (s: FakeSocket) => void>>;
  /** Thrown by the call, after it is recorded. */
  throws?: Partial<Record<Method, Error>>;
  /** Emitted as 'error' by bind() instead of calling back. */
  bindError?: Error;
}

/** A socket that records every call the channel makes on it and answers as Linux would. */
class FakeSocket extends EventEmitter implements ChannelSocket {
  readonly calls: string[] = [];
  private port = 0;
  private sendBytes = 212992;
  private recvBytes = 212992;
  private closed = false;

  constructor(private readonly script: Script) {
    super();
  }

  private note(method: Method, ...args: unknown[]): void {
    this.calls.push([method, ...args].join(' '));
    this.script.during?.[method]?.(this);
    const err = this.script.throws?.[method];
    if (err !== undefined) throw err;
  }

  /** A datagram arriving from `address`, port 3780. */
  deliver(text: string, address: string): void {
    const rinfo: RemoteInfo = { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port: 3780, size: text.length };
    this.emit('message', Buffer.from(text), rinfo);
  }

  bind(port: number, address: string, callback: () => void): void {
    this.note('bind', port, address);
    if (this.script.bindError !== undefined) {
      this.emit('error', this.script.bindError);
      return;
    }
    this.port = port === 0 ? 40000 : port;
    callback();
  }

  close(callback: () => void): void {
    // As node:dgram: a second close throws ERR_SOCKET_DGRAM_NOT_RUNNING.
    if (this.closed) throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    this.closed = true;
    this.note('close');
    callback();
  }

  address(): { port: number } {
    return { port: this.port };
  }

  send(msg: Buffer, port: number, address: string, callback: (err: Error | null) => void): void {
    this.note('send', port, address, msg.toString());
    queueMicrotask(() => callback(null));
  }

  setSendBufferSize(bytes: number): void {
    this.note('setSendBufferSize', bytes);
    this.sendBytes = 2 * bytes;
  }

  setRecvBufferSize(bytes: number): void {
    this.note('setRecvBufferSize', bytes);
    this.recvBytes = 2 * bytes;
  }

  getSendBufferSize(): number {
    this.note('getSendBufferSize');
    return this.sendBytes;
  }

  getRecvBufferSize(): number {
    this.note('getRecvBufferSize');
    return this.recvBytes;
  }

  addMembership(group: string, iface: string): void {
    this.note('addMembership', group, iface);
  }

  setMulticastInterface(iface: string): void {
    this.note('setMulticastInterface', iface);
  }

  setMulticastTTL(ttl: number): void {
    this.note('setMulticastTTL', ttl);
  }

  setMulticastLoopback(on: boolean): void {
    this.note('setMulticastLoopback', on);
  }
}

/** A SocketFactory handing out FakeSockets, with what it was asked for. */
function fakes(script: Script = {}): { createSocket: SocketFactory; made: string[]; sockets: FakeSocket[] } {
  const made: string[] = [];
  const sockets: FakeSocket[] = [];
  const createSocket: SocketFactory = ({ type, reuseAddr }) => {
    made.push(`${type} reuseAddr ${reuseAddr}`);
    const s = new FakeSocket(script);
    sockets.push(s);
    return s;
  };
  return { createSocket, made, sockets };
}

function errno(message: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** The rejection of a start() that must fail. */
async function failure(start: Promise<void>): Promise<ChannelError> {
  return start.then(
    () => {
      throw new Error('start() resolved');
    },
    (e: unknown) => e as ChannelError,
  );
}

async function settled(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

const udpBase = { port: 3780, interface: 'sync0' } as const;
const mcBase = { port: 3780, interface: 'sync0' } as const;

describe('a channel on a scripted socket', () => {
  // [row, the channel, the socket asked for, its calls from start() through one send of "ab" and close()]
  const rows: Array<[string, (f: SocketFactory) => UdpChannel | MulticastChannel, string, string[]]> = [
    [
      'UDP over IPv4, two peers, both buffers',
      (createSocket) =>
        new UdpChannel({
          ...udpBase,
          bind: '127.0.0.1',
          peers: ['127.0.0.2', '127.0.0.3'],
          sendBufferBytes: 65536,
          receiveBufferBytes: 131072,
          createSocket,
        }),
      'udp4 reuseAddr false',
      [
        'bind 3780 127.0.0.1',
        'setSendBufferSize 65536',
        'setRecvBufferSize 131072',
        'getSendBufferSize',
        'getRecvBufferSize',
        'send 3780 127.0.0.2 ab',
        'send 3780 127.0.0.3 ab',
        'close',
      ],
    ],
    [
      'UDP over IPv6',
      (createSocket) => new UdpChannel({ ...udpBase, bind: '::1', peers: ['fd00::2'], createSocket }),
      'udp6 reuseAddr false',
      ['bind 3780 ::1', 'getSendBufferSize', 'getRecvBufferSize', 'send 3780 fd00::2 ab', 'close'],
    ],
    [
      'multicast over IPv4: membership and sends by the first address',
      (createSocket) =>
        new MulticastChannel({
          ...mcBase,
          group: '225.0.0.51',
          resolveAddresses: async () => ['10.1.0.1', '10.1.0.2'],
          createSocket,
        }),
      'udp4 reuseAddr true',
      [
        'bind 3780 225.0.0.51',
        'addMembership 225.0.0.51 10.1.0.1',
        'setMulticastInterface 10.1.0.1',
        'setMulticastTTL 1',
        'setMulticastLoopback false',
        'getSendBufferSize',
        'getRecvBufferSize',
        'send 3780 225.0.0.51 ab',
        'close',
      ],
    ],
    [
      'multicast over IPv6: bound to the zoned group, membership by the interface zone',
      (createSocket) =>
        new MulticastChannel({
          ...mcBase,
          interface: 'sync1',
          group: 'ff12::7373',
          receiveBufferBytes: 4096,
          resolveAddresses: async () => ['fd00::1'],
          createSocket,
        }),
      'udp6 reuseAddr true',
      [
        'bind 3780 ff12::7373%sync1',
        'addMembership ff12::7373 ::%sync1',
        'setMulticastInterface ::%sync1',
        'setMulticastTTL 1',
        'setMulticastLoopback false',
        'setRecvBufferSize 4096',
        'getSendBufferSize',
        'getRecvBufferSize',
        'send 3780 ff12::7373%sync1 ab',
        'close',
      ],
    ],
  ];
  for (const [row, make, asked, calls] of rows) {
    it(`${row}: the socket asked for and every call on it`, async () => {
      const f = fakes();
      const ch = make(f.createSocket);
      expect(f.made).toEqual([]);
      await ch.start();
      expect(ch.boundPort).toBe(3780);
      ch.send(Buffer.from('ab'));
      await settled();
      const copies = calls.filter((c) => c.startsWith('send ')).length;
      expect(ch.counters).toMatchObject({ datagramsSent: copies, bytesSent: 2 * copies, sendErrors: 0 });
      await ch.close();
      await ch.close();
      expect(f.made).toEqual([asked]);
      expect(f.sockets[0]!.calls).toEqual(calls);
      expect(ch.boundPort).toBeUndefined();
    });
  }

  it('creates no socket for a channel closed before it starts', async () => {
    const f = fakes();
    const ch = new UdpChannel({ ...udpBase, bind: '127.0.0.1', peers: ['127.0.0.2'], createSocket: f.createSocket });
    await ch.close();
    expect(f.made).toEqual([]);
    await expect(ch.start()).rejects.toMatchObject({ code: 'ECHANNEL_CONFIG' });
    expect(f.made).toEqual([]);
  });

  it('closes even when the socket throws at close (as node:dgram does once it is closed)', async () => {
    const f = fakes({ throws: { close: errno('Not running', 'ERR_SOCKET_DGRAM_NOT_RUNNING') } });
    const ch = new UdpChannel({ ...udpBase, bind: '127.0.0.1', peers: ['127.0.0.2'], createSocket: f.createSocket });
    await ch.start();
    await ch.close();
    expect(f.sockets[0]!.calls.at(-1)).toBe('close');
    expect(ch.boundPort).toBeUndefined();
    ch.send(Buffer.from('x'));
    expect(ch.counters.sendErrors).toBe(1);
  });

  it('counts and logs a socket error after open, by errno or else by message, and goes on delivering', async () => {
    const { log, lines } = recorder();
    const f = fakes();
    const ch = new UdpChannel({ ...udpBase, bind: '127.0.0.1', peers: ['127.0.0.2'], createSocket: f.createSocket, log });
    const got: string[] = [];
    ch.onDatagram((buf, from) => got.push(`${buf.toString()} ${from.address}:${from.port}`));
    await ch.start();
    const s = f.sockets[0]!;
    // The bind's own 'error' listener is gone; the channel's one stays.
    expect(s.listenerCount('error')).toBe(1);
    s.emit('error', errno('recvmsg ECONNREFUSED', 'ECONNREFUSED'));
    s.emit('error', new Error('odd'));
    s.deliver('still', '127.0.0.2');
    expect(got).toEqual(['still 127.0.0.2:3780']);
    expect(ch.counters).toMatchObject({ receiveErrors: 2, datagramsReceived: 1, bytesReceived: 5 });
    expect(lines.slice(1)).toEqual([
      { level: 'warn', msg: 'sync channel socket error', ctx: { channel: 'udp:127.0.0.1', error: 'ECONNREFUSED' } },
      { level: 'warn', msg: 'sync channel socket error', ctx: { channel: 'udp:127.0.0.1', error: 'odd' } },
    ]);
    await ch.close();
  });

  // [row, the step of start() that the datagram and the send come in]
  const windows: Array<[string, Method]> = [
    ['in bind, before it calls back', 'bind'],
    ['after bind, while the buffers are read', 'getSendBufferSize'],
    ['after bind, while the group is joined', 'addMembership'],
  ];
  for (const [row, step] of windows) {
    it(`neither delivers nor sends ${row}, then does both once open and neither once closed`, async () => {
      const during = {
        [step]: (s: FakeSocket) => {
          s.deliver('early', '127.0.0.2');
          ch.send(Buffer.from('early'));
        },
      };
      const f = fakes({ during });
      const opts = { ...udpBase, createSocket: f.createSocket };
      const ch =
        step === 'addMembership'
          ? new MulticastChannel({ ...opts, group: '225.0.0.51', resolveAddresses: async () => ['127.0.0.1'] })
          : new UdpChannel({ ...opts, bind: '127.0.0.1', peers: ['127.0.0.2'] });
      const got: string[] = [];
      ch.onDatagram((buf) => got.push(buf.toString()));
      await ch.start();
      const s = f.sockets[0]!;
      expect(s.calls.filter((c) => c.startsWith('send '))).toEqual([]);
      expect(ch.counters).toMatchObject({ sendErrors: 1, datagramsReceived: 0, bytesReceived: 0, droppedNotPeer: 0 });
      expect(got).toEqual([]);
      s.deliver('open', '127.0.0.2');
      ch.send(Buffer.from('open'));
      await settled();
      expect(got).toEqual(['open']);
      expect(s.calls.filter((c) => c.startsWith('send '))).toEqual([
        step === 'addMembership' ? 'send 3780 225.0.0.51 open' : 'send 3780 127.0.0.2 open',
      ]);
      await ch.close();
      s.deliver('late', '127.0.0.2');
      expect(got).toEqual(['open']);
      expect(ch.counters).toMatchObject({ sendErrors: 1, datagramsSent: 1, datagramsReceived: 1, bytesReceived: 4 });
    });
  }

  // [the error bind emits, the message's end]
  const bindErrors: Array<[Error, string]> = [
    [errno('bind EACCES 127.0.0.1:3780', 'EACCES'), 'EACCES'],
    [new Error('odd'), 'Error: odd'],
  ];
  for (const [err, end] of bindErrors) {
    it(`fails to bind with ${end}: ECHANNEL_BIND with the cause, the socket closed, nothing open`, async () => {
      const f = fakes({ bindError: err });
      const ch = new UdpChannel({ ...udpBase, bind: '127.0.0.1', peers: ['127.0.0.2'], createSocket: f.createSocket });
      const e = await failure(ch.start());
      expect(e).toBeInstanceOf(ChannelError);
      expect(e).toMatchObject({
        code: 'ECHANNEL_BIND',
        channel: 'udp:127.0.0.1',
        message: `sync channel udp:127.0.0.1: cannot bind 127.0.0.1 port 3780: ${end}`,
        context: { channel: 'udp:127.0.0.1' },
      });
      expect(e.cause).toBe(err);
      expect(f.sockets[0]!.calls).toEqual(['bind 3780 127.0.0.1', 'close']);
      expect(ch.boundPort).toBeUndefined();
      ch.send(Buffer.from('x'));
      expect(ch.counters.sendErrors).toBe(1);
    });
  }

  it('closes the socket bound while close() ran, and says so', async () => {
    const f = fakes({ during: { bind: () => void ch.close() } });
    const ch = new UdpChannel({ ...udpBase, bind: '127.0.0.1', peers: ['127.0.0.2'], createSocket: f.createSocket });
    const e = await failure(ch.start());
    expect(e).toMatchObject({ code: 'ECHANNEL_BIND', message: 'sync channel udp:127.0.0.1 was closed while starting' });
    expect(e.cause).toBeUndefined();
    expect(f.sockets[0]!.calls).toEqual(['bind 3780 127.0.0.1', 'close']);
    expect(ch.boundPort).toBeUndefined();
  });

  // [the call that throws, the error, the message's end, the calls made]
  const refusals: Array<[Method, Error, string, string[]]> = [
    [
      'addMembership',
      errno('addMembership EADDRNOTAVAIL', 'EADDRNOTAVAIL'),
      'EADDRNOTAVAIL',
      ['bind 3780 225.0.0.51', 'addMembership 225.0.0.51 10.1.0.1', 'close'],
    ],
    [
      'setMulticastInterface',
      errno('setMulticastInterface EINVAL', 'EINVAL'),
      'EINVAL',
      ['bind 3780 225.0.0.51', 'addMembership 225.0.0.51 10.1.0.1', 'setMulticastInterface 10.1.0.1', 'close'],
    ],
    [
      'setMulticastLoopback',
      new Error('no loop'),
      'Error: no loop',
      [
        'bind 3780 225.0.0.51',
        'addMembership 225.0.0.51 10.1.0.1',
        'setMulticastInterface 10.1.0.1',
        'setMulticastTTL 1',
        'setMulticastLoopback false',
        'close',
      ],
    ],
  ];
  for (const [method, err, end, calls] of refusals) {
    it(`fails when ${method} throws ${end}: ECHANNEL_SETUP with the cause, closed, no address`, async () => {
      const { log, lines } = recorder();
      const f = fakes({ throws: { [method]: err } });
      const ch = new MulticastChannel({
        ...mcBase,
        group: '225.0.0.51',
        resolveAddresses: async () => ['10.1.0.1'],
        createSocket: f.createSocket,
        log,
      });
      const e = await failure(ch.start());
      expect(e).toMatchObject({
        code: 'ECHANNEL_SETUP',
        channel: 'sync0',
        message: `cannot join 225.0.0.51 on sync0: ${end}`,
        context: { channel: 'sync0' },
      });
      expect(e.cause).toBe(err);
      expect(f.sockets[0]!.calls).toEqual(calls);
      expect(ch.localAddress).toBeUndefined();
      expect(ch.boundPort).toBeUndefined();
      expect(lines).toEqual([]);
    });
  }
});

describe('ChannelError', () => {
  it('keeps its code, channel, cause and context', () => {
    const cause = errno('bind EADDRINUSE', 'EADDRINUSE');
    const e = new ChannelError('ECHANNEL_BIND', 'sync0', 'cannot bind', { cause });
    expect([e.code, e.channel, e.message, e.name]).toEqual(['ECHANNEL_BIND', 'sync0', 'cannot bind', 'ChannelError']);
    expect(e.cause).toBe(cause);
    expect(e.context).toEqual({ channel: 'sync0' });
    expect(e.toJSON()).toEqual({ code: 'ECHANNEL_BIND', message: 'cannot bind', context: { channel: 'sync0' } });
    const bare = new ChannelError('ECHANNEL_CONFIG', '', 'no channels');
    expect('cause' in bare).toBe(false);
    expect(bare.context).toEqual({ channel: '' });
  });

  // [value, is a ChannelError]
  const values: Array<[string, unknown, boolean]> = [
    ['a ChannelError', new ChannelError('ECHANNEL_IFACE', 'lo', 'x'), true],
    ['an Error with a channel code', errno('x', 'ECHANNEL_IFACE'), false],
    ['an object shaped like one', { code: 'ECHANNEL_IFACE', channel: 'lo', message: 'x' }, false],
    ['undefined', undefined, false],
  ];
  for (const [row, value, is] of values) {
    it(`isChannelError(${row}) is ${is}`, () => {
      expect(isChannelError(value)).toBe(is);
    });
  }
});

// Real sockets from here on: 127.0.0.x and ::1, ports the kernel picks.

async function plainSocket(type: 'udp4' | 'udp6', address: string, port = 0): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((resolve) => s.bind(port, address, resolve));
  return s;
}

function closeAll(...sockets: Socket[]): Promise<void[]> {
  return Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
}

async function freePort(): Promise<number> {
  const s = await plainSocket('udp4', '127.0.0.1');
  const { port } = s.address();
  await closeAll(s);
  return port;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  // Bounded: 400 turns of 5 ms, plenty for loopback.
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never happened: ${what}`);
}

const hasV6Loopback = (networkInterfaces().lo ?? []).some((a) => a.address === '::1');

describe('real sockets', () => {
  it('frees its port on close(): the same port binds again, without reuseAddr', async () => {
    const first = new UdpChannel({ bind: '127.0.0.1', port: 0, peers: ['127.0.0.2'], interface: 'lo' });
    await first.start();
    const port = first.boundPort!;
    await first.close();
    const again = new UdpChannel({ bind: '127.0.0.1', port, peers: ['127.0.0.2'], interface: 'lo' });
    try {
      await again.start();
      expect(again.boundPort).toBe(port);
    } finally {
      await again.close();
    }
    // And a plain socket too.
    const plain = await plainSocket('udp4', '127.0.0.1', port);
    await closeAll(plain);
  });

  it('two multicast channels share one group and port, and both hear the group', async () => {
    const port = await freePort();
    const opts: MulticastChannelOptions = { group: '225.99.0.8', port, interface: 'lo' };
    const a = new MulticastChannel({ ...opts, name: 'a' });
    const b = new MulticastChannel({ ...opts, name: 'b' });
    const got: string[] = [];
    a.onDatagram((buf) => got.push(`a ${buf.toString()}`));
    b.onDatagram((buf) => got.push(`b ${buf.toString()}`));
    const sender = await plainSocket('udp4', '127.0.0.5');
    sender.setMulticastInterface('127.0.0.1');
    sender.setMulticastLoopback(true);
    try {
      await a.start();
      await b.start();
      expect([a.boundPort, b.boundPort]).toEqual([port, port]);
      sender.send('both', port, '225.99.0.8');
      await until(() => got.length === 2, 'both copies');
      expect(got.sort()).toEqual(['a both', 'b both']);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await closeAll(sender);
    }
  });

  it.skipIf(!hasV6Loopback)('opens a UDP channel on ::1 that hears itself as its own peer', async () => {
    const port = await freePort();
    const ch = new UdpChannel({ bind: '::1', port, peers: ['::1'], interface: 'lo' });
    const got: string[] = [];
    ch.onDatagram((buf, from) => got.push(`${buf.toString()} [${from.address}]:${from.port}`));
    try {
      await ch.start();
      ch.send(Buffer.from('six'));
      await until(() => got.length === 1, 'the datagram to itself');
      expect(got).toEqual([`six [::1]:${port}`]);
      expect(ch.counters).toMatchObject({ datagramsSent: 1, bytesSent: 3, datagramsReceived: 1, sendErrors: 0 });
    } finally {
      await ch.close();
    }
  });
});

describe('createChannels with backup links', () => {
  it('builds the main link, then each backup in order, each with its own port, buffers and log', async () => {
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    const links: ChannelLinks = {
      transport: 'udp',
      udp: { bind: '127.0.0.1', port: p1, peers: ['127.0.0.2'], sendBufferBytes: 65536 },
      backupLinks: [
        { multicast: { group: '225.99.0.9', port: p2, interface: 'lo', receiveBufferBytes: 32768 } },
        { udp: { bind: '127.0.0.3', port: p3, peers: ['127.0.0.4', '127.0.0.5'] } },
      ],
    };
    const { log, lines } = recorder();
    const chans = createChannels({ sync: links }, { log });
    expect(chans.map((c) => [c.constructor.name, c.name, c.kind])).toEqual([
      ['UdpChannel', 'udp:127.0.0.1', 'udp'],
      ['MulticastChannel', 'lo', 'multicast'],
      ['UdpChannel', 'udp:127.0.0.3', 'udp'],
    ]);
    try {
      for (const c of chans) await c.start();
      const [a, b, c] = chans as [UdpChannel, MulticastChannel, UdpChannel];
      expect([a.boundPort, b.boundPort, c.boundPort]).toEqual([p1, p2, p3]);
      expect(a.granted?.sendBufferBytes).toBe(131072);
      expect(b.granted?.receiveBufferBytes).toBe(65536);
      expect(lines.map((l) => [l.msg, l.ctx?.channel])).toEqual([
        ['udp sync channel open', 'udp:127.0.0.1'],
        ['multicast sync channel open', 'lo'],
        ['udp sync channel open', 'udp:127.0.0.3'],
      ]);
      expect(lines[2]?.ctx?.peers).toEqual(['127.0.0.4', '127.0.0.5']);
    } finally {
      await Promise.all(chans.map((c) => c.close()));
    }
  });

  it('with the main link multicast and a multicast backup', () => {
    const m = { port: 3780, interface: 'sync0' };
    const links: ChannelLinks = {
      transport: 'multicast',
      multicast: { ...m, group: '225.0.0.51' },
      backupLinks: [{ multicast: { ...m, interface: 'sync1', group: 'ff12::7373' } }],
    };
    const chans = createChannels({ sync: links });
    expect(chans.map((c) => [c.name, c.kind, c.interfaceName, (c as MulticastChannel).family])).toEqual([
      ['sync0', 'multicast', 'sync0', 4],
      ['sync1', 'multicast', 'sync1', 6],
    ]);
  });
});
