// What differs between the sync modes, and nothing else: SyncNode picks a
// strategy by the configured name once, at construction, and asks it instead
// of testing the mode name. Peers, the sender, bulks on request, hello and
// restart handling are the same in every mode.
import type { ReliabilityConfig } from './reliability.js';
import type { Receiver, RxCounters, RxSink } from './reliability-rx.js';

/** The values of sync.mode. */
export type SyncModeName = 'ftfw' | 'notrack';

export interface SyncModeStrategy {
  readonly name: SyncModeName;
  /**
   * Receivers ack and NACK what they get, and the transmitter keeps a resend
   * queue to answer NACKs and retransmission timeouts, acting on the acks and
   * NACKs addressed to this node. Without it loss is repaired only by bulks.
   */
  readonly acknowledged: boolean;
  /** A full bulk to every peer every refreshIntervalMs: the only repair when nothing is acknowledged. */
  readonly periodicRefresh: boolean;
  /** The receive state machine for one (peer, epoch): how gaps, duplicates and bulk ends are handled. */
  createReceiver(
    node: string,
    epoch: number,
    cfg: ReliabilityConfig,
    sink: RxSink,
    counters: RxCounters,
    now: number,
  ): Receiver;
}
