// An in-memory sync link for unit tests of whole daemons: every channel
// joined to a MemoryLink receives what the others send, asynchronously, as a
// multicast segment would deliver it. Implements the real SyncChannel.
import type { ChannelCounters, DatagramListener, SyncChannel } from './channel.js';

export class MemoryLink {
  private readonly members = new Set<MemoryChannel>();
  /** Decides per datagram whether it is delivered (true) or lost. */
  deliver: (from: string, to: string) => boolean = () => true;

  channel(name: string): MemoryChannel {
    return new MemoryChannel(this, name);
  }

  /** @internal */
  join(c: MemoryChannel): void {
    this.members.add(c);
  }

  /** @internal */
  leave(c: MemoryChannel): void {
    this.members.delete(c);
  }

  /** @internal */
  broadcast(from: MemoryChannel, datagram: Buffer): void {
    for (const m of this.members) {
      if (m === from || !this.deliver(from.name, m.name)) continue;
      const copy = Buffer.from(datagram);
      setImmediate(() => m.receive(copy, from.name));
    }
  }
}

export class MemoryChannel implements SyncChannel {
  readonly kind = 'multicast' as const;
  readonly interfaceName = undefined;
  readonly counters: ChannelCounters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendErrors: 0,
    receiveErrors: 0,
  };
  private readonly listeners: DatagramListener[] = [];
  private open = false;

  constructor(
    private readonly link: MemoryLink,
    readonly name: string,
  ) {}

  async start(): Promise<void> {
    this.open = true;
    this.link.join(this);
  }

  send(datagram: Buffer): void {
    if (!this.open) {
      this.counters.sendErrors++;
      return;
    }
    this.counters.datagramsSent++;
    this.counters.bytesSent += datagram.length;
    this.link.broadcast(this, datagram);
  }

  onDatagram(cb: DatagramListener): void {
    this.listeners.push(cb);
  }

  isLinkUp(): boolean {
    return this.open;
  }

  async close(): Promise<void> {
    this.open = false;
    this.link.leave(this);
  }

  /** @internal */
  receive(datagram: Buffer, from: string): void {
    if (!this.open) return;
    this.counters.datagramsReceived++;
    this.counters.bytesReceived += datagram.length;
    for (const l of this.listeners) l(datagram, { address: from, port: 0 });
  }
}
