// The two daemons under test, behind one interface, configured alike:
// FTFW/ftfw over multicast or UDP on sync0, 4 MiB socket buffers, the same
// netlink event buffer, cache limits that fit 2 × N, no filters (the sync
// link is not tracked), SCHED_OTHER for both. Each runs in the foreground in
// its namespace (`ip netns exec` execs it, so the PID we hold is the daemon's
// own, which start() verifies), writes its log to a file, and is stopped by
// that PID only.
//
// Both are polled the same way: their stats over their UNIX socket, from this
// process (no client fork per poll). conntrackd's protocol is one native int
// (the command; STATS = 21) and the text reply until EOF.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../../dist/control/client.js';
import { onCleanup, procComm, run, runCleanup, until } from './util.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CTSYNCD_BIN = join(ROOT, 'bin', 'ctsyncd');
export const CTSYNCD_SCRIPT = join(ROOT, 'contrib', 'keepalived', 'primary-backup.sh');
export const CONNTRACKD_BIN = '/usr/sbin/conntrackd';
export const CONNTRACKD_SCRIPT = '/usr/share/doc/conntrackd/examples/sync/primary-backup.sh';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Settings shared by both daemons for one trial. */
export function settingsFor(n) {
  return {
    // Room for N live entries plus FTFW's dead ones awaiting their ack.
    cacheLimit: 2 * n + 1024,
    // conntrackd: buckets for chains of ~4 at N (upstream default 65536 at least).
    hashSize: Math.max(65_536, 2 ** Math.ceil(Math.log2(n / 4))),
    // Both get the same ctnetlink event socket buffer, sized to hold a whole
    // burst of N NEW events (about 1.1 KiB of skb each), 32 MiB to 1 GiB, so
    // that a daemon falling behind the injector is not also cut off by an
    // overrun (both recover from one, but conntrackd only 30 s later).
    netlinkBufferBytes: Math.min(GiB, Math.max(32 * MiB, Math.ceil((n * 1280) / MiB) * MiB)),
    socketBufferBytes: 4 * 1024 * 1024,
  };
}

// ---------------------------------------------------------------------------
// Process handling common to both

export function startProcess(node, argv, logPath, label) {
  const fd = openSync(logPath, 'a');
  const child = spawn('ip', ['netns', 'exec', node.ns, ...argv], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
  const handle = onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, `${label} pid ${child.pid}`);
  return { child, exited, handle, logPath, label };
}

export function alive(p) {
  return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
}

