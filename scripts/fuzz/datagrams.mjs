// Datagram half of `npm run fuzz`: a running SyncNode ('fw1', the target)
// paired with a real peer SyncNode ('fw2') over a hand-driven link with a
// fake clock, as the unit tests build them, and datagrams thrown at the
// target between the peer's own traffic:
// - random bytes, and random bodies behind a valid prefix;
// - recorded datagrams of both nodes, mutated (signature left as it was),
//   and replayed verbatim at any later moment;
// - mutated and re-signed: bytes of a recorded datagram edited, then signed
//   again with the cluster's key, so the HMAC passes and the parser and the
//   engine see the damage;
// - forged and signed: messages of every kind built with the
//   DatagramEncoder, fields pushed to their edges (sequence numbers, epochs,
//   node ids, nonces, entries), signed with the key; answers to the
//   target's own challenges included, so forged ids do get believed.
// Three scenes: ftfw with keys and cluster.nodes, ftfw without keys and a
// small maxNodes, notrack with keys.
//
// Invariants: nothing thrown out of receive() or tick(); every datagram
// counted as received, and each one refused counted exactly once under one
// reason (datagramsDropped by code, own, stale or unverified epoch,
// admission) while an accepted one is counted under none; the decoder's
// last-resort catch never fires; the external cache within its limits,
// its per-origin counts adding up, every entry in it passing the local
// filter, the status allow-list and the timeout cap; at most maxNodes ids
// tracked (only listed ones when cluster.nodes is given); the resend queue
// within its capacity; no more bulks than one per peer per
// BULK_MIN_INTERVAL_MS.
import { ExternalCache } from '../../dist/cache/external-cache.js';
import { compileFilter } from '../../dist/cache/filter.js';
import { PEER_MAX_TIMEOUT, PEER_STATUS_BITS, PeerEntryCheck } from '../../dist/cache/peer-validate.js';
import { DEFAULTS } from '../../dist/config/defaults.js';
import { entryKey } from '../../dist/kernel/entry.js';
import { silentLogger } from '../../dist/log.js';
import { BULK_MIN_INTERVAL_MS } from '../../dist/sync/engine/reliability.js';
import { SyncNode } from '../../dist/sync/engine/sync-node.js';
import { HMAC_BYTES, hmac } from '../../dist/sync/wire/auth.js';
import { decodeDatagram } from '../../dist/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../dist/sync/wire/datagram-encoder.js';
import { FLAG_HMAC, MAGIC_0, MAGIC_1, PREFIX_BYTES, PROTOCOL_VERSION } from '../../dist/sync/wire/types.js';
import { entry, expectation, hexOf, makeRng, mutateBytes } from './gen.mjs';

const CLUSTER = 7;
const MTU = 1472;
const SELF = 'fw1';
const PEER = 'fw2';
/** Test keys only: they sign nothing outside this process. */
const KEY = Buffer.from('5f1c9a0e7d3b2c4a6e8f0d1b3c5a7e9f2d4b6c8a0e1f3d5b7c9a2e4f6d8b0c1a', 'hex');
const KEY_OLD = Buffer.from('a0b1c2d3e4f5061728394a5b6c7d8e9fa1b2c3d4e5f60718293a4b5c6d7e8f90', 'hex');
const KEY_WRONG = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');
const TIMERS = DEFAULTS.sync.reliability;
const FILTER = {
  protocols: { ignore: ['icmp'] },
  addresses: { ignore: ['10.3.0.0/16'] },
  tcpStates: { ignore: ['TIME_WAIT'] },
};

export const SCENES = [
  {
    name: 'ftfw, keys, cluster.nodes',
    mode: 'ftfw',
    keyed: true,
    admission: { nodes: [SELF, PEER, 'fw3'], maxNodes: 16, pruneAfterMs: 60_000 },
  },
  { name: 'ftfw, auth none, maxNodes 4', mode: 'ftfw', keyed: false, admission: { maxNodes: 4, pruneAfterMs: 20_000 } },
  { name: 'notrack, keys', mode: 'notrack', keyed: true, admission: { maxNodes: 16, pruneAfterMs: 60_000 } },
];

