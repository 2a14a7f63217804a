// Commits as the daemon offers them: one at a time (conntrackd refuses a
// second -c too), for all peers or one known peer, with the running totals
// that stats and metrics read. The commit itself is commit.ts.
import { OperationError } from '../common/errors.js';
import type { Logger } from '../log.js';
import { type CommitLink, type CommitReport, type CommitStats, commitExternal } from './commit.js';
import type { ExternalCache } from './external-cache.js';

export interface CommitRunnerOptions {
  external: ExternalCache;
  /** The kernel link; throws (ENOTREADY) while it is not open. */
  link: () => CommitLink;
  /** A peer we heard from that has no entries here (yet) still counts as known. */
  heardFrom: (peer: string) => boolean;
  now: () => number;
  log: Logger;
  /** Between netlink chunks, e.g. to read the event socket. */
  betweenChunks?: () => void;
  /** Each finished commit's duration (the metrics histogram). */
  onCommitted?: (durationMs: number) => void;
}

export class CommitRunner {
  readonly stats: CommitStats = {
    commits: 0,
    running: false,
    committed: 0,
    updated: 0,
    unchanged: 0,
    failed: 0,
    lastDurationMs: null,
    last: null,
  };

  constructor(private readonly opts: CommitRunnerOptions) {}

  /**
   * Commits the external cache (or one peer's part) into the kernel; see
   * commit.ts. A second request while one runs is refused (EINPROGRESS).
   */
  async commit(peer?: string, kind?: 'ct' | 'expect'): Promise<CommitReport> {
    const o = this.opts;
    const link = o.link();
    if (this.stats.running) throw new OperationError('EINPROGRESS', 'a commit is already in progress');
    if (peer !== undefined && !this.knownPeer(peer)) {
      throw new OperationError('ENOPEER', `unknown peer '${peer}': no entries from it and never heard from`);
    }
    const st = this.stats;
    st.running = true;
    o.log.info('commit started', { peer: peer ?? 'all', table: kind ?? 'all', entries: o.external.size });
    try {
      const report = await commitExternal(o.external, link, {
        origin: peer,
        kind,
        now: o.now,
        betweenChunks: o.betweenChunks,
      });
      st.commits++;
      st.committed += report.committed;
      st.updated += report.updated;
      st.unchanged += report.unchanged;
      st.failed += report.failed + report.expectations.failed;
      st.lastDurationMs = report.durationMs;
      o.onCommitted?.(report.durationMs);
      st.last = report;
      const level = report.failed + report.expectations.failed > 0 ? 'error' : 'info';
      o.log[level]('commit done', {
        entries: report.entries,
        committed: report.committed,
        updated: report.updated,
        unchanged: report.unchanged,
        failed: report.failed,
        expectations: report.expectations.committed,
        durationMs: report.durationMs,
      });
      return report;
    } finally {
      st.running = false;
    }
  }

  private knownPeer(id: string): boolean {
    return this.opts.external.origins().has(id) || this.opts.heardFrom(id);
  }
}
