// Prometheus metrics: a private prom-client registry over the daemon's stats
// snapshot (metrics.ts), the HTTP endpoint serving it (server.ts), and both
// together as the daemon runs them (service.ts).
export {
  BUILD_INFO,
  COMMIT_BUCKETS,
  COMMIT_DURATION,
  CtsyncdMetrics,
  type CtsyncdMetricsOptions,
  DROP_REASONS,
  METRIC_DEFS,
  type MetricDef,
} from './metrics.js';
export { formatHostPort, MetricsListenError, MetricsServer, type MetricsServerOptions } from './server.js';
export { MetricsService, type MetricsServiceOptions } from './service.js';
export type { MetricsSource, StatsSnapshot } from './source.js';
export {
  buildStatsSnapshot,
  type ExternalCacheView,
  type InternalCacheView,
  type StatsParts,
  type SyncStatsView,
} from './snapshot.js';
