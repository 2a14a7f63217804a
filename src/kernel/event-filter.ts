// The event socket's classic BPF program: conntrackd's "Filter From
// Kernelspace". It drops, before they are queued, the events of our own
// request sockets and the events the cache's filter (src/cache/filter.ts)
// would do nothing with, so they neither take receive-buffer space nor wake
// the process. The userspace filter stays the authority and still runs on
// every event that gets through: this program only ever errs towards
// accepting.
//
// What it may drop, and why that is safe (see src/cache/internal-cache.ts):
//  - Any event (NEW, UPDATE, DESTROY) whose protocol fails the protocol
//    rule, or whose ORIGINAL source lies in an ignored prefix. Both are part
//    of the cache key (original tuple + zone), so no entry of that key can
//    ever pass the filter or be cached: userspace would only count it.
//  - An UPDATE whose tuples fail the address rules on either source
//    (ignore, or an accept list neither source is in), or a TCP UPDATE that
//    carries a state the state rule rejects. InternalCache merges an UPDATE
//    onto the cached entry taking the event's tuples and, when present, its
//    protoinfo, then filters: such an update fails and changes nothing (the
//    cached copy keeps its last accepted state until a later accepted one or
//    its DESTROY). It cannot be "nothing new" for a cached entry either: a
//    cached entry passed, so its tuples and state differ from these.
//    One trace remains: during a reconcile, an update userspace filters
//    still marks its key as touched, so the dump's line for it is ignored;
//    dropped in the kernel, it does not, and a dump line read before the
//    update may cache the older, accepted state. That is a state the entry
//    had, what the cache keeps anyway when the update comes after the dump
//    line, and the entry's DESTROY always gets through (below).
// What it leaves to userspace, and why:
//  - NEW and DESTROY failing on the REPLY source or the accept list: the
//    reply source is not part of the key, so an earlier connection with the
//    same key may be cached (its DESTROY lost in an overrun); userspace
//    deletes that entry on such a NEW or DESTROY, and a dropped DESTROY
//    would strand it on the peers.
//  - NEW and DESTROY failing on the TCP state: a NEW under a rejected state
//    deletes a cached entry of the same key, and DESTROY removes a cached
//    entry whatever the filter says.
//  - An UPDATE without CTA_PROTOINFO: it keeps the cached state, which may
//    pass.
//  - Anything it cannot read: expectation events (same socket), other
//    message types, a family other than AF_INET/AF_INET6, a missing or
//    wrongly sized attribute, an attribute present twice in its nest (our
//    decoder keeps the last one, nla_find the first), several messages in
//    one skb. All accepted.
//
// Layout: nlmsghdr (16 bytes), nfgenmsg (4), then the CTA_* attributes.
// The program finds them with the SKF_AD_NLATTR / SKF_AD_NLATTR_NEST
// ancillary loads (A = where to start, X = attribute type; A = offset of
// the attribute or 0). Every packet load is at an offset those loads
// vouched for, so no load runs past the end (which would mean "drop").

import { endianness } from 'node:os';
import { type AddressPrefix, parsePrefix } from '../common/address.js';
import { CtsyncdError } from '../common/errors.js';
import {
  BPF_ABS,
  BPF_ACCEPT,
  BPF_ADD,
  BPF_ALU,
  BPF_AND,
  BPF_B,
  BPF_H,
  BPF_IMM,
  BPF_IND,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_JSET,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_LSH,
  BPF_MAXINSNS,
  BPF_MEM,
  BPF_MISC,
  BPF_OR,
  BPF_ST,
  BPF_STX,
  BPF_TAX,
  BPF_W,
  BPF_X,
  BpfAssembler,
  type BpfLabel,
  emitOwnPortids,
  hostU16AsLoaded,
  MAX_FILTERED_PORTIDS,
  SKF_AD_NLATTR,
  SKF_AD_NLATTR_NEST,
  SKF_AD_OFF,
} from './bpf.js';
import {
  AF_INET,
  AF_INET6,
  CTA,
  CTA_IP,
  CTA_PROTO,
  CTA_PROTOINFO,
  CTA_PROTOINFO_TCP,
  CTA_TUPLE,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  IPPROTO,
  NFGENMSG_LEN,
  NFNL_SUBSYS_CTNETLINK,
  NLA_HDRLEN,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLMSG_HDRLEN,
} from './constants.js';