const DROP_FIELDS = ['ownDatagrams', 'staleEpochDatagrams', 'unverifiedDatagrams'];
const ADMISSION_FIELDS = ['unknownNode', 'nodeLimit'];

/** Every reason a refused datagram is counted under, by name, with its count now. */
function dropCounts(node) {
  const out = {};
  for (const [code, n] of Object.entries(node.counters.datagramsDropped)) out[code] = n;
  for (const f of DROP_FIELDS) out[f] = node.counters[f];
  for (const f of ADMISSION_FIELDS) out[f] = node.admission.counters[f];
  return out;
}

/** A peer's table: plain flows the filter takes, so the real peer's stream is mostly applied. */
function plainEntry(rng, i) {
  const family = rng.chance(0.8) ? 2 : 10;
  const src = family === 2 ? `10.${i % 3}.${(i >>> 8) & 0xff}.${i & 0xff}` : `2001:db8::${(i + 1).toString(16)}`;
  const dst = family === 2 ? '198.51.100.20' : '2001:db8:1::20';
  const proto = rng.chance(0.8) ? 6 : 17;
  const orig = { src, dst, proto, sport: 1024 + (i % 60000), dport: 443 };
  const reply = { src: dst, dst: src, proto, sport: 443, dport: orig.sport };
  const e = { family, orig, reply, status: 0x19e, timeout: 300 + rng.int(100_000), mark: 0 };
  if (proto === 6) e.protoinfo = { tcp: { state: 3, wscaleOrig: 7, wscaleReply: 7 } };
  return e;
}

class Scene {
  constructor(cfg, rng, fail) {
    this.cfg = cfg;
    this.rng = rng;
    this.fail = fail;
    this.now = 1_000_000;
    this.startedAt = this.now;
    this.later = [];
    this.auth = cfg.keyed ? { sign: KEY, verify: [KEY, KEY_OLD] } : undefined;
    this.filter = compileFilter(FILTER, []);
    /** Recorded datagrams of the peer (and of the target): the replay and mutation corpus. */
    this.recorded = [];
    this.ownRecorded = [];
    /** The last challenge the target sent to each id, and each forged id's epoch and next seq. */
    this.challenges = new Map();
    this.forged = new Map();
    this.sentBytes = 0;
    this.tOut = [];
    this.pOut = [];
    this.tKernel = new Map();
    for (let i = 0; i < 40; i++) {
      const e = plainEntry(rng, 5000 + i);
      this.tKernel.set(entryKey(e), e);
    }
    this.pKernel = new Map();
    for (let i = 0; i < 300; i++) {
      const e = plainEntry(rng, i);
      this.pKernel.set(entryKey(e), e);
    }
    this.ext = new ExternalCache({
      limit: 2048,
      expectLimit: 256,
      now: () => this.now,
      peerCheck: new PeerEntryCheck(this.filter),
      shareDivisor: () => this.T?.shareDivisor ?? 1,
    });
    this.T = this.node(SELF, 1_700_000_000, this.tKernel, this.ext, (b) => {
      this.sentBytes += b.length;
      this.tOut.push(b);
    }, 5000);
    this.pEpoch = 1_700_000_500;
    this.P = this.peerNode();
    this.T.start();
    this.P.start();
  }

  node(id, epoch, kernel, external, send, maxSeqsPerEpoch) {
    return new SyncNode({
      nodeId: id,
      cluster: CLUSTER,
      epoch,
      mtu: MTU,
      mode: this.cfg.mode,
      auth: this.auth,
      external,
      lookup: (k) => kernel.get(String(k)),
      localKeys: () => kernel.keys(),
      send,
      now: () => this.now,
      schedule: (fn) => this.later.push(fn),
      log: silentLogger,
      timers: TIMERS,
      admission: this.cfg.admission,
      firstSeq: this.rng.u32(),
      random: () => this.rng.u32(),
      // Small, so epoch rollovers (a new epoch, verified and treated as a restart) happen during the run.
      maxSeqsPerEpoch,
    });
  }

