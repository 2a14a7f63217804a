// Netlink framing and attributes: a pure codec, no I/O.
//
// Decoding never throws. Kernel input and anything a peer or fuzzer can hand
// us goes through explicit bounds checks, and a malformed message becomes a
// DecodeError value with a stable code, so one bad message costs a counter
// increment instead of a crashed daemon.
//
// Headers (nlmsghdr, nlattr) are in host byte order, as the kernel writes
// them; attribute payloads of ctnetlink are big-endian. Reads go through
// small helpers over buf[i] rather than Buffer.read*: those throw on a bad
// offset, and every offset here is checked beforehand anyway.

import { endianness } from 'node:os';
import { parseIPv4, parseIPv6Into } from '../common/address.js';
import {
  NFGENMSG_LEN,
  NLA_F_NESTED,
  NLA_HDRLEN,
  NLA_TYPE_MASK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_HDRLEN,
} from './constants.js';

export type DecodeErrorCode =
  /** Fewer bytes than a fixed header needs (nlmsghdr, nfgenmsg, nlmsgerr). */
  | 'ETRUNC_HEADER'
  /** nlmsg_len below 16 or beyond the end of the buffer. */
  | 'EMSG_LEN'
  /** nla_len below 4, beyond its parent, or a stray partial attribute header. */
  | 'EATTR_LEN'
  /** Attributes nested deeper than MAX_NEST_DEPTH. */
  | 'ENEST_DEPTH'
  /** A fixed-size attribute with the wrong payload size. */
  | 'EATTR_SIZE'
  /** A required attribute is absent (e.g. CTA_TUPLE_ORIG). */
  | 'EMISSING'
  /** nfgenmsg family not AF_INET/AF_INET6, or an address of the other family. */
  | 'EFAMILY'
  /** nlmsg_len or nla_len of zero: a walker that trusted it would never advance. */
  | 'EZERO_LEN'
  /** The message is not of the subsystem the decoder was asked for. */
  | 'EMSG_TYPE'
  /** A field holds a value its type cannot have (e.g. a positive nlmsgerr.error). */
  | 'EVALUE';

export interface DecodeError {
  code: DecodeErrorCode;
  /** Byte offset of the offending header, relative to the buffer handed to the decoder. */
  offset: number;
  reason: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: DecodeError };

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Bytes after the 16-byte nlmsghdr: a view into the received buffer, not a copy. */
  payload: Buffer;
}

/** Deep enough for every ctnetlink structure (the deepest is 4), low enough to bound work. */
export const MAX_NEST_DEPTH = 8;

export function decodeError(code: DecodeErrorCode, offset: number, reason: string): DecodeError {
  return { code, offset, reason };
}

export function fail(code: DecodeErrorCode, offset: number, reason: string): { ok: false; error: DecodeError } {
  return { ok: false, error: { code, offset, reason } };
}

// ---------------------------------------------------------------------------
// Byte access

const HOST_LE = endianness() === 'LE';

/** Host-order u16 (nlmsg_type, nla_len, ...). Caller guarantees o + 2 <= length. */
export function hostU16(b: Buffer, o: number): number {
  return HOST_LE ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}