/** The rules a program can carry, by the name the stats show. */
export type EventFilterRule = 'protocol' | 'address-ignore' | 'address-accept' | 'tcp-state';

/**
 * What the cache's filter decides, in the terms the kernel program needs
 * (src/cache/filter.ts kernelEventRules() builds it). An entry passes when
 * every rule passes; a rule that is absent passes everything.
 */
export interface EventFilterRules {
  /** accept: only these protocol numbers pass; otherwise these fail. */
  protocols?: { accept: boolean; numbers: readonly number[] };
  /** An entry whose original or reply source lies in one of these fails (`addr` or `addr/len`). */
  ignoreSources?: readonly string[];
  /** When present, an entry passes only if its original or reply source lies in one of these. */
  acceptSources?: readonly string[];
  /** For TCP entries: accept: only these states pass; otherwise these fail. */
  tcpStates?: { accept: boolean; states: readonly number[] };
}

export interface CompiledEventFilter {
  program: Buffer;
  /** Instructions in `program`. */
  instructions: number;
  /** Rules the program applies (to the events the file comment lists). */
  rules: EventFilterRule[];
  /** Rules that were given but did not fit: applied in userspace only. */
  userspaceOnly: EventFilterRule[];
}

export interface CompileEventFilterOptions {
  /** Longest program to produce; the kernel's BPF_MAXINSNS by default. */
  maxInstructions?: number;
  /** Host byte order of the netlink headers; the machine's by default. */
  littleEndian?: boolean;
}

/** A rule set the kernel program cannot express faithfully (an address that does not parse). */
export class EventFilterError extends CtsyncdError {
  readonly code = 'EEVENT_FILTER';
}

/** Rules dropped, in this order, until the program fits: the big ones first. */
const SHED_ORDER: readonly EventFilterRule[] = ['address-accept', 'address-ignore', 'protocol', 'tcp-state'];

/**
 * The event socket's program: drops our own port ids' events and what
 * `rules` make safe to drop (file comment). When the whole rule set does
 * not fit maxInstructions, rules are left to userspace one at a time
 * (SHED_ORDER) until it does; `userspaceOnly` says which.
 */
export function compileEventFilter(
  ownPortids: readonly number[],
  rules: EventFilterRules | undefined,
  opts: CompileEventFilterOptions = {},
): CompiledEventFilter {
  if (ownPortids.length > MAX_FILTERED_PORTIDS) throw new RangeError(`at most ${MAX_FILTERED_PORTIDS} port ids`);
  const max = Math.min(opts.maxInstructions ?? BPF_MAXINSNS, BPF_MAXINSNS);
  const le = opts.littleEndian ?? endianness() === 'LE';
  const given = rules ? parseRules(rules) : emptyParsed();
  const active = new Set(givenRules(given));
  const dropped: EventFilterRule[] = [];
  for (;;) {
    const program = emitProgram(ownPortids, restrict(given, active), le);
    const instructions = program.length / 8;
    if (instructions <= max) {
      return { program, instructions, rules: [...active].sort(byShedOrder), userspaceOnly: dropped.sort(byShedOrder) };
    }
    const next = SHED_ORDER.find((r) => active.has(r));
    if (next === undefined) throw new RangeError(`own port id filter alone needs ${instructions} instructions`);
    active.delete(next);
    dropped.push(next);
  }
}

function byShedOrder(a: EventFilterRule, b: EventFilterRule): number {
  return SHED_ORDER.indexOf(a) - SHED_ORDER.indexOf(b);
}

interface ParsedRules {
  protocols: { accept: boolean; numbers: number[] } | undefined;
  ignore: AddressPrefix[];
  accept: AddressPrefix[] | undefined;
  tcpStates: { accept: boolean; states: number[] } | undefined;
}

function emptyParsed(): ParsedRules {
  return { protocols: undefined, ignore: [], accept: undefined, tcpStates: undefined };
}

