// Unicast UDP: bound to a local address, every datagram goes to each peer.
// For sync networks that do not pass multicast, or more than two nodes
// without IGMP snooping. Only datagrams whose source address is one of the
// configured peers are delivered (the rest are counted, droppedNotPeer);
// the daemon's decoder, cluster id and authentication then decide what of
// those is accepted. A source address is no proof of anything on a shared
// segment, but it keeps the rest of the network off the decoder.
import { isIP } from 'node:net';
import { canonicalAddress } from '../../common/address.js';
import { ChannelError, type ChannelLog } from './channel.js';
import { DgramChannel, type SocketFactory } from './dgram-channel.js';
import { interfaceOfAddress } from './iface.js';

export interface UdpChannelOptions {
  /** Default `udp:<bind>`. */
  name?: string;
  bind: string;
  /** Local port and every peer's port. */
  port: number;
  peers: readonly string[];
  /** Link to watch for failover. Default: the interface that holds `bind`, looked up at start. */
  interface?: string;
  sendBufferBytes?: number;
  receiveBufferBytes?: number;
  log?: ChannelLog;
  /** Default: node:dgram's createSocket. */
  createSocket?: SocketFactory;
}

export class UdpChannel extends DgramChannel {
  readonly kind = 'udp' as const;
  private iface: string | undefined;
  private readonly peers: readonly string[];
  /** The peers' addresses as canonicalAddress() spells them, for isPeerSource(). */
  private readonly peerSet: ReadonlySet<string>;

  constructor(private readonly opts: UdpChannelOptions) {
    const name = opts.name ?? `udp:${opts.bind}`;
    super(name, opts.log, opts.createSocket);
    const family = isIP(opts.bind);
    if (family === 0) throw new ChannelError('ECHANNEL_CONFIG', name, `bind address ${opts.bind} is not an IP address`);
    if (opts.peers.length === 0)
      throw new ChannelError('ECHANNEL_CONFIG', name, 'a UDP channel needs at least one peer');
    for (const peer of opts.peers) {
      if (isIP(peer) !== family) {
        throw new ChannelError(
          'ECHANNEL_CONFIG',
          name,
          `peer ${peer} is not an IPv${family} address like ${opts.bind}`,
        );
      }
    }
    this.peers = [...opts.peers];
    this.peerSet = new Set(opts.peers.map(canonicalAddress));
    this.iface = opts.interface;
  }

  get interfaceName(): string | undefined {
    return this.iface;
  }

  async start(): Promise<void> {
    this.beginStart();
    const { bind, port } = this.opts;
    this.iface ??= await interfaceOfAddress(bind);
    const socket = await this.bindSocket(isIP(bind) === 4 ? 'udp4' : 'udp6', bind, port, false);
    this.applyBuffers(socket, this.opts.sendBufferBytes, this.opts.receiveBufferBytes);
    this.markOpen();
    this.log('info', 'udp sync channel open', {
      channel: this.name,
      bind,
      port,
      peers: this.peers,
      interface: this.iface ?? null,
      ...this.granted,
    });
  }

  protected override isPeerSource(address: string): boolean {
    // The common case without a string made: IPv4 sources come as dotted quads like the config's.
    return this.peerSet.has(address) || this.peerSet.has(canonicalAddress(address));
  }

  send(datagram: Buffer): void {
    for (const peer of this.peers) this.transmit(datagram, this.opts.port, peer);
  }
}
