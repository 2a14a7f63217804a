// IPFIX (RFC 7011) encoding of flow log records: templates, data sets and
// messages as pure functions over Buffers. No socket, no clock: the exporter
// (ipfix-exporter.ts) hands in the time and sends what comes out.
//
// What is exported: a NAT session when it is created (a `new` event of a
// translated flow, natEvent 4 for IPv4) and every finished flow (`destroy`,
// natEvent 5 when translated), with the standard information elements that
// collectors (nfdump's nfcapd among them) map: addresses, ports, protocol,
// flowStart/EndMilliseconds, octet and packet counts of the original
// direction and, as RFC 5103 reverse elements, of the reply direction.
import { parseIPv4, parseIPv6Into } from '../common/address.js';
import { CtsyncdError } from '../common/errors.js';
import type { EventType } from '../kernel/conntrack-events.js';
import { AF_INET } from '../kernel/constants.js';
import type { ConntrackEntry } from '../kernel/entry.js';
import { natOf } from './record.js';

export const IPFIX_VERSION = 10;
export const MESSAGE_HEADER_BYTES = 16;
export const SET_HEADER_BYTES = 4;
/** Set id of a template set (RFC 7011 3.3.2). */
export const TEMPLATE_SET_ID = 2;
/** RFC 5103: reverse information elements are those of this private enterprise number. */
export const REVERSE_PEN = 29305;
/** Bit 15 of a field's id: an enterprise number follows (RFC 7011 3.2). */
const ENTERPRISE_BIT = 0x8000;

/** IANA IPFIX information element ids (https://www.iana.org/assignments/ipfix). */
export const IE = {
  octetDeltaCount: 1,
  packetDeltaCount: 2,
  protocolIdentifier: 4,
  sourceTransportPort: 7,
  sourceIPv4Address: 8,
  destinationTransportPort: 11,
  destinationIPv4Address: 12,
  sourceIPv6Address: 27,
  destinationIPv6Address: 28,
  flowStartMilliseconds: 152,
  flowEndMilliseconds: 153,
  postNATSourceIPv4Address: 225,
  postNATDestinationIPv4Address: 226,
  postNAPTSourceTransportPort: 227,
  postNAPTDestinationTransportPort: 228,
  natEvent: 230,
  postNATSourceIPv6Address: 281,
  postNATDestinationIPv6Address: 282,
} as const;

/** natEvent values (IANA "NAT Event Type", RFC 8158). */
export const NAT_EVENT = {
  /** Historic, the only ones without a family: used for translated IPv6 flows (NPTv6, NAT66). */
  translationCreate: 1,
  translationDelete: 2,
  nat44SessionCreate: 4,
  nat44SessionDelete: 5,
} as const;

export interface FieldSpec {
  id: number;
  length: number;
  /** Private enterprise number, for enterprise-specific elements. */
  pen?: number;
}

/** Template ids: one per family, with and without the translation (RFC 7011: data set ids are 256 and above). */
export const TEMPLATE_ID = { flow4: 256, nat4: 257, flow6: 258, nat6: 259 } as const;
export type TemplateId = (typeof TEMPLATE_ID)[keyof typeof TEMPLATE_ID];

function addressFields(v6: boolean): FieldSpec[] {
  return [
    { id: v6 ? IE.sourceIPv6Address : IE.sourceIPv4Address, length: v6 ? 16 : 4 },
    { id: v6 ? IE.destinationIPv6Address : IE.destinationIPv4Address, length: v6 ? 16 : 4 },
    { id: IE.sourceTransportPort, length: 2 },
    { id: IE.destinationTransportPort, length: 2 },
    { id: IE.protocolIdentifier, length: 1 },
    { id: IE.flowStartMilliseconds, length: 8 },
    { id: IE.flowEndMilliseconds, length: 8 },
    { id: IE.octetDeltaCount, length: 8 },
    { id: IE.packetDeltaCount, length: 8 },
    { id: IE.octetDeltaCount, length: 8, pen: REVERSE_PEN },
    { id: IE.packetDeltaCount, length: 8, pen: REVERSE_PEN },
  ];
}