/** Host-order u32. Caller guarantees o + 4 <= length. */
export function hostU32(b: Buffer, o: number): number {
  return HOST_LE
    ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
    : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function putHostU16(b: Buffer, o: number, v: number): void {
  if (HOST_LE) {
    b[o] = v & 0xff;
    b[o + 1] = (v >>> 8) & 0xff;
  } else {
    b[o] = (v >>> 8) & 0xff;
    b[o + 1] = v & 0xff;
  }
}

function putHostU32(b: Buffer, o: number, v: number): void {
  if (HOST_LE) {
    b[o] = v & 0xff;
    b[o + 1] = (v >>> 8) & 0xff;
    b[o + 2] = (v >>> 16) & 0xff;
    b[o + 3] = (v >>> 24) & 0xff;
  } else {
    b[o] = (v >>> 24) & 0xff;
    b[o + 1] = (v >>> 16) & 0xff;
    b[o + 2] = (v >>> 8) & 0xff;
    b[o + 3] = v & 0xff;
  }
}

export function beU16(b: Buffer, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function beU32(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function beI32(b: Buffer, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

export function beU64(b: Buffer, o: number): bigint {
  const hi = beU32(b, o);
  const lo = beU32(b, o + 4);
  // Counters and the like mostly fit 53 bits: one BigInt instead of three.
  if (hi < 0x200000) return BigInt(hi * 0x100000000 + lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}

// ---------------------------------------------------------------------------
// Messages

/** nlMessageAt(): fewer than 16 bytes left for a header. */
export const NLWALK_TRUNC = -1;
/** nlMessageAt(): nlmsg_len is 0. */
export const NLWALK_ZERO = -2;
/** nlMessageAt(): nlmsg_len below the header's 16 bytes. */
export const NLWALK_SHORT = -3;
/** nlMessageAt(): nlmsg_len past `end`. */
export const NLWALK_LONG = -4;

/**
 * The nlmsg_len of the message at `pos` when its header is well-formed
 * within `end`, else one of the negative NLWALK_* codes: parseNetlink()'s
 * checks, for a reader that walks a datagram without an object per message
 * (the event socket). The next message starts at pos + align4(length).
 */
export function nlMessageAt(buf: Buffer, pos: number, end: number): number {
  const rem = end - pos;
  if (rem < NLMSG_HDRLEN) return NLWALK_TRUNC;
  const len = hostU32(buf, pos);
  if (len === 0) return NLWALK_ZERO;
  if (len < NLMSG_HDRLEN) return NLWALK_SHORT;
  if (len > rem) return NLWALK_LONG;
  return len;
}

/** The DecodeError for an nlMessageAt() code. */
export function nlWalkError(buf: Buffer, pos: number, end: number, code: number): DecodeError {
  const rem = end - pos;
  switch (code) {
    case NLWALK_TRUNC:
      return decodeError('ETRUNC_HEADER', pos, `${rem} bytes left, nlmsghdr needs 16`);
    case NLWALK_ZERO:
      return decodeError('EZERO_LEN', pos, 'nlmsg_len is 0');
    case NLWALK_SHORT:
      return decodeError('EMSG_LEN', pos, `nlmsg_len ${hostU32(buf, pos)} < 16`);
    default:
      return decodeError('EMSG_LEN', pos, `nlmsg_len ${hostU32(buf, pos)} exceeds the ${rem} bytes left`);
  }
}

/** The message at `pos` (nlMessageAt() gave its length) as an object. */
export function nlMessageObject(buf: Buffer, pos: number, len: number): NlMessage {
  return {
    type: hostU16(buf, pos + 4),
    flags: hostU16(buf, pos + 6),
    seq: hostU32(buf, pos + 8),
    pid: hostU32(buf, pos + 12),
    payload: buf.subarray(pos + NLMSG_HDRLEN, pos + len),
  };
}

/**
 * Calls visit(pos, len) for each netlink message of buf[start, end), in
 * place. Stops at the first malformed header and returns its error (after
 * visiting everything before it, so a caller still handles what was
 * readable); undefined when the whole range was walked.
 */
export function walkNetlink(
  buf: Buffer,
  start: number,
  end: number,
  visit: (pos: number, len: number) => void,
): DecodeError | undefined {
  if (start < 0 || end > buf.length || start > end) {
    return decodeError('EMSG_LEN', start, `range [${start}, ${end}) outside a buffer of ${buf.length} bytes`);
  }
  let pos = start;
  while (pos < end) {
    const len = nlMessageAt(buf, pos, end);
    if (len < 0) return nlWalkError(buf, pos, end, len);
    visit(pos, len);
    // The last message of a datagram may lack its alignment padding.
    pos += align4(len);
  }
  return undefined;
}

/** walkNetlink() collecting the messages as objects, with the error that stopped it if any. */
export function parseNetlink(
  buf: Buffer,
  start = 0,
  end: number = buf.length,
): { messages: NlMessage[]; error?: DecodeError } {
  const messages: NlMessage[] = [];
  const error = walkNetlink(buf, start, end, (pos, len) => messages.push(nlMessageObject(buf, pos, len)));
  return error ? { messages, error } : { messages };
}

export interface NlErrorRequest {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export interface NlExtAck {
  /** NLMSGERR_ATTR_MSG: the kernel's explanation. */
  msg?: string;
  /** NLMSGERR_ATTR_OFFS: offset of the offending attribute, counted from the start of the echoed nlmsghdr. */
  offset?: number;
}

export interface NlError {
  /** Positive errno; 0 is an ACK. */
  errno: number;
  /** The header of the request this answers (echoed by the kernel). */
  request: NlErrorRequest;
  /** Extended-ack details, present when `flags` were given and carried NLM_F_ACK_TLVS. */
  extAck?: NlExtAck;
}

const MAX_ERRNO = 4095;
const NLMSGERR_ATTR_MSG = 1;
const NLMSGERR_ATTR_OFFS = 2;

/**
 * Decodes an NLMSG_ERROR payload (struct nlmsgerr). Pass the message's
 * nlmsg_flags to also read the extended-ack TLVs that follow the echoed
 * request when NLM_F_ACK_TLVS is set.
 */
export function decodeNlError(payload: Buffer, flags = 0): Result<NlError> {
  if (payload.length < 4 + NLMSG_HDRLEN) {
    return fail('ETRUNC_HEADER', 0, `nlmsgerr needs 20 bytes, got ${payload.length}`);
  }
  const raw = hostU32(payload, 0) | 0;
  // The kernel sends 0 or -errno, and errnos stop at MAX_ERRNO (4095).
  if (raw > 0 || raw < -MAX_ERRNO) return fail('EVALUE', 0, `nlmsgerr.error ${raw} is not 0 or -errno`);
  const value: NlError = {
    errno: raw === 0 ? 0 : -raw, // an ACK is 0, not -0
    request: {
      type: hostU16(payload, 8),
      flags: hostU16(payload, 10),
      seq: hostU32(payload, 12),
      pid: hostU32(payload, 16),
    },
  };
  if (flags & NLM_F_ACK_TLVS) {
    // The TLVs follow the echoed request: its header only when capped.
    let tlvStart = 4 + NLMSG_HDRLEN;
    if (!(flags & NLM_F_CAPPED)) {
      const echoed = hostU32(payload, 4);
      if (echoed < NLMSG_HDRLEN || 4 + echoed > payload.length) {
        return fail('EMSG_LEN', 4, `echoed nlmsg_len ${echoed} does not fit the error message`);
      }
      tlvStart = 4 + align4(echoed);
    }
    const extAck: NlExtAck = {};
    const it = new AttrIterator().reset(payload, Math.min(tlvStart, payload.length), payload.length, 0);
    while (it.next()) {
      if (it.type === NLMSGERR_ATTR_MSG) extAck.msg = readString(payload, it.off, it.len);
      else if (it.type === NLMSGERR_ATTR_OFFS && it.len === 4) extAck.offset = hostU32(payload, it.off);
    }
    if (it.error) return { ok: false, error: it.error };
    value.extAck = extAck;
  }
  return { ok: true, value };
}

/** A NUL-terminated (or unterminated) string payload, up to the first NUL. */
export function readString(b: Buffer, off: number, len: number): string {
  let e = off;
  const limit = off + len;
  while (e < limit && b[e] !== 0) e++;
  return b.toString('utf8', off, e);
}

// ---------------------------------------------------------------------------
// Attributes

const EMPTY = Buffer.alloc(0);

/**
 * Walks the attributes of one level without allocating: next() moves to the
 * following attribute and exposes it through fields. It stops (returns false)
 * at the end or at a malformed header, with `error` set in the latter case;
 * it never throws. Unknown types are simply the caller's `default:` branch.
 */
export class AttrIterator {
  buf: Buffer = EMPTY;
  /** Type of the current attribute with NLA_F_NESTED/NLA_F_NET_BYTEORDER masked off. */
  type = 0;
  /** Whether the current attribute carried NLA_F_NESTED. */
  nested = false;
  /** Offset of the current attribute's payload. */
  off = 0;
  /** Payload length of the current attribute (nla_len - 4). */
  len = 0;
  /** Offset of the current attribute's header. */
  hdr = 0;
  depth = 0;
  error: DecodeError | undefined;
  private pos = 0;
  private end = 0;

  /** Iterates buf[start, end); depth counts the enclosing nests. */
  reset(buf: Buffer, start: number, end: number, depth: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.depth = depth;
    this.error = undefined;
    this.type = 0;
    this.nested = false;
    this.off = start;
    this.len = 0;
    this.hdr = start;
    return this;
  }

  next(): boolean {
    const pos = this.pos;
    const rem = this.end - pos;
    if (rem <= 0) return false;
    if (rem < NLA_HDRLEN) {
      this.error = decodeError('EATTR_LEN', pos, `${rem} trailing bytes, shorter than an attribute header`);
      this.pos = this.end;
      return false;
    }
    const b = this.buf;
    const nlaLen = hostU16(b, pos);
    if (nlaLen < NLA_HDRLEN) {
      this.error =
        nlaLen === 0
          ? decodeError('EZERO_LEN', pos, 'nla_len is 0')
          : decodeError('EATTR_LEN', pos, `nla_len ${nlaLen} < 4`);
      this.pos = this.end;
      return false;
    }
    if (nlaLen > rem) {
      this.error = decodeError('EATTR_LEN', pos, `nla_len ${nlaLen} exceeds the ${rem} bytes of its parent`);
      this.pos = this.end;
      return false;
    }
    const rawType = hostU16(b, pos + 2);
    this.type = rawType & NLA_TYPE_MASK;
    this.nested = (rawType & NLA_F_NESTED) !== 0;
    this.hdr = pos;
    this.off = pos + NLA_HDRLEN;
    this.len = nlaLen - NLA_HDRLEN;
    this.pos = pos + align4(nlaLen);
    return true;
  }

  /**
   * Points `into` at the current attribute's payload, one level deeper.
   * Returns false, with `error` set on this iterator, past MAX_NEST_DEPTH.
   */
  enter(into: AttrIterator): boolean {
    if (this.depth + 1 > MAX_NEST_DEPTH) {
      this.error = decodeError('ENEST_DEPTH', this.hdr, `nesting deeper than ${MAX_NEST_DEPTH}`);
      return false;
    }
    into.reset(this.buf, this.off, this.off + this.len, this.depth + 1);
    return true;
  }
}

export interface AttrNode {
  type: number;
  nested: boolean;
  /** Offset of the attribute header in the buffer. */
  offset: number;
  /** Payload view (no copy). */
  data: Buffer;
  /** Children, when NLA_F_NESTED was set. */
  children?: AttrNode[];
}

/**
 * Decodes an attribute tree generically, descending into every attribute
 * flagged NLA_F_NESTED. Meant for diagnostics (logging a message nobody
 * understood) and for validating structure; the ctnetlink decoders do not
 * use it because they know their schema.
 */
export function decodeAttrTree(buf: Buffer, start = 0, end: number = buf.length): Result<AttrNode[]> {
  if (start < 0 || end > buf.length || start > end) {
    return fail('EATTR_LEN', start, `range [${start}, ${end}) outside a buffer of ${buf.length} bytes`);
  }
  const it = new AttrIterator().reset(buf, start, end, 0);
  const out: AttrNode[] = [];
  const err = walkTree(it, out);
  return err ? { ok: false, error: err } : { ok: true, value: out };
}

function walkTree(it: AttrIterator, out: AttrNode[]): DecodeError | undefined {
  while (it.next()) {
    const node: AttrNode = {
      type: it.type,
      nested: it.nested,
      offset: it.hdr,
      data: it.buf.subarray(it.off, it.off + it.len),
    };
    if (it.nested) {
      const child = new AttrIterator();
      if (!it.enter(child)) return it.error;
      node.children = [];
      const err = walkTree(child, node.children);
      if (err) return err;
    }
    out.push(node);
  }
  return it.error;
}

// ---------------------------------------------------------------------------
// Encoding

/**
 * Builds many netlink messages back to back in one growable buffer, ready for
 * a single sendmsg. Nothing is allocated per attribute; the buffer doubles
 * when full, so a writer reused with reset() settles at its working size.
 *
 * Protocol errors in what the caller writes (a nest left open, an attribute
 * over 64 KiB) are programming errors and throw; use abort() to drop a
 * message that could not be completed.
 */
export class NlWriter {
  private buf: Buffer;
  private pos = 0;
  private msgStart = -1;
  private count = 0;
  private openNests = 0;
  // The last two IPv4 addresses parsed, by string: a tuple's reply direction
  // names the same two addresses as its original one (without NAT, the very
  // same string objects), so half of a batch's parses are saved. Empty at
  // first: no text matches undefined, while '' once matched and wrote
  // 0.0.0.0 for an empty address instead of refusing it.
  private v4TextA: string | undefined;
  private v4ValueA = 0;
  private v4TextB: string | undefined;
  private v4ValueB = 0;

  constructor(initialSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(64, initialSize | 0));
  }

  /** Messages completed with end(). */
  get messageCount(): number {
    return this.count;
  }

  /** Bytes written, including a message still open. */
  get length(): number {
    return this.pos;
  }

  /** Starts a message: nlmsghdr plus nfgenmsg (version 0, res_id big-endian). */
  begin(type: number, flags: number, seq: number, family: number, resId = 0, pid = 0): void {
    if (this.msgStart >= 0) throw new Error('NlWriter.begin: the previous message was not ended');
    this.ensure(NLMSG_HDRLEN + NFGENMSG_LEN);
    const b = this.buf;
    const p = this.pos;
    this.msgStart = p;
    putHostU32(b, p, 0);
    putHostU16(b, p + 4, type);
    putHostU16(b, p + 6, flags);
    putHostU32(b, p + 8, seq >>> 0);
    putHostU32(b, p + 12, pid >>> 0);
    b[p + 16] = family & 0xff;
    b[p + 17] = 0;
    b[p + 18] = (resId >>> 8) & 0xff;
    b[p + 19] = resId & 0xff;
    this.pos = p + NLMSG_HDRLEN + NFGENMSG_LEN;
  }

  /** Patches nlmsg_len of the open message and counts it. */
  end(): void {
    if (this.msgStart < 0) throw new Error('NlWriter.end: no message open');
    if (this.openNests !== 0) throw new Error('NlWriter.end: a nest is still open');
    putHostU32(this.buf, this.msgStart, this.pos - this.msgStart);
    this.msgStart = -1;
    this.count++;
  }

  /** Discards the open message (e.g. after an encoder rejected its entry). */
  abort(): void {
    if (this.msgStart < 0) return;
    this.pos = this.msgStart;
    this.msgStart = -1;
    this.openNests = 0;
  }

  u8(type: number, v: number): void {
    const p = this.attr8(type, 5);
    const b = this.buf;
    b[p] = v & 0xff;
    b[p + 1] = 0;
    b[p + 2] = 0;
    b[p + 3] = 0;
  }

  u16be(type: number, v: number): void {
    const p = this.attr8(type, 6);
    const b = this.buf;
    b[p] = (v >>> 8) & 0xff;
    b[p + 1] = v & 0xff;
    b[p + 2] = 0;
    b[p + 3] = 0;
  }

  /** Negative values are written in two's complement (seqadj offsets are s32). */
  u32be(type: number, v: number): void {
    const p = this.attr8(type, 8);
    writeBe32(this.buf, p, v);
  }

  u64be(type: number, v: bigint): void {
    const p = this.attr(type, 8);
    const x = BigInt.asUintN(64, v);
    writeBe32(this.buf, p, Number(x >> 32n));
    writeBe32(this.buf, p + 4, Number(x & 0xffffffffn));
  }

  bytes(type: number, v: Buffer): void {
    const p = this.attr(type, v.length);
    this.buf.set(v, p);
  }

  /** A NUL-terminated string, like the kernel's nla_put_string. */
  string(type: number, s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    const p = this.attr(type, n + 1);
    this.buf.write(s, p, n, 'utf8');
    this.buf[p + n] = 0;
  }

  /** A 4-byte IPv4 address from dotted-quad text. Throws RangeError if it does not parse. */
  ipv4(type: number, addr: string): void {
    let v: number | undefined;
    if (addr === this.v4TextA) v = this.v4ValueA;
    else if (addr === this.v4TextB) v = this.v4ValueB;
    else {
      v = parseIPv4(addr);
      if (v === undefined) throw new RangeError(`not an IPv4 address: ${JSON.stringify(addr)}`);
      this.v4TextB = this.v4TextA;
      this.v4ValueB = this.v4ValueA;
      this.v4TextA = addr;
      this.v4ValueA = v;
    }
    this.u32be(type, v);
  }

  /**
   * An address of `n` words (1: IPv4, 4: IPv6) from record words
   * (src/kernel/ct-record.ts), whose bytes are the address in network order.
   */
  addrWords(type: number, words: Int32Array, wi: number, n: number): void {
    const p = this.attr(type, n * 4);
    const b = this.buf;
    for (let i = 0; i < n; i++) {
      const v = words[wi + i]!;
      const o = p + 4 * i;
      b[o] = v & 0xff;
      b[o + 1] = (v >>> 8) & 0xff;
      b[o + 2] = (v >>> 16) & 0xff;
      b[o + 3] = (v >>> 24) & 0xff;
    }
  }

  /** A 16-byte IPv6 address from text. Throws RangeError if it does not parse. */
  ipv6(type: number, addr: string): void {
    const p = this.attr(type, 16);
    if (!parseIPv6Into(addr, this.buf, p)) {
      // Leave no half-written attribute behind.
      this.pos = p - NLA_HDRLEN;
      throw new RangeError(`not an IPv6 address: ${JSON.stringify(addr)}`);
    }
  }

  /** Opens a nest; pass the returned token to endNest(). */
  nest(type: number): number {
    this.ensure(NLA_HDRLEN);
    const p = this.pos;
    putHostU16(this.buf, p + 2, type & NLA_TYPE_MASK);
    this.pos = p + NLA_HDRLEN;
    this.openNests++;
    return p;
  }

  /** Closes a nest: sets its length and NLA_F_NESTED, as the kernel's nla_nest_start does. */
  endNest(token: number): void {
    const len = this.pos - token;
    if (len > 0xffff) throw new RangeError(`nested attribute of ${len} bytes exceeds nla_len`);
    putHostU16(this.buf, token, len);
    putHostU16(this.buf, token + 2, hostU16(this.buf, token + 2) | NLA_F_NESTED);
    this.openNests--;
  }

  /** A view of everything written; valid until the next reset() or write. */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
    this.msgStart = -1;
    this.count = 0;
    this.openNests = 0;
  }

  /** Reserves an attribute of `len` payload bytes, zeroes its padding, returns the payload offset. */
  private attr(type: number, len: number): number {
    const total = NLA_HDRLEN + len;
    if (total > 0xffff) throw new RangeError(`attribute of ${total} bytes exceeds nla_len`);
    const aligned = align4(total);
    this.ensure(aligned);
    const b = this.buf;
    const p = this.pos;
    putHostU16(b, p, total);
    putHostU16(b, p + 2, type & NLA_TYPE_MASK);
    // allocUnsafe memory: padding must not carry stale bytes to the kernel.
    for (let i = p + total; i < p + aligned; i++) b[i] = 0;
    this.pos = p + aligned;
    return p + NLA_HDRLEN;
  }

  /**
   * attr() for payloads of 1 to 4 bytes (8 bytes with header and padding):
   * the header only; the caller writes all four payload bytes, padding
   * included.
   */
  private attr8(type: number, total: number): number {
    if (this.pos + 8 > this.buf.length) this.ensure(8);
    const b = this.buf;
    const p = this.pos;
    putHostU16(b, p, total);
    putHostU16(b, p + 2, type & NLA_TYPE_MASK);
    this.pos = p + 8;
    return p + NLA_HDRLEN;
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

function writeBe32(b: Buffer, p: number, v: number): void {
  b[p] = (v >>> 24) & 0xff;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}