  peerNode() {
    const ext = new ExternalCache({ limit: 4096, now: () => this.now });
    return this.node(PEER, this.pEpoch, this.pKernel, ext, (b) => this.pOut.push(b), 3000);
  }

  /** The peer restarts: a new process, a higher epoch, the same table. */
  restartPeer() {
    this.P.close();
    this.pEpoch += 1 + this.rng.int(5);
    this.P = this.peerNode();
    this.P.start();
  }

  guard(what, fn) {
    try {
      fn();
    } catch (err) {
      this.fail(what, err instanceof Error ? (err.stack ?? err.message) : String(err));
    }
  }

  /** Delivers what both nodes sent, ticking the clock, for a few rounds. */
  settle(rounds) {
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < 20 && this.later.length > 0; k++) for (const fn of this.later.splice(0)) this.guard('exception escaped a transmit flush', fn);
      let moved = false;
      for (const b of this.tOut.splice(0)) {
        moved = true;
        this.noteTargetDatagram(b);
        this.guard('exception escaped the peer', () => this.P.receive(b));
      }
      for (const b of this.pOut.splice(0)) {
        moved = true;
        keep(this.recorded, b, 4096, this.rng);
        this.onReceive?.(b, 'peer');
      }
      this.now += 5;
      this.guard('exception escaped SyncNode.tick', () => this.T.tick());
      this.guard('exception escaped the peer', () => this.P.tick());
      if (!moved && this.later.length === 0) return;
    }
  }

  /** What the target sends: kept for replays, and its challenges noted so forged ids can answer them. */
  noteTargetDatagram(b) {
    keep(this.ownRecorded, b, 256, this.rng);
    const r = decodeDatagram(b, { cluster: CLUSTER, auth: this.auth });
    if (!r.ok) {
      this.fail('the target sent a datagram it cannot decode itself', `${r.error.code}: ${r.error.reason}`);
      return;
    }
    for (const m of r.messages) if (m.kind === 'challenge') this.challenges.set(m.peer, m);
  }

  /** Local activity on either node between fuzz cases. */
  churn() {
    const rng = this.rng;
    for (const [kernel, node] of [
      [this.pKernel, this.P],
      [this.tKernel, this.T],
    ]) {
      if (!rng.chance(0.3)) continue;
      const n = 1 + rng.int(3);
      for (let i = 0; i < n; i++) {
        const e = plainEntry(rng, rng.int(400));
        const k = entryKey(e);
        const had = kernel.get(k);
        if (had && rng.chance(0.3)) {
          kernel.delete(k);
          this.guard('exception escaped localChange', () => node.localChange(k, 'delete', had));
        } else {
          kernel.set(k, e);
          this.guard('exception escaped localChange', () => node.localChange(k, had ? 'update' : 'new'));
        }
      }
    }
  }
}

/** Keeps up to max items, replacing a random one once full (a reservoir-ish corpus). */
function keep(list, item, max, rng) {
  if (list.length < max) list.push(item);
  else list[rng.int(max)] = item;
}

/** Signs buf[0, end) again: flag set, a fresh trailer, with `key`. */
function resign(body, key) {
  const b = Buffer.from(body);
  if (b.length >= 4) b[3] |= FLAG_HMAC;
  return Buffer.concat([b, hmac(key, b)]);
}

function isSigned(b) {
  return b.length >= PREFIX_BYTES + HMAC_BYTES && (b[3] & FLAG_HMAC) !== 0;
}

