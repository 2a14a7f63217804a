// Subscription to ctnetlink's multicast groups. Each event is decoded,
// classified (new/update/destroy) and tagged with whether one of our own
// sockets caused it, so the daemon never replicates its own commits back.
import {
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  IPCTNL_MSG_EXP_DELETE,
  IPCTNL_MSG_EXP_NEW,
  NFNL_SUBSYS_CTNETLINK,
  NFNL_SUBSYS_CTNETLINK_EXP,
  NFNLGRP_CONNTRACK_DESTROY,
  NFNLGRP_CONNTRACK_EXP_DESTROY,
  NFNLGRP_CONNTRACK_EXP_NEW,
  NFNLGRP_CONNTRACK_EXP_UPDATE,
  NFNLGRP_CONNTRACK_NEW,
  NFNLGRP_CONNTRACK_UPDATE,
  NLM_F_CREATE,
  NLM_F_EXCL,
} from './constants.js';
import { dropPortidsFilter } from './bpf.js';
import { decodeConntrack, decodeExpect } from './ct-codec.js';
import { decodeConntrackRecord, REC_OK, type RecordBuf, recordBuf } from './ct-record.js';
import type { ConntrackEntry, ExpectEntry } from './entry.js';
import { type DecodeError, parseNetlink } from './netlink-codec.js';
import { NetlinkSocket } from './netlink-socket.js';
import type { NetlinkReceiver, NetlinkTransport, TransportFactory } from './transport.js';

export type EventType = 'new' | 'update' | 'destroy';

export interface ConntrackEvent {
  type: EventType;
  entry: ConntrackEntry;
  /** nlmsg_pid: the port id of the socket whose request caused the change, 0 for packets. */
  pid: number;
  /** True when pid belongs to one of our own sockets (see addOwnPortid). */
  own: boolean;
}

export interface ExpectEvent {
  type: EventType;
  entry: ExpectEntry;
  pid: number;
  own: boolean;
}

export interface EventHandlers {
  onEvent(ev: ConntrackEvent): void;
  /**
   * A conntrack event decoded straight into a record (src/kernel/ct-record.ts)
   * at `r.w[at]`, valid until this call returns. With this handler, events
   * of the common shape come here and only the others reach onEvent().
   */
  onRecordEvent?(type: EventType, r: RecordBuf, at: number, own: boolean): void;
  onExpectEvent?(ev: ExpectEvent): void;
  /** The kernel dropped events for us (ENOBUFS): the cache must be reconciled by a dump. */
  onOverrun(): void;
  /** The event queue was read empty (see NetlinkReceiver.onEmpty). */
  onEmpty?(): void;
  onDecodeError?(e: DecodeError): void;
}

export interface EventCounters {
  new: number;
  update: number;
  destroy: number;
  expectNew: number;
  expectUpdate: number;
  expectDestroy: number;
  own: number;
  overruns: number;
  decodeErrors: number;
  unknown: number;
  receiveErrors: number;
}

export interface EventsOptions {
  netns?: string | undefined;
  transportFactory?: TransportFactory;
  receiveBufferBytes?: number;
  expectations?: boolean;
}

const ENOBUFS = 105;
const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
const EXP_NEW = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW;
const EXP_DELETE = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_DELETE;

export class ConntrackEvents implements NetlinkReceiver {
  readonly counters: EventCounters = {
    new: 0,
    update: 0,
    destroy: 0,
    expectNew: 0,
    expectUpdate: 0,
    expectDestroy: 0,
    own: 0,
    overruns: 0,
    decodeErrors: 0,
    unknown: 0,
    receiveErrors: 0,
  };
  readonly transport: NetlinkTransport;
  private readonly ownPortids = new Set<number>();
  private ownFilterActive = false;
  private handlers: EventHandlers | undefined;
  private receiveBufferBytes: number;
  /** Where events of the common shape are decoded, one at a time (see EventHandlers.onRecordEvent). */
  private readonly record: RecordBuf = recordBuf(1);