function natFields(v6: boolean): FieldSpec[] {
  return [
    { id: v6 ? IE.postNATSourceIPv6Address : IE.postNATSourceIPv4Address, length: v6 ? 16 : 4 },
    { id: v6 ? IE.postNATDestinationIPv6Address : IE.postNATDestinationIPv4Address, length: v6 ? 16 : 4 },
    { id: IE.postNAPTSourceTransportPort, length: 2 },
    { id: IE.postNAPTDestinationTransportPort, length: 2 },
    { id: IE.natEvent, length: 1 },
  ];
}

/** The four templates, each field in the order its data record is written. */
export const TEMPLATES: ReadonlyMap<TemplateId, readonly FieldSpec[]> = new Map<TemplateId, readonly FieldSpec[]>([
  [TEMPLATE_ID.flow4, addressFields(false)],
  [TEMPLATE_ID.nat4, [...addressFields(false), ...natFields(false)]],
  [TEMPLATE_ID.flow6, addressFields(true)],
  [TEMPLATE_ID.nat6, [...addressFields(true), ...natFields(true)]],
]);

/** Bytes of one data record of each template. */
export function recordLength(id: TemplateId): number {
  let n = 0;
  for (const f of TEMPLATES.get(id) ?? []) n += f.length;
  return n;
}

/** One exported flow: what a data record carries, already in numbers. */
export interface IpfixFlow {
  template: TemplateId;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
  /** Milliseconds since the epoch. */
  startMs: number;
  endMs: number;
  origBytes: bigint;
  origPackets: bigint;
  replyBytes: bigint;
  replyPackets: bigint;
  /** The translation, as the far side sees the flow; present exactly for the nat templates. */
  nat?: { src: string; dst: string; sport: number; dport: number; event: number };
}

const nsToMs = (ns: bigint): number => Number(ns / 1_000_000n);

/**
 * The data record for an event, or undefined when the event is not
 * exported: updates, and new flows without a translation (only finished
 * flows and NAT sessions are). `now` (milliseconds since the epoch) stands
 * in for the kernel's timestamps when nf_conntrack_timestamp is off.
 */
export function ipfixFlowOf(kind: EventType, e: ConntrackEntry, now: number): IpfixFlow | undefined {
  if (kind === 'update') return undefined;
  const nat = natOf(e.orig, e.reply);
  if (kind === 'new' && nat === undefined) return undefined;
  const v4 = e.family === AF_INET;
  const ts = e.timestamp;
  // The kernel sends stop as 0 while the flow lives.
  const startMs = ts?.start !== undefined && ts.start > 0n ? nsToMs(ts.start) : now;
  const endMs = kind === 'new' ? startMs : ts?.stop !== undefined && ts.stop > 0n ? nsToMs(ts.stop) : now;
  const flow: IpfixFlow = {
    template: nat === undefined ? (v4 ? TEMPLATE_ID.flow4 : TEMPLATE_ID.flow6) : v4 ? TEMPLATE_ID.nat4 : TEMPLATE_ID.nat6,
    src: e.orig.src,
    dst: e.orig.dst,
    // Port-less protocols (ICMP, GRE without keys) export port 0.
    sport: e.orig.sport ?? 0,
    dport: e.orig.dport ?? 0,
    proto: e.orig.proto,
    startMs,
    endMs,
    origBytes: e.countersOrig?.bytes ?? 0n,
    origPackets: e.countersOrig?.packets ?? 0n,
    replyBytes: e.countersReply?.bytes ?? 0n,
    replyPackets: e.countersReply?.packets ?? 0n,
  };
  if (nat !== undefined) {
    const create = kind === 'new';
    flow.nat = {
      // The reply tuple, turned round: where the flow went after translation.
      src: e.reply.dst,
      dst: e.reply.src,
      sport: e.reply.dport ?? 0,
      dport: e.reply.sport ?? 0,
      event: v4
        ? create
          ? NAT_EVENT.nat44SessionCreate
          : NAT_EVENT.nat44SessionDelete
        : create
          ? NAT_EVENT.translationCreate
          : NAT_EVENT.translationDelete,
    };
  }
  return flow;
}

/** Bytes of a template set holding the given templates. */
export function templateSetLength(ids: readonly TemplateId[]): number {
  let n = SET_HEADER_BYTES;
  for (const id of ids) {
    n += 4;
    for (const f of TEMPLATES.get(id) ?? []) n += f.pen === undefined ? 4 : 8;
  }
  return n;
}