function prefix(rng, flags) {
  const p = Buffer.alloc(PREFIX_BYTES);
  p[0] = MAGIC_0;
  p[1] = MAGIC_1;
  p[2] = rng.chance(0.95) ? PROTOCOL_VERSION : rng.int(256);
  p[3] = flags;
  p.writeUInt32BE(rng.chance(0.95) ? CLUSTER : rng.u32(), 4);
  return p;
}

/** A node id for a forged datagram: the real peer, a listed one, one of a pool, or any valid id. */
function forgedId(rng) {
  const r = rng.int(100);
  if (r < 45) return PEER;
  if (r < 55) return 'fw3';
  if (r < 60) return SELF;
  if (r < 95) return `x${rng.int(40)}`;
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-';
  let s = '';
  const n = 1 + rng.int(64);
  for (let i = 0; i < n; i++) s += chars[rng.int(chars.length)];
  return s;
}

/** Messages of every kind, their fields near what the target expects or at their edges. */
function forgedMessages(scene, id, seqBase) {
  const rng = scene.rng;
  const tEpoch = scene.T.epoch;
  const tSeq = scene.T.nextSeq;
  const seq = () => (rng.chance(0.85) ? (seqBase + rng.int(80) - 16) >>> 0 : rng.edgeU32());
  // '' (every peer) is a node id only in bulk markers.
  const peerField = (all = false) => rng.pick([SELF, SELF, SELF, PEER, 'fw3', all ? '' : SELF]);
  const epochField = () => (rng.chance(0.85) ? tEpoch : rng.pick([tEpoch - 1, tEpoch + 1, 0, rng.u32()]) >>> 0);
  const out = [];
  const n = rng.chance(0.3) ? 2 + rng.int(6) : 1;
  for (let i = 0; i < n; i++) {
    const r = rng.int(100);
    if (r < 30) {
      const e = entry(rng);
      out.push({ kind: rng.pick(['ct-new', 'ct-update', 'ct-update', 'ct-delete']), seq: seq(), entry: e });
    } else if (r < 35) {
      out.push({ kind: rng.pick(['exp-new', 'exp-delete']), seq: seq(), entry: expectation(rng) });
    } else if (r < 42) {
      out.push({ kind: 'alive', seq: seq() });
    } else if (r < 46) {
      out.push({ kind: 'hello', seq: seq() });
    } else if (r < 48) {
      out.push({ kind: 'hello-ack', peer: peerField(), epoch: epochField() });
    } else if (r < 62) {
      const to = rng.chance(0.8) ? (tSeq - rng.int(300)) >>> 0 : rng.edgeU32();
      const from = rng.chance(0.8) ? (to - rng.int(400)) >>> 0 : rng.edgeU32();
      out.push({ kind: rng.pick(['ack', 'nack']), peer: peerField(), epoch: epochField(), from, to });
    } else if (r < 68) {
      out.push({ kind: 'resync-request', peer: peerField(), epoch: epochField(), request: rng.chance(0.7) ? rng.int(1000) : rng.u32() });
    } else if (r < 73) {
      out.push({ kind: 'challenge', peer: peerField(), nonceHi: rng.u32(), nonceLo: rng.u32() });
    } else if (r < 88) {
      const ch = scene.challenges.get(id);
      const real = ch !== undefined && rng.chance(0.8);
      out.push({
        kind: 'challenge-response',
        seq: seq(),
        peer: peerField(),
        epoch: epochField(),
        nonceHi: real ? ch.nonceHi : rng.u32(),
        nonceLo: real ? ch.nonceLo : rng.u32(),
        firstEpoch: rng.chance(0.5) ? 0 : epochField(),
      });
    } else {
      const bulkId = rng.chance(0.8) ? 1 + rng.int(8) : rng.u32();
      if (rng.chance(0.5)) out.push({ kind: 'bulk-start', seq: seq(), bulkId, peer: peerField(true) });
      else out.push({ kind: 'bulk-end', seq: seq(), bulkId, peer: peerField(true), count: rng.chance(0.8) ? rng.int(400) : rng.u32() });
    }
  }
  return out;
}