export async function stopProcess(p, signal = 'SIGTERM', graceMs = 10_000) {
  if (!p) return;
  if (alive(p)) {
    p.child.kill(signal);
    const t = setTimeout(() => alive(p) && p.child.kill('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(t);
  }
  runCleanup(p.handle);
}

export function tail(path, n = 2000) {
  try {
    return readFileSync(path, 'utf8').slice(-n);
  } catch {
    return '';
  }
}

/** The PID we hold must be the daemon itself (ip netns exec execs it). */
export function verifyPid(p, expect) {
  const argv = procComm(p.child.pid);
  if (!argv.some((a) => a.endsWith(expect))) {
    throw new Error(`${p.label}: pid ${p.child.pid} runs ${argv.join(' ')}, not ${expect}`);
  }
}

// ---------------------------------------------------------------------------
// ctsyncd

export const SHEBANG_FLAGS = readFileSync(CTSYNCD_BIN, 'utf8').split('\n')[0].split(/\s+/).slice(3);

export const ctsyncd = {
  name: 'ctsyncd',

  configure(node, peer, topo, dir, s) {
    node.conf = join(dir, `${node.id}.yaml`);
    node.socket = join(dir, `${node.id}.sock`);
    node.log = join(dir, `${node.id}.ctsyncd.log`);
    const t = topo.transport;
    writeFileSync(
      node.conf,
      [
        `node: { id: ${node.id}, stateDir: ${join(dir, 'state')} }`,
        'cluster: { id: 7 }',
        'sync:',
        '  mode: ftfw',
        `  transport: ${t}`,
        t === 'multicast'
          ? `  multicast: { group: ${topo.group}, port: ${topo.port}, interface: sync0, sendBufferBytes: ${s.socketBufferBytes}, receiveBufferBytes: ${s.socketBufferBytes} }`
          : `  udp: { bind: ${node.addr}, port: ${topo.port}, peers: [${peer.addr}], sendBufferBytes: ${s.socketBufferBytes}, receiveBufferBytes: ${s.socketBufferBytes} }`,
        // conntrackd, measured beside it, signs nothing either.
        '  auth: none',
        `kernel: { netlinkBufferBytes: ${s.netlinkBufferBytes}${s.eventCoalesceMs !== undefined ? `, eventCoalesceMs: ${s.eventCoalesceMs}` : ''} }`,
        `cache: { internalLimit: ${s.cacheLimit}, externalLimit: ${s.cacheLimit} }`,
        `control: { socket: ${node.socket} }`,
        // keepalived's notify_fifo read by the daemon itself (--ctsyncd-notify fifo): no client process at failover.
        ...(s.inject || s.notifyFifo
          ? [
              `failover: { ${[s.inject ? 'inject: true' : '', s.notifyFifo ? `notifyFifo: ${join(dir, `${node.id}.notify`)}` : ''].filter(Boolean).join(', ')} }`,
            ]
          : []),
        ...(s.flowlog
          ? [
              `flowlog: { events: [new, destroy], ${s.flowlogQueueBytes ? `queueBytes: ${s.flowlogQueueBytes}, ` : ''}file: { path: ${join(dir, `${node.id}.flows.jsonl`)} } }`,
            ]
          : []),
        'log: { level: info, format: text }',
        // conntrackd has no such endpoint; nothing scrapes it here.
        'metrics: { enabled: false }',
        '',
      ].join('\n'),
    );
  },

  start(node, opts = {}) {
    node.starts = (node.starts ?? 0) + 1;
    // The V8 options of bin/ctsyncd's #! line, as running the binary itself would give.
    const nodeFlags = [...SHEBANG_FLAGS];
    // One directory per process: fw1-1 (first start), fw2-1, fw2-2 (restarted for the resync), ...
    // Node's own file names in it, one per thread: a fixed --cpu-prof-name
    // would have the flow log's writer thread and the main thread overwrite
    // each other's profile.
    if (opts.cpuProfDir) {
      nodeFlags.push('--cpu-prof', '--cpu-prof-dir', join(opts.cpuProfDir, `${node.id}-${node.starts}`));
    }
    if (opts.heapDir) nodeFlags.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${opts.heapDir}`);
    if (opts.v8Flags) nodeFlags.push(...opts.v8Flags);
    node.proc = startProcess(node, ['node', ...nodeFlags, CTSYNCD_BIN, '--config', node.conf], node.log, `ctsyncd ${node.id}`);
  },

  async waitReady(node, timeoutMs) {
    await until(
      async () => {
        if (!alive(node.proc)) throw new Error(`ctsyncd ${node.id} exited: ${tail(node.log)}`);
        const st = await this.stats(node, 2000).catch(() => undefined);
        return st?.ready === true;
      },
      `ctsyncd ${node.id} ready`,
      timeoutMs,
      { intervalMs: 20, diag: () => tail(node.log) },
    );
    verifyPid(node.proc, 'bin/ctsyncd');
  },

  stats(node, timeoutMs = 30_000) {
    return controlRequest(node.socket, 'stats', undefined, { timeoutMs });
  },

  async counts(node) {
    const st = await this.stats(node);
    return { internal: st.internal.entries, external: st.external.entries, raw: st };
  },

  /** Kernel event overruns and resyncs, buffer, sender counters. */
  async diagnostics(node) {
    const st = await this.stats(node);
    const snd = st.sync?.sender ?? {};
    return {
      // kernel.overruns (ctsyncd_kernel_overruns_total): ENOBUFS on the event socket.
      overruns: st.kernel?.overruns ?? st.kernel?.events?.overruns,
      overrunLine: `kernel.overruns: ${st.kernel?.overruns}`,
      kernelResyncs: st.kernel?.overrunResyncs,
      bufferBytes: st.kernel?.receiveBufferBytes,
      // The reader thread's ring (kernel.readAhead): its size, the most it held, how often it was full.
      ringBytes: st.kernel?.readAhead?.limitBytes,
      ringMaxHeldBytes: st.kernel?.readAhead?.maxHeldBytes,
      ringFull: st.kernel?.readAhead?.limitReached,
      datagramsSent: snd.datagramsSent,
      messagesSent: snd.messagesSent,
    };
  },

  /** A client command as an operator or keepalived runs it: conntrackd's flags. */
  clientArgv(node, flags) {
    return ['node', CTSYNCD_BIN, '-C', node.conf, ...flags];
  },

  /** A restarted ctsyncd asks its peers for their state by itself. */
  async afterRestart() {},

  /**
   * notify 'script': contrib's primary-backup.sh (four clients); 'command': `ctsyncd failover primary` (one);
   * 'fifo': the line keepalived writes to its notify_fifo, which the daemon reads (no process started).
   */
  failover(node, notify = 'script') {
    if (notify === 'fifo') return { fifo: join(dirname(node.conf), `${node.id}.notify`), line: 'INSTANCE "VI_1" MASTER 100\n' };
    if (notify === 'command') return { argv: ['node', CTSYNCD_BIN, '--config', node.conf, 'failover', 'primary'], env: {} };
    return {
      argv: ['sh', CTSYNCD_SCRIPT, 'primary'],
      env: { CONNTRACKD_BIN: CTSYNCD_BIN, CONNTRACKD_CONFIG: node.conf, CONNTRACKD_LOCK: join(dirname(node.conf), 'unused.lock') },
    };
  },

  stop(node, signal = 'SIGTERM') {
    return stopProcess(node.proc, signal);
  },

  logTail(node) {
    return tail(node.log);
  },
};

// ---------------------------------------------------------------------------
// conntrackd

const CT_STATS = 21;
export const CT_STATS_RUNTIME = 30;

/** One request over conntrackd's UNIX socket; resolves with its text reply. */
export function conntrackdRequest(path, cmd, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sock = net.createConnection(path);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`conntrackd at ${path}: no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(cmd);
      sock.write(b);
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

function section(text, name) {
  const i = text.indexOf(`${name}:`);
  if (i < 0) return undefined;
  const rest = text.slice(i);
  return Number(/current active connections:\s+(\d+)/.exec(rest)?.[1]);
}

export const conntrackd = {
  name: 'conntrackd',

  configure(node, peer, topo, dir, s) {
    node.conf = join(dir, `${node.id}.conf`);
    node.socket = join(dir, `${node.id}.ctd.sock`);
    node.lock = join(dir, `${node.id}.lock`);
    node.log = join(dir, `${node.id}.conntrackd.log`);
    const t = topo.transport;
    const channel =
      t === 'multicast'
        ? [
            '\tMulticast {',
            `\t\tIPv4_address ${topo.group}`,
            `\t\tGroup ${topo.port}`,
            `\t\tIPv4_interface ${node.addr}`,
            '\t\tInterface sync0',
          ]
        : [
            '\tUDP {',
            `\t\tIPv4_address ${node.addr}`,
            `\t\tIPv4_Destination_Address ${peer.addr}`,
            `\t\tPort ${topo.port}`,
            '\t\tInterface sync0',
          ];
    writeFileSync(
      node.conf,
      [
        'Sync {',
        '\tMode FTFW {',
        '\t}',
        ...channel,
        `\t\tSndSocketBuffer ${s.socketBufferBytes}`,
        `\t\tRcvSocketBuffer ${s.socketBufferBytes}`,
        '\t\tChecksum on',
        '\t}',
        '}',
        'General {',
        `\tHashSize ${s.hashSize}`,
        `\tHashLimit ${s.cacheLimit}`,
        `\tLogFile ${node.log}`,
        '\tSyslog off',
        '\tSystemd off',
        `\tLockFile ${node.lock}`,
        '\tUNIX {',
        `\t\tPath ${node.socket}`,
        '\t}',
        `\tNetlinkBufferSize ${s.netlinkBufferBytes}`,
        // Growth on overrun, as ctsyncd (which doubles up to 256 MiB); an int.
        `\tNetlinkBufferSizeMaxGrowth ${Math.min(GiB, Math.max(s.netlinkBufferBytes, 256 * MiB))}`,
        // Not the default SCHED_RR 99 on a shared machine: priority 0 is
        // refused with a warning and conntrackd keeps SCHED_OTHER, like ctsyncd.
        '\tScheduler {',
        '\t\tType RR',
        '\t\tPriority 0',
        '\t}',
        '}',
        '',
      ].join('\n'),
    );
  },

  start(node) {
    for (const p of [node.lock, node.socket]) rmSync(p, { force: true });
    // Its console output repeats what it writes to LogFile: kept apart.
    node.proc = startProcess(node, [CONNTRACKD_BIN, '-C', node.conf], `${node.log}.out`, `conntrackd ${node.id}`);
  },

  async waitReady(node, timeoutMs) {
    await until(
      async () => {
        if (!alive(node.proc)) throw new Error(`conntrackd ${node.id} exited: ${tail(node.log)}`);
        if (!existsSync(node.socket)) return false;
        return conntrackdRequest(node.socket, CT_STATS, 2000).then(
          (t) => t.includes('cache internal'),
          () => false,
        );
      },
      `conntrackd ${node.id} ready`,
      timeoutMs,
      { intervalMs: 20, diag: () => tail(node.log) },
    );
    verifyPid(node.proc, 'conntrackd');
  },

  async counts(node) {
    const text = await conntrackdRequest(node.socket, CT_STATS);
    return { internal: section(text, 'cache internal'), external: section(text, 'cache external'), raw: text };
  },

  /**
   * Netlink overruns and kernel resyncs (`-s runtime`), datagrams sent (`-s`).
   * "netlink overrun:" counts ENOBUFS on the event socket (nl_overrun in
   * conntrackd's event handler, which also grows the buffer then).
   */
  async diagnostics(node) {
    const rt = await conntrackdRequest(node.socket, CT_STATS_RUNTIME);
    const st = await conntrackdRequest(node.socket, CT_STATS);
    const num = (re, t) => Number(re.exec(t)?.[1] ?? NaN);
    return {
      overruns: num(/netlink overrun:\s+(\d+)/, rt),
      // The line itself, as the daemon printed it (kept in burst and rate records).
      overrunLine: /^.*netlink overrun:.*$/m.exec(rt)?.[0].trim(),
      kernelResyncs: num(/resync with kernel table:\s+(\d+)/, rt),
      bufferBytes: num(/current buffer size \(in bytes\):\s+(\d+)/, rt),
      datagramsSent: num(/(\d+) Pckts sent/, st),
    };
  },

  clientArgv(node, flags) {
    return [CONNTRACKD_BIN, '-C', node.conf, ...flags];
  },

  /** conntrackd needs to be told: `-n` asks the peer for a resync. */
  async afterRestart(node, timeoutMs) {
    await this.waitReady(node, timeoutMs);
    await run('ip', ['netns', 'exec', node.ns, ...this.clientArgv(node, ['-n'])], timeoutMs);
  },

  /** Debian's own script, with its three settings pointed at this trial's files. */
  failover(node) {
    const script = join(dirname(node.conf), 'conntrackd-primary-backup.sh');
    if (!existsSync(script)) {
      const text = readFileSync(CONNTRACKD_SCRIPT, 'utf8')
        .replace(/^CONNTRACKD_BIN=.*$/m, `CONNTRACKD_BIN=${CONNTRACKD_BIN}`)
        .replace(/^CONNTRACKD_LOCK=.*$/m, `CONNTRACKD_LOCK=${node.lock}`)
        .replace(/^CONNTRACKD_CONFIG=.*$/m, `CONNTRACKD_CONFIG=${node.conf}`);
      writeFileSync(script, text);
    }
    return { argv: ['sh', script, 'primary'], env: {} };
  },

  async stop(node, signal = 'SIGTERM') {
    await stopProcess(node.proc, signal);
    // A killed conntrackd leaves both behind; a stale lock blocks the next start.
    for (const p of [node.lock, node.socket]) rmSync(p, { force: true });
  },

  logTail(node) {
    return tail(node.log);
  },
};

export const DAEMONS = { ctsyncd, conntrackd };

