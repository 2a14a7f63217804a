// The metrics registry and its HTTP server together, as the daemon runs them.
//
// prom-client takes ~65 ms to load, all of it blocking the event loop. The
// HTTP server (node:http, /healthz and /readyz) starts with the daemon, so
// /readyz answers 503 during the initial dump as before; the registry
// (metrics.ts, prom-client) is loaded by load(), which the daemon calls once
// the dump is done, or by the first scrape, whichever comes first. Nothing
// is lost meanwhile: every metric but the commit histogram is read from the
// stats snapshot at scrape time, and commits observed before the load are
// replayed into it.
import type { Logger } from '../log.js';
import type { CtsyncdMetrics, CtsyncdMetricsOptions } from './metrics.js';
import { type MetricsEndpoint, MetricsServer } from './server.js';
import type { MetricsSource } from './source.js';

export interface MetricsServiceOptions extends CtsyncdMetricsOptions {
  /** metrics.listen, already split (parseHostPort, src/common/address.ts). */
  host: string;
  port: number;
  log?: Logger;
}

/** Commit durations kept while the registry is not loaded yet; commits are rare, this only bounds a pathological case. */
const MAX_PENDING_COMMITS = 1024;

export class MetricsService implements MetricsEndpoint {
  readonly server: MetricsServer;
  private loaded: CtsyncdMetrics | undefined;
  private loading: Promise<CtsyncdMetrics> | undefined;
  private pendingCommits: number[] = [];

  constructor(
    private readonly source: MetricsSource,
    private readonly opts: MetricsServiceOptions,
  ) {
    this.server = new MetricsServer({
      host: opts.host,
      port: opts.port,
      metrics: this,
      ready: () => source.ready(),
      log: opts.log,
    });
  }

  /** Read by the server after scrape() resolved, so the registry's own type by then. */
  get contentType(): string {
    return this.loaded?.contentType ?? 'text/plain; charset=utf-8';
  }

  async scrape(): Promise<string> {
    return (await this.load()).scrape();
  }

  /** The registry, once load() has completed. */
  get metrics(): CtsyncdMetrics | undefined {
    return this.loaded;
  }

  /** Rejects with a MetricsListenError when metrics.listen cannot be bound. */
  start(): Promise<void> {
    return this.server.start();
  }

  /** Loads the registry (prom-client); idempotent. */
  load(): Promise<CtsyncdMetrics> {
    this.loading ??= import('./metrics.js').then(({ CtsyncdMetrics }) => {
      const m = new CtsyncdMetrics(() => this.source.snapshot(), this.opts);
      for (const ms of this.pendingCommits) m.observeCommit(ms);
      this.pendingCommits = [];
      this.loaded = m;
      return m;
    });
    return this.loading;
  }

  observeCommit(durationMs: number): void {
    if (this.loaded) this.loaded.observeCommit(durationMs);
    else if (this.pendingCommits.length < MAX_PENDING_COMMITS) this.pendingCommits.push(durationMs);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
