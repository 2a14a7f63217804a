// The sync wire format: datagram framing, packing messages into the MTU and
// authentication. The decoder (never throws) is datagram-decoder.ts.
//
// Framing (also documented in proto/ctsyncd.proto):
//
//   'C' 'S' | version u8 | flags u8 | cluster u32 BE | Datagram (protobuf) | [HMAC-SHA256, 32 bytes]
//
// flags bit 0 = HMAC trailer present; bits 1-7 reserved (must be 0). The
// checks run cheapest first and in this order: size, magic, version and
// flags, cluster, HMAC, protobuf structure and values. Cluster sits in the
// prefix so a foreign cluster on the same segment is reported as ECLUSTER
// whatever its key, and costs neither an HMAC nor a parse.
//
// Authentication policy:
// - auth configured: an unsigned datagram, or one whose trailer no loaded key
//   verifies, is EAUTH. Every byte before the trailer is covered, prefix too.
// - auth not configured: a signed datagram is accepted, its trailer stripped
//   unverified, and the result says `signed: true`. This keeps traffic
//   flowing in one direction while keys are rolled out node by node, and
//   lets the daemon warn about the mismatch; it is no weaker than accepting
//   unsigned datagrams, which an unauthenticated node does anyway.
//
// Unknown message kinds (added by a later revision of version 1) are
// skipped and counted in `unknownMessages`; the datagram is still good.
// A datagram whose protobuf is malformed, or any of whose known messages
// carries an impossible value, is dropped whole: its sender is broken or
// hostile, and keeping half of it would hide that.

import { HMAC_BYTES, hmac } from './auth.js';
import { isNodeId, MAX_NODE_ID_CHARS, ProtoWriter, T_DATAGRAM, writeMessage, writeNodeId } from './proto-codec.js';
import {
  type EncoderOptions,
  FLAG_HMAC,
  MAGIC_0,
  MAGIC_1,
  MAX_DATAGRAM_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_MESSAGES_PER_DATAGRAM,
  MIN_MTU,
  PREFIX_BYTES,
  PROTOCOL_VERSION,
  type WireMessage,
} from './types.js';

/**
 * Packs messages into one datagram at a time. Each message is encoded once,
 * straight into the datagram buffer, so add() knows the exact size; one that
 * does not fit is rolled back.
 */
export class DatagramEncoder {
  private readonly w: ProtoWriter;
  private readonly headerEnd: number;
  /** Where message bytes must end: mtu minus the trailer. */
  private readonly limit: number;
  private readonly trailer: number;
  private readonly signKey: Buffer | undefined;
  private readonly mtu: number;
  private count = 0;
  private epoch: number;
  /** Where the header's epoch and number (fixed32, little-endian) lie; -1 when absent. */
  private readonly epochAt: number;
  private readonly numberAt: number;
  private readonly number: (() => number) | undefined;
  /** Where the last message add() took lies: bytes[lastStart, lastEnd). */
  lastStart = 0;
  lastEnd = 0;

  constructor(opts: EncoderOptions) {
    const { cluster, node, epoch, mtu } = opts;
    if (cluster >>> 0 !== cluster) throw new RangeError(`cluster ${cluster} is not a u32`);
    if (epoch >>> 0 !== epoch) throw new RangeError(`epoch ${epoch} is not a u32`);
    if (!isNodeId(node)) {
      throw new RangeError(`node id ${JSON.stringify(node)} is not 1-${MAX_NODE_ID_CHARS} of A-Z a-z 0-9 _ . -`);
    }
    if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_DATAGRAM_BYTES) {
      throw new RangeError(`mtu ${mtu} is not an integer in ${MIN_MTU}..${MAX_DATAGRAM_BYTES}`);
    }
    this.mtu = mtu;
    this.epoch = epoch;
    this.signKey = opts.auth?.sign;
    this.trailer = this.signKey ? HMAC_BYTES : 0;
    this.limit = mtu - this.trailer;
    this.w = new ProtoWriter(mtu + MAX_MESSAGE_BYTES);
    const b = this.w.buf;
    b[0] = MAGIC_0;
    b[1] = MAGIC_1;
    b[2] = PROTOCOL_VERSION;
    b[3] = this.signKey ? FLAG_HMAC : 0;
    b.writeUInt32BE(cluster, 4);
    this.w.pos = PREFIX_BYTES;
    writeNodeId(this.w, T_DATAGRAM.node, node, 'node', false);
    if (epoch !== 0) this.w.fixed32Field(T_DATAGRAM.epoch, epoch);
    this.epochAt = epoch !== 0 ? this.w.pos - 4 : -1;
    this.number = opts.number;
    // A placeholder, patched at flush(): the header keeps its length whatever the number.
    if (this.number !== undefined) this.w.fixed32Field(T_DATAGRAM.number, 0);
    this.numberAt = this.number !== undefined ? this.w.pos - 4 : -1;
    this.headerEnd = this.w.pos;
  }

  /**
   * A new epoch for every datagram from now on (the sender's epoch
   * rollover), messages already added included. Both epochs non-zero, so
   * the header keeps its length and is patched in place.
   */
  setEpoch(epoch: number): void {
    if (epoch >>> 0 !== epoch || epoch === 0 || this.epoch === 0) {
      throw new RangeError(`epoch ${epoch} cannot replace epoch ${this.epoch}`);
    }
    this.epoch = epoch;
    this.w.buf.writeUInt32LE(epoch, this.epochAt);
  }

  /**
   * Appends a message; returns false (and appends nothing) when it would not
   * fit — the caller then calls flush() and adds again. Throws RangeError,
   * leaving the datagram unchanged, for a message that could never fit even
   * alone or that holds a value the wire cannot carry (an address not of
   * the entry's family, a port above 65535, a node id with a space, ...).
   */
  add(msg: WireMessage): boolean {
    if (this.count >= MAX_MESSAGES_PER_DATAGRAM) return false;
    const w = this.w;
    const start = w.pos;
    try {
      writeMessage(w, msg);
    } catch (err) {
      w.pos = start;
      throw err;
    }
    const end = w.pos;
    if (end <= this.limit) {
      this.count++;
      this.lastStart = start;
      this.lastEnd = end;
      return true;
    }
    w.pos = start;
    const size = end - start;
    if (size > this.limit - this.headerEnd) {
      throw new RangeError(`a ${msg.kind} message of ${size} bytes can never fit a datagram of mtu ${this.mtu}`);
    }
    return false;
  }

  /**
   * The datagram being built. A message's bytes (one Datagram.messages
   * field, as decodeMessageField reads it back) are there from add() until
   * the next add() or flush().
   */
  get bytes(): Buffer {
    return this.w.buf;
  }

  get messageCount(): number {
    return this.count;
  }

  /** Bytes the datagram would have now, header and HMAC included. */
  get size(): number {
    return this.w.pos + this.trailer;
  }

  /** Returns the finished datagram (a fresh Buffer the caller may keep), or undefined when empty, and resets. */
  flush(): Buffer | undefined {
    if (this.count === 0) return undefined;
    const len = this.w.pos;
    const out = Buffer.allocUnsafe(len + this.trailer);
    this.w.buf.copy(out, 0, 0, len);
    if (this.number !== undefined) out.writeUInt32LE(this.number() >>> 0, this.numberAt);
    if (this.signKey) hmac(this.signKey, out.subarray(0, len)).copy(out, len);
    this.w.pos = this.headerEnd;
    this.count = 0;
    return out;
  }
}
