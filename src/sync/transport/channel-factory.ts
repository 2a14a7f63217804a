// The channels a configuration asks for: the main link of sync.transport,
// then each of sync.backupLinks in order. The ChannelSet around them makes
// all receive and one transmit, failing over down this list.
import type { ChannelLog, SyncChannel } from './channel.js';
import { MulticastChannel, type MulticastChannelOptions } from './multicast-channel.js';
import { UdpChannel, type UdpChannelOptions } from './udp-channel.js';

type BufferSizes = 'sendBufferBytes' | 'receiveBufferBytes';
export type MulticastLink = Pick<MulticastChannelOptions, 'group' | 'port' | 'interface' | BufferSizes>;
export type UdpLink = Pick<UdpChannelOptions, 'bind' | 'port' | 'peers' | BufferSizes>;

/**
 * The links of the validated `sync` section. Declared here, not taken from
 * the config schema, so sync does not depend on config; the config's sync
 * section satisfies it as it is.
 */
export type ChannelLinks = (
  | { transport: 'multicast'; multicast: MulticastLink }
  | { transport: 'udp'; udp: UdpLink }
) & { backupLinks: readonly ({ multicast: MulticastLink } | { udp: UdpLink })[] };

export function createChannels(cfg: { sync: ChannelLinks }, opts: { log?: ChannelLog } = {}): SyncChannel[] {
  const sync = cfg.sync;
  const multicast = (m: MulticastLink) =>
    new MulticastChannel({
      group: m.group,
      port: m.port,
      interface: m.interface,
      sendBufferBytes: m.sendBufferBytes,
      receiveBufferBytes: m.receiveBufferBytes,
      log: opts.log,
    });
  const udp = (u: UdpLink) =>
    new UdpChannel({
      bind: u.bind,
      port: u.port,
      peers: u.peers,
      sendBufferBytes: u.sendBufferBytes,
      receiveBufferBytes: u.receiveBufferBytes,
      log: opts.log,
    });
  const out: SyncChannel[] = [sync.transport === 'multicast' ? multicast(sync.multicast) : udp(sync.udp)];
  for (const link of sync.backupLinks) {
    if ('multicast' in link) out.push(multicast(link.multicast));
    else out.push(udp(link.udp));
  }
  return out;
}