function parseRules(r: EventFilterRules): ParsedRules {
  const parse = (list: readonly string[]) =>
    list.map((text) => {
      const p = parsePrefix(text);
      if (p === undefined) throw new EventFilterError(`not an address or prefix: ${text}`, { context: { prefix: text } });
      return p;
    });
  const bytes = (list: readonly number[], what: string) => {
    for (const n of list) if (!Number.isInteger(n) || n < 0 || n > 255) throw new RangeError(`${what} ${n} is not a u8`);
    return [...new Set(list)];
  };
  return {
    // An ignore list that is empty fails nothing: no rule.
    protocols:
      r.protocols && (r.protocols.accept || r.protocols.numbers.length > 0)
        ? { accept: r.protocols.accept, numbers: bytes(r.protocols.numbers, 'protocol') }
        : undefined,
    ignore: parse(r.ignoreSources ?? []),
    accept: r.acceptSources ? parse(r.acceptSources) : undefined,
    tcpStates:
      r.tcpStates && (r.tcpStates.accept || r.tcpStates.states.length > 0)
        ? { accept: r.tcpStates.accept, states: bytes(r.tcpStates.states, 'TCP state') }
        : undefined,
  };
}

/** The rules `r` asks for, without compiling them (what to report when compiling fails). */
export function eventFilterRuleNames(r: EventFilterRules): EventFilterRule[] {
  const out: EventFilterRule[] = [];
  if (r.protocols && (r.protocols.accept || r.protocols.numbers.length > 0)) out.push('protocol');
  if ((r.ignoreSources ?? []).length > 0) out.push('address-ignore');
  if (r.acceptSources) out.push('address-accept');
  if (r.tcpStates && (r.tcpStates.accept || r.tcpStates.states.length > 0)) out.push('tcp-state');
  return out.sort(byShedOrder);
}

function givenRules(p: ParsedRules): EventFilterRule[] {
  const out: EventFilterRule[] = [];
  if (p.protocols) out.push('protocol');
  if (p.ignore.length > 0) out.push('address-ignore');
  if (p.accept) out.push('address-accept');
  if (p.tcpStates) out.push('tcp-state');
  return out;
}

function restrict(p: ParsedRules, active: ReadonlySet<EventFilterRule>): ParsedRules {
  return {
    protocols: active.has('protocol') ? p.protocols : undefined,
    ignore: active.has('address-ignore') ? p.ignore : [],
    accept: active.has('address-accept') ? p.accept : undefined,
    tcpStates: active.has('tcp-state') ? p.tcpStates : undefined,
  };
}

// Scratch words.
const M_T0 = 0;
const M_T1 = 1;
/** 1 for an UPDATE, 0 for NEW and DESTROY. */
const M_UPDATE = 2;
/** skb->len, the end of the top-level attributes. */
const M_LEN = 3;
const M_PROTO = 4;
const M_ORIG = 5;
const M_ORIG_END = 6;
const M_NEST = 7;
const M_NEST_END = 8;
const M_OSRC = 9;
const M_REPLY = 10;
const M_REPLY_END = 11;

const FIRST_ATTR = NLMSG_HDRLEN + NFGENMSG_LEN;
const LD_NLATTR = SKF_AD_OFF + SKF_AD_NLATTR;
const LD_NLATTR_NEST = SKF_AD_OFF + SKF_AD_NLATTR_NEST;

/** Emits the instructions of one program; the labels are its two verdicts. */
class Emitter {
  readonly asm = new BpfAssembler();
  readonly accept: BpfLabel;
  readonly drop: BpfLabel;

  constructor(readonly le: boolean) {
    this.accept = this.asm.label();
    this.drop = this.asm.label();
  }

  stmt(code: number, k = 0): void {
    this.asm.stmt(code, k);
  }

  jump(code: number, k: number, jt?: BpfLabel, jf?: BpfLabel): void {
    this.asm.jump(code, k, jt, jf);
  }

  /** A = the host-order u16 at packet[X + off]; X is kept, M_T0 and M_T1 are used. */
  loadHostU16AtX(off: number): void {
    if (!this.le) {
      this.stmt(BPF_LD | BPF_H | BPF_IND, off);
      return;
    }
    this.stmt(BPF_LD | BPF_B | BPF_IND, off + 1);
    this.stmt(BPF_ALU | BPF_LSH | BPF_K, 8);
    this.stmt(BPF_ST, M_T0);
    this.stmt(BPF_LD | BPF_B | BPF_IND, off);
    this.stmt(BPF_STX, M_T1);
    this.stmt(BPF_LDX | BPF_MEM, M_T0);
    this.stmt(BPF_ALU | BPF_OR | BPF_X);
    this.stmt(BPF_LDX | BPF_MEM, M_T1);
  }

