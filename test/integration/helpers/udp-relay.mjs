// A faulty UDP hop for the reliability tests, run as a child
// `ip netns exec NS node udp-relay.mjs MODE JSON` (plain ESM, no build step).
//
// relay: owns one address per node on the sync link. A datagram that node k
//   sends to routes[j].listen is forwarded from routes[k].listen (same port)
//   to routes[j].forwardTo, so every node sees its peers at the relay's
//   addresses. On the way the relay duplicates (duplicatePct), holds back a
//   share of the datagrams (reorderPct of all that leave) until the next one
//   of the same flow has gone out (or holdMaxMs passed), and delays each by
//   0..delayMs[1] ms without reordering on its own: delays only ever grow
//   along a flow, so reordering comes from the holds alone and is counted.
//   With `record: true` it also keeps every datagram it received, with the
//   flow it came on (at most MAX_RECORDED), and {"op":"replay","id":N,
//   "times":T} plays the whole recording back T times, each datagram from
//   the side that sent it to the node it was for (paced, 100 per ms at most),
//   then reports {"ev":"replayed","id":N,"sent":S}: an attacker on the sync
//   segment replaying what it captured. {"op":"set","id":N,"duplicatePct":D,
//   "reorderPct":R} changes both shares from then on (the soak's bursts) and
//   answers {"ev":"set","id":N,...}.
// recorder: joins a multicast group on the sync link, keeps every datagram
//   sent to it (at most MAX_RECORDED) and, on {"op":"replay","id":N,
//   "times":T}, sends them all to the group again T times from its own
//   address (which a multicast receiver does not check).
// probe: a plain UDP endpoint for checking the relay and the loss rules.
//   It binds, optionally joins a multicast group, sends `count` numbered
//   datagrams when told ({"op":"send"}, so that receivers can be started
//   first), and reports what arrived (duplicates, inversions, sources).
//
// Both read one JSON command per stdin line (e.g. {"op":"stats","id":N}) and
// write one JSON event per stdout line; closing stdin ends the process, so
// nothing outlives the test even if it never got to kill us by PID.
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const MAGIC = 'CTPROBE1';
const MAX_RECORDED = 500_000;

function emit(ev) {
  process.stdout.write(`${JSON.stringify(ev)}\n`);
}

function bind(address, port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: opts.reuseAddr === true });
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => {
      s.off('error', reject);
      try {
        s.setRecvBufferSize(8 * 1024 * 1024);
        s.setSendBufferSize(8 * 1024 * 1024);
      } catch {
        // the defaults do for light traffic
      }
      resolve(s);
    });
  });
}

function onCommands(handler) {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    handler(JSON.parse(line));
  });
  lines.on('close', () => process.exit(0));
}

/**
 * @param {{ port: number, routes: Array<{ listen: string, forwardTo: string }>,
 *   delayMs?: [number, number], reorderPct?: number, duplicatePct?: number, holdMaxMs?: number }} spec
 */
