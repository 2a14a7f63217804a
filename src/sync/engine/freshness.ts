// Freshness: which of a peer's epochs this node believes, so that traffic
// recorded earlier and replayed later changes nothing.
//
// A signature proves who sent a datagram, not when. Epochs only increase
// (epoch.ts: every start and every rollover takes one above all the node
// used before), and a node believes a peer's epoch only once the peer
// answered a challenge in it:
//
//   per peer node id
//     none ──datagram in any epoch──► challenge sent (nonce N, random 64 bits)
//     challenge-response {nonce N, to our epoch} in epoch E ──► verified E
//     verified V:
//       datagram in V            current: processed
//       datagram in E < V        stale: dropped and counted (a recording);
//                                 carrying a challenge for us it makes us
//                                 challenge back (rate-limited), so a peer
//                                 that really went back to a lower epoch
//                                 (state lost, clock stepped back) is heard
//       datagram in E > V        unverified: dropped, challenge (rate-limited)
//       response with nonce N in E ──► verified E: a restart if E ≠ V,
//                                 unless the response's first epoch F has
//                                 F ≤ V < E (V and E are epochs of one
//                                 incarnation: its stream simply goes on)
//
// The response carries a nonce only we know and travels in the epoch it
// vouches for, signed, so no recording can produce one: a replayed
// datagram of an old epoch can neither be mistaken for a restart nor
// retire the live epoch. At most one challenge per CHALLENGE_INTERVAL_MS
// goes to a node, and each of its challenges is answered once (at most one
// answer per ANSWER_INTERVAL_MS), so replays make this node send a few
// small datagrams, never more.
//
// Resync requests name the epoch of the node asked and carry a number that
// grows with each request in the asker's epoch; each number is honoured
// once (acceptRequest), so a replayed request starts no bulk either.
//
// Without keys (sync.auth: none) anyone on the segment can forge a
// response: freshness then holds against replays, not against forgery.

export type EpochVerdict = 'current' | 'stale' | 'unverified';

/** At most one challenge to a node per this many milliseconds. */
export const CHALLENGE_INTERVAL_MS = 200;
/** At most one answer to a node's challenges per this many milliseconds. */
export const ANSWER_INTERVAL_MS = 50;
/** Nonces of a node's challenges remembered as answered. */
const ANSWERED_NONCES = 8;

export interface FreshnessCounters {
  challengesSent: number;
  challengesReceived: number;
  challengesAnswered: number;
  /** Challenges not answered: already answered, or too soon after the last answer. */
  challengesIgnored: number;
  /** Responses that verified an epoch. */
  responsesAccepted: number;
  /** Responses naming no challenge of ours (replayed, late, or for an earlier epoch of ours). */
  responsesIgnored: number;
  /** Datagrams of an epoch not (yet) verified, dropped. */
  unverifiedDatagrams: number;
  /** Resync requests dropped: for another epoch of ours, not addressed to us, or a number already honoured. */
  staleRequests: number;
}

export function newFreshnessCounters(): FreshnessCounters {
  return {
    challengesSent: 0,
    challengesReceived: 0,
    challengesAnswered: 0,
    challengesIgnored: 0,
    responsesAccepted: 0,
    responsesIgnored: 0,
    unverifiedDatagrams: 0,
    staleRequests: 0,
  };
}

export interface Nonce {
  nonceHi: number;
  nonceLo: number;
}

interface PeerFreshness {
  verified: number | undefined;
  pending: Nonce | undefined;
  challengedAt: number;
  answeredAt: number;
  answered: string[];
  /** Highest resync request number honoured from the verified epoch. */
  lastRequest: number;
  /** The highest resync request to us that came in an epoch not verified yet, kept for when it is. */
  held: { epoch: number; request: number } | undefined;
}

export interface FreshnessOptions {
  /** A uniformly random u32 (nonces); crypto-grade in the daemon. */
  random: () => number;
  counters: FreshnessCounters;
}

export class Freshness {
  private readonly peers = new Map<string, PeerFreshness>();
  private requests = 0;
  private readonly c: FreshnessCounters;

  constructor(private readonly opts: FreshnessOptions) {
    this.c = opts.counters;
  }

  /** Forgets a peer (pruned, not listed in cluster.nodes): its next epoch is challenged like a first contact. */
  forget(node: string): boolean {
    return this.peers.delete(node);
  }

  /**
   * Whether anything is kept for node (verified, or challenged or answered
   * on first contact): with `size`, what admission bounds (cluster.maxNodes),
   * since a forged id's first datagram costs a challenge and its state.
   */
  has(node: string): boolean {
    return this.peers.has(node);
  }

  get size(): number {
    return this.peers.size;
  }

  /**
   * Forgets ids that never answered a challenge and were last challenged
   * or answered more than `ms` ago (a forged id, or a peer that went away
   * before verifying): their place under cluster.maxNodes is free again.
   */
  expireUnverified(now: number, ms: number): number {
    let n = 0;
    for (const [node, p] of this.peers) {
      if (p.verified === undefined && Math.max(p.challengedAt, p.answeredAt) < now - ms) {
        this.peers.delete(node);
        n++;
      }
    }
    return n;
  }

