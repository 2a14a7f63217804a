import { describe, expect, it } from 'vitest';
import { RING_HDR, RING_WRAP, RingReader, type RingSource } from '../../src/kernel/ring-reader.js';
import type { NetlinkReceiver } from '../../src/kernel/transport.js';

const EAGAIN = 11;
const ENOBUFS = 105;

/** A writer as the addon's reader thread writes: segments {bytes, errno, datagrams, truncated} + data padded to 16. */
class Writer implements RingSource {
  readonly ring: Buffer;
  tailPos = 0;
  released: number[] = [];
  constructor(size: number) {
    this.ring = Buffer.alloc(size, 0xee);
  }
  tail(): number {
    return this.tailPos;
  }
  release(head: number): void {
    this.released.push(head);
  }
  private get headPos(): number {
    return this.released.at(-1) ?? 0;
  }
  /** One segment; wraps first when it does not fit before the end. Throws when the ring is full (the thread would wait). */
  write(data: number[], errno = 0): void {
    const size = this.ring.length;
    const need = RING_HDR + ((data.length + 15) & ~15);
    let off = this.tailPos % size;
    if (size - off < need) {
      this.ring.writeUInt32LE(RING_WRAP, off);
      this.tailPos += size - off;
      off = 0;
    }
    if (this.tailPos + need - this.headPos > size) throw new Error('ring full');
    this.ring.writeUInt32LE(data.length, off);
    this.ring.writeInt32LE(errno, off + 4);
    this.ring.writeInt32LE(data.length > 0 ? 1 : 0, off + 8);
    this.ring.writeInt32LE(0, off + 12);
    Buffer.from(data).copy(this.ring, off + RING_HDR);
    this.tailPos += need;
  }
}

/** What a receiver was told, in order. */
function recorder(): { log: string[]; rx: NetlinkReceiver } {
  const log: string[] = [];
  const rx: NetlinkReceiver = {
    onData: (buf, start, end) => log.push(`data ${[...buf.subarray(start, end)].join(',')}`),
    onError: (errno) => log.push(`error ${errno}`),
    onEmpty: () => log.push('empty'),
  };
  return { log, rx };
}

describe('RingReader (the reader thread’s segments, handed over in order)', () => {
  it('hands over data, then an overrun or "read empty" where it happened, and gives the room back', () => {
    const w = new Writer(256);
    const r = new RingReader(w);
    const { log, rx } = recorder();
    w.write([1, 2, 3]);
    w.write([4], ENOBUFS);
    w.write([5, 6], EAGAIN);
    w.write([], EAGAIN);
    expect(r.heldBytes).toBe(w.tailPos);
    expect(r.deliver(rx, () => false)).toBe(false);
    expect(log).toEqual(['data 1,2,3', 'data 4', `error ${ENOBUFS}`, 'data 5,6', 'empty', 'empty']);
    expect(w.released).toEqual([w.tailPos]);
    expect(r.heldBytes).toBe(0);
  });

  it('follows a wrap to the start, and data that ends exactly at the end of the ring', () => {
    const w = new Writer(128);
    const r = new RingReader(w);
    const { log, rx } = recorder();
    // 16 + 32 and 16 + 48: 112 of 128 used; the next one (16 + 16) does not fit before the end.
    w.write(Array.from({ length: 20 }, (_, i) => i));
    w.write(Array.from({ length: 40 }, () => 7));
    r.deliver(rx, () => false);
    w.write([9, 9], EAGAIN);
    expect(w.tailPos).toBe(128 + 32);
    r.deliver(rx, () => false);
    expect(log.at(-2)).toBe('data 9,9');
    expect(log.at(-1)).toBe('empty');
    expect(log).toHaveLength(4);
    // The room before the wrap is given back with it: the writer may fill the ring again.
    for (let i = 0; i < 3; i++) w.write([i, i, i]);
    r.deliver(rx, () => false);
    expect(log.slice(-3)).toEqual(['data 0,0,0', 'data 1,1,1', 'data 2,2,2']);
    expect(r.heldBytes).toBe(0);
  });

  it('stops after a segment when asked, and goes on from there next time', () => {
    const w = new Writer(512);
    const r = new RingReader(w);
    const { log, rx } = recorder();
    for (let i = 1; i <= 5; i++) w.write([i]);
    let budget = 2;
    expect(r.deliver(rx, () => --budget <= 0)).toBe(true);
    expect(log).toEqual(['data 1', 'data 2']);
    expect(w.released).toEqual([2 * 32]);
    expect(r.deliver(rx, () => false)).toBe(false);
    expect(log).toEqual(['data 1', 'data 2', 'data 3', 'data 4', 'data 5']);
  });

  it('hands over what the thread writes while it is handing over, in the same turn', () => {
    const w = new Writer(512);
    const r = new RingReader(w);
    const log: string[] = [];
    let more = 3;
    const rx: NetlinkReceiver = {
      onData: (buf, start) => {
        log.push(`data ${buf[start]}`);
        // The thread writes again meanwhile.
        if (more-- > 0) w.write([10 + more]);
      },
      onError: () => undefined,
    };
    w.write([1]);
    expect(r.deliver(rx, () => false)).toBe(false);
    expect(log).toEqual(['data 1', 'data 12', 'data 11', 'data 10']);
  });

  it('without a receiver the segments are still consumed, nothing thrown', () => {
    const w = new Writer(128);
    const r = new RingReader(w);
    w.write([1], ENOBUFS);
    expect(r.deliver(undefined, () => false)).toBe(false);
    expect(r.heldBytes).toBe(0);
  });
});
