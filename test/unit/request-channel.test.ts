// RequestChannel's walk of a received batch: data messages to their request
// (in place when it asks for that, as a dump does), the kernel's own messages
// (ACKs, errors, the end of a dump) routed as objects, strays counted, and a
// malformed header stopping the walk after what came before it.
import { describe, expect, it } from 'vitest';
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP } from '../../src/kernel/constants.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import type { DecodeError, NlMessage } from '../../src/kernel/netlink-codec.js';
import { type PendingOp, RequestChannel } from '../../src/kernel/request-channel.js';

const DATA = (1 << 8) | 0; // a ctnetlink type, as a dump answers with

/** One netlink message: the 16-byte header (host order) and its payload, padded to 4. */
function msg(type: number, seq: number, payload: number[] = [], len = 16 + payload.length): Buffer {
  const b = Buffer.alloc((16 + payload.length + 3) & ~3);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(seq, 8);
  b.writeUInt32LE(0, 12);
  Buffer.from(payload).copy(b, 16);
  return b;
}

/** An NLMSG_ERROR for seq: errno 0 is an ACK. */
function ack(seq: number, errno = 0): Buffer {
  const p = Buffer.alloc(4 + 16);
  p.writeInt32LE(-errno, 0);
  p.writeUInt32LE(16, 4);
  return msg(NLMSG_ERROR, seq, [...p]);
}

function channel() {
  const errors: DecodeError[] = [];
  const ch = new RequestChannel(new FakeKernel().openSocket({}), (e) => errors.push(e));
  return { ch, errors };
}

interface Seen {
  objects: Array<[number, number, number[]]>;
  raw: Array<[number, number, number[]]>;
  acks: Array<[number, number]>;
  done: number[];
}

function op(lo: number, hi: number, raw: boolean): { op: PendingOp; seen: Seen } {
  const seen: Seen = { objects: [], raw: [], acks: [], done: [] };
  const o: PendingOp = {
    lo,
    hi,
    onMessage: (m: NlMessage) => seen.objects.push([m.type, m.seq, [...m.payload]]),
    onAck: (seq, errno) => seen.acks.push([seq, errno]),
    onDone: (seq) => seen.done.push(seq),
    onFail: () => undefined,
  };
  if (raw) {
    o.onRawMessage = (buf, pos, len) =>
      seen.raw.push([buf.readUInt16LE(pos + 4), buf.readUInt32LE(pos + 8), [...buf.subarray(pos + 16, pos + len)]]);
  }
  return { op: o, seen };
}

describe('RequestChannel.onData', () => {
  it('hands a raw op its data messages in place, and still routes the ACK and the end of the dump', () => {
    const { ch } = channel();
    const { op: o, seen } = op(10, 12, true);
    ch.register(o);
    // The last message of a datagram may lack its padding: the walk takes it as it is.
    const last = msg(DATA, 10, [7, 8, 9]).subarray(0, 19);
    const b = Buffer.concat([msg(DATA, 10, [1, 2, 3, 4]), msg(NLMSG_NOOP, 10), ack(11), msg(NLMSG_DONE, 10, [0, 0, 0, 0]), last]);
    ch.onData(b, 0, b.length);
    expect(seen.raw).toEqual([
      [DATA, 10, [1, 2, 3, 4]],
      [DATA, 10, [7, 8, 9]],
    ]);
    expect(seen.objects).toEqual([]);
    expect(seen.acks).toEqual([[11, 0]]);
    expect(seen.done).toEqual([10]);
    expect(ch.counters).toMatchObject({ replies: 5, strayReplies: 0, decodeErrors: 0 });
  });

  it('hands an op without the raw way its data messages as objects', () => {
    const { ch } = channel();
    const { op: o, seen } = op(10, 11, false);
    ch.register(o);
    const b = Buffer.concat([msg(DATA, 10, [5, 6, 7, 8]), ack(10, 17)]);
    ch.onData(b, 0, b.length);
    expect(seen.objects).toEqual([[DATA, 10, [5, 6, 7, 8]]]);
    expect(seen.acks).toEqual([[10, 17]]);
  });

  it('counts a reply for no request as a stray, raw or not', () => {
    const { ch } = channel();
    const { op: o, seen } = op(10, 11, true);
    ch.register(o);
    const b = Buffer.concat([msg(DATA, 99, [1, 2, 3, 4]), ack(98), msg(DATA, 10, [1, 1, 1, 1])]);
    ch.onData(b, 0, b.length);
    expect(seen.raw).toEqual([[DATA, 10, [1, 1, 1, 1]]]);
    expect(ch.counters).toMatchObject({ replies: 1, strayReplies: 2 });
  });

  it('handles what came before a malformed header, then reports it and stops', () => {
    const { ch, errors } = channel();
    const { op: o, seen } = op(10, 11, true);
    ch.register(o);
    const b = Buffer.concat([msg(DATA, 10, [1, 2, 3, 4]), msg(DATA, 10, [5, 6, 7, 8], 300), msg(DATA, 10, [9, 9, 9, 9])]);
    ch.onData(b, 0, b.length);
    expect(seen.raw).toEqual([[DATA, 10, [1, 2, 3, 4]]]);
    expect(errors.map((e) => [e.code, e.offset])).toEqual([['EMSG_LEN', 20]]);
    expect(ch.counters.decodeErrors).toBe(1);
    // A header cut short, and a length of zero.
    ch.onData(msg(DATA, 10).subarray(0, 12), 0, 12);
    const zero = msg(DATA, 10, [], 0);
    ch.onData(zero, 0, zero.length);
    expect(errors.slice(1).map((e) => e.code)).toEqual(['ETRUNC_HEADER', 'EZERO_LEN']);
  });

  it('refuses a range outside the buffer without reading it', () => {
    const { ch, errors } = channel();
    const { op: o, seen } = op(10, 11, true);
    ch.register(o);
    const b = msg(DATA, 10, [1, 2, 3, 4]);
    ch.onData(b, 0, b.length + 4);
    ch.onData(b, -4, b.length);
    ch.onData(b, 8, 4);
    expect(seen.raw).toEqual([]);
    expect(errors.map((e) => e.code)).toEqual(['EMSG_LEN', 'EMSG_LEN', 'EMSG_LEN']);
  });
});
