// The channels a configuration asks for: the main link of sync.transport,
// then each of sync.backupLinks in order. The ChannelSet around them makes
// all receive and one transmit, failing over down this list.
import type { Config } from '../config/index.js';
import type { ChannelLog, SyncChannel } from './channel.js';
import { MulticastChannel } from './channel-multicast.js';
import { UdpChannel } from './channel-udp.js';

type MulticastLink = NonNullable<Config['sync']['multicast']>;
type UdpLink = NonNullable<Config['sync']['udp']>;

export function createChannels(cfg: Pick<Config, 'sync'>, opts: { log?: ChannelLog } = {}): SyncChannel[] {
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
