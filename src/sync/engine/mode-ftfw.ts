// ftfw ("fault tolerant firewall", conntrackd's reliable mode): sequence
// numbers, acks, NACKs for gaps and a resend queue, so every message arrives
// or its peer gets a bulk; no periodic refresh.
import { FtfwReceiver } from './reliability-rx.js';
import type { SyncModeStrategy } from './sync-mode.js';

export const ftfwMode: SyncModeStrategy = Object.freeze({
  name: 'ftfw',
  acknowledged: true,
  periodicRefresh: false,
  createReceiver: (node, epoch, cfg, sink, counters, now) => new FtfwReceiver(node, epoch, cfg, sink, counters, now),
} satisfies SyncModeStrategy);