/** One forged datagram, encoded and signed as a key holder would; undefined when the encoder refuses what was made. */
function forged(scene, stats) {
  const rng = scene.rng;
  const id = forgedId(rng);
  let state = scene.forged.get(id);
  if (state === undefined) {
    state = { epoch: 1_600_000_000 + rng.int(200_000_000), seq: rng.u32() };
    scene.forged.set(id, state);
  }
  let epoch;
  let seqBase;
  if (id === PEER) {
    epoch = rng.chance(0.85) ? scene.P.epoch : rng.pick([scene.P.epoch - 1, scene.P.epoch + 1, scene.pEpoch - 7, rng.u32()]);
    seqBase = scene.P.nextSeq;
  } else {
    epoch = rng.chance(0.9) ? state.epoch : rng.pick([state.epoch + 1, state.epoch - 1, rng.u32()]);
    if (rng.chance(0.02)) state.epoch = (state.epoch + 1) >>> 0;
    seqBase = state.seq;
    state.seq = (state.seq + 1 + rng.int(4)) >>> 0;
  }
  const key = scene.cfg.keyed ? (rng.chance(0.9) ? KEY : rng.chance(0.5) ? KEY_OLD : KEY_WRONG) : rng.chance(0.2) ? KEY : undefined;
  try {
    const enc = new DatagramEncoder({
      cluster: rng.chance(0.98) ? CLUSTER : rng.u32(),
      node: id,
      epoch: epoch >>> 0,
      mtu: MTU,
      auth: key === undefined ? undefined : { sign: key, verify: [key] },
    });
    for (const m of forgedMessages(scene, id, seqBase)) if (!enc.add(m)) break;
    return enc.flush() ?? undefined;
  } catch (err) {
    // The encoder refuses values no node could have read from its kernel; that is the sender's contract, not a finding.
    stats.unencodable++;
    const why = (err instanceof Error ? err.message : String(err)).replace(/\d+/g, 'N').slice(0, 100);
    stats.unencodableReasons[why] = (stats.unencodableReasons[why] ?? 0) + 1;
    return undefined;
  }
}

function genCase(scene, stats) {
  const rng = scene.rng;
  const keyed = scene.cfg.keyed;
  const corpus = scene.recorded.length > 0 ? scene.recorded : scene.ownRecorded;
  const r = rng.int(100);
  if (r < 8 || corpus.length === 0) {
    return { category: 'random', buf: rng.bytes(rng.pick([0, 1, 2, 7, 8, 9, 40, 41, 200, rng.int(MTU + 200)])) };
  }
  if (r < 16) {
    const signed = keyed ? rng.chance(0.8) : rng.chance(0.2);
    const body = Buffer.concat([prefix(rng, signed ? FLAG_HMAC : rng.chance(0.9) ? 0 : rng.int(256)), rng.bytes(rng.int(600))]);
    return { category: 'random-framed', buf: signed ? resign(body, KEY) : body };
  }
  if (r < 30) {
    const src = rng.chance(0.9) ? rng.pick(corpus) : rng.pick(scene.ownRecorded.length > 0 ? scene.ownRecorded : corpus);
    const buf = mutateBytes(rng, src, corpus, 4, rng.chance(0.8) ? 2 : 0);
    // An edit that changed nothing (a byte set to its own value) makes a replay.
    return { category: buf.equals(src) ? 'replay' : 'mutated', buf };
  }
  if (r < 50) {
    const src = rng.pick(corpus);
    const body = isSigned(src) ? src.subarray(0, src.length - HMAC_BYTES) : src;
    const m = mutateBytes(rng, body, corpus, 3, PREFIX_BYTES);
    const resigned = keyed || rng.chance(0.3) ? resign(m, rng.chance(0.9) ? KEY : KEY_OLD) : m;
    return { category: m.equals(body) ? 'replay' : 'mutated-resigned', buf: resigned };
  }
  if (r < 58) {
    const own = rng.chance(0.1) && scene.ownRecorded.length > 0;
    return { category: own ? 'replay-own' : 'replay', buf: own ? rng.pick(scene.ownRecorded) : rng.pick(corpus) };
  }
  for (let k = 0; k < 4; k++) {
    const b = forged(scene, stats);
    if (b !== undefined) return { category: 'forged-resigned', buf: b };
  }
  return { category: 'random', buf: rng.bytes(rng.int(MTU)) };
}

