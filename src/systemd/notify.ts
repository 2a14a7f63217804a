// systemd's notify protocol (sd_notify(3)) for Type=notify units: READY=1
// once the daemon can take over, STATUS= lines, WATCHDOG=1 pings and
// STOPPING=1. Without NOTIFY_SOCKET (not started by systemd) it does nothing.
import { loadNative } from '../kernel/native.js';
import { type Logger, silentLogger } from '../log.js';

export interface SystemdNotifierOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** Sends one datagram; returns 0 or an errno. The native addon by default. */
  send?: (socketPath: string, data: Buffer) => number;
  log?: Logger;
}

/** What a STATUS= line says about the daemon (`systemctl status` shows it). */
export interface DaemonStatusView {
  /** The initial kernel dump is done. */
  dumpDone: boolean;
  /** Ready to take over: the dump is done and the first peer sync attempt finished. */
  ready: boolean;
  localEntries: number;
  peerEntries: number;
  peersUp: number;
  peers: number;
  inSync: boolean;
  committing: boolean;
}

export interface NotifierCounters {
  sent: number;
  failed: number;
}

export class SystemdNotifier {
  readonly counters: NotifierCounters = { sent: 0, failed: 0 };
  private readonly socketPath: string | undefined;
  private readonly send: (socketPath: string, data: Buffer) => number;
  private readonly log: Logger;
  private readonly pid: number;
  private readonly watchdogUsec: number | undefined;
  private lastStatus = '';
  private isReady = false;

  constructor(opts: SystemdNotifierOptions = {}) {
    const env = opts.env ?? process.env;
    this.pid = opts.pid ?? process.pid;
    this.socketPath = env.NOTIFY_SOCKET || undefined;
    this.send = opts.send ?? ((p, d) => loadNative().unixDgramSend(p, d));
    this.log = opts.log ?? silentLogger;
    const usec = Number(env.WATCHDOG_USEC);
    // WATCHDOG_PID names the process systemd expects pings from; a child must not claim it.
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === this.pid;
    this.watchdogUsec = Number.isFinite(usec) && usec > 0 && forUs ? usec : undefined;
  }

  /** Whether systemd is listening (NOTIFY_SOCKET is set). */
  get enabled(): boolean {
    return this.socketPath !== undefined;
  }

  get ready(): boolean {
    return this.isReady;
  }

  /**
   * How often to ping the watchdog: half of WatchdogSec, as sd_watchdog_enabled(3)
   * recommends; undefined when no watchdog is configured.
   */
  get watchdogIntervalMs(): number | undefined {
    return this.watchdogUsec === undefined ? undefined : Math.max(1, Math.floor(this.watchdogUsec / 2000));
  }

  /** READY=1, once: the initial kernel dump and the first peer resync attempt are done. */
  notifyReady(status: string): void {
    if (this.isReady) return;
    this.isReady = true;
    this.lastStatus = status;
    this.write(`READY=1\nSTATUS=${status}\nMAINPID=${this.pid}`);
  }

  /** STATUS=, only when it changed. */
  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.write(`STATUS=${text}`);
  }

  /** A one-line summary as STATUS=; READY=1 with it the first time the daemon is ready. */
  report(v: DaemonStatusView): void {
    const text = v.dumpDone
      ? `${v.localEntries} local and ${v.peerEntries} peer connections; ${v.peersUp}/${v.peers} peers up; ${v.inSync ? 'in sync' : 'not in sync'}${v.committing ? '; committing' : ''}`
      : 'reading the kernel conntrack table';
    if (v.ready && !this.isReady) this.notifyReady(text);
    else if (v.dumpDone && !v.ready) this.status(`kernel table read; waiting for peers (${text})`);
    else this.status(text);
  }

  watchdog(): void {
    this.write('WATCHDOG=1');
  }

  stopping(): void {
    this.write('STOPPING=1\nSTATUS=stopping');
  }

  private write(state: string): void {
    const path = this.socketPath;
    if (path === undefined) return;
    const errno = this.send(path, Buffer.from(state));
    if (errno === 0) {
      this.counters.sent++;
      return;
    }
    this.counters.failed++;
    // Once is enough: a systemd that went away stays away.
    if (this.counters.failed === 1) this.log.warn('systemd notification failed', { socket: path, errno });
  }
}