  constructor(opts: EventsOptions = {}) {
    const factory = opts.transportFactory ?? ((o) => new NetlinkSocket(o));
    const groups = [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY];
    if (opts.expectations)
      groups.push(NFNLGRP_CONNTRACK_EXP_NEW, NFNLGRP_CONNTRACK_EXP_UPDATE, NFNLGRP_CONNTRACK_EXP_DESTROY);
    this.transport = factory({ netns: opts.netns, groups, receiveBufferBytes: opts.receiveBufferBytes });
    this.receiveBufferBytes = opts.receiveBufferBytes ?? 0;
  }

  /** Starts delivering events. Open this before the initial dump so nothing falls between. */
  start(handlers: EventHandlers): void {
    this.handlers = handlers;
    this.transport.setReceiver(this);
  }

  /**
   * Events carrying this port id are ours (commit, inject and purge sockets).
   * The kernel drops them before queueing (a socket filter), so our own bulk
   * writes cannot overrun this socket; any that slip through (a filter the
   * kernel refused) are still flagged `own`.
   */
  addOwnPortid(portid: number): void {
    this.ownPortids.add(portid);
    try {
      this.transport.setFilter(dropPortidsFilter([...this.ownPortids]));
      this.ownFilterActive = true;
    } catch {
      this.ownFilterActive = false;
    }
  }

  /** Whether the kernel filters our own events out before queueing them. */
  get ownEventsFiltered(): boolean {
    return this.ownFilterActive;
  }

  /** Grows the receive buffer (e.g. after an overrun); returns what the kernel granted. */
  resizeReceiveBuffer(bytes: number): number {
    this.receiveBufferBytes = this.transport.setReceiveBuffer(bytes);
    return this.receiveBufferBytes;
  }

  get receiveBuffer(): number {
    return this.receiveBufferBytes;
  }

  close(): void {
    this.transport.close();
  }

  onData(buf: Buffer, start: number, end: number): void {
    const h = this.handlers;
    if (!h) return;
    const { messages, error } = parseNetlink(buf, start, end);
    const c = this.counters;
    for (const msg of messages) {
      const own = msg.pid !== 0 && this.ownPortids.has(msg.pid);
      if (own) c.own++;
      if (msg.type === CT_NEW || msg.type === CT_DELETE) {
        const type: EventType =
          msg.type === CT_DELETE ? 'destroy' : msg.flags & (NLM_F_CREATE | NLM_F_EXCL) ? 'new' : 'update';
        if (h.onRecordEvent !== undefined && decodeConntrackRecord(msg.payload, this.record, 0) === REC_OK) {
          c[type]++;
          h.onRecordEvent(type, this.record, 0, own);
          continue;
        }
        const r = decodeConntrack(msg);
        if (!r.ok) {
          c.decodeErrors++;
          h.onDecodeError?.(r.error);
          continue;
        }
        c[type]++;
        h.onEvent({ type, entry: r.value, pid: msg.pid, own });
      } else if (msg.type === EXP_NEW || msg.type === EXP_DELETE) {
        const r = decodeExpect(msg);
        if (!r.ok) {
          c.decodeErrors++;
          h.onDecodeError?.(r.error);
          continue;
        }
        let type: EventType;
        if (msg.type === EXP_DELETE) {
          type = 'destroy';
          c.expectDestroy++;
        } else if (msg.flags & (NLM_F_CREATE | NLM_F_EXCL)) {
          type = 'new';
          c.expectNew++;
        } else {
          type = 'update';
          c.expectUpdate++;
        }
        h.onExpectEvent?.({ type, entry: r.value, pid: msg.pid, own });
      } else {
        c.unknown++;
      }
    }
    if (error) {
      c.decodeErrors++;
      h.onDecodeError?.(error);
    }
  }

  onEmpty(): void {
    this.handlers?.onEmpty?.();
  }

  onError(errno: number): void {
    if (errno === ENOBUFS) {
      this.counters.overruns++;
      this.handlers?.onOverrun();
      return;
    }
    this.counters.receiveErrors++;
  }
}
