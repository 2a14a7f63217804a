// Which conntrack entries are replicated at all, with conntrackd's rules
// (src/filter.c): by L4 protocol, by address, by TCP state, each as an
// accept list or an ignore list.
//
// Address rule: an entry matches an address or prefix when its ORIGINAL
// source OR its REPLY source lies in it. That is conntrackd's rule, and it is
// what makes ignoring the node's own addresses work in both directions: a
// flow this node opens has one of them as original source, a flow opened to
// this node has it as reply source (absent NAT on that flow). Destination
// addresses are deliberately not looked at.
//
// Loopback (127.0.0.0/8, ::1) and the node's own sync-link addresses are
// always on the ignore side, even under an accept list: replicating them
// makes no sense (loopback) or feeds the sync traffic's own conntrack
// entries back into the sync link.
//
// Everything is compiled once; check() parses the two source addresses into
// numbers without allocating and returns one of four shared verdict objects.

import { parseIPv4, parseIPv6Into, parsePrefix } from '../common/address.js';
import { AF_INET, IPPROTO, protoNumber, TCP_STATES, type TcpStateName } from '../kernel/constants.js';
import {
  F_PROTOINFO,
  F_TCP,
  F_WHOLE,
  type RecordBuf,
  type RecordExtras,
  readEntryRecord,
  recordProto,
  W_FLAGS,
  W_OSRC,
  W_RSRC,
  W_TCP,
} from '../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../kernel/entry.js';
import type { EventFilterRules } from '../kernel/event-filter.js';

// Attribute stripping is part of the `filter` section too.
export { STRIP_FIELDS, stripAttributes } from './strip.js';

export type FilterReason = 'protocol' | 'address' | 'tcp-state';
export type FilterVerdict = { readonly pass: true } | { readonly pass: false; readonly reason: FilterReason };

export interface EntryFilter {
  check(e: ConntrackEntry): FilterVerdict;
  /** check() for the entry held as a record (src/kernel/ct-record.ts) with its extras, read in place. */
  checkRecord(r: RecordBuf, at: number, x: RecordExtras | undefined): FilterVerdict;
}

/** One rule's list: exactly one of accept (only these pass) or ignore (all but these pass). */
export type AcceptOrIgnore<T> = { readonly accept: readonly T[] } | { readonly ignore: readonly T[] };

/**
 * The rules compileFilter reads; stripAttributes is applied elsewhere.
 * Declared here rather than taken from the config schema so the cache does
 * not depend on config: the validated `filter` section satisfies it as is.
 */
export interface FilterRules {
  /** Layer 4 protocol names as protoNumber() knows them. */
  protocols: AcceptOrIgnore<string>;
  /** Addresses or CIDR prefixes, matched against both source addresses. */
  addresses: AcceptOrIgnore<string>;
  tcpStates: AcceptOrIgnore<TcpStateName>;
}

// Shared and frozen so a verdict costs no allocation and nobody can alter one.
const PASS: FilterVerdict = Object.freeze({ pass: true });
const BY_PROTOCOL: FilterVerdict = Object.freeze({ pass: false, reason: 'protocol' });
const BY_ADDRESS: FilterVerdict = Object.freeze({ pass: false, reason: 'address' });
const BY_TCP_STATE: FilterVerdict = Object.freeze({ pass: false, reason: 'tcp-state' });

/** Always ignored, whatever the configuration says. */
/**
 * Which expectations this node replicates (conntrackd's ExpectationSync):
 * all of them, none (the expectation groups are not even joined), or those
 * whose master connection has one of these helpers. The validated
 * `filter.expectations` satisfies it as is.
 */
export type ExpectationPolicy = 'all' | 'none' | { readonly helpers: readonly string[] };

/**
 * Whether an expectation passes the policy; the helper is the master's, as
 * the kernel reports it. A listed name matches every helper name it begins,
 * in any case, as conntrackd's exp_filter_find() does ("sip" also takes a
 * port-numbered "sip-5060"); one without a helper name never matches a list.
 */
export function expectationPasses(policy: ExpectationPolicy, e: Pick<ExpectEntry, 'helper'>): boolean {
  if (policy === 'all') return true;
  if (policy === 'none') return false;
  const name = e.helper?.toLowerCase();
  return name !== undefined && policy.helpers.some((h) => name.startsWith(h.toLowerCase()));
}

export const LOOPBACK_PREFIXES: readonly string[] = ['127.0.0.0/8', '::1/128'];

/** A filter that lets everything through, for tests and for callers that filter elsewhere. */
export const ACCEPT_ALL: EntryFilter = Object.freeze({ check: () => PASS, checkRecord: () => PASS });

/**
 * A set of IPv4 and IPv6 prefixes in numeric form. Prefix lists are short in
 * practice (a handful of networks), so a linear scan beats anything
 * cleverer; exact IPv4 hosts, the one case that can grow (a list of
 * servers), go in a Set.
 */