/** Checks of the target's state that must hold after any sequence of datagrams. */
function checkState(scene, deep) {
  const { T, ext, cfg } = scene;
  const fail = scene.fail;
  if (ext.size > ext.limit) fail('external cache over its limit', `${ext.size} > ${ext.limit}`);
  if (ext.expectSize > ext.expectLimit) fail('expectations over their limit', `${ext.expectSize} > ${ext.expectLimit}`);
  let sum = 0;
  for (const n of ext.origins().values()) sum += n;
  if (sum !== ext.size) fail('per-origin counts do not add up', `${sum} by origin, ${ext.size} held`);
  const s = T.stats();
  const max = cfg.admission.maxNodes;
  if (s.admission.tracked > max) fail('more ids tracked than maxNodes', `${s.admission.tracked} > ${max}`);
  if (s.peers.length > max) fail('more peers than maxNodes', `${s.peers.length} > ${max}`);
  if (s.admission.receivers > s.admission.tracked) fail('more receivers than tracked ids', `${s.admission.receivers} > ${s.admission.tracked}`);
  const listed = cfg.admission.nodes;
  if (listed !== undefined) {
    for (const p of s.peers) if (!listed.includes(p.id)) fail('an unlisted node id became a peer', p.id);
  }
  if (s.resendQueue.length > s.resendQueue.capacity) fail('resend queue over capacity', `${s.resendQueue.length}`);
  const elapsed = scene.now - scene.startedAt;
  const bulkBound = (Math.floor(elapsed / BULK_MIN_INTERVAL_MS) + 2) * (max + 1) + scene.peerRestarts * 2;
  if (s.counters.bulksSent > bulkBound) {
    fail('more bulks than one per peer per BULK_MIN_INTERVAL_MS', `${s.counters.bulksSent} bulks in ${elapsed} ms`);
  }
  if (!deep) return;
  for (const r of ext.records()) {
    const e = r.entry;
    const status = e.status ?? 0;
    if ((status & ~PEER_STATUS_BITS) !== 0) {
      fail('an external entry carries status bits peers may not set', `0x${(status >>> 0).toString(16)} from ${r.origin}`);
    }
    const cap = PEER_MAX_TIMEOUT;
    if ((e.timeout ?? 0) > cap) fail('an external entry exceeds the timeout cap', `${e.timeout} > ${cap} (proto ${e.orig.proto})`);
    if (!scene.filter.check(e).pass) fail('an external entry the local filter rejects', `${entryKey(e)} from ${r.origin}`);
  }
}

