// The socket plumbing both real channels share: bind with a typed error,
// socket buffers with a report of what the kernel granted, counted sends,
// and receive callbacks that can never throw into the event loop.
import dgram from 'node:dgram';
import {
  type ChannelCounters,
  ChannelError,
  type ChannelKind,
  type ChannelLog,
  type DatagramListener,
  type SendErrorListener,
  type SyncChannel,
} from './channel.js';
import { linkUp } from './iface.js';

export interface DgramChannelCounters extends ChannelCounters {
  /** Multicast datagrams dropped because their source is one of our own addresses. */
  droppedOwnSource: number;
  /** UDP datagrams dropped because their source is not one of the channel's peers. */
  droppedNotPeer: number;
}

/** SO_SNDBUF/SO_RCVBUF as getsockopt reports them: Linux doubles the request and caps it at [wr]mem_max. */
export interface BufferGrant {
  sendBufferBytes: number;
  receiveBufferBytes: number;
}

/**
 * The part of node:dgram's Socket the channels use. The real socket is the
 * default; a test hands in one that fails, or answers, as loopback cannot.
 */
export interface ChannelSocket {
  on(event: 'message', listener: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  removeListener(event: 'error', listener: (err: Error) => void): unknown;
  bind(port: number, address: string, callback: () => void): unknown;
  close(callback: () => void): unknown;
  address(): { port: number };
  send(msg: Buffer, port: number, address: string, callback: (err: Error | null) => void): void;
  setSendBufferSize(bytes: number): void;
  setRecvBufferSize(bytes: number): void;
  getSendBufferSize(): number;
  getRecvBufferSize(): number;
  addMembership(group: string, iface: string): void;
  setMulticastInterface(iface: string): void;
  setMulticastTTL(ttl: number): unknown;
  setMulticastLoopback(on: boolean): unknown;
}

export interface SocketOptions {
  type: 'udp4' | 'udp6';
  reuseAddr: boolean;
}

export type SocketFactory = (options: SocketOptions) => ChannelSocket;

/** The default SocketFactory: a real socket. */
export function createDgramSocket(options: SocketOptions): ChannelSocket {
  return dgram.createSocket(options);
}

type State = 'new' | 'starting' | 'open' | 'closed';

export abstract class DgramChannel implements SyncChannel {
  abstract readonly kind: ChannelKind;
  abstract readonly interfaceName: string | undefined;
  readonly counters: DgramChannelCounters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendErrors: 0,
    receiveErrors: 0,
    droppedOwnSource: 0,
    droppedNotPeer: 0,
  };
  /** Known once start() has resolved. */
  granted: BufferGrant | undefined;
  protected readonly log: ChannelLog;
  private socket: ChannelSocket | undefined;
  private state: State = 'new';
  private readonly datagramListeners: DatagramListener[] = [];
  private readonly sendErrorListeners: SendErrorListener[] = [];
  /** Last send failed; a run of failures is logged once at warn. */
  private sendFailing = false;

  private readonly createSocket: SocketFactory;

  constructor(
    readonly name: string,
    log: ChannelLog | undefined,
    createSocket: SocketFactory | undefined,
  ) {
    this.log = log ?? (() => {});
    this.createSocket = createSocket ?? createDgramSocket;
  }

  abstract start(): Promise<void>;
  abstract send(datagram: Buffer): void;

  onDatagram(cb: DatagramListener): void {
    this.datagramListeners.push(cb);
  }

  onSendError(cb: SendErrorListener): void {
    this.sendErrorListeners.push(cb);
  }

  /** The local port the socket is bound to (port 0 picks one); undefined while closed. */
  get boundPort(): number | undefined {
    return this.socket?.address().port;
  }

  isLinkUp(): boolean {
    return linkUp(this.interfaceName);
  }