  /** A = the host-order u32 at packet[off] (off + 4 <= skb->len checked by the caller); X is clobbered. */
  loadHostU32(off: number): void {
    if (!this.le) {
      this.stmt(BPF_LD | BPF_W | BPF_ABS, off);
      return;
    }
    this.stmt(BPF_LD | BPF_B | BPF_ABS, off + 3);
    for (let i = 2; i >= 0; i--) {
      this.stmt(BPF_ALU | BPF_LSH | BPF_K, 8);
      this.stmt(BPF_MISC | BPF_TAX);
      this.stmt(BPF_LD | BPF_B | BPF_ABS, off + i);
      this.stmt(BPF_ALU | BPF_OR | BPF_X);
    }
  }

  /**
   * Finds the attribute `type` in the top level (parent undefined) or in the
   * nest whose offset and end are in M[parent.at], M[parent.end]; stores its
   * offset in M[store] and leaves it in X. Accepts the message when the
   * attribute is missing, present twice, or (leafPayload given) not exactly
   * that long. For a nest (`storeEnd`), its end goes to M[storeEnd].
   */
  find(
    parent: { at: number; end: number } | undefined,
    type: number,
    store: number,
    shape: { leafPayload: number } | { storeEnd: number },
  ): void {
    const { accept } = this;
    if (parent) this.stmt(BPF_LD | BPF_MEM, parent.at);
    else this.stmt(BPF_LD | BPF_IMM, FIRST_ATTR);
    this.stmt(BPF_LDX | BPF_IMM, type);
    this.stmt(BPF_LD | BPF_W | BPF_ABS, parent ? LD_NLATTR_NEST : LD_NLATTR);
    this.jump(BPF_JMP | BPF_JEQ | BPF_K, 0, accept);
    this.stmt(BPF_ST, store);
    this.stmt(BPF_MISC | BPF_TAX);
    if ('leafPayload' in shape) {
      const nlaLen = NLA_HDRLEN + shape.leafPayload;
      this.stmt(BPF_LD | BPF_H | BPF_IND, 0);
      this.jump(BPF_JMP | BPF_JEQ | BPF_K, hostU16AsLoaded(nlaLen, this.le), undefined, accept);
      this.stmt(BPF_LD | BPF_IMM, (nlaLen + 3) & ~3);
      this.stmt(BPF_ALU | BPF_ADD | BPF_X);
    } else {
      this.loadHostU16AtX(0);
      this.stmt(BPF_ALU | BPF_ADD | BPF_X);
      this.stmt(BPF_ST, shape.storeEnd);
      // Attributes start 4-aligned, so align4(offset + nla_len) is the next sibling.
      this.stmt(BPF_ALU | BPF_ADD | BPF_K, 3);
      this.stmt(BPF_ALU | BPF_AND | BPF_K, ~3 >>> 0);
    }
    // A = where the next sibling would start. The walk from there stays in
    // step with the siblings up to the parent's end (and then goes on over
    // whatever follows); a match before that end is a second `type`.
    this.stmt(BPF_LDX | BPF_IMM, type);
    this.stmt(BPF_LD | BPF_W | BPF_ABS, LD_NLATTR);
    const single = this.asm.label();
    this.jump(BPF_JMP | BPF_JEQ | BPF_K, 0, single);
    this.stmt(BPF_MISC | BPF_TAX);
    this.stmt(BPF_LD | BPF_MEM, parent ? parent.end : M_LEN);
    this.jump(BPF_JMP | BPF_JGT | BPF_X, 0, accept, single);
    this.asm.bind(single);
    this.stmt(BPF_LDX | BPF_MEM, store);
  }

