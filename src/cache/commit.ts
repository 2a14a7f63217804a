// Commit: the external cache (peers' connections) into this node's kernel,
// the step that makes a failover keep established and NATed connections.
//
// Every entry is first created (many per sendmsg). One that already exists
// is then either left alone (we wrote this very version before: a repeated
// commit changes nothing), updated (we wrote an older version), or replaced
// by delete + create in one sendmsg (the kernel's own entry, e.g. a stale one
// from this node's last time as primary: its NAT mapping and TCP window
// state are not the replicated ones, and a resumed stream would be dropped
// as invalid). Masters go in before related entries, which name their
// master; expectations go in last.
import { BATCH_SKIPPED, errnoLabel } from '../kernel/conntrack-link.js';
import type { BatchOptions, BatchResult, BatchSource, KernelOp } from '../kernel/conntrack-link.js';
import { IPPROTO, IPS } from '../kernel/constants.js';
import type { RequestForm } from '../kernel/ct-codec.js';
import type { ConntrackEntry, ExpectEntry } from '../kernel/entry.js';
import { EntryRecord, recordBuf } from '../kernel/ct-record.js';
import { type CommitOrder, type ExternalCache, KERNEL_CURRENT, KERNEL_NONE } from './external-cache.js';
import { agedForCommit } from './peer-validate.js';

/** What commit needs of ConntrackLink. */
export interface CommitLink {
  batchOf(items: BatchSource, opts?: BatchOptions): Promise<BatchResult>;
  createExpectation(e: ExpectEntry): Promise<number>;
}

export interface CommitOptions {
  /** Only this peer's entries (node id); all peers by default. */
  origin?: string | undefined;
  /** conntrackd's -c ct / -c expect: only conntrack entries, or only expectations; both by default. */
  kind?: 'ct' | 'expect' | undefined;
  /** Between netlink chunks, e.g. to read our event socket. */
  betweenChunks?: () => void;
  now?: () => number;
}

export interface CommitCounts {
  /** Entries considered. */
  entries: number;
  /** Created in the kernel. */
  committed: number;
  /** Existed and now carry the replicated state (updated or replaced). */
  updated: number;
  /** Already in the kernel as this commit would write them. */
  unchanged: number;
  failed: number;
  /** Failures by errno name, e.g. { ENOENT: 2 }. */
  failures: Record<string, number>;
}

export interface CommitReport extends CommitCounts {
  /** Peers whose entries were committed. */
  peers: string[];
  expectations: CommitCounts;
  durationMs: number;
}

/** What a daemon keeps about its commits, for stats and metrics. */
export interface CommitStats {
  commits: number;
  running: boolean;
  committed: number;
  updated: number;
  unchanged: number;
  failed: number;
  lastDurationMs: number | null;
  last: CommitReport | null;
}

const EEXIST = 17;
/** IP_CT_TCP_FLAG_BE_LIBERAL: ctnetlink cannot carry TCP window positions. */
const TCP_BE_LIBERAL = 0x08;

function emptyCounts(): CommitCounts {
  return { entries: 0, committed: 0, updated: 0, unchanged: 0, failed: 0, failures: {} };
}

/** Counts one failed kernel write by its errno name (shared by commit and inject). */
export function countFailure(c: { failed: number; failures: Record<string, number> }, errno: number): void {
  c.failed++;
  const name = errnoLabel(errno);
  c.failures[name] = (c.failures[name] ?? 0) + 1;
}

/**
 * The entry as it goes into the kernel. Window positions are not in
 * ctnetlink, so TCP entries are marked liberal in both directions, as
 * conntrackd does without TCPWindowTracking: the kernel then accepts the
 * resumed stream whatever its sequence numbers have reached. EXPECTED is a
 * bit only the kernel may set. Batches apply it while encoding (COMMIT_FORM);
 * commitForm() builds the same as an object.
 */
export const COMMIT_FORM: RequestForm = { statusClear: IPS.EXPECTED, statusSet: 0, tcpFlags: TCP_BE_LIBERAL };

/** COMMIT_FORM applied to a copy of `e`. */
export function commitForm(e: ConntrackEntry): ConntrackEntry {
  const status = (e.status ?? 0) & ~COMMIT_FORM.statusClear;
  const tcp = e.protoinfo?.tcp;
  if (e.orig.proto !== IPPROTO.TCP || tcp === undefined) return { ...e, status };
  const liberal = (f: { flags: number; mask: number } | undefined) => ({
    flags: (f?.flags ?? 0) | COMMIT_FORM.tcpFlags,
    mask: (f?.mask ?? 0) | COMMIT_FORM.tcpFlags,
  });
  return {
    ...e,
    status,
    protoinfo: { ...e.protoinfo, tcp: { ...tcp, flagsOrig: liberal(tcp.flagsOrig), flagsReply: liberal(tcp.flagsReply) } },
  };
}

