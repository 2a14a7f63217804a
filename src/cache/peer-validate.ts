// What a peer's entry must satisfy before it enters the external cache, and
// what commit makes of its timeout. A peer (or whoever can reach the sync
// port of a node without sync.auth keys) otherwise chooses what this node's
// kernel will hold at the next commit: a connection the local filter would
// never have replicated, status bits only the kernel may set, a timeout of
// years, and so a table that never empties.
//
//  - The local filter applies: the same compiled rules the internal cache
//    judges kernel events by (compileFilter, with loopback and the sync
//    links' own addresses), read in place from the record (checkRecord).
//  - Status bits come from an allow-list (PEER_STATUS_BITS); the others are
//    cleared, not refused: a peer's kernel may legitimately set OFFLOAD or
//    HELPER on its own copy, which says nothing this kernel should take.
//  - Timeouts are capped at 5 days (PEER_MAX_TIMEOUT), for every protocol.
//  - Commit subtracts the entry's age (commitTimeout).
// Each fix and refusal is counted (PeerEntryCounters: stats
// `external.peerEntries`, metrics ctsyncd_peer_entries_*). Deletes are
// not checked: they can only remove.
import { IPS } from '../kernel/constants.js';
import {
  copyRecordWords,
  EntryRecord,
  F_STATUS,
  F_TIMEOUT,
  F_WHOLE,
  type RecordBuf,
  type RecordExtras,
  W_FLAGS,
  W_STATUS,
  W_TIMEOUT,
} from '../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../kernel/entry.js';
import { type EntryFilter, type ExpectationPolicy, expectationPasses, type FilterReason } from './filter.js';

/**
 * Status bits a peer's entry may carry (linux/netfilter/nf_conntrack_common.h):
 * what describes the connection and what commit writes (CONFIRMED is set on
 * every create anyway, EXPECTED is cleared by COMMIT_FORM, the NAT bits
 * follow the tuples). Left out: DYING, FIXED_TIMEOUT (a timeout that no
 * packet refreshes and nothing but the kernel should fix), TEMPLATE,
 * NAT_CLASH/UNTRACKED, HELPER, OFFLOAD, HW_OFFLOAD and every bit above them.
 */
export const PEER_STATUS_BITS =
  IPS.EXPECTED |
  IPS.SEEN_REPLY |
  IPS.ASSURED |
  IPS.CONFIRMED |
  IPS.SRC_NAT |
  IPS.DST_NAT |
  IPS.SEQ_ADJUST |
  IPS.SRC_NAT_DONE |
  IPS.DST_NAT_DONE;

/**
 * The longest timeout a peer's entry may carry, in seconds, whatever its
 * protocol: 5 days, the largest default nf_conntrack timeout of any
 * protocol (TCP ESTABLISHED; SCTP ESTABLISHED before 5.19). Not each
 * protocol's own default: sysctls and timeout policies raise those (a UDP
 * service with an hour's timeout is common), the kernel takes any timeout a
 * ctnetlink create names, and conntrackd replicates it as it is; a cap at
 * the stock defaults would cut such flows short at every commit. What it
 * stops is a peer's timeout of months or years, which would keep stale
 * entries in this kernel long after their connection ended.
 */
export const PEER_MAX_TIMEOUT = 432_000;


/**
 * The least timeout commit writes, in seconds. A replicated timeout dates
 * from the entry's last state change on its origin (conntrack sends no event
 * when a packet merely refreshes a timeout), so a copy whose timeout has run
 * out by the commit may belong to a flow that is still live: it gets this
 * long for its next packet to refresh it. A dead one costs this long.
 */
export const COMMIT_TIMEOUT_FLOOR = 30;

/**
 * The timeout commit writes for an entry received `ageMs` ago with
 * `timeout` seconds left then: what is left now, at least
 * COMMIT_TIMEOUT_FLOOR (or the timeout itself when it was below that).
 */
export function commitTimeout(timeout: number, ageMs: number): number {
  const left = timeout - Math.floor(Math.max(0, ageMs) / 1000);
  return Math.max(left, Math.min(timeout, COMMIT_TIMEOUT_FLOOR));
}

/**
 * The entry commit writes: `e` with its timeout less `ageMs`, the time since
 * the cache received it (commitTimeout). An entry object, or one a record
 * keeps whole in its extras (which the cache still holds), is copied. A
 * record's words are copied into `scratch` when one is given (a view into
 * the cache must not change; the result is then valid until the next call
 * with that scratch), else changed in place: pass a record that is the
 * caller's own copy.
 */
