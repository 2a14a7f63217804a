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
import { errnoLabel } from '../kernel/conntrack-link.js';
import type { BatchOptions, BatchResult, BatchSource, KernelOp } from '../kernel/conntrack-link.js';
import { IPPROTO, IPS } from '../kernel/constants.js';
import type { RequestForm } from '../kernel/ct-codec.js';
import type { EntryRecord } from '../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../kernel/entry.js';
import {
  type ExternalCache,
  type ExternalRecord,
  KERNEL_CURRENT,
  KERNEL_NONE,
  SlotRecord,
} from './external-cache.js';
import { agedForCommit } from './peer-validate.js';

/** What commit needs of ConntrackLink. */
export interface CommitLink {
  batchOf(items: BatchSource, opts?: BatchOptions): Promise<BatchResult>;
  createExpectation(e: ExpectEntry): Promise<number>;
}

export interface CommitOptions {
  /** Only this peer's entries (node id); all peers by default. */
  origin?: string | undefined;
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

/**
 * The entries of one phase, as parallel arrays rather than an object per
 * entry: a commit holds a million of them at once.
 */
interface Phase {
  records: ExternalRecord[];
  /** What the kernel is given: the stored record (see SlotRecord), or the entry. */
  entries: (ConntrackEntry | EntryRecord)[];
  /** Each record's seq when the snapshot was taken. */
  seqs: number[];
}

function emptyPhase(): Phase {
  return { records: [], entries: [], seqs: [] };
}

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
  const masters = emptyPhase();
  const related = emptyPhase();
  const peers = new Set<string>();
  // A snapshot: the cache keeps changing while the chunks are in flight.
  let lastOrigin: string | undefined;
  for (const record of cache.records()) {
    const origin = record.origin;
    if (opts.origin !== undefined && origin !== opts.origin) continue;
    // Records come in runs of one origin: one Set insert per run.
    if (origin !== lastOrigin) {
      peers.add(origin);
      lastOrigin = origin;
    }
    // Records go to the kernel as they are stored, without an entry object each.
    const slot = record instanceof SlotRecord ? record : undefined;
    const p = (slot !== undefined ? slot.related : record.entry.master !== undefined) ? related : masters;
    p.records.push(record);
    // Its timeout less its age (the SlotRecord's record is a copy made for this commit: aged in place).
    p.entries.push(agedForCommit(slot !== undefined ? slot.record : record.entry, started - record.updatedAt));
    p.seqs.push(record.seq);
  }
  const counts = emptyCounts();
  const batchOpts: BatchOptions = { betweenChunks: opts.betweenChunks, form: COMMIT_FORM };
  await commitPhase(cache, link, masters, counts, batchOpts);
  await commitPhase(cache, link, related, counts, batchOpts);
  const expectations = await commitExpectations(cache, link, opts.origin);
  return { peers: [...peers].sort(), ...counts, expectations, durationMs: now() - started };
}

const opOf = (op: KernelOp) => () => op;

async function commitPhase(
  cache: ExternalCache,
  link: CommitLink,
  p: Phase,
  c: CommitCounts,
  batchOpts: BatchOptions,
): Promise<void> {
  const n = p.records.length;
  if (n === 0) return;
  c.entries += n;
  const { records, entries, seqs } = p;
  const created = await link.batchOf({ length: n, op: opOf('create'), entry: (i) => entries[i]! }, batchOpts);
  const update: number[] = [];
  const replace: number[] = [];
  for (let i = 0; i < n; i++) {
    const errno = created.errnos[i]!;
    const record = records[i]!;
    if (errno === 0) {
      c.committed++;
      cache.noteInKernel(record, seqs[i]!);
    } else if (errno !== EEXIST) {
      countFailure(c, errno);
    } else if (record.kernelCopy === KERNEL_CURRENT && record.seq === seqs[i]) {
      c.unchanged++;
    } else if (record.kernelCopy !== KERNEL_NONE) {
      update.push(i);
    } else {
      replace.push(i);
    }
  }
  if (update.length > 0) {
    const r = await link.batchOf(
      { length: update.length, op: opOf('update'), entry: (j) => entries[update[j]!]! },
      batchOpts,
    );
    for (let j = 0; j < update.length; j++) settle(cache, c, p, update[j]!, r.errnos[j]!);
  }
  if (replace.length > 0) {
    // Delete and create side by side: the kernel runs a sendmsg's messages in
    // order, so each entry is gone for the shortest possible time.
    const r = await link.batchOf(
      {
        length: 2 * replace.length,
        op: (j) => (j & 1 ? 'create' : 'delete'),
        entry: (j) => entries[replace[j >> 1]!]!,
      },
      batchOpts,
    );
    for (let j = 0; j < replace.length; j++) settle(cache, c, p, replace[j]!, r.errnos[2 * j + 1]!);
  }
}

function settle(cache: ExternalCache, c: CommitCounts, p: Phase, i: number, errno: number): void {
  if (errno !== 0) return countFailure(c, errno);
  c.updated++;
  cache.noteInKernel(p.records[i]!, p.seqs[i]!);
}

async function commitExpectations(
  cache: ExternalCache,
  link: CommitLink,
  origin: string | undefined,
): Promise<CommitCounts> {
  const c = emptyCounts();
  const list: ExpectEntry[] = [];
  for (const [, r] of cache.expectEntries()) if (origin === undefined || r.origin === origin) list.push(r.entry);
  for (const e of list) {
    c.entries++;
    const errno = await link.createExpectation(e);
    if (errno === 0) c.committed++;
    else if (errno === EEXIST) c.unchanged++;
    else countFailure(c, errno);
  }
  return c;
}
