// The channels a configuration asks for. The schema has one transport
// section, so this yields one channel; the ChannelSet around it still gives
// link watching and the active-channel report, and takes more channels as
// soon as the config grows redundant links.
import type { Config } from '../config/index.js';
import type { ChannelLog, SyncChannel } from './channel.js';
import { MulticastChannel } from './channel-multicast.js';
import { UdpChannel } from './channel-udp.js';

export function createChannels(cfg: Pick<Config, 'sync'>, opts: { log?: ChannelLog } = {}): SyncChannel[] {
  const sync = cfg.sync;
  if (sync.transport === 'multicast') {
    const m = sync.multicast;
    return [
      new MulticastChannel({
        group: m.group,
        port: m.port,
        interface: m.interface,
        sendBufferBytes: m.sendBufferBytes,
        receiveBufferBytes: m.receiveBufferBytes,
        log: opts.log,
      }),
    ];
  }
  const u = sync.udp;
  return [
    new UdpChannel({
      bind: u.bind,
      port: u.port,
      peers: u.peers,
      sendBufferBytes: u.sendBufferBytes,
      receiveBufferBytes: u.receiveBufferBytes,
      log: opts.log,
    }),
  ];
}
