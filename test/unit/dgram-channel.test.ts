// The real datagram channels on loopback, no namespace: what they log,
// count and throw, sends that fail, listeners that throw, source filtering,
// socket buffers, and multicast on `lo` (which carries a group when the
// sender leaves multicast loopback on: our channel turns it off, so a plain
// socket sends to it here). Every port is picked by the kernel.
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { LogContext } from '../../src/log.js';
import type { ChannelLog } from '../../src/sync/transport/channel.js';
import {
  interfaceExists,
  interfaceOfAddress,
  linkUp,
  readLinkState,
  resolveInterfaceAddresses,
} from '../../src/sync/transport/iface.js';
import { MulticastChannel, type MulticastChannelOptions } from '../../src/sync/transport/multicast-channel.js';
import { UdpChannel, type UdpChannelOptions } from '../../src/sync/transport/udp-channel.js';

interface Line {
  level: string;
  msg: string;
  ctx: LogContext | undefined;
}

function recorder(): { log: ChannelLog; lines: Line[] } {
  const lines: Line[] = [];
  return { log: (level, msg, ctx) => lines.push({ level, msg, ctx }), lines };
}

/** Exposes the source filters, which real sockets reach only with the addresses the host has. */
class UdpProbe extends UdpChannel {
  peer(address: string): boolean {
    return this.isPeerSource(address);
  }
}

