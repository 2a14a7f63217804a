// The sync modes by the name sync.mode gives them. Stateless strategies, so
// one frozen table serves every SyncNode.
import { ftfwMode } from './mode-ftfw.js';
import { notrackMode } from './mode-notrack.js';
import type { SyncModeName, SyncModeStrategy } from './sync-mode.js';

export const syncModes: Readonly<Record<SyncModeName, SyncModeStrategy>> = Object.freeze({
  ftfw: ftfwMode,
  notrack: notrackMode,
});
