// Settings and fixed limits of the reliability protocol (see sync-node.ts for
// the protocol itself). The tunable values come from `sync.reliability` in
// the configuration; their defaults live in src/config/defaults.ts only.

/** `sync.reliability`, resolved. Every duration is in milliseconds of the injected clock. */
export interface ReliabilityConfig {
  /** A receiver acks at the latest after this many new in-order messages. */
  ackWindow: number;
  /** ...or this long after the first message its last ack did not cover. */
  ackDelayMs: number;
  /** First repetition of a NACK for a gap that is still open; doubles per repetition. */
  nackRetryMs: number;
  /** Cap of that backoff. */
  nackRetryMaxMs: number;
  /** Initial retransmission timeout: unacked messages are resent when no ack progress came for this long. */
  retransmitMs: number;
  /** Cap of the retransmission backoff (it doubles per timeout). */
  retransmitMaxMs: number;
  /** Sent messages kept for retransmission, in messages. */
  resendQueueSize: number;
  /** An alive goes out after this much transmit silence. */
  aliveIntervalMs: number;
  /** A peer is down after this much receive silence. */
  peerTimeoutMs: number;
  /** notrack: a full bulk to every peer this often. */
  refreshIntervalMs: number;
  /** With no peer heard within this long of start(), the first sync counts as done. */
  startupSyncWaitMs: number;
}

/** Receive window of out-of-order sequence numbers tracked per (peer, epoch), in messages (a power of two). */
export const RX_WINDOW = 1 << 17;

/** At most this many gap ranges per NACK round. */
export const MAX_NACK_RUNS = 256;

/** Bulk-end messages held back waiting for a gap before them to fill, per peer. */
export const MAX_HELD_CONTROLS = 64;

/**
 * A peer whose retransmission timer fired this often without any ack
 * progress is "stalled": it still holds the resend queue, but it no longer
 * throttles the sender (flow control), so one unreachable peer cannot stop
 * replication to the others.
 */
export const STALL_AFTER_TIMEOUTS = 2;

/**
 * Resync requests to a peer that owes us a bulk repeat from aliveIntervalMs,
 * backing off to this multiple of it. Only while the peer is up (heard), so
 * a lost request, not a dead peer, is what a repeat answers; a peer still
 * reading its table coalesces them. At 8 a node starting under 20% loss
 * asks five times in its first 20 s: in sync-sim, pairs of nodes started
 * together, 3 nodes of 2,000 pairs were still without their first sync
 * then (29 of 5,000 pairs before requests were held, freshness.ts); at 2
 * it asks ten times, and none of 5,000 pairs was.
 */
export const RESYNC_RETRY_MAX_FACTOR = 2;

/**
 * notrack has no retransmission, so a bulk usually arrives with holes. A
 * complete bulk removes what it did not carry, as in ftfw. An incomplete one
 * removes only records that none of the last k bulks from that peer carried,
 * k chosen from the bulk's measured loss so that a live entry is wrongly
 * dropped with probability below 1% per refresh (it comes back with the next
 * one); k is at most this many bulks. At 10% loss and 10k entries k = 6.
 */
export const NOTRACK_REMOVAL_BULKS = 8;

/** notrack: how many of a peer's latest seqs are tracked to judge whether a bulk arrived whole (a power of two). */
export const NOTRACK_TRACKED_SEQS = 1 << 20;

/**
 * Bulks to one peer are at least this far apart (milliseconds): requests,
 * restarts and gaps that arrive sooner wait and are served by one bulk
 * (explicit bulk-send and the notrack refresh are not limited).
 */
export const BULK_MIN_INTERVAL_MS = 1000;

/**
 * A node takes a new epoch after this many sequence numbers in one, long
 * before 2^31: within an epoch every modulo-2^32 comparison is then exact,
 * and a datagram recorded in an earlier epoch is stale by its epoch alone.
 */
export const MAX_SEQS_PER_EPOCH = 0x4000_0000;
