// Sync channels move opaque datagrams between nodes; the wire format, node
// ids and sequence numbers are the daemon's business. A ChannelSet bundles
// redundant dedicated links the way conntrackd does: every channel receives
// all the time, exactly one (the active one) transmits, a dead link hands
// transmission to the next live one, and a valid datagram from the peer on
// another channel makes that channel active so both nodes settle on one link.
import {
  type ChannelCounters,
  ChannelError,
  type ChannelKind,
  type ChannelLog,
  type DatagramSource,
  type SyncChannel,
} from './channel.js';
import type { LinkState } from './iface.js';

/**
 * Send errnos meaning "this link cannot carry traffic now": the device is
 * down or gone, its address went away, or a local firewall rule rejects the
 * packet (EPERM). Anything else (ENOBUFS, EMSGSIZE) is not the link's fault.
 */
export const FAILOVER_ERRNOS: ReadonlySet<string> = new Set([
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EPERM',
  'ENODEV',
  'ENXIO',
  'EADDRNOTAVAIL',
]);

export type ActiveChangeReason =
  /** Reported once by start() for the initial choice; not counted as a failover. */
  | 'start'
  | 'link-down'
  | 'send-error'
  /** A valid datagram arrived on another channel: the peer transmits there. */
  | 'peer-moved';

export interface ActiveChangeInfo {
  previous: string | undefined;
  /** Interface name or errno code behind the change. */
  detail?: string;
}

export interface ChannelSetOptions {
  /** Link poll period and minimum spacing of send-error failovers. Default 1000. */
  checkIntervalMs?: number;
  /** Link state by interface name; default: each channel's own isLinkUp() (sysfs). */
  readLinkState?: (ifname: string) => LinkState;
  /** Runs fn every intervalMs until the returned function is called. Default: an unref'd setInterval. */
  schedule?: (fn: () => void, intervalMs: number) => () => void;
  /** Milliseconds, monotonic. Default performance.now. */
  now?: () => number;
  onActiveChange?: (name: string, reason: ActiveChangeReason, info: ActiveChangeInfo) => void;
  log?: ChannelLog;
}

export interface ChannelSetCounters {
  /** Transmission moved because the active link went down or a send failed. */
  failovers: number;
  /** Transmission moved to follow the peer. */
  peerMoves: number;
}

/** One row per channel, as `ctsyncd stats` shows it (conntrackd's `-s link`). */
export interface ChannelStats {
  name: string;
  kind: ChannelKind;
  interfaceName: string | undefined;
  link: LinkState;
  active: boolean;
  counters: ChannelCounters;
}

export type SetDatagramListener = (buf: Buffer, from: DatagramSource, channel: SyncChannel) => void;

const DEFAULT_CHECK_INTERVAL_MS = 1000;