/** Writes a template set of `ids` at out[o]; returns the offset after it. */
export function writeTemplateSet(ids: readonly TemplateId[], out: Buffer, o: number): number {
  const start = o;
  o += SET_HEADER_BYTES;
  for (const id of ids) {
    const fields = TEMPLATES.get(id) ?? [];
    out.writeUInt16BE(id, o);
    out.writeUInt16BE(fields.length, o + 2);
    o += 4;
    for (const f of fields) {
      out.writeUInt16BE(f.pen === undefined ? f.id : f.id | ENTERPRISE_BIT, o);
      out.writeUInt16BE(f.length, o + 2);
      o += 4;
      if (f.pen !== undefined) {
        out.writeUInt32BE(f.pen, o);
        o += 4;
      }
    }
  }
  out.writeUInt16BE(TEMPLATE_SET_ID, start);
  out.writeUInt16BE(o - start, start + 2);
  return o;
}

/** Writes an address at out[o]; the offset after it, or -1 when it is not of the family. */
function writeAddress(addr: string, v6: boolean, out: Buffer, o: number): number {
  if (v6) return parseIPv6Into(addr, out, o) ? o + 16 : -1;
  const v = parseIPv4(addr);
  if (v === undefined) return -1;
  out.writeUInt32BE(v, o);
  return o + 4;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const u64 = (v: bigint): bigint => (v < 0n ? 0n : v > U64_MAX ? U64_MAX : v);
const msField = (ms: number): bigint => BigInt(Math.max(0, Math.trunc(ms)));

/**
 * Writes `f`'s data record at out[o] in its template's field order (out
 * must hold recordLength(f.template) bytes there); returns the offset after
 * it, or -1 when an address is not of the template's family or the
 * translation does not match the template (the caller drops the record and
 * counts it; what was written is garbage to overwrite).
 */
export function writeDataRecord(f: IpfixFlow, out: Buffer, o: number): number {
  const v6 = f.template === TEMPLATE_ID.flow6 || f.template === TEMPLATE_ID.nat6;
  const withNat = f.template === TEMPLATE_ID.nat4 || f.template === TEMPLATE_ID.nat6;
  if (withNat !== (f.nat !== undefined)) return -1;
  o = writeAddress(f.src, v6, out, o);
  if (o >= 0) o = writeAddress(f.dst, v6, out, o);
  if (o < 0) return -1;
  out.writeUInt16BE(f.sport & 0xffff, o);
  out.writeUInt16BE(f.dport & 0xffff, o + 2);
  out.writeUInt8(f.proto & 0xff, o + 4);
  out.writeBigUInt64BE(msField(f.startMs), o + 5);
  out.writeBigUInt64BE(msField(f.endMs), o + 13);
  out.writeBigUInt64BE(u64(f.origBytes), o + 21);
  out.writeBigUInt64BE(u64(f.origPackets), o + 29);
  out.writeBigUInt64BE(u64(f.replyBytes), o + 37);
  out.writeBigUInt64BE(u64(f.replyPackets), o + 45);
  o += 53;
  if (f.nat === undefined) return o;
  o = writeAddress(f.nat.src, v6, out, o);
  if (o >= 0) o = writeAddress(f.nat.dst, v6, out, o);
  if (o < 0) return -1;
  out.writeUInt16BE(f.nat.sport & 0xffff, o);
  out.writeUInt16BE(f.nat.dport & 0xffff, o + 2);
  out.writeUInt8(f.nat.event & 0xff, o + 4);
  return o + 5;
}

/** A message size no message can be built in (EIPFIX_SIZE): a programming error, the config's limits prevent it. */
export class IpfixSizeError extends CtsyncdError {
  readonly code = 'EIPFIX_SIZE';
}

export interface MessageOptions {
  observationDomainId: number;
  /** Seconds since the epoch. */
  exportTime: number;
  /** Data records sent before this batch in the stream, modulo 2^32 (RFC 7011 3.1). */
  sequence: number;
  /** Largest message, in bytes: the path MTU less the IP and UDP headers. */
  maxBytes: number;
  /** Put the template set first in the first message (start, refresh). */
  withTemplates: boolean;
}

export interface EncodedMessages {
  messages: Buffer[];
  /** Data records in each message, in the same order. */
  records: number[];
  /** The sequence number after these messages. */
  sequence: number;
  /** Flows not encoded: an address of the wrong family (counted by the caller). */
  invalid: number;
}

const ALL_TEMPLATES: readonly TemplateId[] = [...TEMPLATES.keys()];

/** Bytes every message needs at least: the header, the templates, one set of the longest record. */
export function minimumMessageBytes(): number {
  let longest = 0;
  for (const id of ALL_TEMPLATES) longest = Math.max(longest, recordLength(id));
  return MESSAGE_HEADER_BYTES + templateSetLength(ALL_TEMPLATES) + SET_HEADER_BYTES + longest;
}

function writeHeader(out: Buffer, length: number, opts: MessageOptions, sequence: number): void {
  out.writeUInt16BE(IPFIX_VERSION, 0);
  out.writeUInt16BE(length, 2);
  out.writeUInt32BE(opts.exportTime >>> 0, 4);
  out.writeUInt32BE(sequence >>> 0, 8);
  out.writeUInt32BE(opts.observationDomainId >>> 0, 12);
}

/** Sequence numbers count data records modulo 2^32 (RFC 7011 3.1); nothing compares them. */
const addRecords = (sequence: number, n: number): number => (sequence + n) % 0x1_0000_0000;

/**
 * The flows as IPFIX messages of at most `maxBytes` each, in order:
 * consecutive flows of one template share a data set, a message ends when
 * the next record would not fit. Each message's sequence number is the
 * count of data records sent before it. With `withTemplates`, the first
 * message starts with the template set (alone, if there are no flows).
 */
export function encodeMessages(flows: readonly IpfixFlow[], opts: MessageOptions): EncodedMessages {
  if (opts.maxBytes < minimumMessageBytes() || opts.maxBytes > 0xffff) {
    throw new IpfixSizeError(`IPFIX message size ${opts.maxBytes} outside ${minimumMessageBytes()}..65535`, {
      context: { maxBytes: opts.maxBytes },
    });
  }
  const messages: Buffer[] = [];
  const records: number[] = [];
  let sequence = opts.sequence >>> 0;
  let invalid = 0;
  const buf = Buffer.alloc(opts.maxBytes);
  let at = MESSAGE_HEADER_BYTES;
  let inMessage = 0;
  let messageSeq = sequence;
  let setStart = -1;
  let setTemplate = -1;
  let templatesPending = opts.withTemplates;

  const closeSet = (): void => {
    if (setStart < 0) return;
    buf.writeUInt16BE(at - setStart, setStart + 2);
    setStart = -1;
    setTemplate = -1;
  };
  const closeMessage = (): void => {
    closeSet();
    writeHeader(buf, at, opts, messageSeq);
    messages.push(Buffer.from(buf.subarray(0, at)));
    records.push(inMessage);
    at = MESSAGE_HEADER_BYTES;
    inMessage = 0;
    messageSeq = sequence;
  };
  if (templatesPending) {
    at = writeTemplateSet(ALL_TEMPLATES, buf, at);
    templatesPending = false;
  }

  for (const f of flows) {
    const len = recordLength(f.template);
    const need = (setTemplate === f.template ? 0 : SET_HEADER_BYTES) + len;
    if (at + need > opts.maxBytes) closeMessage();
    if (setTemplate !== f.template) {
      closeSet();
      setStart = at;
      setTemplate = f.template;
      buf.writeUInt16BE(f.template, at);
      at += SET_HEADER_BYTES;
    }
    const end = writeDataRecord(f, buf, at);
    if (end < 0) {
      invalid++;
      // An empty set just opened is taken back: RFC 7011 sets hold at least one record.
      if (at === setStart + SET_HEADER_BYTES) {
        at = setStart;
        setStart = -1;
        setTemplate = -1;
      }
      continue;
    }
    at = end;
    inMessage++;
    sequence = addRecords(sequence, 1);
  }
  if (inMessage > 0 || at > MESSAGE_HEADER_BYTES) closeMessage();
  return { messages, records, sequence, invalid };
}
