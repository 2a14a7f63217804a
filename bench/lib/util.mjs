// Small helpers shared by the bench scripts: bounded waits, medians, child
// processes, and one cleanup registry that also runs on SIGINT/SIGTERM and on
// an uncaught error, so namespaces, daemons and sysctls never outlive a run.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';

export const execFileP = promisify(execFile);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();

/** Runs a command (no shell); resolves with stdout. Bounded by timeoutMs. */
export async function run(cmd, args, timeoutMs = 60_000) {
  const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
  return stdout;
}

export function runSync(cmd, args, timeoutMs = 60_000) {
  return execFileSync(cmd, args, { timeout: timeoutMs, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Polls cond() every intervalMs until it returns something truthy (which is
 * returned) or timeoutMs passed (throws, with diag() appended). Every wait in
 * the bench goes through here or has its own timeout.
 */
export async function until(cond, what, timeoutMs, { intervalMs = 10, diag } = {}) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (now() > deadline) {
      const extra = diag ? `\n${await Promise.resolve(diag()).catch((e) => String(e))}` : '';
      throw new TimeoutError(`timed out after ${Math.round(timeoutMs)} ms waiting for ${what}${extra}`);
    }
    await sleep(intervalMs);
  }
}

export class TimeoutError extends Error {}

export function median(xs) {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function load1() {
  return loadavg()[0];
}

export function loadString() {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

// ---------------------------------------------------------------------------
// Cleanup registry (synchronous, so it also runs from signal handlers)

const cleanups = [];
let exiting = false;

/** Registers a synchronous cleanup; returns a handle for runCleanup/dropCleanup. */
export function onCleanup(f, label = '') {
  const h = { f, label };
  cleanups.push(h);
  return h;
}

export function dropCleanup(h) {
  const i = cleanups.indexOf(h);
  if (i >= 0) cleanups.splice(i, 1);
}

/** Runs (and forgets) one registered cleanup now. */
export function runCleanup(h) {
  dropCleanup(h);
  try {
    h.f();
  } catch (e) {
    if (!exiting) console.error(`cleanup ${h.label}: ${e.message}`);
  }
}

/** Runs every cleanup, newest first. */
export function cleanupAll() {
  while (cleanups.length > 0) runCleanup(cleanups[cleanups.length - 1]);
}

for (const [sig, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    console.error(`\n${sig}: cleaning up`);
    cleanupAll();
    process.exit(code);
  });
}
process.on('exit', () => {
  exiting = true;
  cleanupAll();
});

// ---------------------------------------------------------------------------
// /proc readers

let tick;
export function clockTicks() {
  if (tick === undefined) {
    try {
      tick = Number(runSync('getconf', ['CLK_TCK']).trim()) || 100;
    } catch {
      tick = 100;
    }
  }
  return tick;
}

/** CPU seconds (utime+stime, plus reaped children; stime alone as sys) and RSS bytes of a PID. */
export function procSample(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // Fields 14..17 of stat(5), here 0-based after the state field at index 0.
  const cpu = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clockTicks();
  // stime alone: the kernel's share (netlink copies, the UDP stack, veth delivery).
  const sys = (Number(f[12]) + Number(f[14])) / clockTicks();
  // The main thread alone: the rest is a runtime's helper threads (V8's JIT
  // compiler and concurrent GC for ctsyncd; conntrackd has none).
  const t = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const g = t.slice(t.lastIndexOf(')') + 2).split(' ');
  const mainCpu = (Number(g[11]) + Number(g[12])) / clockTicks();
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  return { cpu, sys, mainCpu, rss, hwm };
}

/**
 * CPU seconds of a process per thread name (/proc/PID/task/TID/comm): the
 * main thread under "main", the others under their names ("ctsyncd-flowlog"
 * for the flow log's writer; node's V8 and libuv threads are all "node").
 * Threads that ended are not counted: only differences of a live set mean anything.
 */
export function threadCpu(pid) {
  const out = {};
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const t = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const g = t.slice(t.lastIndexOf(')') + 2).split(' ');
      const name = tid === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out[name] = (out[name] ?? 0) + (Number(g[11]) + Number(g[12])) / clockTicks();
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** Lines (newlines) in a file; 0 when it does not exist yet. */
export function lineCount(path) {
  if (!existsSync(path)) return 0;
  const b = readFileSync(path);
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/** The executable path of a PID (to verify that `ip netns exec` exec'd the daemon). */
export function procComm(pid) {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

/** Packet counters of an interface in the network namespace of a PID (/proc/PID/net/dev). */
export function netDev(pid, ifname) {
  const text = readFileSync(`/proc/${pid}/net/dev`, 'utf8');
  for (const line of text.split('\n')) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] !== ifname) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    return { rxBytes: v[0], rxPackets: v[1], txBytes: v[8], txPackets: v[9] };
  }
  throw new Error(`no ${ifname} in /proc/${pid}/net/dev`);
}

/** Entries in the conntrack table of the network namespace of a PID (no fork). */
export function kernelCountOf(pid) {
  const text = readFileSync(`/proc/${pid}/net/stat/nf_conntrack`, 'utf8');
  const line = text.split('\n')[1];
  return parseInt(line.trim().split(/\s+/)[0], 16);
}
