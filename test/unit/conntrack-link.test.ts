// ConntrackLink and ConntrackEvents over the FakeKernel: the same code paths
// as on the real kernel, with deterministic error cases.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ConntrackEvent, ConntrackEvents } from '../../src/kernel/conntrack-events.js';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import {
  AF_INET,
  AF_INET6,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  IPPROTO,
  IPS,
  NFNL_SUBSYS_CTNETLINK,
  NLM_F_CREATE,
  NLM_F_EXCL,
} from '../../src/kernel/constants.js';
import { encodeConntrack } from '../../src/kernel/ct-codec.js';
import { readEntryRecord, REC_WORDS, recordBuf, recordKeyString, writeEntryRecord } from '../../src/kernel/ct-record.js';
import { NlWriter } from '../../src/kernel/netlink-codec.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { FakeKernel, type FakeSocket } from '../../src/kernel/fake-kernel.js';
import type { NetlinkReceiver } from '../../src/kernel/transport.js';

function entry(i: number, family: 2 | 10 = AF_INET): ConntrackEntry {
  const src = family === AF_INET ? `10.99.0.${i}` : `fd99::${i.toString(16)}`;
  const dst = family === AF_INET ? '10.98.0.1' : 'fd98::1';
  return {
    family,
    orig: { src, dst, proto: IPPROTO.TCP, sport: 1000 + i, dport: 80 },
    reply: { src: dst, dst: src, proto: IPPROTO.TCP, sport: 80, dport: 1000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    mark: i,
    protoinfo: { tcp: { state: 3 } },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('ConntrackLink over FakeKernel', () => {
  it('batches creates, maps errno per entry and counts failures', async () => {
    const k = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    k.packetNew({ ...entry(3), status: IPS.CONFIRMED });
    const items: BatchItem[] = [];
    for (let i = 0; i < 10; i++) items.push({ op: 'create', entry: entry(i) });
    const res = await link.batch(items, { chunkSize: 4 });
    expect(res.ok).toBe(9);
    expect(res.failures).toEqual({ EEXIST: 1 });
    expect(res.errnos[3]).toBe(17);
    expect(k.table.size).toBe(10);
    expect(link.counters.batchMessages).toBe(10);
  });

  it('encodes the next chunk while the kernel has the one before, in one sendmsg with its barrier', async () => {
    const k = new FakeKernel();
    const order: string[] = [];
    let socket: FakeSocket | undefined;
    const link = new ConntrackLink({
      transportFactory: (o) => {
        const s = k.openSocket(o);
        socket = s;
        const sendAsync = s.sendAsync.bind(s);
        s.sendAsync = (data, done) => {
          order.push('send');
          sendAsync(data, (errno) => {
            order.push('done');
            done(errno);
          });
        };
        return s;
      },
    });
    k.packetNew({ ...entry(9), status: IPS.CONFIRMED });
    const res = await link.batchOf(
      {
        length: 12,
        op: () => 'create',
        entry: (i) => {
          order.push(`e${i}`);
          return i === 5 ? null : entry(i);
        },
      },
      { chunkSize: 4 },
    );
    // Chunk 2 (items 4-7) is encoded before chunk 1's send came back, chunk 3 before chunk 2's.
    expect(order.join(' ')).toBe('e0 e1 e2 e3 send e4 e5 e6 e7 done send e8 e9 e10 e11 done send done');
    expect([...res.errnos]).toEqual([0, 0, 0, 0, 0, -1, 0, 0, 0, 17, 0, 0]);
    expect(res).toMatchObject({ ok: 10, failed: 1, skipped: 1, failures: { EEXIST: 1 } });
    // One sendmsg per chunk: the NOOP that closes it rides along.
    expect(socket!.stats).toMatchObject({ sends: 3, asyncSends: 3 });
  });

  it('a request or another batch made while a chunk is in flight never writes into that chunk', async () => {
    const k = new FakeKernel();
    for (let i = 200; i < 210; i++) k.packetNew({ ...entry(i), status: IPS.CONFIRMED });
    const link = new ConntrackLink({
      transportFactory: (o) => {
        const s = k.openSocket(o);
        // As on a pool thread: the kernel reads the bytes only when the send completes.
        s.sendAsync = (data, done) => setImmediate(() => done(s.send(data)));
        return s;
      },
    });
    const batch = (from: number) => link.batchOf({ length: 30, op: () => 'create', entry: (i) => entry(from + i) }, { chunkSize: 8 });
    const [a, dump, b] = await Promise.all([batch(0), link.list(), batch(100)]);
    expect(a).toMatchObject({ ok: 30, failed: 0 });
    expect(b).toMatchObject({ ok: 30, failed: 0 });
    expect(dump).toHaveLength(10);
    expect(k.table.size).toBe(70);
  });

  it('a chunk whose send fails fails all its items, and the batch goes on', async () => {
    const k = new FakeKernel();
    let n = 0;
    const link = new ConntrackLink({
      transportFactory: (o) => {
        const s = k.openSocket(o);
        const sendAsync = s.sendAsync.bind(s);
        s.sendAsync = (data, done) => (n++ === 1 ? setImmediate(() => done(105)) : sendAsync(data, done));
        return s;
      },
    });
    const res = await link.batchOf({ length: 9, op: () => 'create', entry: (i) => entry(i) }, { chunkSize: 3 });
    expect([...res.errnos]).toEqual([0, 0, 0, 105, 105, 105, 0, 0, 0]);
    expect(k.table.size).toBe(6);
  });

  it('update/upsert/delete semantics and injected kernel errors', async () => {
    const k = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    k.injectError('create', 12);
    const res = await link.batch([
      { op: 'create', entry: entry(1) },
      { op: 'update', entry: entry(2) },
      { op: 'upsert', entry: entry(2) },
      { op: 'update', entry: { ...entry(2), mark: 99 } },
      { op: 'delete', entry: entry(2) },
      { op: 'delete', entry: entry(2) },
    ]);
    expect([...res.errnos]).toEqual([12, 2, 0, 0, 0, 2]);
    expect(res.failures).toEqual({ ENOMEM: 1, ENOENT: 2 });
  });

  it('refuses a create without IPS_CONFIRMED the way the kernel does, and the link always sets it', async () => {
    const k = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    const res = await link.batch([{ op: 'create', entry: { ...entry(1), status: 0 } }]);
    expect(res.ok).toBe(1);
    expect(k.table.values().next().value!.status! & IPS.CONFIRMED).toBeTruthy();
  });

  it('dumpRecords: the common shape as records equal to what the object decoder gives, the rest as objects', async () => {
    const k = new FakeKernel();
    for (let i = 1; i <= 40; i++) {
      const e = entry(1 + (i % 30), i % 2 ? AF_INET : AF_INET6);
      // Every fifth with a helper: a shape the record decoder leaves to the object decoder.
      k.packetNew({ ...e, orig: { ...e.orig, sport: 6000 + i }, status: IPS.CONFIRMED, ...(i % 5 === 0 ? { helper: 'ftp' } : {}) });
    }
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    const listed = await link.list();
    expect(listed).toHaveLength(40);
    const records = new Map<string, number[]>();
    const objects: ConntrackEntry[] = [];
    const n = await link.dumpRecords(
      (r, at) => {
        records.set(recordKeyString(r.w, at), [...r.w.subarray(at, at + REC_WORDS)]);
      },
      (e) => objects.push(e),
    );
    expect(n).toBe(40);
    expect(objects.map((e) => e.orig.sport).sort()).toEqual(listed.filter((e) => e.helper === 'ftp').map((e) => e.orig.sport).sort());
    expect(objects).toHaveLength(8);
    expect(records.size).toBe(32);
    const w = recordBuf(1);
    for (const e of listed) {
      if (e.helper !== undefined) continue;
      expect(writeEntryRecord(e, w, 0, (x) => x)).toBeUndefined();
      expect(records.get(recordKeyString(w.w, 0))).toEqual([...w.w.subarray(0, REC_WORDS)]);
    }
  });

  it('dumps v4 and v6 across several datagrams, gets and flushes', async () => {
    const k = new FakeKernel();
    for (let i = 1; i <= 300; i++) {
      const e = entry(1 + (i % 250), i % 2 ? AF_INET : AF_INET6);
      k.packetNew({ ...e, orig: { ...e.orig, sport: 5000 + i }, status: IPS.CONFIRMED });
    }
    expect(k.table.size).toBe(300);
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    const all = await link.list();
    expect(all.length).toBe(k.table.size);
    const v6 = await link.list({ family: AF_INET6 });
    expect(v6.every((e) => e.family === AF_INET6)).toBe(true);
    expect(v6.length).toBeGreaterThan(0);
    const one = all[5]!;
    expect((await link.get(one))?.orig).toEqual(one.orig);
    await link.flush();
    expect(k.table.size).toBe(0);
    expect(await link.get(one)).toBeNull();
  });

  it('fails a request whose reply never comes with ETIMEDOUT instead of hanging', async () => {
    const k = new FakeKernel();
    const link = new ConntrackLink({
      transportFactory: (o) => {
        const s = k.openSocket(o);
        s.send = () => 0; // the kernel swallows everything
        return s;
      },
      replyTimeoutMs: 20,
    });
    const res = await link.batch([{ op: 'create', entry: entry(1) }]);
    expect(res.failures).toEqual({ ETIMEDOUT: 1 });
    await expect(link.list()).rejects.toMatchObject({ code: 'EKERNEL_ETIMEDOUT' });
  });
});

describe("a dump's reply timeout", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /**
   * A link whose kernel answers are held back and handed over one netlink
   * message at a time when the test says (`release`), on fake timers: a dump
   * as slow as the test likes, or one that stops half-way.
   */
  function heldLink(k: FakeKernel, replyTimeoutMs: number) {
    const held: Buffer[] = [];
    let to: NetlinkReceiver | undefined;
    const link = new ConntrackLink({
      replyTimeoutMs,
      transportFactory: (o) => {
        const s = k.openSocket(o);
        const setReceiver = s.setReceiver.bind(s);
        s.setReceiver = (r) => {
          to = r;
          setReceiver({
            onData: (b, start, end) => {
              for (let at = start; at < end; ) {
                const len = b.readUInt32LE(at);
                held.push(Buffer.from(b.subarray(at, at + len)));
                at += (len + 3) & ~3;
              }
            },
            onError: (e) => r.onError(e),
          });
        };
        return s;
      },
    });
    const release = (n: number) => {
      for (let i = 0; i < n && held.length > 0; i++) {
        const m = held.shift()!;
        to!.onData(m, 0, m.length);
      }
    };
    return { link, held, release };
  }

  /** heldLink()'s list() started under fake timers: what it ended with (entries, or the error), undefined while it runs. */
  function heldList(k: FakeKernel, replyTimeoutMs: number) {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const held = heldLink(k, replyTimeoutMs);
    let ended: unknown;
    const listed = held.link.list().then(
      (l) => (ended = l.length),
      (e: unknown) => (ended = e),
    );
    return { ...held, listed, outcome: () => ended };
  }

  async function kernelWith(n: number): Promise<FakeKernel> {
    const k = new FakeKernel();
    const seed = new ConntrackLink({ transportFactory: k.openSocket });
    const items: BatchItem[] = [];
    for (let i = 1; i <= n; i++) items.push({ op: 'create', entry: entry(i) });
    expect((await seed.batch(items)).failed).toBe(0);
    seed.close();
    return k;
  }

  it('a dump that keeps answering is never cut short, however long it takes in all', async () => {
    const k = await kernelWith(12);
    const { link, held, release, listed, outcome } = heldList(k, 100);
    await flush();
    // 12 entries and the dump's end, one every 90 ms: 1.17 s in all, over eleven reply timeouts.
    expect(held).toHaveLength(13);
    for (let i = 0; i < 13; i++) {
      vi.advanceTimersByTime(90);
      release(1);
      await flush();
    }
    await listed;
    expect(outcome()).toBe(12);
    expect(link.counters.timeouts).toBe(0);
    link.close();
  });

  it('a dump that stops answering fails with ETIMEDOUT within two reply timeouts of its last message', async () => {
    const k = await kernelWith(12);
    const { link, release, listed, outcome } = heldList(k, 100);
    await flush();
    vi.advanceTimersByTime(50);
    release(5);
    await flush();
    // Still answering in the first interval: the check at 100 ms goes on.
    vi.advanceTimersByTime(50);
    await flush();
    expect(outcome()).toBeUndefined();
    // Nothing from 50 ms on: the check at 200 ms fails it.
    vi.advanceTimersByTime(99);
    await flush();
    expect(outcome()).toBeUndefined();
    vi.advanceTimersByTime(1);
    await listed;
    expect(outcome()).toMatchObject({ code: 'EKERNEL_ETIMEDOUT' });
    expect(link.counters.timeouts).toBe(1);
    link.close();
  });

  it('a dump with no answer at all fails after exactly one reply timeout', async () => {
    const k = await kernelWith(3);
    const { link, listed, outcome } = heldList(k, 100);
    await flush();
    vi.advanceTimersByTime(99);
    await flush();
    expect(outcome()).toBeUndefined();
    vi.advanceTimersByTime(1);
    await listed;
    expect(outcome()).toMatchObject({ code: 'EKERNEL_ETIMEDOUT' });
    link.close();
  });
});

describe('ConntrackEvents over FakeKernel', () => {
  it('classifies events; the kernel drops the ones our own socket caused before queueing', async () => {
    const k = new FakeKernel();
    const events = new ConntrackEvents({ transportFactory: k.openSocket });
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    events.addOwnPortid(link.portid);
    expect(events.ownEventsFiltered).toBe(true);
    const seen: ConntrackEvent[] = [];
    events.start({ onEvent: (e) => seen.push(e), onOverrun: () => {} });
    k.packetNew({ ...entry(1), status: IPS.CONFIRMED });
    k.packetUpdate({ ...entry(1), mark: 77, status: IPS.CONFIRMED });
    await link.batch([{ op: 'create', entry: entry(2) }]);
    k.expire(entry(1));
    await flush();
    expect(seen.map((e) => [e.type, e.entry.orig.src, e.own])).toEqual([
      ['new', '10.99.0.1', false],
      ['update', '10.99.0.1', false],
      ['destroy', '10.99.0.1', false],
    ]);
    expect(seen[1]!.entry.mark).toBe(77);
    expect(events.counters).toMatchObject({ new: 1, update: 1, destroy: 1, own: 0 });
    expect((events.transport as FakeSocket).stats.filtered).toBe(1);
  });

  it('flags our own events when the kernel refuses the socket filter', async () => {
    const k = new FakeKernel();
    const events = new ConntrackEvents({
      transportFactory: (o) => {
        const s = k.openSocket(o);
        s.setFilter = () => {
          throw new Error('setsockopt(SO_ATTACH_FILTER): Operation not permitted');
        };
        return s;
      },
    });
    const link = new ConntrackLink({ transportFactory: k.openSocket });
    events.addOwnPortid(link.portid);
    expect(events.ownEventsFiltered).toBe(false);
    const seen: ConntrackEvent[] = [];
    events.start({ onEvent: (e) => seen.push(e), onOverrun: () => {} });
    k.packetNew({ ...entry(1), status: IPS.CONFIRMED });
    await link.batch([{ op: 'create', entry: entry(2) }]);
    await flush();
    expect(seen.map((e) => [e.type, e.entry.orig.src, e.own])).toEqual([
      ['new', '10.99.0.1', false],
      ['new', '10.99.0.2', true],
    ]);
    expect(events.counters).toMatchObject({ new: 2, own: 1 });
  });

  it('walks a datagram in place: records and objects in their order, and a malformed header ends it after what came before', () => {
    const events = new ConntrackEvents({ transportFactory: new FakeKernel().openSocket });
    const seen: string[] = [];
    const errors: string[] = [];
    events.start({
      onEvent: (e) => seen.push(`obj:${e.type}:${e.entry.orig.src}:${e.entry.helper ?? ''}`),
      onRecordEvent: (type, r, at) => seen.push(`rec:${type}:${readEntryRecord(r, at, undefined).orig.src}`),
      onOverrun: () => {},
      onDecodeError: (e) => errors.push(e.code),
    });
    const w = new NlWriter();
    const put = (type: number, flags: number, e: ConntrackEntry) => {
      w.begin((NFNL_SUBSYS_CTNETLINK << 8) | type, flags, 0, e.family);
      encodeConntrack(w, e);
      w.end();
    };
    put(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, entry(1));
    put(IPCTNL_MSG_CT_NEW, 0, { ...entry(2), helper: 'ftp' }); // a rare field: the object path
    put(IPCTNL_MSG_CT_DELETE, 0, entry(3, AF_INET6));
    const good = Buffer.from(w.finish());
    // Junk around the range, and a header claiming more bytes than are left.
    const bad = Buffer.alloc(16);
    bad.writeUInt32LE(4096, 0);
    const buf = Buffer.concat([Buffer.alloc(8, 0xee), good, bad, Buffer.alloc(8, 0xee)]);
    const tapped: string[] = [];
    events.setTap({
      onConntrackMessage: (kind, b, start, len) => tapped.push(`${kind}:${len}:${b.readUInt32LE(start)}`),
      endOfBatch: () => tapped.push('end'),
    });
    events.onData(buf, 8, 8 + good.length + bad.length);
    expect(seen).toEqual(['rec:new:10.99.0.1', 'obj:update:10.99.0.2:ftp', 'rec:destroy:fd99::3']);
    expect(errors).toEqual(['EMSG_LEN']);
    expect(events.counters).toMatchObject({ new: 1, update: 1, destroy: 1, decodeErrors: 1 });
    // The tap sees each message whole (its length leads it), then one end of the read, the malformed end included.
    expect(tapped).toHaveLength(4);
    expect(tapped.slice(0, 3).map((t) => t.split(':')[0])).toEqual(['new', 'update', 'destroy']);
    for (const t of tapped.slice(0, 3)) expect(t.split(':')[1]).toBe(t.split(':')[2]);
    expect(tapped[3]).toBe('end');
  });

  it('surfaces an overrun as an explicit event and counts it', async () => {
    const k = new FakeKernel();
    const events = new ConntrackEvents({ transportFactory: k.openSocket, receiveBufferBytes: 4096 });
    let overruns = 0;
    let received = 0;
    events.start({ onEvent: () => received++, onOverrun: () => overruns++ });
    for (let i = 0; i < 100; i++) k.packetNew({ ...entry(i), status: IPS.CONFIRMED });
    await flush();
    expect(overruns).toBe(1);
    expect(events.counters.overruns).toBe(1);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(100);
  });
});