async function relay(spec) {
  const port = spec.port;
  const [delayMin, delayMax] = spec.delayMs ?? [0, 0];
  let dupP = 0;
  let holdP = 0;
  // Holding happens only when nothing is held, i.e. for (1 - f) of the
  // datagrams; hold with f / (1 - f) there so that f of all are held.
  const setShares = (duplicatePct, reorderPct) => {
    dupP = (duplicatePct ?? 0) / 100;
    const f = Math.min((reorderPct ?? 0) / 100, 0.9);
    holdP = f / (1 - f);
  };
  setShares(spec.duplicatePct, spec.reorderPct);
  const holdMaxMs = spec.holdMaxMs ?? 20;
  const counters = {
    received: 0,
    unknownSource: 0,
    duplicated: 0,
    heldBack: 0,
    releasedAfterNext: 0,
    releasedByTimer: 0,
    forwarded: 0,
    sendErrors: 0,
    maxDelayMs: 0,
  };
  const flows = new Map();
  const sockets = [];
  /** [from route index, to route index, bytes] in arrival order. */
  const recording = [];
  for (const r of spec.routes) sockets.push(await bind(r.listen, port));
  const indexOfNode = new Map(spec.routes.map((r, i) => [r.forwardTo, i]));

  function flowOf(k, j) {
    const key = `${spec.routes[k].forwardTo}->${spec.routes[j].forwardTo}`;
    let fl = flows.get(key);
    if (!fl) {
      fl = {
        key,
        from: sockets[k],
        to: spec.routes[j].forwardTo,
        held: undefined,
        holdTimer: undefined,
        out: [],
        lastDue: 0,
        timer: undefined,
        counters: { received: 0, forwarded: 0, duplicated: 0, heldBack: 0 },
      };
      flows.set(key, fl);
    }
    return fl;
  }

  function pump(fl) {
    fl.timer = undefined;
    const now = performance.now();
    while (fl.out.length > 0 && fl.out[0].due <= now) {
      const { msg } = fl.out.shift();
      fl.from.send(msg, port, fl.to, (err) => {
        if (err) counters.sendErrors++;
      });
      counters.forwarded++;
      fl.counters.forwarded++;
    }
    if (fl.out.length > 0) fl.timer = setTimeout(() => pump(fl), Math.max(0, fl.out[0].due - now));
  }

  // Leaves in order: a datagram is due no earlier than the one before it.
  function transmit(fl, msg) {
    const now = performance.now();
    const due = Math.max(now + delayMin + Math.random() * (delayMax - delayMin), fl.lastDue);
    counters.maxDelayMs = Math.max(counters.maxDelayMs, Math.round(due - now));
    fl.lastDue = due;
    fl.out.push({ msg, due });
    if (fl.timer === undefined) fl.timer = setTimeout(() => pump(fl), Math.max(0, due - now));
  }

  function stage(fl, msg) {
    if (fl.held !== undefined) {
      const held = fl.held;
      fl.held = undefined;
      clearTimeout(fl.holdTimer);
      transmit(fl, msg);
      transmit(fl, held);
      counters.releasedAfterNext++;
    } else if (Math.random() < holdP) {
      fl.held = msg;
      counters.heldBack++;
      fl.counters.heldBack++;
      // Nothing may stay behind for good when the flow goes quiet.
      fl.holdTimer = setTimeout(() => {
        if (fl.held === msg) {
          fl.held = undefined;
          transmit(fl, msg);
          counters.releasedByTimer++;
        }
      }, holdMaxMs);
    } else {
      transmit(fl, msg);
    }
  }

  sockets.forEach((s, j) => {
    s.on('message', (msg, rinfo) => {
      counters.received++;
      const k = indexOfNode.get(rinfo.address);
      if (k === undefined || k === j) {
        counters.unknownSource++;
        return;
      }
      if (spec.record === true && recording.length < MAX_RECORDED) recording.push([k, j, Buffer.from(msg)]);
      const fl = flowOf(k, j);
      fl.counters.received++;
      stage(fl, msg);
      if (Math.random() < dupP) {
        counters.duplicated++;
        fl.counters.duplicated++;
        stage(fl, Buffer.from(msg));
      }
    });
  });

  const stats = (id) => ({
    ev: 'stats',
    id,
    counters: { ...counters },
    flows: Object.fromEntries([...flows.values()].map((fl) => [fl.key, { ...fl.counters }])),
  });
  emit({ ev: 'ready', listen: spec.routes.map((r) => r.listen), port });
  async function replay(id, times) {
    let sent = 0;
    let sendErrors = 0;
    const frames = recording.slice();
    for (let t = 0; t < times; t++) {
      for (let i = 0; i < frames.length; i++) {
        const [k, j, msg] = frames[i];
        sockets[k].send(msg, port, spec.routes[j].forwardTo, (err) => {
          if (err) sendErrors++;
        });
        sent++;
        if (sent % 100 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    }
    emit({ ev: 'replayed', id, sent, sendErrors, recorded: frames.length });
  }
  onCommands((cmd) => {
    if (cmd.op === 'stats') emit({ ...stats(cmd.id), recorded: recording.length });
    if (cmd.op === 'replay') void replay(cmd.id, cmd.times ?? 1);
    // The soak turns duplication and reordering on and off in bursts.
    if (cmd.op === 'set') {
      setShares(cmd.duplicatePct, cmd.reorderPct);
      emit({ ev: 'set', id: cmd.id, duplicatePct: cmd.duplicatePct ?? 0, reorderPct: cmd.reorderPct ?? 0 });
    }
  });
}

/**
 * @param {{ bind: string, port: number, join?: { group: string, interfaceAddress: string },
 *   send?: { to: string[], port: number, count: number, burst?: number, intervalMs?: number, size?: number,
 *     multicastInterface?: string } }} spec
 */
async function probe(spec) {
  const s = await bind(spec.bind, spec.port, { reuseAddr: spec.join !== undefined });
  if (spec.join) s.addMembership(spec.join.group, spec.join.interfaceAddress);
  const report = {
    received: 0,
    foreign: 0,
    unique: 0,
    duplicates: 0,
    inversions: 0,
    maxSeq: -1,
    sources: {},
  };
  const seen = new Set();
  s.on('message', (msg, rinfo) => {
    if (msg.length < 12 || msg.toString('latin1', 0, 8) !== MAGIC) {
      report.foreign++;
      return;
    }
    report.received++;
    const seq = msg.readUInt32BE(8);
    const src = `${rinfo.address}:${rinfo.port}`;
    report.sources[src] = (report.sources[src] ?? 0) + 1;
    if (seen.has(seq)) report.duplicates++;
    else {
      seen.add(seq);
      report.unique++;
    }
    if (seq < report.maxSeq) report.inversions++;
    else report.maxSeq = seq;
  });
  emit({ ev: 'ready', bind: spec.bind, port: spec.port });
  async function send() {
    const { to, port, count, burst = 20, intervalMs = 5, size = 200, multicastInterface } = spec.send;
    if (multicastInterface) s.setMulticastInterface(multicastInterface);
    let seq = 0;
    let sendErrors = 0;
    let pending = 0;
    while (seq < count) {
      for (let b = 0; b < burst && seq < count; b++, seq++) {
        const buf = Buffer.alloc(Math.max(size, 12));
        buf.write(MAGIC, 0, 'latin1');
        buf.writeUInt32BE(seq, 8);
        for (const dst of to) {
          pending++;
          s.send(buf, port, dst, (err) => {
            pending--;
            if (err) sendErrors++;
          });
        }
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    while (pending > 0) await new Promise((r) => setTimeout(r, 5));
    emit({ ev: 'sent', count, sendErrors });
  }
  onCommands((cmd) => {
    if (cmd.op === 'stats') emit({ ev: 'stats', id: cmd.id, report: { ...report, sources: { ...report.sources } } });
    if (cmd.op === 'send' && spec.send) void send();
  });
}

/** @param {{ group: string, port: number, interfaceAddress: string }} spec */
async function recorder(spec) {
  const s = await bind(spec.group, spec.port, { reuseAddr: true });
  s.addMembership(spec.group, spec.interfaceAddress);
  s.setMulticastInterface(spec.interfaceAddress);
  s.setMulticastTTL(1);
  s.setMulticastLoopback(false);
  const recording = [];
  s.on('message', (msg, rinfo) => {
    if (rinfo.address === spec.interfaceAddress) return;
    if (recording.length < MAX_RECORDED) recording.push(Buffer.from(msg));
  });
  async function replay(id, times) {
    let sent = 0;
    let sendErrors = 0;
    const frames = recording.slice();
    for (let t = 0; t < times; t++) {
      for (const msg of frames) {
        s.send(msg, spec.port, spec.group, (err) => {
          if (err) sendErrors++;
        });
        sent++;
        if (sent % 100 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    }
    emit({ ev: 'replayed', id, sent, sendErrors, recorded: frames.length });
  }
  emit({ ev: 'ready', group: spec.group, port: spec.port });
  onCommands((cmd) => {
    if (cmd.op === 'stats') emit({ ev: 'stats', id: cmd.id, recorded: recording.length });
    if (cmd.op === 'replay') void replay(cmd.id, cmd.times ?? 1);
  });
}

const [mode, json] = process.argv.slice(2);
const spec = JSON.parse(json ?? '{}');
const main = mode === 'relay' ? relay : mode === 'probe' ? probe : mode === 'recorder' ? recorder : undefined;
if (!main) {
  process.stderr.write('usage: udp-relay.mjs relay|probe|recorder JSON\n');
  process.exit(2);
}
main(spec).catch((err) => {
  emit({ ev: 'error', code: err?.code ?? 'ERROR', message: String(err?.message ?? err) });
  process.exit(1);
});