export function agedForCommit(
  e: ConntrackEntry | EntryRecord,
  ageMs: number,
  scratch?: EntryRecord,
): ConntrackEntry | EntryRecord {
  if (!(e instanceof EntryRecord)) return e.timeout === undefined ? e : { ...e, timeout: commitTimeout(e.timeout, ageMs) };
  const f = e.w[e.at + W_FLAGS]!;
  if ((f & F_TIMEOUT) === 0) return e;
  if (f & F_WHOLE) {
    const whole = e.entry();
    return whole.timeout === undefined ? whole : { ...whole, timeout: commitTimeout(whole.timeout, ageMs) };
  }
  let r = e;
  if (scratch !== undefined) {
    copyRecordWords(e.w, e.at, scratch.w, scratch.at);
    scratch.x = e.x;
    r = scratch;
  }
  r.w[r.at + W_TIMEOUT] = commitTimeout(e.w[e.at + W_TIMEOUT]! >>> 0, ageMs);
  return r;
}

export interface PeerEntryCounters {
  /** Peers' entries the local filter rejected, by rule (a cached entry of their key is dropped too). */
  filtered: Record<FilterReason, number>;
  /** Entries that carried status bits outside PEER_STATUS_BITS (cleared). */
  statusStripped: number;
  /** Timeouts lowered to PEER_MAX_TIMEOUT. */
  timeoutCapped: number;
  /** New keys refused because their origin already held its share of cache.externalLimit (or of the expectation limit). */
  overShare: number;
  /** Peers' expectations filter.expectations rejects (a cached copy of their key is dropped too). */
  expectFiltered: number;
}

export function newPeerEntryCounters(): PeerEntryCounters {
  return {
    filtered: { protocol: 0, address: 0, 'tcp-state': 0 },
    statusStripped: 0,
    timeoutCapped: 0,
    overShare: 0,
    expectFiltered: 0,
  };
}

/** check(): the record is fine as it is. */
export const PEER_PASS = 0;
/** check(): a fixed copy is at `out` word 0, with extras `fixedExtras`. */
export const PEER_FIXED = 1;
/** check(): the local filter rejects it. */
export const PEER_REJECT = 2;

export class PeerEntryCheck {
  readonly counters: PeerEntryCounters = newPeerEntryCounters();
  /** The extras of the last PEER_FIXED copy. */
  fixedExtras: RecordExtras | undefined;

  constructor(
    private readonly filter: EntryFilter,
    /** filter.expectations: a peer's expectation this node would not replicate is not held either. */
    private readonly expectations: ExpectationPolicy = 'all',
  ) {}

  /** Whether a peer's expectation passes filter.expectations; counts it when not. */
  checkExpect(e: ExpectEntry): boolean {
    if (expectationPasses(this.expectations, e)) return true;
    this.counters.expectFiltered++;
    return false;
  }

  /**
   * Judges the record at `r.w[at]` with its extras. The record itself is
   * never written: a fix goes to a copy at word 0 of `out` (which may be
   * `r` itself when `at` is 0).
   */
  check(r: RecordBuf, at: number, x: RecordExtras | undefined, out: RecordBuf): number {
    const verdict = this.filter.checkRecord(r, at, x);
    if (!verdict.pass) {
      this.counters.filtered[verdict.reason]++;
      return PEER_REJECT;
    }
    const w = r.w;
    const f = w[at + W_FLAGS]!;
    const status = w[at + W_STATUS]! >>> 0;
    const timeout = w[at + W_TIMEOUT]! >>> 0;
    const badStatus = (f & F_STATUS) !== 0 && (status & ~PEER_STATUS_BITS) !== 0;
    const cap = PEER_MAX_TIMEOUT;
    const longTimeout = (f & F_TIMEOUT) !== 0 && timeout > cap;
    if (!badStatus && !longTimeout) return PEER_PASS;
    if (out.w !== w || at !== 0) copyRecordWords(w, at, out.w, 0);
    const o = out.w;
    if (badStatus) {
      this.counters.statusStripped++;
      o[W_STATUS] = status & PEER_STATUS_BITS;
    }
    if (longTimeout) {
      this.counters.timeoutCapped++;
      o[W_TIMEOUT] = cap;
    }
    // An entry kept whole is read from its extras: fix the entry there too, in a copy.
    const whole = x?.whole;
    if (f & F_WHOLE && whole !== undefined) {
      const fixed: ConntrackEntry = { ...whole };
      if (badStatus && whole.status !== undefined) fixed.status = (whole.status & PEER_STATUS_BITS) >>> 0;
      if (longTimeout && whole.timeout !== undefined) fixed.timeout = cap;
      this.fixedExtras = { ...x, whole: fixed };
    } else {
      this.fixedExtras = x;
    }
    return PEER_FIXED;
  }
}