  /** Jumps to `hit` when the address at packet[X + 4] lies in one of `prefixes` (one family), else to `miss`. */
  matchPrefixes(prefixes: readonly AddressPrefix[], hit: BpfLabel, miss: BpfLabel): void {
    if (prefixes.length > 0 && prefixes[0]!.family === 4) {
      // Grouped by mask: one load and AND per distinct mask.
      const byMask = new Map<number, Set<number>>();
      for (const p of prefixes) {
        const nets = byMask.get(p.masks[0]!) ?? new Set<number>();
        nets.add(p.words[0]!);
        byMask.set(p.masks[0]!, nets);
      }
      for (const [mask, nets] of byMask) {
        this.stmt(BPF_LD | BPF_W | BPF_IND, NLA_HDRLEN);
        if (mask !== 0xffffffff) this.stmt(BPF_ALU | BPF_AND | BPF_K, mask);
        for (const net of nets) this.jump(BPF_JMP | BPF_JEQ | BPF_K, net, hit);
      }
    } else {
      for (const p of prefixes) {
        const next = this.asm.label();
        for (let w = 0; w < 4; w++) {
          const mask = p.masks[w]!;
          if (mask === 0) continue;
          this.stmt(BPF_LD | BPF_W | BPF_IND, NLA_HDRLEN + 4 * w);
          if (mask !== 0xffffffff) this.stmt(BPF_ALU | BPF_AND | BPF_K, mask);
          this.jump(BPF_JMP | BPF_JEQ | BPF_K, p.words[w]!, undefined, next);
        }
        this.asm.ja(hit);
        this.asm.bind(next);
      }
    }
    this.asm.ja(miss);
  }

  /** Finds the source address attribute of the tuple nest at M[tuple] (end M[tupleEnd]); X = its offset. */
  findSource(tuple: number, tupleEnd: number, family: 4 | 6, store: number): void {
    this.find({ at: tuple, end: tupleEnd }, CTA_TUPLE.IP, M_NEST, { storeEnd: M_NEST_END });
    const v4 = family === 4;
    this.find({ at: M_NEST, end: M_NEST_END }, v4 ? CTA_IP.V4_SRC : CTA_IP.V6_SRC, store, { leafPayload: v4 ? 4 : 16 });
  }
}

function emitProgram(ownPortids: readonly number[], r: ParsedRules, le: boolean): Buffer {
  const e = new Emitter(le);
  const { asm, accept, drop } = e;
  emitOwnPortids(asm, ownPortids, accept, drop, le);
  const addresses = r.ignore.length > 0 || r.accept !== undefined;
  if (r.protocols || addresses || r.tcpStates) emitRules(e, r);
  asm.bind(accept);
  asm.ret(BPF_ACCEPT);
  asm.bind(drop);
  asm.ret(0);
  return asm.assemble();
}