export class PrefixSet {
  private readonly v4Hosts = new Set<number>();
  private readonly v4Nets: number[] = [];
  private readonly v4Masks: number[] = [];
  /** Four words of network then four words of mask per prefix. */
  private readonly v6: number[] = [];
  private readonly scratch = Buffer.alloc(16);

  /** Adds `addr` or `addr/len`; throws RangeError for anything else. */
  add(prefix: string): void {
    // One parser for this set and the kernel's event filter (kernelEventRules), so they cannot disagree.
    const p = parsePrefix(prefix);
    if (p === undefined) throw new RangeError(`not an IPv4 or IPv6 address or prefix: ${prefix}`);
    if (p.family === 4) {
      const [net] = p.words as [number];
      const [mask] = p.masks as [number];
      if (p.length === 32) this.v4Hosts.add(net);
      else {
        this.v4Nets.push(net);
        this.v4Masks.push(mask);
      }
      return;
    }
    this.v6.push(...p.words, ...p.masks);
  }

  get size(): number {
    return this.v4Hosts.size + this.v4Nets.length + this.v6.length / 8;
  }

  /** Whether any IPv4 rule exists; lets check() skip parsing. */
  get hasV4(): boolean {
    return this.v4Hosts.size > 0 || this.v4Nets.length > 0;
  }

  get hasV6(): boolean {
    return this.v6.length > 0;
  }

  matchV4(a: number): boolean {
    if (this.v4Hosts.has(a)) return true;
    const nets = this.v4Nets;
    const masks = this.v4Masks;
    for (let i = 0; i < nets.length; i++) if ((a & masks[i]!) >>> 0 === nets[i]) return true;
    return false;
  }

  matchV6(w0: number, w1: number, w2: number, w3: number): boolean {
    const p = this.v6;
    for (let i = 0; i < p.length; i += 8) {
      if (
        (w0 & p[i + 4]!) >>> 0 === p[i] &&
        (w1 & p[i + 5]!) >>> 0 === p[i + 1] &&
        (w2 & p[i + 6]!) >>> 0 === p[i + 2] &&
        (w3 & p[i + 7]!) >>> 0 === p[i + 3]
      )
        return true;
    }
    return false;
  }

  /** Textual address of `family`; an address that does not parse matches nothing. */
  matchAddress(family: number, addr: string): boolean {
    if (family === 2) {
      if (!this.hasV4) return false;
      const a = parseIPv4(addr);
      return a !== undefined && this.matchV4(a);
    }
    if (!this.hasV6 || !parseIPv6Into(addr, this.scratch, 0)) return false;
    const b = this.scratch;
    return this.matchV6(b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8), b.readUInt32BE(12));
  }
}

class CompiledFilter implements EntryFilter {
  /** protoPass[p] === 1 when protocol number p passes the protocol rule. */
  private readonly protoPass = new Uint8Array(256);
  /** tcpPass[s] === 1 when TCP state s passes; states beyond the table follow the list mode. */
  private readonly tcpPass = new Uint8Array(256);
  private readonly accept: PrefixSet | undefined;
  private readonly ignore = new PrefixSet();
  /** Whether any TCP state can be rejected; decides what happens without state info. */
  private readonly stateRule: boolean;

  constructor(cfg: FilterRules, localAddresses: readonly string[]) {
    const protoList = listOf(cfg.protocols);
    const protoNums = protoList.items.map((name) => {
      const n = protoNumber(name);
      if (n === undefined) throw new RangeError(`unknown protocol ${name}`);
      return n;
    });
    this.protoPass.fill(protoList.accept ? 0 : 1);
    for (const n of protoNums) this.protoPass[n] = protoList.accept ? 1 : 0;

    const stateList = listOf(cfg.tcpStates);
    this.stateRule = stateList.accept || stateList.items.length > 0;
    this.tcpPass.fill(stateList.accept ? 0 : 1);
    for (const name of stateList.items) {
      const s = (TCP_STATES as readonly string[]).indexOf(name);
      if (s < 0) throw new RangeError(`unknown TCP state ${name}`);
      this.tcpPass[s] = stateList.accept ? 1 : 0;
    }

    const addrList = listOf(cfg.addresses);
    if (addrList.accept) {
      this.accept = new PrefixSet();
      for (const p of addrList.items) this.accept.add(p);
    } else {
      this.accept = undefined;
      for (const p of addrList.items) this.ignore.add(p);
    }
    for (const p of LOOPBACK_PREFIXES) this.ignore.add(p);
    for (const p of localAddresses) this.ignore.add(p);
  }

