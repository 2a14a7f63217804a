// notrack (conntrackd's best-effort mode): no acks, NACKs or resend queue;
// receivers apply what arrives and count the losses, and every node sends
// its whole state to all peers every refreshIntervalMs to repair them.
import { NotrackReceiver } from './reliability-rx.js';
import type { SyncModeStrategy } from './sync-mode.js';

export const notrackMode: SyncModeStrategy = Object.freeze({
  name: 'notrack',
  acknowledged: false,
  periodicRefresh: true,
  createReceiver: (node, epoch, cfg, sink, counters, now) =>
    new NotrackReceiver(node, epoch, cfg, sink, counters, now),
} satisfies SyncModeStrategy);