  async close(): Promise<void> {
    this.state = 'closed';
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) await closeSocket(socket);
  }

  /** Subclasses call this first in start(). */
  protected beginStart(): void {
    if (this.state !== 'new')
      throw new ChannelError('ECHANNEL_CONFIG', this.name, `channel ${this.name} was started before`);
    this.state = 'starting';
  }

  /** The socket is fully set up: deliver and send from now on. */
  protected markOpen(): void {
    if (this.state === 'starting') this.state = 'open';
  }

  /** Called by a subclass whose setup failed after binding, so start() leaves nothing open. */
  protected async abortStart(err: ChannelError): Promise<never> {
    await this.close();
    throw err;
  }

  protected async bindSocket(
    type: 'udp4' | 'udp6',
    address: string,
    port: number,
    reuseAddr: boolean,
  ): Promise<ChannelSocket> {
    const socket = this.createSocket({ type, reuseAddr });
    // Listeners go on before bind so no early datagram or error escapes unhandled.
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(port, address, () => {
          socket.removeListener('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await closeSocket(socket);
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      const message = `sync channel ${this.name}: cannot bind ${address} port ${port}: ${code}`;
      throw new ChannelError('ECHANNEL_BIND', this.name, message, { cause: err });
    }
    socket.on('error', (err) => this.onSocketError(err));
    if (this.state === 'closed') {
      // close() ran while bind was in flight.
      await closeSocket(socket);
      throw new ChannelError('ECHANNEL_BIND', this.name, `sync channel ${this.name} was closed while starting`);
    }
    this.socket = socket;
    return socket;
  }

  /** Best effort: a refused size is logged, not fatal, since the default still works at low rates. */
  protected applyBuffers(socket: ChannelSocket, sendBytes: number | undefined, receiveBytes: number | undefined): void {
    try {
      if (sendBytes !== undefined) socket.setSendBufferSize(sendBytes);
      if (receiveBytes !== undefined) socket.setRecvBufferSize(receiveBytes);
    } catch (err) {
      this.log('warn', 'sync channel socket buffer size refused', { channel: this.name, error: String(err) });
    }
    const granted = { sendBufferBytes: socket.getSendBufferSize(), receiveBufferBytes: socket.getRecvBufferSize() };
    this.granted = granted;
    // Node cannot use SO_RCVBUFFORCE, so the sysctl caps apply even to root.
    if (receiveBytes !== undefined && granted.receiveBufferBytes < 2 * receiveBytes) {
      this.log('warn', 'kernel capped the sync receive buffer; raise net.core.rmem_max', {
        channel: this.name,
        requested: receiveBytes,
        granted: granted.receiveBufferBytes / 2,
      });
    }
    if (sendBytes !== undefined && granted.sendBufferBytes < 2 * sendBytes) {
      this.log('warn', 'kernel capped the sync send buffer; raise net.core.wmem_max', {
        channel: this.name,
        requested: sendBytes,
        granted: granted.sendBufferBytes / 2,
      });
    }
  }

  /** Datagrams from these sources are dropped and counted, not delivered. Subclasses override. */
  protected isOwnSource(_address: string): boolean {
    return false;
  }

  /** Datagrams from other sources are dropped and counted (droppedNotPeer). Subclasses override. */
  protected isPeerSource(_address: string): boolean {
    return true;
  }

  protected transmit(datagram: Buffer, port: number, address: string): void {
    const socket = this.socket;
    if (socket === undefined || this.state !== 'open') {
      this.counters.sendErrors++;
      return;
    }
    try {
      socket.send(datagram, port, address, (err) => {
        if (err) this.onSendFailure(err, address);
        else this.onSendSuccess(datagram.length);
      });
    } catch (err) {
      this.onSendFailure(err as Error, address);
    }
  }

  private onSendSuccess(bytes: number): void {
    this.counters.datagramsSent++;
    this.counters.bytesSent += bytes;
    if (this.sendFailing) {
      this.sendFailing = false;
      this.log('info', 'sync channel sends again', { channel: this.name });
    }
  }

  private onSendFailure(err: Error, destination: string): void {
    this.counters.sendErrors++;
    const e = err as NodeJS.ErrnoException;
    if (!this.sendFailing) {
      this.sendFailing = true;
      this.log('warn', 'sync channel send failed', { channel: this.name, destination, error: e.code ?? e.message });
    }
    for (const cb of this.sendErrorListeners) {
      try {
        cb(e);
      } catch (listenerErr) {
        this.log('error', 'sync send-error listener threw', { channel: this.name, error: String(listenerErr) });
      }
    }
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.state !== 'open') return;
    if (this.isOwnSource(rinfo.address)) {
      this.counters.droppedOwnSource++;
      return;
    }
    if (!this.isPeerSource(rinfo.address)) {
      this.counters.droppedNotPeer++;
      return;
    }
    this.counters.datagramsReceived++;
    this.counters.bytesReceived += msg.length;
    const from = { address: rinfo.address, port: rinfo.port };
    for (const cb of this.datagramListeners) {
      try {
        cb(msg, from);
      } catch (err) {
        this.counters.receiveErrors++;
        this.log('error', 'sync datagram listener threw', { channel: this.name, error: String(err) });
      }
    }
  }

  private onSocketError(err: Error): void {
    this.counters.receiveErrors++;
    this.log('warn', 'sync channel socket error', {
      channel: this.name,
      error: (err as NodeJS.ErrnoException).code ?? err.message,
    });
  }
}

function closeSocket(socket: ChannelSocket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      // Already closed (ERR_SOCKET_DGRAM_NOT_RUNNING).
      resolve();
    }
  });
}