class MulticastProbe extends MulticastChannel {
  own(address: string): boolean {
    return this.isOwnSource(address);
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  // Bounded: 400 turns of 5 ms, plenty for loopback; a mutant that stops delivery then fails in 2 s.
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never happened: ${what}`);
}

/** A port free on 127.0.0.1 a moment ago, for channels whose peers must share it. */
async function freePort(): Promise<number> {
  const s = await plainSocket('udp4', '127.0.0.1');
  const { port } = s.address();
  await closeAll(s);
  return port;
}

async function plainSocket(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((resolve) => s.bind(0, address, resolve));
  return s;
}

function closeAll(...sockets: Socket[]): Promise<void[]> {
  return Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
}

async function udp(opts: Partial<UdpChannelOptions> & { bind: string }): Promise<UdpProbe> {
  const ch = new UdpProbe({ port: 0, peers: ['127.0.0.9'], ...opts });
  await ch.start();
  return ch;
}

const hasV6Loopback = (networkInterfaces().lo ?? []).some((a) => a.address === '::1');

describe('UdpChannel', () => {
  // [options, error message]
  const bad: Array<[UdpChannelOptions, string]> = [
    [{ bind: 'localhost', port: 1, peers: ['127.0.0.2'] }, 'bind address localhost is not an IP address'],
    [{ bind: '127.0.0.1', port: 1, peers: [] }, 'a UDP channel needs at least one peer'],
    [{ bind: '127.0.0.1', port: 1, peers: ['127.0.0.2', '::2'] }, 'peer ::2 is not an IPv4 address like 127.0.0.1'],
    [{ bind: '::1', port: 1, peers: ['127.0.0.2'] }, 'peer 127.0.0.2 is not an IPv6 address like ::1'],
    [{ bind: '::1', port: 1, peers: ['x'], name: 'n1' }, 'peer x is not an IPv6 address like ::1'],
  ];
  for (const [opts, message] of bad) {
    it(`refuses ${JSON.stringify(opts)}: ${message}`, () => {
      expect(() => new UdpChannel(opts)).toThrow(
        expect.objectContaining({ code: 'ECHANNEL_CONFIG', channel: opts.name ?? `udp:${opts.bind}`, message }),
      );
    });
  }

  // [peers, source address, delivered]
  const sources: Array<[string, string[], string, boolean]> = [
    ['127.0.0.1', ['127.0.0.2', '127.0.0.3'], '127.0.0.3', true],
    ['127.0.0.1', ['127.0.0.2'], '127.0.0.4', false],
    ['::1', ['fd00:0:0:0::2'], 'fd00::2', true],
    ['::1', ['fd00::2'], 'fd00:0::2', true],
    ['::1', ['FD00::2'], 'fd00::2', true],
    ['::1', ['fd00::2'], 'fd00::3', false],
  ];
  for (const [bind, peers, source, delivered] of sources) {
    it(`bound to ${bind} with peers ${peers.join(' ')}: ${source} is ${delivered ? '' : 'not '}a peer`, () => {
      expect(new UdpProbe({ bind, port: 1, peers }).peer(source)).toBe(delivered);
    });
  }

  it('is named after its bind address, watches the given interface, and watches its own link otherwise', async () => {
    const given = new UdpChannel({ bind: '127.0.0.1', port: 0, peers: ['127.0.0.2'], interface: 'nosuchif9' });
    expect(given.name).toBe('udp:127.0.0.1');
    expect(given.kind).toBe('udp');
    expect(given.interfaceName).toBe('nosuchif9');
    expect(given.isLinkUp()).toBe(false);
    expect(given.boundPort).toBeUndefined();
    await given.start();
    try {
      expect(given.interfaceName).toBe('nosuchif9');
      expect(given.boundPort).toBeGreaterThan(0);
    } finally {
      await given.close();
    }
    expect(given.boundPort).toBeUndefined();
    const found = new UdpChannel({ bind: '127.0.0.1', port: 0, peers: ['127.0.0.2'], name: 'mine' });
    expect(found.name).toBe('mine');
    expect(found.interfaceName).toBeUndefined();
    expect(found.isLinkUp()).toBe(true);
    await found.start();
    try {
      expect(found.interfaceName).toBe('lo');
      expect(found.isLinkUp()).toBe(true);
    } finally {
      await found.close();
    }
  });

  it('logs what it opened, with the buffers the kernel granted', async () => {
    const { log, lines } = recorder();
    const ch = await udp({ bind: '127.0.0.1', peers: ['127.0.0.2', '127.0.0.3'], interface: 'lo', log });
    try {
      const g = ch.granted!;
      expect(g.sendBufferBytes).toBeGreaterThan(0);
      expect(g.receiveBufferBytes).toBeGreaterThan(0);
      expect(lines).toEqual([
        {
          level: 'info',
          msg: 'udp sync channel open',
          ctx: {
            channel: 'udp:127.0.0.1',
            bind: '127.0.0.1',
            port: 0,
            peers: ['127.0.0.2', '127.0.0.3'],
            interface: 'lo',
            sendBufferBytes: g.sendBufferBytes,
            receiveBufferBytes: g.receiveBufferBytes,
          },
        },
      ]);
    } finally {
      await ch.close();
    }
  });

  it('logs interface null when its address is on no interface it can find', async () => {
    const { log, lines } = recorder();
    const ch = new UdpChannel({ bind: '127.0.0.1', port: 0, peers: ['127.0.0.2'], log });
    // Closed before it binds: start() fails, but only after looking the interface up.
    const started = ch.start();
    await ch.close();
    await expect(started).rejects.toMatchObject({
      code: 'ECHANNEL_BIND',
      channel: 'udp:127.0.0.1',
      message: 'sync channel udp:127.0.0.1 was closed while starting',
    });
    expect(ch.boundPort).toBeUndefined();
    expect(lines).toEqual([]);
  });

  it('starts once', async () => {
    const ch = await udp({ bind: '127.0.0.1' });
    try {
      await expect(ch.start()).rejects.toMatchObject({
        code: 'ECHANNEL_CONFIG',
        channel: 'udp:127.0.0.1',
        message: 'channel udp:127.0.0.1 was started before',
      });
      // The first start's socket is still the one in use.
      expect(ch.boundPort).toBeGreaterThan(0);
    } finally {
      await ch.close();
    }
    await expect(ch.start()).rejects.toMatchObject({ code: 'ECHANNEL_CONFIG' });
  });

  it('names address, port and errno when bind fails', async () => {
    const a = await udp({ bind: '127.0.0.1' });
    const port = a.boundPort!;
    const b = new UdpChannel({ bind: '127.0.0.1', port, peers: ['127.0.0.2'], interface: 'lo' });
    try {
      const err: unknown = await b.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: 'ECHANNEL_BIND',
        message: `sync channel udp:127.0.0.1: cannot bind 127.0.0.1 port ${port}: EADDRINUSE`,
        cause: expect.objectContaining({ code: 'EADDRINUSE' }),
      });
      expect(b.boundPort).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('sends each datagram to every peer and counts each one', async () => {
    const port = await freePort();
    // Every end on the same port: a peer's port is the channel's own.
    const tx = new UdpChannel({ bind: '127.0.0.1', port, peers: ['127.0.0.2', '127.0.0.3'], interface: 'lo' });
    const rx2 = new UdpChannel({ bind: '127.0.0.2', port, peers: ['127.0.0.1'], interface: 'lo' });
    const rx3 = new UdpChannel({ bind: '127.0.0.3', port, peers: ['127.0.0.1'], interface: 'lo' });
    const got: string[] = [];
    rx2.onDatagram((buf, from) => got.push(`2 ${buf.toString()} ${from.address}:${from.port}`));
    rx3.onDatagram((buf, from) => got.push(`3 ${buf.toString()} ${from.address}:${from.port}`));
    try {
      await Promise.all([tx.start(), rx2.start(), rx3.start()]);
      tx.send(Buffer.from('abc'));
      await until(() => got.length === 2 && tx.counters.datagramsSent === 2, 'both copies');
      expect(got.sort()).toEqual([`2 abc 127.0.0.1:${port}`, `3 abc 127.0.0.1:${port}`]);
      expect(tx.counters).toEqual({
        datagramsSent: 2,
        datagramsReceived: 0,
        bytesSent: 6,
        bytesReceived: 0,
        sendErrors: 0,
        receiveErrors: 0,
        droppedOwnSource: 0,
        droppedNotPeer: 0,
      });
      expect(rx2.counters).toMatchObject({ datagramsReceived: 1, bytesReceived: 3, droppedNotPeer: 0 });
    } finally {
      await Promise.all([tx.close(), rx2.close(), rx3.close()]);
    }
  });

  it('drops and counts what a non-peer sends, and delivers nothing once closed', async () => {
    const rx = await udp({ bind: '127.0.0.1', peers: ['127.0.0.2'] });
    const got: string[] = [];
    rx.onDatagram((buf) => got.push(buf.toString()));
    const stranger = await plainSocket('udp4', '127.0.0.4');
    const peer = await plainSocket('udp4', '127.0.0.2');
    try {
      stranger.send('no', rx.boundPort!, '127.0.0.1');
      await until(() => rx.counters.droppedNotPeer === 1, 'the drop');
      peer.send('yes!', rx.boundPort!, '127.0.0.1');
      await until(() => got.length === 1, 'the peer datagram');
      expect(got).toEqual(['yes!']);
      expect(rx.counters).toMatchObject({ datagramsReceived: 1, bytesReceived: 4, droppedNotPeer: 1, droppedOwnSource: 0 });
    } finally {
      await rx.close();
      await closeAll(stranger, peer);
    }
  });

  it('counts a listener that throws, logs it, and still calls the others', async () => {
    const { log, lines } = recorder();
    const rx = await udp({ bind: '127.0.0.1', peers: ['127.0.0.2'], log });
    const got: string[] = [];
    rx.onDatagram(() => {
      throw new Error('boom');
    });
    rx.onDatagram((buf) => got.push(buf.toString()));
    const peer = await plainSocket('udp4', '127.0.0.2');
    try {
      peer.send('x', rx.boundPort!, '127.0.0.1');
      await until(() => got.length === 1, 'the second listener');
      expect(rx.counters).toMatchObject({ datagramsReceived: 1, receiveErrors: 1 });
      expect(lines.slice(1)).toEqual([
        { level: 'error', msg: 'sync datagram listener threw', ctx: { channel: 'udp:127.0.0.1', error: 'Error: boom' } },
      ]);
    } finally {
      await rx.close();
      await closeAll(peer);
    }
  });

  it('counts failed sends, warns once per run of them, tells its listeners, and says when sends work again', async () => {
    const { log, lines } = recorder();
    const port = await freePort();
    const tx = await udp({ bind: '127.0.0.1', port, peers: ['127.0.0.2'], log });
    const errors: string[] = [];
    tx.onSendError(() => {
      throw new Error('listener broke');
    });
    tx.onSendError((e) => errors.push(e.code ?? '?'));
    try {
      // Larger than any UDP datagram: the kernel refuses it (in the send callback).
      const huge = Buffer.alloc(70_000);
      tx.send(huge);
      tx.send(huge);
      await until(() => tx.counters.sendErrors === 2, 'two failures');
      expect(errors).toEqual(['EMSGSIZE', 'EMSGSIZE']);
      tx.send(Buffer.from('ok'));
      tx.send(Buffer.from('ok'));
      await until(() => tx.counters.datagramsSent === 2, 'two sends');
      tx.send(huge);
      await until(() => tx.counters.sendErrors === 3, 'a third failure');
      expect(tx.counters).toMatchObject({ datagramsSent: 2, bytesSent: 4, sendErrors: 3 });
      const listenerLine = {
        level: 'error',
        msg: 'sync send-error listener threw',
        ctx: { channel: 'udp:127.0.0.1', error: 'Error: listener broke' },
      };
      const warn = {
        level: 'warn',
        msg: 'sync channel send failed',
        ctx: { channel: 'udp:127.0.0.1', destination: '127.0.0.2', error: 'EMSGSIZE' },
      };
      expect(lines.slice(1)).toEqual([
        warn,
        listenerLine,
        listenerLine,
        { level: 'info', msg: 'sync channel sends again', ctx: { channel: 'udp:127.0.0.1' } },
        warn,
        listenerLine,
      ]);
    } finally {
      await tx.close();
    }
  });

  it('counts a send that throws at once (port 0) like one that fails later', async () => {
    const { log, lines } = recorder();
    const tx = await udp({ bind: '127.0.0.1', peers: ['127.0.0.2', '127.0.0.3'], log });
    const errors: string[] = [];
    tx.onSendError((e) => errors.push(e.code ?? '?'));
    try {
      tx.send(Buffer.from('x'));
      expect(tx.counters).toMatchObject({ sendErrors: 2, datagramsSent: 0 });
      expect(errors).toEqual(['ERR_SOCKET_BAD_PORT', 'ERR_SOCKET_BAD_PORT']);
      expect(lines.slice(1)).toEqual([
        {
          level: 'warn',
          msg: 'sync channel send failed',
          ctx: { channel: 'udp:127.0.0.1', destination: '127.0.0.2', error: 'ERR_SOCKET_BAD_PORT' },
        },
      ]);
    } finally {
      await tx.close();
    }
  });

  it('counts sends while not open, before start and after close', async () => {
    const tx = new UdpChannel({ bind: '127.0.0.1', port: 0, peers: ['127.0.0.2', '127.0.0.3'], interface: 'lo' });
    tx.send(Buffer.from('x'));
    expect(tx.counters.sendErrors).toBe(2);
    await tx.start();
    await tx.close();
    tx.send(Buffer.from('x'));
    expect(tx.counters).toMatchObject({ sendErrors: 4, datagramsSent: 0 });
  });

  it('applies the socket buffer sizes it is given, and warns when the kernel caps them', async () => {
    const quiet = recorder();
    const small = await udp({ bind: '127.0.0.1', sendBufferBytes: 65536, receiveBufferBytes: 131072, log: quiet.log });
    // Linux reports twice the size asked for (its bookkeeping overhead).
    expect(small.granted).toEqual({ sendBufferBytes: 131072, receiveBufferBytes: 262144 });
    expect(quiet.lines.map((l) => l.msg)).toEqual(['udp sync channel open']);
    await small.close();

    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
    const big = Math.max(rmemMax, wmemMax) * 2 + 4096;
    const capped = recorder();
    const ch = await udp({ bind: '127.0.0.1', sendBufferBytes: big, receiveBufferBytes: big, log: capped.log });
    try {
      expect(ch.granted).toEqual({ sendBufferBytes: 2 * wmemMax, receiveBufferBytes: 2 * rmemMax });
      expect(capped.lines.slice(0, 2)).toEqual([
        {
          level: 'warn',
          msg: 'kernel capped the sync receive buffer; raise net.core.rmem_max',
          ctx: { channel: 'udp:127.0.0.1', requested: big, granted: rmemMax },
        },
        {
          level: 'warn',
          msg: 'kernel capped the sync send buffer; raise net.core.wmem_max',
          ctx: { channel: 'udp:127.0.0.1', requested: big, granted: wmemMax },
        },
      ]);
    } finally {
      await ch.close();
    }
  });

  // [send, receive asked; which warnings] with the sizes the kernel grants exactly at twice the request
  const grants: Array<[number | undefined, number | undefined]> = [
    [undefined, 65536],
    [65536, undefined],
    [undefined, undefined],
  ];
  for (const [send, receive] of grants) {
    it(`sets only the buffers given (send ${send}, receive ${receive}) and warns of none`, async () => {
      const plain = await udp({ bind: '127.0.0.1' });
      const defaults = plain.granted!;
      await plain.close();
      const { log, lines } = recorder();
      const ch = await udp({ bind: '127.0.0.1', sendBufferBytes: send, receiveBufferBytes: receive, log });
      try {
        expect(ch.granted).toEqual({
          sendBufferBytes: send === undefined ? defaults.sendBufferBytes : 2 * send,
          receiveBufferBytes: receive === undefined ? defaults.receiveBufferBytes : 2 * receive,
        });
        expect(lines.map((l) => l.msg)).toEqual(['udp sync channel open']);
      } finally {
        await ch.close();
      }
    });
  }

  it('logs a buffer size the socket refuses and opens anyway', async () => {
    const { log, lines } = recorder();
    const ch = await udp({ bind: '127.0.0.1', sendBufferBytes: -1, receiveBufferBytes: 65536, log });
    try {
      expect(lines[0]).toMatchObject({
        level: 'warn',
        msg: 'sync channel socket buffer size refused',
        ctx: { channel: 'udp:127.0.0.1', error: expect.stringContaining('ERR_SOCKET_BAD_BUFFER_SIZE') },
      });
      // The refusal stopped the receive size too; the grant is still read and reported.
      expect(ch.granted!.receiveBufferBytes).toBeGreaterThan(0);
      expect(lines.at(-1)?.msg).toBe('udp sync channel open');
    } finally {
      await ch.close();
    }
  });
});

describe('MulticastChannel', () => {
  it('is named after its interface and sends to the group, zoned for IPv6', () => {
    const v4 = new MulticastChannel({ group: '225.99.0.1', port: 1, interface: 'sync0' });
    expect(v4).toMatchObject({ name: 'sync0', kind: 'multicast', family: 4, interfaceName: 'sync0' });
    expect(v4.localAddress).toBeUndefined();
    const v6 = new MulticastChannel({ group: 'ff12::7373', port: 1, interface: 'sync1', name: 'six' });
    expect(v6).toMatchObject({ name: 'six', family: 6, interfaceName: 'sync1' });
    expect(() => new MulticastChannel({ group: '10.0.0.1', port: 1, interface: 'lo' })).toThrow(
      expect.objectContaining({ code: 'ECHANNEL_CONFIG', channel: 'lo', message: '10.0.0.1 is not a multicast group' }),
    );
  });

  it('says whether a missing address means a missing interface', async () => {
    const gone = new MulticastChannel({ group: '225.99.0.1', port: 0, interface: 'nosuchif0' });
    await expect(gone.start()).rejects.toMatchObject({
      code: 'ECHANNEL_IFACE',
      channel: 'nosuchif0',
      message: 'sync interface nosuchif0 does not exist',
    });
    const bare = new MulticastChannel({ group: '225.99.0.1', port: 0, interface: 'lo', resolveAddresses: async () => [] });
    await expect(bare.start()).rejects.toMatchObject({
      code: 'ECHANNEL_IFACE',
      message: 'sync interface lo has no IPv4 address yet; multicast group 225.99.0.1 needs one',
    });
    // Nothing was left open: a send is a counted error.
    bare.send(Buffer.from('x'));
    expect(bare.counters.sendErrors).toBe(1);
  });

  it('fails with ECHANNEL_SETUP and closes when the group cannot be joined on that address', async () => {
    const ch = new MulticastChannel({
      group: '225.99.0.2',
      port: 0,
      interface: 'lo',
      // An address of no interface here: the kernel refuses the membership.
      resolveAddresses: async () => ['192.0.2.254'],
    });
    const err: unknown = await ch.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ECHANNEL_SETUP', channel: 'lo' });
    expect((err as Error).message).toMatch(/^cannot join 225\.99\.0\.2 on lo: E[A-Z]+$/);
    expect(ch.boundPort).toBeUndefined();
    expect(ch.localAddress).toBeUndefined();
  });

  async function onLo(opts: Partial<MulticastChannelOptions> = {}): Promise<{ ch: MulticastProbe; lines: Line[] }> {
    const { log, lines } = recorder();
    const ch = new MulticastProbe({ group: '225.99.0.3', port: await freePort(), interface: 'lo', log, ...opts });
    await ch.start();
    return { ch, lines };
  }

  async function groupSender(bind: string): Promise<Socket> {
    const s = await plainSocket('udp4', bind);
    s.setMulticastInterface('127.0.0.1');
    s.setMulticastLoopback(true);
    return s;
  }

  it('opens on lo: logs the group and address, and drops datagrams from its own addresses', async () => {
    const { ch, lines } = await onLo({ receiveBufferBytes: 65536 });
    const got: string[] = [];
    ch.onDatagram((buf, from) => got.push(`${buf.toString()} ${from.address}`));
    const own = await groupSender('127.0.0.1');
    const other = await groupSender('127.0.0.5');
    try {
      expect(ch.localAddress).toBe('127.0.0.1');
      expect(ch.granted?.receiveBufferBytes).toBe(131072);
      expect(lines).toEqual([
        {
          level: 'info',
          msg: 'multicast sync channel open',
          ctx: {
            channel: 'lo',
            group: '225.99.0.3',
            port: ch.boundPort,
            interface: 'lo',
            address: '127.0.0.1',
            sendBufferBytes: ch.granted!.sendBufferBytes,
            receiveBufferBytes: 131072,
          },
        },
      ]);
      own.send('mine', ch.boundPort!, '225.99.0.3');
      await until(() => ch.counters.droppedOwnSource === 1, 'the own datagram dropped');
      other.send('theirs', ch.boundPort!, '225.99.0.3');
      await until(() => got.length === 1, 'the other datagram');
      expect(got).toEqual(['theirs 127.0.0.5']);
      expect(ch.counters).toMatchObject({ datagramsReceived: 1, bytesReceived: 6, droppedOwnSource: 1, droppedNotPeer: 0 });
      expect([ch.own('127.0.0.1'), ch.own('127.0.0.5')]).toEqual([true, false]);
    } finally {
      await ch.close();
      await closeAll(own, other);
    }
  });

  it('delivers datagrams from its own addresses with dropOwnSource false', async () => {
    const { ch } = await onLo({ dropOwnSource: false });
    const got: string[] = [];
    ch.onDatagram((buf, from) => got.push(`${buf.toString()} ${from.address}`));
    const own = await groupSender('127.0.0.1');
    try {
      own.send('mine', ch.boundPort!, '225.99.0.3');
      await until(() => got.length === 1, 'the own datagram');
      expect(got).toEqual(['mine 127.0.0.1']);
      expect(ch.counters.droppedOwnSource).toBe(0);
      expect(ch.own('127.0.0.1')).toBe(false);
    } finally {
      await ch.close();
      await closeAll(own);
    }
  });

  it('counts all the addresses the resolver gives as its own, in any spelling', async () => {
    const { ch } = await onLo({ resolveAddresses: async () => ['127.0.0.1', '127.0.0.7'] });
    try {
      expect(ch.localAddress).toBe('127.0.0.1');
      expect(['127.0.0.1', '127.0.0.7', '127.0.0.8'].map((a) => ch.own(a))).toEqual([true, true, false]);
    } finally {
      await ch.close();
    }
  });

  it('sends to the group on its link and counts it', async () => {
    const { ch } = await onLo();
    try {
      ch.send(Buffer.from('hello'));
      await until(() => ch.counters.datagramsSent === 1, 'the send');
      expect(ch.counters).toMatchObject({ datagramsSent: 1, bytesSent: 5, sendErrors: 0 });
    } finally {
      await ch.close();
    }
  });

  it.skipIf(!hasV6Loopback)('joins an IPv6 group on lo by the interface zone and sends there', async () => {
    const { log, lines } = recorder();
    const ch = new MulticastChannel({ group: 'ff12::7373', port: await freePort(), interface: 'lo', log });
    await ch.start();
    try {
      expect(ch.localAddress).toBe('::1');
      expect(lines[0]?.ctx).toMatchObject({ group: 'ff12::7373', address: '::1', interface: 'lo' });
      ch.send(Buffer.from('six'));
      await until(() => ch.counters.datagramsSent + ch.counters.sendErrors === 1, 'the send');
      // lo has no IPv6 multicast route on most hosts (ENETUNREACH); where it fails, the log names the zoned group.
      if (ch.counters.sendErrors === 1) {
        expect(lines[1]).toMatchObject({ msg: 'sync channel send failed', ctx: { destination: 'ff12::7373%lo' } });
      } else {
        expect(ch.counters.bytesSent).toBe(3);
      }
    } finally {
      await ch.close();
    }
  });
});

describe('interfaces', () => {
  // [name, exists, link state]
  const names: Array<[string, boolean, string]> = [
    ['lo', true, 'up'],
    ['nosuchif0', false, 'down'],
    ['..', false, 'down'],
    ['.', false, 'down'],
    ['../lo', false, 'down'],
    ['lo:1', false, 'down'],
    ['lo x', false, 'down'],
    ['', false, 'down'],
    ['a23456789012345x', false, 'down'],
  ];
  for (const [name, exists, state] of names) {
    it(`${JSON.stringify(name)}: exists ${exists}, link ${state}`, () => {
      expect(interfaceExists(name)).toBe(exists);
      expect(readLinkState(name)).toBe(state);
      expect(linkUp(name)).toBe(state === 'up');
    });
  }

  it('an unknown interface is up as far as linkUp knows', () => {
    expect(linkUp(undefined)).toBe(true);
  });

  it('resolves the addresses of lo, and none of a missing interface', async () => {
    expect(await resolveInterfaceAddresses('lo', 4)).toEqual(['127.0.0.1']);
    expect(await resolveInterfaceAddresses('nosuchif0', 4)).toEqual([]);
    expect(await resolveInterfaceAddresses('nosuchif0', 6)).toEqual([]);
  });

  it.skipIf(!hasV6Loopback)('resolves the IPv6 address of lo', async () => {
    expect(await resolveInterfaceAddresses('lo', 6)).toEqual(['::1']);
  });

  // [address, interface]
  const holders: Array<[string, string | undefined]> = [
    ['127.0.0.1', 'lo'],
    ['192.0.2.254', undefined],
    ['fd99:7373::1', undefined],
  ];
  for (const [address, name] of holders) {
    it(`finds the interface of ${address}: ${name}`, async () => {
      expect(await interfaceOfAddress(address)).toBe(name);
    });
  }

  it.skipIf(!hasV6Loopback)('finds lo for ::1 in any spelling', async () => {
    expect(await interfaceOfAddress('::1')).toBe('lo');
    expect(await interfaceOfAddress('0:0:0:0:0:0:0:1')).toBe('lo');
  });
});