  check(e: ConntrackEntry): FilterVerdict {
    const proto = e.orig.proto;
    if (this.protoPass[proto & 0xff] !== 1) return BY_PROTOCOL;
    const f = e.family;
    const osrc = e.orig.src;
    const rsrc = e.reply.src;
    if (this.ignore.matchAddress(f, osrc) || this.ignore.matchAddress(f, rsrc)) return BY_ADDRESS;
    if (this.accept !== undefined && !this.accept.matchAddress(f, osrc) && !this.accept.matchAddress(f, rsrc))
      return BY_ADDRESS;
    if (proto === IPPROTO.TCP) {
      // Only a partial UPDATE event for an uncached entry lacks the state (new
      // events and dumps always carry it). Under a state rule it cannot be
      // shown to pass, and the full entry will come with its next state change.
      const tcp = e.protoinfo?.tcp;
      if (tcp === undefined ? this.stateRule : this.tcpPass[tcp.state & 0xff] !== 1) return BY_TCP_STATE;
    }
    return PASS;
  }

  checkRecord(r: RecordBuf, at: number, x: RecordExtras | undefined): FilterVerdict {
    const w = r.w;
    const f = w[at + W_FLAGS]!;
    // Kept whole, or TCP state held in the extras: judge the entry itself.
    if (f & F_WHOLE || ((f & (F_PROTOINFO | F_TCP)) === F_PROTOINFO && x?.protoinfo?.tcp !== undefined))
      return this.check(readEntryRecord(r, at, x));
    const proto = recordProto(w, at);
    if (this.protoPass[proto] !== 1) return BY_PROTOCOL;
    const b = r.b;
    const os = (at + W_OSRC) * 4;
    const rs = (at + W_RSRC) * 4;
    if ((w[at]! & 0xff) === AF_INET) {
      const o = b.readUInt32BE(os);
      const q = b.readUInt32BE(rs);
      if (this.ignore.hasV4 && (this.ignore.matchV4(o) || this.ignore.matchV4(q))) return BY_ADDRESS;
      if (this.accept !== undefined && !(this.accept.hasV4 && (this.accept.matchV4(o) || this.accept.matchV4(q))))
        return BY_ADDRESS;
    } else {
      if (this.ignore.hasV6 && (this.matchV6At(this.ignore, b, os) || this.matchV6At(this.ignore, b, rs)))
        return BY_ADDRESS;
      if (
        this.accept !== undefined &&
        !(this.accept.hasV6 && (this.matchV6At(this.accept, b, os) || this.matchV6At(this.accept, b, rs)))
      )
        return BY_ADDRESS;
    }
    if (proto === IPPROTO.TCP) {
      // As in check(): no state (a partial UPDATE of an uncached entry) passes only without a state rule.
      if ((f & F_TCP) === 0 ? this.stateRule : this.tcpPass[w[at + W_TCP]! & 0xff] !== 1) return BY_TCP_STATE;
    }
    return PASS;
  }

  private matchV6At(set: PrefixSet, b: Buffer, o: number): boolean {
    return set.matchV6(b.readUInt32BE(o), b.readUInt32BE(o + 4), b.readUInt32BE(o + 8), b.readUInt32BE(o + 12));
  }
}

function listOf<T>(list: AcceptOrIgnore<T>): { accept: boolean; items: readonly T[] } {
  return 'accept' in list ? { accept: true, items: list.accept } : { accept: false, items: list.ignore };
}

/**
 * Compiles the `filter` section plus the node's own sync-link addresses
 * (bare addresses or prefixes) into a reusable filter. Rules are evaluated
 * protocol, then address, then TCP state; the first that rejects names the
 * reason. The TCP state rule applies to TCP entries only; a TCP entry
 * without state information passes only when there is no state rule.
 */
export function compileFilter(cfg: FilterRules, localAddresses: readonly string[] = []): EntryFilter {
  return new CompiledFilter(cfg, localAddresses);
}

/**
 * The same rules as compileFilter(cfg, localAddresses), in the form the
 * event socket's BPF program takes (src/kernel/event-filter.ts), which
 * applies them to the events where that is safe and leaves the rest to
 * the filter above. Loopback and the sync-link addresses join the ignore
 * side here exactly as they do there.
 */
export function kernelEventRules(cfg: FilterRules, localAddresses: readonly string[] = []): EventFilterRules {
  const protocols = listOf(cfg.protocols);
  const addresses = listOf(cfg.addresses);
  const states = listOf(cfg.tcpStates);
  const number = (name: string) => {
    const n = protoNumber(name);
    if (n === undefined) throw new RangeError(`unknown protocol ${name}`);
    return n;
  };
  const state = (name: TcpStateName) => {
    const s = (TCP_STATES as readonly string[]).indexOf(name);
    if (s < 0) throw new RangeError(`unknown TCP state ${name}`);
    return s;
  };
  const ignoreSources = [...LOOPBACK_PREFIXES, ...localAddresses, ...(addresses.accept ? [] : addresses.items)];
  const rules: EventFilterRules = {
    protocols: { accept: protocols.accept, numbers: protocols.items.map(number) },
    ignoreSources,
    tcpStates: { accept: states.accept, states: states.items.map(state) },
  };
  if (addresses.accept) rules.acceptSources = addresses.items;
  return rules;
}