export function fuzzDatagrams({ seed, count, onFailure }) {
  const stats = {
    datagrams: 0,
    unencodable: 0,
    unencodableReasons: {},
    scenes: [],
  };
  const per = Math.ceil(count / SCENES.length);
  for (const [si, cfg] of SCENES.entries()) {
    const n = Math.min(per, count - si * per);
    if (n <= 0) break;
    const rng = makeRng((seed ^ Math.imul(si + 1, 0x9e3779b1)) >>> 0);
    let index = -1;
    let current;
    const sceneStats = { name: cfg.name, datagrams: 0, byCategory: {}, outcomes: {}, sentBytes: 0, receivedBytes: 0 };
    const fail = (what, detail) =>
      onFailure({
        target: 'datagrams',
        scene: cfg.name,
        index,
        kind: current?.category ?? 'between cases',
        what,
        detail,
        hex: current ? hexOf(current.buf) : '',
      });
    const scene = new Scene(cfg, rng, fail);
    scene.peerRestarts = 0;
    const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);
    const receive = (buf, category) => {
      const T = scene.T;
      const before = dropCounts(T);
      const received = T.counters.datagramsReceived;
      let r;
      try {
        r = T.receive(buf);
      } catch (err) {
        fail('exception escaped SyncNode.receive', err instanceof Error ? (err.stack ?? err.message) : String(err));
        return;
      }
      sceneStats.datagrams++;
      sceneStats.receivedBytes += buf.length;
      const after = dropCounts(T);
      const moved = [];
      for (const [k, v] of Object.entries(after)) {
        const d = v - (before[k] ?? 0);
        for (let j = 0; j < d; j++) moved.push(k);
      }
      if (T.counters.datagramsReceived !== received + 1) fail('a datagram not counted as received', '');
      let outcome;
      if (r.ok) {
        outcome = 'accepted';
        if (moved.length !== 0) fail('an accepted datagram also counted as dropped', moved.join(','));
      } else if (moved.length === 1) {
        outcome = moved[0];
      } else {
        outcome = 'uncounted';
        fail(moved.length === 0 ? 'a dropped datagram not counted' : 'a dropped datagram counted twice', moved.join(','));
      }
      const byCat = (sceneStats.outcomes[category] ??= {});
      bump(byCat, outcome);
      if (outcome === 'EDECODE' || outcome === 'EVALUE') {
        const again = decodeDatagram(buf, { cluster: CLUSTER, auth: scene.auth, records: true, maxSize: MTU });
        if (!again.ok && again.error.reason.startsWith('internal error')) {
          fail('the decoder caught an exception of its own', again.error.reason);
        }
      }
    };
    scene.onReceive = receive;
    // Both nodes meet and replicate before the first case.
    scene.settle(400);
    for (let i = 0; i < n; i++) {
      index = i;
      if (i % 32 === 0) {
        current = undefined;
        scene.now += rng.pick([0, 1, 5, 20, 50, 200, 1000]);
        scene.churn();
        scene.settle(6);
        if (i > 0 && i % 12_288 === 0) {
          scene.restartPeer();
          scene.peerRestarts++;
          scene.settle(50);
        }
        if (i > 0 && i % 8_192 === 0) {
          // A long silence: peers time out and are pruned before anything is delivered again.
          scene.now += TIMERS.peerTimeoutMs + cfg.admission.pruneAfterMs + 1000;
          scene.guard('exception escaped SyncNode.tick', () => scene.T.tick());
          scene.settle(3);
        }
        if (i % 2048 === 0) checkState(scene, i % 16_384 === 0);
      }
      current = genCase(scene, stats);
      bump(sceneStats.byCategory, current.category);
      receive(current.buf, current.category);
    }
    current = undefined;
    index = n;
    scene.settle(50);
    checkState(scene, true);
    const s = scene.T.stats();
    sceneStats.sentBytes = scene.sentBytes;
    sceneStats.final = {
      externalEntries: scene.ext.size,
      externalRefused: scene.ext.counters.refused,
      externalLimit: scene.ext.limit,
      origins: scene.ext.origins().size,
      peers: s.peers.length,
      tracked: s.admission.tracked,
      bulksSent: s.counters.bulksSent,
      epochRollovers: s.counters.epochRollovers,
      peerRestarts: scene.peerRestarts,
      pruned: s.admission.counters.pruned,
      peerEntries: { ...scene.ext.peerCounters },
      fakeSeconds: Math.round((scene.now - scene.startedAt) / 1000),
    };
    stats.datagrams += sceneStats.datagrams;
    stats.scenes.push(sceneStats);
    scene.T.close();
    scene.P.close();
  }
  return stats;
}