/** Commits the external cache (or one peer's part of it) into the kernel. Never throws for an entry. */
export async function commitExternal(
  cache: ExternalCache,
  link: CommitLink,
  opts: CommitOptions = {},
): Promise<CommitReport> {
  const now = opts.now ?? Date.now;
  const started = now();
  // Slots, not a copy of the records: the cache keeps changing while the
  // chunks are in flight, and each record goes in as it is when encoded.
  const order = opts.kind === 'expect' ? undefined : cache.commitOrder(opts.origin);
  const peers = new Set<string>(order?.peers);
  const counts = emptyCounts();
  const batchOpts: BatchOptions = { betweenChunks: opts.betweenChunks, form: COMMIT_FORM };
  if (order !== undefined) {
    await commitPhase(cache, link, order, 0, order.masters, counts, batchOpts, started);
    await commitPhase(cache, link, order, order.masters, order.slots.length, counts, batchOpts, started);
  }
  const expectations =
    opts.kind === 'ct' ? emptyCounts() : await commitExpectations(cache, link, opts.origin, peers);
  return { peers: [...peers].sort(), ...counts, expectations, durationMs: now() - started };
}

const opOf = (op: KernelOp) => () => op;

/** Commits order's records [from, to): creates, then updates and replaces of those that existed. */
async function commitPhase(
  cache: ExternalCache,
  link: CommitLink,
  order: CommitOrder,
  from: number,
  to: number,
  c: CommitCounts,
  batchOpts: BatchOptions,
  started: number,
): Promise<void> {
  const n = to - from;
  if (n === 0) return;
  const slots = order.slots.subarray(from, to);
  const gens = order.gens.subarray(from, to);
  // Each record's seq when it was last encoded: the version the kernel got.
  const seqs = new Int32Array(n);
  // Where a record's words go with its timeout less its age (peer-validate.ts):
  // the view into the cache must not change.
  const scratch = recordBuf(1);
  const aged = new EntryRecord(scratch.w, scratch.b, 0, undefined);
  const recordOf = (i: number): ConntrackEntry | EntryRecord | null => {
    const s = slots[i]!;
    const r = cache.currentRecord(s, gens[i]!);
    if (r === null) return null;
    seqs[i] = cache.slotSeq(s);
    return agedForCommit(r, started - cache.slotUpdatedAt(s), aged);
  };
  const created = await link.batchOf({ length: n, op: opOf('create'), entry: recordOf }, batchOpts);
  const update: number[] = [];
  const replace: number[] = [];
  for (let i = 0; i < n; i++) {
    const errno = created.errnos[i]!;
    const s = slots[i]!;
    // Deleted before it was sent, or before the kernel's answer was read:
    // nothing of it is ours to write any more.
    if (errno === BATCH_SKIPPED || (errno === EEXIST && cache.currentRecord(s, gens[i]!) === null)) continue;
    c.entries++;
    if (errno === 0) {
      c.committed++;
      cache.noteSlotInKernel(s, gens[i]!, seqs[i]!);
    } else if (errno !== EEXIST) {
      countFailure(c, errno);
    } else if (cache.slotKernelCopy(s) === KERNEL_CURRENT && cache.slotSeq(s) === seqs[i]! >>> 0) {
      c.unchanged++;
    } else if (cache.slotKernelCopy(s) !== KERNEL_NONE) {
      update.push(i);
    } else {
      replace.push(i);
    }
  }
  if (update.length > 0) {
    const r = await link.batchOf(
      { length: update.length, op: opOf('update'), entry: (j) => recordOf(update[j]!) },
      batchOpts,
    );
    for (let j = 0; j < update.length; j++) settle(cache, c, slots, gens, seqs, update[j]!, r.errnos[j]!);
  }
  if (replace.length > 0) {
    // Delete and create side by side: the kernel runs a sendmsg's messages in
    // order, so each entry is gone for the shortest possible time. Both
    // messages of a pair are encoded from one read of the record.
    let pairOf: ConntrackEntry | EntryRecord | null = null;
    const r = await link.batchOf(
      {
        length: 2 * replace.length,
        op: (j) => (j & 1 ? 'create' : 'delete'),
        entry: (j) => (j & 1 ? pairOf : (pairOf = recordOf(replace[j >> 1]!))),
      },
      batchOpts,
    );
    for (let j = 0; j < replace.length; j++) settle(cache, c, slots, gens, seqs, replace[j]!, r.errnos[2 * j + 1]!);
  }
}

function settle(
  cache: ExternalCache,
  c: CommitCounts,
  slots: Int32Array,
  gens: Uint32Array,
  seqs: Int32Array,
  i: number,
  errno: number,
): void {
  if (errno === BATCH_SKIPPED) return;
  if (errno !== 0) return countFailure(c, errno);
  c.updated++;
  cache.noteSlotInKernel(slots[i]!, gens[i]!, seqs[i]!);
}

async function commitExpectations(
  cache: ExternalCache,
  link: CommitLink,
  origin: string | undefined,
  peers: Set<string>,
): Promise<CommitCounts> {
  const c = emptyCounts();
  const list: ExpectEntry[] = [];
  for (const [, r] of cache.expectEntries()) {
    if (origin !== undefined && r.origin !== origin) continue;
    list.push(r.entry);
    peers.add(r.origin);
  }
  for (const e of list) {
    c.entries++;
    const errno = await link.createExpectation(e);
    if (errno === 0) c.committed++;
    else if (errno === EEXIST) c.unchanged++;
    else countFailure(c, errno);
  }
  return c;
}
