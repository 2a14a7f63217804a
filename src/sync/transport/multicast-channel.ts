// Multicast on one dedicated link, IPv4 or IPv6. One socket both sends and
// receives. It is bound to the group address, not the wildcard: Linux
// defaults IP_MULTICAST_ALL to 1 and Node cannot clear it, so a wildcard
// socket would also get every group any other socket on the host joined.
// Binding to the group filters by destination instead. Membership and the
// outgoing interface are both pinned to the configured link, so neither a
// multicast route nor the routing table's choice of interface matters.
import { isIP } from 'node:net';
import { canonicalAddress, type IpFamily, isMulticast, normaliseAddress } from '../../common/address.js';
import { ChannelError, type ChannelLog } from './channel.js';
import { DgramChannel, type SocketFactory } from './dgram-channel.js';
import { type AddressResolver, interfaceExists, resolveInterfaceAddresses } from './iface.js';

export interface MulticastChannelOptions {
  /** Default: the interface name, as conntrackd's "device=" shows it. */
  name?: string;
  group: string;
  port: number;
  interface: string;
  sendBufferBytes?: number;
  receiveBufferBytes?: number;
  /**
   * Drop datagrams whose source address is one of the interface's own.
   * Loopback is off, so this only matters if something re-enables it.
   * Default true.
   */
  dropOwnSource?: boolean;
  log?: ChannelLog;
  /** Default: os.networkInterfaces() with fallbacks for links that are down. */
  resolveAddresses?: AddressResolver;
  /** Default: node:dgram's createSocket. */
  createSocket?: SocketFactory;
}

export class MulticastChannel extends DgramChannel {
  readonly kind = 'multicast' as const;
  readonly family: IpFamily;
  /** The interface address used for membership and sending; known after start(). */
  localAddress: string | undefined;
  private readonly ownAddresses = new Set<string>();
  /** Where send() goes: the group, with a zone for IPv6 so link-local groups leave on our link. */
  private readonly destination: string;

  constructor(private readonly opts: MulticastChannelOptions) {
    const name = opts.name ?? opts.interface;
    super(name, opts.log, opts.createSocket);
    const family = isIP(opts.group);
    if (!isMulticast(opts.group)) {
      throw new ChannelError('ECHANNEL_CONFIG', name, `${opts.group} is not a multicast group`);
    }
    this.family = family as IpFamily;
    this.destination = this.family === 4 ? opts.group : `${opts.group}%${opts.interface}`;
  }

  get interfaceName(): string {
    return this.opts.interface;
  }

  async start(): Promise<void> {
    this.beginStart();
    const { group, port } = this.opts;
    const ifname = this.opts.interface;
    const resolve = this.opts.resolveAddresses ?? resolveInterfaceAddresses;
    const addresses = await resolve(ifname, this.family);
    const first = addresses[0];
    if (first === undefined) {
      await this.close();
      throw new ChannelError(
        'ECHANNEL_IFACE',
        this.name,
        interfaceExists(ifname)
          ? `sync interface ${ifname} has no IPv${this.family} address yet; multicast group ${group} needs one`
          : `sync interface ${ifname} does not exist`,
      );
    }
    // IPv4 names the interface by its address (struct ip_mreq); IPv6 by its
    // index, which libuv takes from the zone of a "::%ifname" literal.
    const ifaceAddr = this.family === 4 ? first : `::%${ifname}`;
    const socket = await this.bindSocket(this.family === 4 ? 'udp4' : 'udp6', this.destination, port, true);
    try {
      socket.addMembership(group, ifaceAddr);
      socket.setMulticastInterface(ifaceAddr);
      // A sync segment is one link; TTL 1 keeps state from ever being routed.
      socket.setMulticastTTL(1);
      socket.setMulticastLoopback(false);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      await this.abortStart(
        new ChannelError('ECHANNEL_SETUP', this.name, `cannot join ${group} on ${ifname}: ${code}`, { cause: err }),
      );
    }
    this.applyBuffers(socket, this.opts.sendBufferBytes, this.opts.receiveBufferBytes);
    if (this.opts.dropOwnSource !== false) for (const a of addresses) this.ownAddresses.add(canonicalAddress(a));
    this.localAddress = first;
    this.markOpen();
    this.log('info', 'multicast sync channel open', {
      channel: this.name,
      group,
      port,
      interface: ifname,
      address: first,
      ...this.granted,
    });
  }

  send(datagram: Buffer): void {
    this.transmit(datagram, this.opts.port, this.destination);
  }

  protected override isOwnSource(address: string): boolean {
    return this.ownAddresses.size > 0 && this.ownAddresses.has(normaliseAddress(address));
  }
}
