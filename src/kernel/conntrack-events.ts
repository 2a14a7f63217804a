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
  NLMSG_HDRLEN,
} from './constants.js';
import { dropPortidsFilter } from './bpf.js';
import { errorMessage } from '../common/errors.js';
import { compileEventFilter, type EventFilterRule, type EventFilterRules, eventFilterRuleNames } from './event-filter.js';
import { decodeConntrack, decodeExpect } from './ct-codec.js';
import { decodeConntrackRecord, REC_OK, type RecordBuf, recordBuf } from './ct-record.js';
import type { ConntrackEntry, ExpectEntry } from './entry.js';
import {
  align4,
  type DecodeError,
  hostU16,
  hostU32,
  type NlMessage,
  nlMessageAt,
  nlMessageObject,
  nlWalkError,
} from './netlink-codec.js';
import { NetlinkSocket } from './netlink-socket.js';
import type { ReadAheadCounters } from './read-ahead.js';
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

/**
 * A second reader of the conntrack events (the flow log): it gets each
 * event's raw message, not caused by our own sockets, before the cache does.
 * Called on the hot path: it must copy what it keeps and return at once.
 */
export interface EventTap {
  /** The message is `buf[start, start + len)`, valid only during the call. */
  onConntrackMessage(kind: EventType, buf: Buffer, start: number, len: number): void;
  /** The end of one read's messages: a tap that hands them on elsewhere does it once here, not per message. */
  endOfBatch?(): void;
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
  /** Bytes of events read ahead of handling them at most (TransportOptions.readAheadBytes); 0: none. */
  readAheadBytes?: number;
  /** TransportOptions.coalesceMs: after a read that emptied the queue, the next poll waits this long. */
  coalesceMs?: number;
  expectations?: boolean;
  /**
   * Reliable delivery (conntrackd's NetlinkEventsReliable): with
   * NETLINK_BROADCAST_ERROR the kernel keeps an event it could not queue and
   * delivers it again, and NETLINK_NO_ENOBUFS stops the overrun reports,
   * which then mean nothing was lost.
   */
  reliable?: boolean;
  /**
   * The cache filter's rules, to drop in the kernel the events it would do
   * nothing with (event-filter.ts says which). Without them only our own
   * events are dropped there.
   */
  filterRules?: EventFilterRules | undefined;
}

/** What the event socket's kernel filter does; it is only ever an optimisation of the userspace filter. */
export interface KernelFilterStatus {
  /** A program is attached to the event socket. */
  attached: boolean;
  /** Filter rules that program applies (to the events where that is safe). */
  rules: EventFilterRule[];
  /** Filter rules applied in userspace only: the program would not fit, or the kernel refused it. */
  userspaceOnly: EventFilterRule[];
  /** Length of the attached program. */
  instructions: number;
  /** Why the kernel refused the full program, when it did. */
  refused?: string;
}

const ENOBUFS = 105;
const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
const EXP_NEW = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW;
const EXP_DELETE = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_DELETE;

