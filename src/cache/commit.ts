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
import type { BatchItem, BatchOptions, BatchResult } from '../kernel/conntrack-link.js';
import { IPPROTO, IPS } from '../kernel/constants.js';
import type { ConntrackEntry, ExpectEntry } from '../kernel/entry.js';
import {
  type ExternalCache,
  type ExternalRecord,
  KERNEL_CURRENT,
  KERNEL_NONE,
} from './external-cache.js';

/** What commit needs of ConntrackLink. */
export interface CommitLink {
  batch(items: readonly BatchItem[], opts?: BatchOptions): Promise<BatchResult>;
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

interface Item {
  key: string;
  record: ExternalRecord;
  seq: number;
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
 * bit only the kernel may set.
 */
export function commitForm(e: ConntrackEntry): ConntrackEntry {
  const status = (e.status ?? 0) & ~IPS.EXPECTED;
  const tcp = e.protoinfo?.tcp;
  if (e.orig.proto !== IPPROTO.TCP || tcp === undefined) return { ...e, status };
  const liberal = (f: { flags: number; mask: number } | undefined) => ({
    flags: (f?.flags ?? 0) | TCP_BE_LIBERAL,
    mask: (f?.mask ?? 0) | TCP_BE_LIBERAL,
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
  const masters: Item[] = [];
  const related: Item[] = [];
  const peers = new Set<string>();
  // A snapshot: the cache keeps changing while the chunks are in flight.
  for (const [key, record] of cache.entries()) {
    if (opts.origin !== undefined && record.origin !== opts.origin) continue;
    peers.add(record.origin);
    (record.entry.master ? related : masters).push({ key, record, seq: record.seq });
  }
  const counts = emptyCounts();
  const batchOpts: BatchOptions = { betweenChunks: opts.betweenChunks };
  await commitPhase(cache, link, masters, counts, batchOpts);
  await commitPhase(cache, link, related, counts, batchOpts);
  const expectations = await commitExpectations(cache, link, opts.origin);
  return { peers: [...peers].sort(), ...counts, expectations, durationMs: now() - started };
}

async function commitPhase(
  cache: ExternalCache,
  link: CommitLink,
  items: Item[],
  c: CommitCounts,
  batchOpts: BatchOptions,
): Promise<void> {
  if (items.length === 0) return;
  c.entries += items.length;
  const forms = items.map((it) => commitForm(it.record.entry));
  const created = await link.batch(
    forms.map((entry) => ({ op: 'create', entry })),
    batchOpts,
  );
  const update: number[] = [];
  const replace: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const errno = created.errnos[i]!;
    const it = items[i]!;
    if (errno === 0) {
      c.committed++;
      cache.noteInKernel(it.key, it.record, it.seq);
    } else if (errno !== EEXIST) {
      countFailure(c, errno);
    } else if (it.record.kernelCopy === KERNEL_CURRENT && it.record.seq === it.seq) {
      c.unchanged++;
    } else if (it.record.kernelCopy !== KERNEL_NONE) {
      update.push(i);
    } else {
      replace.push(i);
    }
  }
  if (update.length > 0) {
    const r = await link.batch(
      update.map((i) => ({ op: 'update', entry: forms[i]! })),
      batchOpts,
    );
    for (const [n, i] of update.entries()) settle(cache, c, items[i]!, r.errnos[n]!);
  }
  if (replace.length > 0) {
    // Delete and create side by side: the kernel runs a sendmsg's messages in
    // order, so each entry is gone for the shortest possible time.
    const ops: BatchItem[] = [];
    for (const i of replace) ops.push({ op: 'delete', entry: forms[i]! }, { op: 'create', entry: forms[i]! });
    const r = await link.batch(ops, batchOpts);
    for (const [n, i] of replace.entries()) settle(cache, c, items[i]!, r.errnos[2 * n + 1]!);
  }
}

function settle(cache: ExternalCache, c: CommitCounts, it: Item, errno: number): void {
  if (errno !== 0) return countFailure(c, errno);
  c.updated++;
  cache.noteInKernel(it.key, it.record, it.seq);
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
