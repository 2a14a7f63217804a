// The seam between ctnetlink logic and the socket that carries it. The real
// implementation is NetlinkSocket (native addon); FakeKernel hands out fake
// ones for unit tests. Both deliver whole nlmsg streams.

export interface NetlinkReceiver {
  /** A batch of back-to-back nlmsgs in buf[start, end). Valid only during the call. */
  onData(buf: Buffer, start: number, end: number): void;
  /** A receive error: ENOBUFS means the kernel dropped messages for us (overrun). */
  onError(errno: number): void;
  /**
   * The receive queue was read empty. After an overrun the kernel reports no
   * further drops until this point (its congestion flag clears on an empty
   * queue), so this is when a reconciling dump can start without silent loss.
   */
  onEmpty?(): void;
}

export interface NetlinkTransport {
  /** The kernel-assigned netlink port id: events we cause carry it as nlmsg_pid. */
  readonly portid: number;
  /** Read-ahead figures, when TransportOptions.readAheadBytes turned it on. */
  readonly readAhead?: ReadAheadCounters | undefined;
  setReceiver(receiver: NetlinkReceiver): void;
  /** One sendmsg of everything in data. Returns 0 or a positive errno. */
  send(data: Buffer): number;
  /**
   * send() off the calling thread: done(errno) runs on the event loop once
   * the kernel has handled data (a netlink request runs inside sendmsg), so
   * the caller can prepare the next request meanwhile. data must not be
   * written to before done.
   */
  sendAsync(data: Buffer, done: (errno: number) => void): void;
  /** Reads and dispatches whatever is queued right now, synchronously. */
  drain(): void;
  joinGroup(group: number): void;
  leaveGroup(group: number): void;
  /** Asks for a receive buffer; returns what the kernel granted. */
  setReceiveBuffer(bytes: number): number;
  setSendBuffer(bytes: number): number;
  /** NETLINK_NO_ENOBUFS: trade overrun reports for silence. Off by default. */
  setNoEnobufs(on: boolean): void;
  /**
   * NETLINK_BROADCAST_ERROR: the kernel learns that an event could not be
   * queued for us, and ctnetlink then keeps and redelivers it (reliable
   * event delivery, with setNoEnobufs). Off by default.
   */
  setBroadcastError(on: boolean): void;
  /**
   * Attaches a classic BPF socket filter (see bpf.ts); an empty program
   * detaches it. The kernel applies it before queueing, so dropped messages
   * cost no buffer space.
   */
  setFilter(program: Buffer): void;
  /** Whether a live receive poll keeps the process alive. */
  ref(on: boolean): void;
  close(): void;
}

export interface TransportOptions {
  /** Path of a network namespace file (e.g. /var/run/netns/NAME) to open the socket in. */
  netns?: string | undefined;
  /** Multicast group numbers to join at once. */
  groups?: number[];
  receiveBufferBytes?: number;
  sendBufferBytes?: number;
  /**
   * Bytes read per dispatch (one JS call with whatever datagrams fit). Large
   * for the event socket (many small events per call); small for a socket
   * that receives dumps, whose datagrams each carry ~150 entries: a 1 MiB
   * read of a dump is ~5000 entries decoded in one turn of the event loop,
   * which holds back everything else, a starting daemon's control socket
   * included.
   */
  batchBytes?: number;
  /**
   * Read the queue ahead of handling it, holding up to this many bytes of
   * messages: for the event socket, so that a burst waits in our memory
   * rather than overrunning the kernel's queue. A reader thread of the
   * addon's does it (ring-reader.ts), or the event loop where the thread
   * cannot be started (read-ahead.ts). 0 or absent: each read is handled at
   * once, on the event loop.
   */
  readAheadBytes?: number;
  /**
   * Once a read has emptied the queue, wait this long before polling again
   * (the event socket, kernel.eventCoalesceMs): at a modest event rate each
   * wake-up would otherwise carry one event, and a wake-up costs more than
   * the event. 0 or absent: poll again at once.
   */
  coalesceMs?: number;
}

export type TransportFactory = (opts: TransportOptions) => NetlinkTransport;

/** What read-ahead (read-ahead.ts) has done on one socket. */
export interface ReadAheadCounters {
  /** The bound (TransportOptions.readAheadBytes). */
  limitBytes: number;
  /** Bytes held now, and the most ever held. */
  heldBytes: number;
  maxHeldBytes: number;
  /** Times reading stopped because `limit` was reached. */
  limitReached: number;
}