function defaultSchedule(fn: () => void, intervalMs: number): () => void {
  const timer = setInterval(fn, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

export class ChannelSet {
  readonly counters: ChannelSetCounters = { failovers: 0, peerMoves: 0 };
  private readonly list: readonly SyncChannel[];
  private readonly links: LinkState[];
  private readonly listeners: SetDatagramListener[] = [];
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly log: ChannelLog;
  private activeIndex = 0;
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  private stopTimer: (() => void) | undefined;
  /** Set while the active link is down and no other is up, so that is logged once per outage. */
  private stranded = false;
  private lastSendErrorFailover = Number.NEGATIVE_INFINITY;

  constructor(
    channels: readonly SyncChannel[],
    private readonly opts: ChannelSetOptions = {},
  ) {
    if (channels.length === 0)
      throw new ChannelError('ECHANNEL_CONFIG', '', 'a channel set needs at least one channel');
    const names = new Set<string>();
    for (const ch of channels) {
      if (names.has(ch.name)) throw new ChannelError('ECHANNEL_CONFIG', ch.name, `two channels are named ${ch.name}`);
      names.add(ch.name);
    }
    this.list = [...channels];
    this.links = this.list.map(() => 'up');
    this.intervalMs = opts.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.now = opts.now ?? (() => performance.now());
    this.log = opts.log ?? (() => {});
    for (const ch of this.list) {
      ch.onDatagram((buf, from) => this.deliver(buf, from, ch));
      ch.onSendError?.((err) => this.onSendError(ch, err));
    }
  }

  get channels(): readonly SyncChannel[] {
    return this.list;
  }

  /** Name of the channel that transmits. */
  get active(): string {
    return this.activeChannel.name;
  }

  get activeChannel(): SyncChannel {
    return this.list[this.activeIndex] as SyncChannel;
  }

  onDatagram(cb: SetDatagramListener): void {
    this.listeners.push(cb);
  }

  /** Starts every channel; if one fails, all are closed again and its error is thrown. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new ChannelError('ECHANNEL_CONFIG', '', 'a channel set can be started once');
    this.state = 'starting';
    const results = await Promise.allSettled(this.list.map((ch) => ch.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      this.state = 'closed';
      await Promise.allSettled(this.list.map((ch) => ch.close()));
      throw failed.reason;
    }
    for (let i = 0; i < this.list.length; i++) this.links[i] = this.probe(i);
    const firstUp = this.links.indexOf('up');
    // No link up at all: start on the first and let the link check move us.
    this.activeIndex = Math.max(firstUp, 0);
    this.state = 'started';
    this.log('info', 'sync channel active', { channel: this.active, reason: 'start' });
    this.notify('start', { previous: undefined });
    this.stopTimer = (this.opts.schedule ?? defaultSchedule)(() => this.checkLinks(), this.intervalMs);
  }

  /** Sends on the active channel only. */
  send(datagram: Buffer): void {
    this.activeChannel.send(datagram);
  }

  /**
   * Called by the daemon once a datagram from `channel` decoded and
   * authenticated: the peer transmits there, so we answer there too. A link
   * this set last saw down is not followed, since sending on it would fail.
   */
  noteValidReceive(channel: SyncChannel | string): void {
    if (this.state !== 'started') return;
    const i = this.list.findIndex((ch) => ch === channel || ch.name === channel);
    if (i < 0 || i === this.activeIndex || this.links[i] === 'down') return;
    this.counters.peerMoves++;
    this.switchTo(i, 'peer-moved', { detail: this.list[i]?.interfaceName });
  }

  /** Polls every link; runs on the timer, public so a link-change notification can trigger it early. */
  checkLinks(): void {
    if (this.state !== 'started') return;
    for (let i = 0; i < this.list.length; i++) {
      const now = this.probe(i);
      if (now === this.links[i]) continue;
      this.links[i] = now;
      const ch = this.list[i] as SyncChannel;
      this.log(now === 'up' ? 'info' : 'warn', `sync link ${now}`, { channel: ch.name, interface: ch.interfaceName });
    }
    if (this.links[this.activeIndex] === 'down') this.failover('link-down', this.activeChannel.interfaceName);
    else this.stranded = false;
  }

  stats(): ChannelStats[] {
    return this.list.map((ch, i) => ({
      name: ch.name,
      kind: ch.kind,
      interfaceName: ch.interfaceName,
      link: this.links[i] ?? 'down',
      active: i === this.activeIndex,
      counters: { ...ch.counters },
    }));
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimer?.();
    this.stopTimer = undefined;
    await Promise.allSettled(this.list.map((ch) => ch.close()));
  }

  private probe(i: number): LinkState {
    const ch = this.list[i] as SyncChannel;
    try {
      if (this.opts.readLinkState !== undefined && ch.interfaceName !== undefined) {
        return this.opts.readLinkState(ch.interfaceName);
      }
      return ch.isLinkUp() ? 'up' : 'down';
    } catch {
      return 'down';
    }
  }

  private onSendError(ch: SyncChannel, err: NodeJS.ErrnoException): void {
    if (this.state !== 'started' || ch !== this.activeChannel) return;
    if (err.code === undefined || !FAILOVER_ERRNOS.has(err.code)) return;
    // A link that rejects every packet would otherwise make each send hop to
    // the next channel; at most one hop per check interval is plenty.
    const t = this.now();
    if (t - this.lastSendErrorFailover < this.intervalMs) return;
    this.lastSendErrorFailover = t;
    this.failover('send-error', err.code);
  }

  /** Round-robin from the active channel to the next one whose link is up. */
  private failover(reason: 'link-down' | 'send-error', detail: string | undefined): void {
    const n = this.list.length;
    for (let step = 1; step < n; step++) {
      const i = (this.activeIndex + step) % n;
      // Fresh read: after a send error the cached states may be a second old.
      this.links[i] = this.probe(i);
      if (this.links[i] !== 'up') continue;
      this.counters.failovers++;
      this.switchTo(i, reason, { detail });
      return;
    }
    if (this.stranded) return;
    this.stranded = true;
    this.log('error', 'sync link failed and no other link is up; still transmitting on it', {
      channel: this.active,
      reason,
      detail,
    });
  }

  private switchTo(i: number, reason: ActiveChangeReason, info: { detail?: string | undefined }): void {
    const previous = this.active;
    this.activeIndex = i;
    this.stranded = false;
    const detail = info.detail;
    this.log(reason === 'peer-moved' ? 'info' : 'warn', 'sync channel active', {
      channel: this.active,
      previous,
      reason,
      ...(detail === undefined ? {} : { detail }),
    });
    this.notify(reason, detail === undefined ? { previous } : { previous, detail });
  }

  private notify(reason: ActiveChangeReason, info: ActiveChangeInfo): void {
    try {
      this.opts.onActiveChange?.(this.active, reason, info);
    } catch (err) {
      this.log('error', 'onActiveChange listener threw', { error: String(err) });
    }
  }

  private deliver(buf: Buffer, from: DatagramSource, ch: SyncChannel): void {
    for (const cb of this.listeners) {
      try {
        cb(buf, from, ch);
      } catch (err) {
        this.log('error', 'sync datagram listener threw', { channel: ch.name, error: String(err) });
      }
    }
  }
}
