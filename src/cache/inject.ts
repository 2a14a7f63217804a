// Inject mode (conntrackd's DisableExternalCache): every change a peer sends
// goes straight into this node's kernel, so a failover needs no commit. The
// external cache still holds the records: it orders the peers' messages
// (stale ones never reach the kernel) and remembers which version the kernel
// holds, so a commit after all finds nothing to do.
//
// Changes are gathered per key and written in batches once per loop turn:
// only the latest state of a key goes out.
import type { BatchItem, BatchOptions, BatchResult } from '../kernel/conntrack-link.js';
import type { ConntrackEntry } from '../kernel/entry.js';
import { COMMIT_FORM, countFailure } from './commit.js';
import {
  type ExternalCache,
  type ExternalChange,
  type ExternalRecord,
  KERNEL_CURRENT,
  KERNEL_NONE,
} from './external-cache.js';

export interface InjectLink {
  batch(items: readonly BatchItem[], opts?: BatchOptions): Promise<BatchResult>;
}

export interface InjectCounters {
  created: number;
  updated: number;
  /** Existed as the kernel's own entry and were replaced. */
  replaced: number;
  deleted: number;
  failed: number;
  failures: Record<string, number>;
  batches: number;
}

interface Pending {
  change: ExternalChange;
  record: ExternalRecord | undefined;
  seq: number;
  entry: ConntrackEntry;
}

const ENOENT = 2;
const EEXIST = 17;

export class Injector {
  readonly counters: InjectCounters = {
    created: 0,
    updated: 0,
    replaced: 0,
    deleted: 0,
    failed: 0,
    failures: {},
    batches: 0,
  };
  private pending = new Map<string, Pending>();
  private running = false;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly cache: ExternalCache,
    private readonly link: InjectLink,
    private readonly schedule: (fn: () => void) => void = setImmediate,
  ) {}

  /** ExternalCacheOptions.onChange. */
  readonly onChange = (
    key: string,
    change: ExternalChange,
    record: ExternalRecord | undefined,
    entry: ConntrackEntry,
  ): void => {
    if (this.closed) return;
    // A refresh that carried nothing new leaves the kernel's copy current.
    if (change === 'updated' && record?.kernelCopy === KERNEL_CURRENT) return;
    this.pending.set(key, { change, record, seq: record?.seq ?? 0, entry });
    this.kick();
  };

  get queued(): number {
    return this.pending.size;
  }

  /** Changes waiting, a write scheduled, or one in the kernel. */
  get busy(): boolean {
    return this.running || this.scheduled || this.pending.size > 0;
  }

  close(): void {
    this.closed = true;
    this.pending.clear();
  }

  private kick(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    this.schedule(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running || this.closed || this.pending.size === 0) return;
    this.running = true;
    const work = this.pending;
    this.pending = new Map();
    try {
      await this.write(work);
    } finally {
      this.running = false;
      if (this.pending.size > 0) this.kick();
    }
  }

  private async write(work: Map<string, Pending>): Promise<void> {
    const keys: string[] = [];
    const items: BatchItem[] = [];
    for (const [key, p] of work) {
      keys.push(key);
      if (p.change === 'deleted') items.push({ op: 'delete', entry: p.entry });
      else {
        const ours = p.record !== undefined && p.record.kernelCopy !== KERNEL_NONE;
        items.push({ op: ours ? 'update' : 'create', entry: p.entry });
      }
    }
    this.counters.batches++;
    // Written in their commit form (see commitForm), applied while encoding.
    const r = await this.link.batch(items, { form: COMMIT_FORM });
    const retry: BatchItem[] = [];
    const retryKeys: string[] = [];
    const retryKinds: ('create' | 'replace')[] = [];
    for (let i = 0; i < items.length; i++) {
      const key = keys[i]!;
      const p = work.get(key)!;
      const item = items[i]!;
      const errno = r.errnos[i]!;
      if (errno === 0) {
        this.noteDone(p, item.op === 'delete' ? 'deleted' : item.op === 'create' ? 'created' : 'updated');
      } else if (item.op === 'delete' && errno === ENOENT) {
        this.counters.deleted++;
      } else if (item.op === 'update' && errno === ENOENT) {
        // Gone from the kernel (expired or flushed): create it again.
        retry.push({ op: 'create', entry: item.entry });
        retryKeys.push(key);
        retryKinds.push('create');
      } else if (item.op === 'create' && errno === EEXIST) {
        // The kernel's own entry for this connection: the replicated one replaces it.
        retry.push({ op: 'delete', entry: item.entry }, { op: 'create', entry: item.entry });
        retryKeys.push(key);
        retryKinds.push('replace');
      } else {
        this.fail(errno);
      }
    }
    if (retry.length === 0) return;
    this.counters.batches++;
    const r2 = await this.link.batch(retry, { form: COMMIT_FORM });
    let at = 0;
    for (const [n, key] of retryKeys.entries()) {
      const kind = retryKinds[n]!;
      if (kind === 'replace') at++;
      const errno = r2.errnos[at++]!;
      if (errno !== 0) this.fail(errno);
      else this.noteDone(work.get(key)!, kind === 'replace' ? 'replaced' : 'created');
    }
  }

  private noteDone(p: Pending, how: 'created' | 'updated' | 'replaced' | 'deleted'): void {
    this.counters[how]++;
    if (p.record !== undefined) this.cache.noteInKernel(p.record, p.seq);
  }

  private fail(errno: number): void {
    countFailure(this.counters, errno);
  }
}
