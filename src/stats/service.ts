// The metrics registry and its HTTP server together, as the daemon runs them.
import type { Logger } from '../log.js';
import { CtsyncdMetrics, type CtsyncdMetricsOptions } from './metrics.js';
import { MetricsServer } from './server.js';
import type { MetricsSource } from './source.js';

export interface MetricsServiceOptions extends CtsyncdMetricsOptions {
  /** metrics.listen, already split (parseHostPort, src/common/address.ts). */
  host: string;
  port: number;
  log?: Logger;
}

export class MetricsService {
  readonly metrics: CtsyncdMetrics;
  readonly server: MetricsServer;

  constructor(source: MetricsSource, opts: MetricsServiceOptions) {
    this.metrics = new CtsyncdMetrics(() => source.snapshot(), opts);
    this.server = new MetricsServer({
      host: opts.host,
      port: opts.port,
      metrics: this.metrics,
      ready: () => source.ready(),
      log: opts.log,
    });
  }

  /** Rejects with a MetricsListenError when metrics.listen cannot be bound. */
  start(): Promise<void> {
    return this.server.start();
  }

  observeCommit(durationMs: number): void {
    this.metrics.observeCommit(durationMs);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
