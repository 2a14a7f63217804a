#!/usr/bin/env node
// bench/kernel-floor: how long the kernel alone takes to insert N of the
// benchmark's established TCP entries (bench/lib/workload.mjs) into a fresh
// namespace with no daemon and no event listener: the floor under any commit
// of N entries. Each run measures two things on the same entries:
//   injector   the benchmarks' batched injector (ConntrackLink.batch, 1024
//              creates per sendmsg), encoding in JavaScript included
//   sendmsg    the time spent inside sendmsg(2) alone during that run: the
//              kernel handles a netlink batch inside the call, so this is the
//              kernel's own insert time, whatever the encoder costs
// A floor is only worth claiming on a quiet machine: the 1-minute load
// average is printed before every run. Raises nf_conntrack_max (and the
// buckets) for large N and restores them. Root; after `npm ci`.
// With --listener, a conntrack event socket subscribed in the namespace the
// way a daemon's is (new, update, destroy), with the daemon's socket filter
// dropping the injector's own events: what every commit beside a running
// daemon pays (the kernel builds each event before the filter drops it).
//   node bench/kernel-floor.mjs [N=1000000] [runs=2] [--listener]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConntrackEvents } from '../dist/kernel/conntrack-events.js';
import { ConntrackLink } from '../dist/kernel/conntrack-link.js';
import { NetlinkSocket } from '../dist/kernel/netlink-socket.js';
import { raiseConntrackLimits } from './lib/topology.mjs';
import { runCleanup } from './lib/util.mjs';
import { entry, MAX_ENTRIES } from './lib/workload.mjs';

const args = process.argv.slice(2).filter((a) => a !== '--listener');
const listener = process.argv.includes('--listener');
const n = Number(args[0] ?? 1_000_000);
const runs = Number(args[1] ?? 2);
if (!(n > 0 && n <= MAX_ENTRIES)) throw new Error(`N must be 1..${MAX_ENTRIES}`);
const SLICE = 65_536;
const load1 = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];

/** A netlink socket that adds the time spent inside each sendmsg (or from a pool thread's send to its completion) to `clock.ms`. */
const timedSockets = (clock) => (opts) => {
  const socket = new NetlinkSocket(opts);
  const send = socket.send.bind(socket);
  socket.send = (data) => {
    const t0 = performance.now();
    const errno = send(data);
    clock.ms += performance.now() - t0;
    return errno;
  };
  // A commit's chunks go from a pool thread, one in flight at a time: call → completion is the kernel's
  // time plus one hand-back to this thread.
  const sendAsync = socket.sendAsync.bind(socket);
  socket.sendAsync = (data, done) => {
    const t0 = performance.now();
    sendAsync(data, (errno) => {
      clock.ms += performance.now() - t0;
      done(errno);
    });
  };
  return socket;
};

async function insertAll(netns, clock) {
  const link = new ConntrackLink({ netns, transportFactory: timedSockets(clock) });
  // Subscribed, never read: the filter drops every event here, as the daemon's drops its commit's.
  const events = listener ? new ConntrackEvents({ netns, receiveBufferBytes: 8 << 20 }) : undefined;
  events?.addOwnPortid(link.portid);
  if (events && !events.ownEventsFiltered) throw new Error('the kernel refused the own-portid filter');
  try {
    let failed = 0;
    const t0 = performance.now();
    // Built in slices so a million entries never sit in memory at once.
    for (let first = 0; first < n; first += SLICE) {
      const last = Math.min(n, first + SLICE);
      const items = new Array(last - first);
      for (let i = first; i < last; i++) items[i - first] = { op: 'create', entry: entry(i) };
      failed += (await link.batch(items, { chunkSize: 1024 })).failed;
    }
    if (failed > 0) throw new Error(`${failed} of ${n} creates failed`);
    return (performance.now() - t0) / 1000;
  } finally {
    link.close();
    events?.transport.close();
  }
}

const handles = raiseConntrackLimits(n + 1000);
const ns = `ctfl${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
execFileSync('ip', ['netns', 'add', ns]);
try {
  for (let r = 0; r < runs; r++) {
    const load = load1();
    const clock = { ms: 0 };
    const s = await insertAll(`/var/run/netns/${ns}`, clock);
    const count = execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-C'], { encoding: 'utf8' }).trim();
    console.log(
      `run ${r + 1} (load ${load}${listener ? ', event listener' : ''}): ${n} creates: injector ${s.toFixed(3)} s (${Math.round(n / s)}/s), ` +
        `inside sendmsg ${(clock.ms / 1000).toFixed(3)} s (${Math.round(n / (clock.ms / 1000))}/s), conntrack -C = ${count}`,
    );
    execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-F'], { stdio: 'ignore' });
  }
} finally {
  execFileSync('ip', ['netns', 'del', ns]);
  for (const h of handles) runCleanup(h);
}