function emitRules(e: Emitter, r: ParsedRules): void {
  const { asm, accept, drop } = e;
  const J = BPF_JMP | BPF_K;

  // One message, the whole skb: then the top-level walk from FIRST_ATTR ends
  // where the message does. (ctnetlink sends one event per skb.)
  e.stmt(BPF_LD | BPF_W | BPF_LEN);
  e.jump(J | BPF_JGE, FIRST_ATTR, undefined, accept);
  e.stmt(BPF_ST, M_LEN);
  e.loadHostU32(0);
  e.stmt(BPF_MISC | BPF_TAX);
  e.stmt(BPF_LD | BPF_MEM, M_LEN);
  e.jump(BPF_JMP | BPF_JEQ | BPF_X, 0, undefined, accept);

  // Conntrack NEW/DELETE only; NEW without CREATE|EXCL is an update (as ConntrackEvents classifies).
  const ctNew = asm.label();
  const strict = asm.label();
  const update = asm.label();
  const body = asm.label();
  e.stmt(BPF_LD | BPF_H | BPF_ABS, 4);
  e.jump(J | BPF_JEQ, hostU16AsLoaded((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, e.le), ctNew);
  e.jump(J | BPF_JEQ, hostU16AsLoaded((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, e.le), strict, accept);
  asm.bind(ctNew);
  e.stmt(BPF_LD | BPF_H | BPF_ABS, 6);
  e.jump(J | BPF_JSET, hostU16AsLoaded(NLM_F_CREATE | NLM_F_EXCL, e.le), strict, update);
  asm.bind(update);
  e.stmt(BPF_LD | BPF_IMM, 1);
  e.stmt(BPF_ST, M_UPDATE);
  asm.ja(body);
  asm.bind(strict);
  e.stmt(BPF_LD | BPF_IMM, 0);
  e.stmt(BPF_ST, M_UPDATE);
  asm.bind(body);

  // nfgen_family: our decoder refuses anything else.
  const familyOk = asm.label();
  e.stmt(BPF_LD | BPF_B | BPF_ABS, NLMSG_HDRLEN);
  e.jump(J | BPF_JEQ, AF_INET, familyOk);
  e.jump(J | BPF_JEQ, AF_INET6, familyOk, accept);
  asm.bind(familyOk);

  e.find(undefined, CTA.TUPLE_ORIG, M_ORIG, { storeEnd: M_ORIG_END });
  if (r.protocols || r.tcpStates) {
    e.find({ at: M_ORIG, end: M_ORIG_END }, CTA_TUPLE.PROTO, M_NEST, { storeEnd: M_NEST_END });
    e.find({ at: M_NEST, end: M_NEST_END }, CTA_PROTO.NUM, M_T0, { leafPayload: 1 });
    e.stmt(BPF_LD | BPF_B | BPF_IND, NLA_HDRLEN);
    e.stmt(BPF_ST, M_PROTO);
  }
  if (r.protocols) {
    const pass = asm.label();
    for (const n of r.protocols.numbers) e.jump(J | BPF_JEQ, n, r.protocols.accept ? pass : drop);
    asm.ja(r.protocols.accept ? drop : pass);
    asm.bind(pass);
  }

  const state = asm.label();
  if (r.ignore.length > 0 || r.accept !== undefined) {
    const v6 = asm.label();
    e.stmt(BPF_LD | BPF_B | BPF_ABS, NLMSG_HDRLEN);
    e.jump(J | BPF_JEQ, AF_INET, undefined, v6);
    emitAddresses(e, r, 4, state);
    asm.bind(v6);
    emitAddresses(e, r, 6, state);
  }
  asm.bind(state);
  // Only UPDATEs go on (file comment).
  e.stmt(BPF_LD | BPF_MEM, M_UPDATE);
  e.jump(J | BPF_JEQ, 0, accept);
  if (r.tcpStates) {
    e.stmt(BPF_LD | BPF_MEM, M_PROTO);
    e.jump(J | BPF_JEQ, IPPROTO.TCP, undefined, accept);
    // The reply tuple's words are free again: CTA_PROTOINFO takes them.
    e.find(undefined, CTA.PROTOINFO, M_REPLY, { storeEnd: M_REPLY_END });
    e.find({ at: M_REPLY, end: M_REPLY_END }, CTA_PROTOINFO.TCP, M_NEST, { storeEnd: M_NEST_END });
    e.find({ at: M_NEST, end: M_NEST_END }, CTA_PROTOINFO_TCP.STATE, M_T0, { leafPayload: 1 });
    e.stmt(BPF_LD | BPF_B | BPF_IND, NLA_HDRLEN);
    for (const s of r.tcpStates.states) e.jump(J | BPF_JEQ, s, r.tcpStates.accept ? accept : drop);
    asm.ja(r.tcpStates.accept ? drop : accept);
  } else {
    asm.ja(accept);
  }
}

/** The address rules for one family; continues at `done` when the event passes them. */
function emitAddresses(e: Emitter, r: ParsedRules, family: 4 | 6, done: BpfLabel): void {
  const { asm, accept, drop } = e;
  const ignore = r.ignore.filter((p) => p.family === family);
  const acceptList = r.accept?.filter((p) => p.family === family);
  e.findSource(M_ORIG, M_ORIG_END, family, M_OSRC);
  if (ignore.length > 0) {
    const clean = asm.label();
    e.matchPrefixes(ignore, drop, clean);
    asm.bind(clean);
  }
  // The reply source and the accept list decide UPDATEs only (file comment).
  e.stmt(BPF_LD | BPF_MEM, M_UPDATE);
  e.jump(BPF_JMP | BPF_JEQ | BPF_K, 0, accept);
  if (ignore.length === 0 && acceptList === undefined) {
    asm.ja(done);
    return;
  }
  e.find(undefined, CTA.TUPLE_REPLY, M_REPLY, { storeEnd: M_REPLY_END });
  e.findSource(M_REPLY, M_REPLY_END, family, M_T0);
  if (ignore.length > 0) {
    const clean = asm.label();
    e.matchPrefixes(ignore, drop, clean);
    asm.bind(clean);
  }
  if (acceptList !== undefined) {
    // X still holds the reply source; then the original one.
    const tryOrig = asm.label();
    e.matchPrefixes(acceptList, done, tryOrig);
    asm.bind(tryOrig);
    e.stmt(BPF_LDX | BPF_MEM, M_OSRC);
    e.matchPrefixes(acceptList, done, drop);
  } else {
    asm.ja(done);
  }
}
