// The flow log writer on a thread of its own (issue 16): the shared ring
// between the event path and the writer, and the real worker (the compiled
// dist/flowlog/worker.js, which test/global-setup.ts builds) writing the
// same lines as the writer on the daemon's thread.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { compileFilter } from '../../src/cache/filter.js';
import { SharedEventQueue } from '../../src/flowlog/shared-queue.js';
import { FlowLogThread } from '../../src/flowlog/thread.js';
import { type FlowWriterConfig, InlineFlowLog } from '../../src/flowlog/writer.js';
import type { EventType } from '../../src/kernel/conntrack-events.js';
import { AF_INET, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, IPPROTO, IPS, NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE } from '../../src/kernel/constants.js';
import { encodeConntrack } from '../../src/kernel/ct-codec.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { NlWriter } from '../../src/kernel/netlink-codec.js';
import { type LogContext, silentLogger } from '../../src/log.js';
import { runs } from './fc-runs.js';

const WORKER = pathToFileURL(join(__dirname, '..', '..', 'dist', 'flowlog', 'worker.js'));

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ctsyncd-flt-'));
  dirs.push(d);
  return d;
}

const KINDS: readonly EventType[] = ['new', 'update', 'destroy'];

describe('SharedEventQueue: one producer, one consumer, one ring', () => {
  it('gives back what it took, in order, byte for byte, with the time it was pushed with, and refuses only what has no room', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 64, max: 600 }),
        fc.array(
          fc.oneof(
            fc.record({ push: fc.integer({ min: 0, max: 200 }), kind: fc.integer({ min: 0, max: 2 }), time: fc.option(fc.integer({ min: 0, max: 3 })) }),
            fc.constant({ shift: true }),
          ),
          { maxLength: 300 },
        ),
        (capacity, ops) => {
          const q = SharedEventQueue.create(capacity);
          const model: { kind: EventType; bytes: Buffer; time: number }[] = [];
          // The producer's last marker, as the ring keeps it: only a push that was taken moves it.
          let lastTime = Number.NaN;
          let n = 0;
          for (const op of ops) {
            if ('push' in op) {
              const src = Buffer.alloc(op.push + 3, 0xee);
              for (let i = 0; i < op.push; i++) src[i + 3] = (n + i) & 0xff;
              n++;
              const kind = KINDS[op.kind]!;
              // Times in ms since the epoch, some far from an integer's reach of 32 bits.
              const time = op.time === null ? Number.NaN : 1_765_000_000_000 + op.time * 1000.5;
              const mark = !Number.isNaN(time) && time !== lastTime ? 12 : 0;
              const need = mark + 4 + ((op.push + 3) & ~3);
              const free = q.capacity - q.bytes;
              const ok = q.push(kind, src, 3, op.push, time);
              // At worst the end's last need-4 bytes are skipped: free room of 2·need-4 always takes it.
              if (need <= q.capacity && free >= 2 * need - 4) expect(ok).toBe(true);
              if (free < need) expect(ok).toBe(false);
              if (ok) {
                if (mark) lastTime = time;
                model.push({ kind, bytes: src.subarray(3, 3 + op.push), time: lastTime });
              }
            } else {
              const want = model.shift();
              let got: { kind: EventType; bytes: Buffer; time: number } | undefined;
              const had = q.shift((kind, buf, start, len) => {
                got = { kind, bytes: Buffer.from(buf.subarray(start, start + len)), time: q.time };
              });
              expect(had).toBe(want !== undefined);
              expect(got).toEqual(want);
            }
            expect(q.length).toBe(model.length);
            if (model.length === 0) expect(q.bytes).toBe(0);
            expect(q.bytes).toBeLessThanOrEqual(q.capacity);
          }
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('a time marker goes only before the first message of a new time, and never without its message', () => {
    const q = SharedEventQueue.create(64);
    const msg = Buffer.alloc(20, 1);
    expect(q.push('new', msg, 0, 20, 1000)).toBe(true);
    // 12 bytes of marker and 24 of message.
    expect(q.bytes).toBe(36);
    expect(q.push('new', msg, 0, 20, 1000)).toBe(true);
    expect(q.bytes).toBe(60);
    // A new time needs 36 bytes; 4 are free: refused whole, and the marker is not counted as sent.
    expect(q.push('new', msg, 0, 20, 2000)).toBe(false);
    expect(q.bytes).toBe(60);
    const times: number[] = [];
    while (q.shift(() => times.push(q.time)));
    expect(times).toEqual([1000, 1000]);
    // Emptied: the refused time comes with the next message that fits.
    expect(q.push('destroy', msg, 0, 20, 2000)).toBe(true);
    expect(q.bytes).toBe(36);
    expect(q.shift((k) => expect(k).toBe('destroy'))).toBe(true);
    expect(q.time).toBe(2000);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
  });

  it('a full ring refuses, and takes again once the consumer freed room; both ends see one state', () => {
    const a = SharedEventQueue.create(64);
    const b = new SharedEventQueue(a.memory);
    const msg = Buffer.alloc(20, 7);
    let pushed = 0;
    while (a.push('new', msg, 0, msg.length)) pushed++;
    // 24 bytes each: two fit in 64, a third does not.
    expect(pushed).toBe(2);
    expect(b.length).toBe(2);
    expect(b.bytes).toBe(48);
    expect(b.shift(() => undefined)).toBe(true);
    expect(a.bytes).toBe(24);
    // 16 bytes at the end cannot hold 24: skipped, the message goes to the start.
    expect(a.push('destroy', msg, 0, msg.length)).toBe(true);
    expect(a.bytes).toBe(64);
    const kinds: EventType[] = [];
    while (b.shift((k) => kinds.push(k)));
    expect(kinds).toEqual(['new', 'destroy']);
    expect(a.bytes).toBe(0);
    expect(a.length).toBe(0);
  });

  it('kept empty between messages, it writes only the start of its ring (what is resident is the longest backlog)', () => {
    const q = SharedEventQueue.create(1 << 16);
    const msg = Buffer.alloc(100, 0xab);
    for (let i = 0; i < 5000; i++) {
      // Backlogs of 1 to 3 messages, each emptied.
      for (let k = 0; k <= i % 3; k++) expect(q.push('new', msg, 0, msg.length)).toBe(true);
      while (q.shift(() => undefined));
      expect(q.bytes).toBe(0);
    }
    const ring = Buffer.from(q.memory.ring);
    // Three messages of 104 bytes, and the WRAP word left where the last backlog ended.
    const touched = ring.length - [...ring].reverse().findIndex((b) => b !== 0);
    expect(touched).toBeLessThanOrEqual(3 * 104 + 4);
  });

  it('refuses messages the ring or the header cannot hold', () => {
    const q = SharedEventQueue.create(64);
    expect(q.push('new', Buffer.alloc(61), 0, 61)).toBe(false);
    expect(q.push('new', Buffer.alloc(60), 0, 60)).toBe(true);
    expect(() => SharedEventQueue.create(4)).toThrow(RangeError);
  });

  it('whenNotEmpty resolves at once with something queued, and on the producer\'s wake otherwise', async () => {
    const q = SharedEventQueue.create(256);
    q.push('new', Buffer.alloc(8), 0, 8);
    await q.whenNotEmpty();
    q.shift(() => undefined);
    let woke = false;
    const p = q.whenNotEmpty().then(() => {
      woke = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(woke).toBe(false);
    q.push('update', Buffer.alloc(8), 0, 8);
    q.wake();
    await p;
    expect(woke).toBe(true);
  });
});

/** An inside host's TCP flow masqueraded to 203.0.113.7, as a ctnetlink event message. */
function eventBytes(n: number, kind: EventType): Buffer {
  const e: ConntrackEntry = {
    family: AF_INET,
    orig: { src: `10.99.${(n >> 8) & 0xff}.${n & 0xff}`, dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 1024 + (n % 60000), dport: 443 },
    reply: { src: '198.51.100.9', dst: '203.0.113.7', proto: IPPROTO.TCP, sport: 443, dport: 1024 + (n % 60000) },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED | IPS.SRC_NAT | IPS.SRC_NAT_DONE,
    timeout: 120,
    mark: n % 3,
    id: n,
    protoinfo: { tcp: { state: 3 } },
  };
  const w = new NlWriter(1024);
  const del = kind === 'destroy';
  w.begin((NFNL_SUBSYS_CTNETLINK << 8) | (del ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW), del ? 0 : NLM_F_CREATE, 0, AF_INET);
  encodeConntrack(w, e, { readOnly: true });
  w.end();
  return Buffer.from(w.finish());
}

function config(path: string, extra = ''): { fl: FlowWriterConfig; filter: ReturnType<typeof parseConfig>['filter'] } {
  const cfg = parseConfig(
    `node: { id: fw1 }\nflowlog:\n  events: [new, destroy]\n  file: { path: ${path}, durability: buffered }\n${extra}`,
    'flt.yaml',
  );
  // No syslog here: its facility would need the daemon's name-to-number mapping.
  return { fl: { ...cfg.flowlog!, syslog: undefined }, filter: cfg.filter };
}

/** The lines without their time: the writer's clock is its own. */
const untimed = (text: string): unknown[] =>
  text
    .trim()
    .split('\n')
    .map((l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      delete r.time;
      return r;
    });

describe('FlowLogThread: the real worker writes what the writer on the daemon thread writes', () => {
  it('the same lines in the same order, every one counted, and the queue empty after close', async () => {
    const dir = tmp();
    const events: { kind: EventType; b: Buffer }[] = [];
    for (let n = 0; n < 3000; n++) {
      const kind = KINDS[n % 3]!;
      events.push({ kind, b: eventBytes(n, kind) });
    }
    const inline = config(join(dir, 'inline.jsonl'));
    const threaded = config(join(dir, 'thread.jsonl'));
    const filter = compileFilter(inline.filter, []);
    const a = await InlineFlowLog.open(inline.fl, {
      accept: (e) => filter.check(e).pass,
      acceptRecord: (r, at) => filter.checkRecord(r, at, undefined).pass,
      now: Date.now,
      log: silentLogger,
    });
    const logs: { level: string; msg: string; ctx?: LogContext }[] = [];
    const log = {
      ...silentLogger,
      info: (msg: string, ctx?: LogContext) => logs.push({ level: 'info', msg, ...(ctx ? { ctx } : {}) }),
      error: (msg: string, ctx?: LogContext) => logs.push({ level: 'error', msg, ...(ctx ? { ctx } : {}) }),
    };
    const t = await FlowLogThread.start({ config: threaded.fl, filter: threaded.filter, localAddresses: [], log, script: WORKER });
    for (const [i, { kind, b }] of events.entries()) {
      a.onConntrackMessage(kind, b, 0, b.length);
      t.onConntrackMessage(kind, b, 0, b.length);
      // Reads of 100 events: the writer is woken at the end of each.
      if (i % 100 === 99) t.endOfBatch();
    }
    // Written while the daemon's side waits: the wake reached the sleeping writer.
    for (let i = 0; i < 500 && (t.snapshot().written ?? 0) < 2000; i++) await new Promise((r) => setTimeout(r, 10));
    expect(t.snapshot()).toMatchObject({ logged: 2000, written: 2000 });
    await a.close();
    await t.close();
    const inlineText = readFileSync(inline.fl.file!.path, 'utf8');
    const threadText = readFileSync(threaded.fl.file!.path, 'utf8');
    // new and destroy of 3000 events cycling new/update/destroy.
    expect(untimed(threadText)).toHaveLength(2000);
    expect(untimed(threadText)).toEqual(untimed(inlineText));
    const s = t.snapshot();
    expect(s).toMatchObject({ queued: 2000, queueFull: 0, logged: 2000, written: 2000, dropped: 0, queueLength: 0, queueBytes: 0 });
    expect(s).toEqual({ ...a.snapshot(), file: threaded.fl.file!.path });
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('a file that cannot be opened fails the start with its code, EFLOWLOG_OPEN', async () => {
    const { fl, filter } = config('/nonexistent-ctsyncd-flt/flows.jsonl');
    await expect(FlowLogThread.start({ config: fl, filter, localAddresses: [], log: silentLogger, script: WORKER })).rejects.toMatchObject({
      code: 'EFLOWLOG_OPEN',
    });
  });

  it('events of a read nobody announced wait for the next wake; close writes them all the same', async () => {
    const dir = tmp();
    const { fl, filter } = config(join(dir, 'f.jsonl'));
    const t = await FlowLogThread.start({ config: fl, filter, localAddresses: [], log: silentLogger, script: WORKER });
    const b = eventBytes(1, 'new');
    const logged = async (n: number): Promise<void> => {
      for (let i = 0; i < 500 && (t.snapshot().logged ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10));
      expect(t.snapshot()).toMatchObject({ queueLength: 0, logged: n });
    };
    // One announced event: written, and the writer goes back to sleep on the empty ring.
    t.onConntrackMessage('new', b, 0, b.length);
    t.endOfBatch();
    // The writer may find that event on its own at its first look; the wake endOfBatch armed (QUIET_MS, a
    // timer of this thread) fires before this later one, so no wake is pending after it.
    await new Promise((r) => setTimeout(r, 60));
    await logged(1);
    // Once it sleeps, only a wake (endOfBatch's) or close gets it to the ring again.
    for (let i = 0; i < 500 && !t.writerAsleep; i++) await new Promise((r) => setTimeout(r, 10));
    expect(t.writerAsleep).toBe(true);
    t.onConntrackMessage('new', b, 0, b.length);
    await new Promise((r) => setTimeout(r, 150));
    expect(t.writerAsleep).toBe(true);
    // The writer sleeps until endOfBatch: the event waits in the ring.
    expect(t.snapshot()).toMatchObject({ queued: 2, queueLength: 1, logged: 1 });
    t.endOfBatch();
    await logged(2);
    t.onConntrackMessage('new', b, 0, b.length);
    await t.close();
    expect(readFileSync(fl.file!.path, 'utf8').trim().split('\n')).toHaveLength(3);
  });

  it('a line written late keeps the time its event was read, not the time it was written', async () => {
    const dir = tmp();
    const { fl, filter } = config(join(dir, 'f.jsonl'));
    const t = await FlowLogThread.start({ config: fl, filter, localAddresses: [], log: silentLogger, script: WORKER });
    const push = (n: number): void => {
      const b = eventBytes(n, 'new');
      t.onConntrackMessage('new', b, 0, b.length);
    };
    // A read of two events that the writer, asleep, learns of only 400 ms later (endOfBatch).
    const read0 = Date.now();
    push(0);
    push(1);
    await new Promise((r) => setTimeout(r, 400));
    const woken = Date.now();
    t.endOfBatch();
    // The next read, its own time.
    await new Promise((r) => setTimeout(r, 50));
    const read1 = Date.now();
    push(2);
    t.endOfBatch();
    await t.close();
    const times = readFileSync(fl.file!.path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => Date.parse((JSON.parse(l) as { time: string }).time));
    expect(times).toHaveLength(3);
    // Date.now() is read once per read, at its first event: the same for both, and from before the wake.
    expect(times[0]).toBe(times[1]);
    expect(times[0]!).toBeGreaterThanOrEqual(read0);
    expect(times[0]!).toBeLessThan(woken);
    expect(times[2]!).toBeGreaterThanOrEqual(read1);
  });

  it('reopen answers once the file is reopened; what the queue held is written before close returns', async () => {
    const dir = tmp();
    const { fl, filter } = config(join(dir, 'f.jsonl'));
    const t = await FlowLogThread.start({ config: fl, filter, localAddresses: [], log: silentLogger, script: WORKER });
    for (let n = 0; n < 500; n++) {
      const b = eventBytes(n, 'new');
      t.onConntrackMessage('new', b, 0, b.length);
    }
    await t.reopen();
    for (let n = 500; n < 1000; n++) {
      const b = eventBytes(n, 'new');
      t.onConntrackMessage('new', b, 0, b.length);
    }
    await t.close();
    const ids = untimed(readFileSync(fl.file!.path, 'utf8')).map((r) => (r as { id: number }).id);
    expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(t.snapshot()).toMatchObject({ reopens: 1, logged: 1000 });
    // After close, a request is refused rather than left waiting.
    await expect(t.reopen()).rejects.toMatchObject({ code: 'EFLOWLOG' });
  });
});