  /** The epoch of node this node believes; undefined before the first verified answer. */
  verified(node: string): number | undefined {
    return this.peers.get(node)?.verified;
  }

  verdict(node: string, epoch: number): EpochVerdict {
    const v = this.peers.get(node)?.verified;
    if (v === undefined) return 'unverified';
    if (epoch === v) return 'current';
    return epoch < v ? 'stale' : 'unverified';
  }

  /** A challenge to send to node now, or undefined when one went out less than CHALLENGE_INTERVAL_MS ago. */
  challenge(node: string, now: number): Nonce | undefined {
    const p = this.peer(node);
    if (now - p.challengedAt < CHALLENGE_INTERVAL_MS) return undefined;
    p.challengedAt = now;
    // A fresh nonce each time: an answer to an earlier one (late, or replayed) verifies nothing.
    p.pending = { nonceHi: this.opts.random() >>> 0, nonceLo: this.opts.random() >>> 0 };
    this.c.challengesSent++;
    return p.pending;
  }

  /**
   * A response from node, sent in `epoch`, with a nonce. When it answers our
   * outstanding challenge, `epoch` is node's epoch from now on; returns the
   * epoch believed before (undefined at first contact) and whether `epoch`
   * carries on from it: the response says node started in `firstEpoch` and
   * its seqs have gone on since, and the epoch we believed lies between
   * that and `epoch` (one of its rollovers, however many we missed).
   * Otherwise (no challenge pending, another nonce) returns false.
   */
  onResponse(
    node: string,
    epoch: number,
    n: Nonce,
    firstEpoch: number,
  ): { previous: number | undefined; continued: boolean } | false {
    const p = this.peers.get(node);
    const q = p?.pending;
    if (p === undefined || q === undefined || q.nonceHi !== n.nonceHi || q.nonceLo !== n.nonceLo) {
      this.c.responsesIgnored++;
      return false;
    }
    p.pending = undefined;
    const previous = p.verified;
    // Epochs only increase, across restarts too (epoch.ts): an epoch we believed from firstEpoch on
    // is this incarnation's, unless the node lost its epoch file and its clock went back (then a
    // restart may start below what we believed; `previous < epoch` still holds unless it also
    // rolled past it before we heard, 2^30 seqs unheard).
    const continued = previous !== undefined && firstEpoch !== 0 && firstEpoch <= previous && previous < epoch;
    // A restarted node numbers its requests from 1 again; across a rollover its numbers go on.
    if (previous !== epoch && !continued) p.lastRequest = 0;
    p.verified = epoch;
    this.c.responsesAccepted++;
    return { previous, continued };
  }

  /** Whether to answer this challenge of node's: each nonce once, at most one answer per ANSWER_INTERVAL_MS. */
  shouldAnswer(node: string, n: Nonce, now: number): boolean {
    this.c.challengesReceived++;
    const p = this.peer(node);
    const key = `${n.nonceHi}:${n.nonceLo}`;
    if (p.answered.includes(key) || now - p.answeredAt < ANSWER_INTERVAL_MS) {
      this.c.challengesIgnored++;
      return false;
    }
    p.answered.push(key);
    if (p.answered.length > ANSWERED_NONCES) p.answered.shift();
    p.answeredAt = now;
    this.c.challengesAnswered++;
    return true;
  }

  /** A resync request of node's verified epoch numbered `request`: true the first time a number above the last one comes. */
  acceptRequest(node: string, request: number): boolean {
    const p = this.peers.get(node);
    if (p === undefined || p.verified === undefined || request <= p.lastRequest) {
      this.c.staleRequests++;
      return false;
    }
    p.lastRequest = request;
    return true;
  }

  /**
   * A resync request to us in a datagram of node's `epoch`, not verified
   * yet: kept (the highest number of the latest such epoch) so that
   * verifying that epoch honours it. A new node asks at once; dropped
   * here, its retries back off to seconds apart, and it waits for them.
   */
  holdRequest(node: string, epoch: number, request: number): void {
    const p = this.peer(node);
    const h = p.held;
    if (h === undefined || epoch > h.epoch || (epoch === h.epoch && request > h.request)) p.held = { epoch, request };
  }

  /** The request held for node's `epoch`, just verified, if any; forgets what was held either way. */
  takeHeldRequest(node: string, epoch: number): number | undefined {
    const p = this.peers.get(node);
    const h = p?.held;
    if (p === undefined || h === undefined) return undefined;
    p.held = undefined;
    return h.epoch === epoch ? h.request : undefined;
  }

  /**
   * The number of our next resync request. It only grows: a peer starts
   * counting again whenever it verifies a new epoch of ours, so our
   * rollovers need no reset.
   */
  nextRequest(): number {
    this.requests = (this.requests + 1) >>> 0 || 1;
    return this.requests;
  }

  private peer(node: string): PeerFreshness {
    let p = this.peers.get(node);
    if (p === undefined) {
      p = {
        verified: undefined,
        pending: undefined,
        challengedAt: Number.NEGATIVE_INFINITY,
        answeredAt: Number.NEGATIVE_INFINITY,
        answered: [],
        lastRequest: 0,
        held: undefined,
      };
      this.peers.set(node, p);
    }
    return p;
  }
}