/** A conntrack message's event kind: DELETE is a destroy, NEW with CREATE or EXCL a new entry, any other NEW an update. */
function eventType(type: number, flags: number): EventType {
  return type === CT_DELETE ? 'destroy' : flags & (NLM_F_CREATE | NLM_F_EXCL) ? 'new' : 'update';
}

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
  private readonly filterRules: EventFilterRules | undefined;
  private filterStatus: KernelFilterStatus = { attached: false, rules: [], userspaceOnly: [], instructions: 0 };
  private handlers: EventHandlers | undefined;
  private receiveBufferBytes: number;
  /** Where events of the common shape are decoded, one at a time (see EventHandlers.onRecordEvent). */
  private readonly record: RecordBuf = recordBuf(1);
  /** The flow log's copy of the events; undefined (one check per message) when there is none. */
  private tap: EventTap | undefined;

  constructor(opts: EventsOptions = {}) {
    const factory = opts.transportFactory ?? ((o) => new NetlinkSocket(o));
    const groups = [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY];
    if (opts.expectations)
      groups.push(NFNLGRP_CONNTRACK_EXP_NEW, NFNLGRP_CONNTRACK_EXP_UPDATE, NFNLGRP_CONNTRACK_EXP_DESTROY);
    this.transport = factory({
      netns: opts.netns,
      groups,
      receiveBufferBytes: opts.receiveBufferBytes,
      readAheadBytes: opts.readAheadBytes,
      coalesceMs: opts.coalesceMs,
    });
    this.receiveBufferBytes = opts.receiveBufferBytes ?? 0;
    if (opts.reliable) {
      this.transport.setBroadcastError(true);
      this.transport.setNoEnobufs(true);
    }
    this.filterRules = opts.filterRules;
    // From the start: the initial dump runs while events queue up.
    if (this.filterRules) this.attachFilter();
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
    this.attachFilter();
  }

  /** Whether the kernel filters our own events out before queueing them. */
  get ownEventsFiltered(): boolean {
    return this.ownFilterActive;
  }

  /** What the kernel filter carries; a copy. */
  get kernelFilter(): KernelFilterStatus {
    const s = this.filterStatus;
    return { ...s, rules: [...s.rules], userspaceOnly: [...s.userspaceOnly] };
  }

  /**
   * Attaches the program for our port ids and the filter rules. If the
   * kernel refuses it (optmem_max is what a long program can exceed), the
   * port ids alone are tried; a refused filter costs CPU, never an event,
   * since userspace applies every rule and recognises our port ids anyway.
   */
  private attachFilter(): void {
    const portids = [...this.ownPortids];
    let refused: string | undefined;
    const given: EventFilterRule[] = this.filterRules ? eventFilterRuleNames(this.filterRules) : [];
    try {
      const c = compileEventFilter(portids, this.filterRules);
      this.transport.setFilter(c.program);
      this.ownFilterActive = portids.length > 0;
      this.filterStatus = { attached: true, rules: c.rules, userspaceOnly: c.userspaceOnly, instructions: c.instructions };
      return;
    } catch (e) {
      refused = errorMessage(e);
    }
    if (portids.length > 0) {
      try {
        const program = dropPortidsFilter(portids);
        this.transport.setFilter(program);
        this.ownFilterActive = true;
        this.filterStatus = { attached: true, rules: [], userspaceOnly: given, instructions: program.length / 8, refused };
        return;
      } catch {
        // Not even that: userspace does it all.
      }
    }
    this.ownFilterActive = false;
    this.filterStatus = { attached: false, rules: [], userspaceOnly: given, instructions: 0, refused };
  }

  /** Hands every conntrack event not of our own making to `tap` too (see EventTap). */
  setTap(tap: EventTap | undefined): void {
    this.tap = tap;
  }

  /** Grows the receive buffer (e.g. after an overrun); returns what the kernel granted. */
  resizeReceiveBuffer(bytes: number): number {
    this.receiveBufferBytes = this.transport.setReceiveBuffer(bytes);
    return this.receiveBufferBytes;
  }

  /** Events read ahead of handling (read-ahead.ts): undefined when off. */
  get readAhead(): ReadAheadCounters | undefined {
    const r = this.transport.readAhead;
    return r === undefined ? undefined : { ...r };
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
    const c = this.counters;
    // Walked in place: events of the common shape cost no object at all.
    for (let pos = start; pos < end; ) {
      const len = nlMessageAt(buf, pos, end);
      if (len < 0) {
        c.decodeErrors++;
        h.onDecodeError?.(nlWalkError(buf, pos, end, len));
        break;
      }
      const type = hostU16(buf, pos + 4);
      const flags = hostU16(buf, pos + 6);
      const pid = hostU32(buf, pos + 12);
      const own = pid !== 0 && this.ownPortids.has(pid);
      if (own) c.own++;
      const tap = this.tap;
      if (tap !== undefined && !own && (type === CT_NEW || type === CT_DELETE))
        tap.onConntrackMessage(eventType(type, flags), buf, pos, len);
      if (
        (type === CT_NEW || type === CT_DELETE) &&
        h.onRecordEvent !== undefined &&
        decodeConntrackRecord(buf, this.record, 0, pos + NLMSG_HDRLEN, pos + len) === REC_OK
      ) {
        const kind = eventType(type, flags);
        c[kind]++;
        h.onRecordEvent(kind, this.record, 0, own);
      } else {
        this.onMessage(h, nlMessageObject(buf, pos, len), own);
      }
      // The last message of a datagram may lack its alignment padding.
      pos += align4(len);
    }
    this.tap?.endOfBatch?.();
  }

  /** An event not of the common shape (or without onRecordEvent), as objects. */
  private onMessage(h: EventHandlers, msg: NlMessage, own: boolean): void {
    const c = this.counters;
    if (msg.type === CT_NEW || msg.type === CT_DELETE) {
      const type = eventType(msg.type, msg.flags);
      const r = decodeConntrack(msg);
      if (!r.ok) {
        c.decodeErrors++;
        h.onDecodeError?.(r.error);
        return;
      }
      c[type]++;
      h.onEvent({ type, entry: r.value, pid: msg.pid, own });
    } else if (msg.type === EXP_NEW || msg.type === EXP_DELETE) {
      const r = decodeExpect(msg);
      if (!r.ok) {
        c.decodeErrors++;
        h.onDecodeError?.(r.error);
        return;
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
