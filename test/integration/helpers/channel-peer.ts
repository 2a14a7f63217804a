// A sync endpoint for test/integration/channel.test.ts. The test process
// stays in the root namespace, so it transpiles this file (and the channel
// sources it imports) and runs it with `ip netns exec NS node`: the channels
// then resolve interfaces, read sysfs and bind inside that namespace exactly
// as the daemon would. It opens a ChannelSet from the JSON spec in argv[2],
// reads one JSON command per stdin line and writes one JSON event per
// stdout line. Logs go to stdout as events too, so the test can show them.
import { createInterface } from 'node:readline';
import { isChannelError, type SyncChannel } from '../../../src/sync/transport/channel.js';
import { ChannelSet } from '../../../src/sync/transport/channel-set.js';
import type { DgramChannel } from '../../../src/sync/transport/dgram-channel.js';
import { MulticastChannel } from '../../../src/sync/transport/multicast-channel.js';
import { UdpChannel } from '../../../src/sync/transport/udp-channel.js';

export type PeerChannelSpec =
  | { kind: 'multicast'; group: string; port: number; interface: string; receiveBufferBytes?: number }
  | { kind: 'udp'; bind: string; port: number; peers: string[]; interface?: string };

export interface PeerSpec {
  channels: PeerChannelSpec[];
  checkIntervalMs?: number;
}

export type PeerCommand = { op: 'send'; data: string } | { op: 'stats'; id: number } | { op: 'close' };

export interface PeerChannelStats {
  name: string;
  interfaceName: string | undefined;
  link: 'up' | 'down';
  active: boolean;
  counters: Record<string, number>;
  granted: { sendBufferBytes: number; receiveBufferBytes: number } | undefined;
}

export type PeerEvent =
  | { ev: 'ready'; active: string }
  | { ev: 'error'; code: string; message: string }
  | { ev: 'recv'; channel: string; from: string; data: string }
  | { ev: 'active'; name: string; reason: string; previous: string | undefined }
  | { ev: 'stats'; id: number; active: string; failovers: number; channels: PeerChannelStats[] }
  | { ev: 'log'; level: string; msg: string; ctx?: Record<string, unknown> };

function emit(e: PeerEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

async function main(spec: PeerSpec): Promise<void> {
  const log = (level: string, msg: string, ctx?: Record<string, unknown>) => emit({ ev: 'log', level, msg, ctx });
  const channels: DgramChannel[] = spec.channels.map((c) =>
    c.kind === 'multicast' ? new MulticastChannel({ ...c, log }) : new UdpChannel({ ...c, log }),
  );
  const set = new ChannelSet(channels, {
    checkIntervalMs: spec.checkIntervalMs,
    log,
    onActiveChange: (name, reason, info) => emit({ ev: 'active', name, reason, previous: info.previous }),
  });
  set.onDatagram((buf, from, channel: SyncChannel) => {
    emit({ ev: 'recv', channel: channel.name, from: from.address, data: buf.toString('utf8') });
    set.noteValidReceive(channel);
  });
  try {
    await set.start();
  } catch (err) {
    emit({
      ev: 'error',
      code: isChannelError(err) ? err.code : String((err as { code?: unknown }).code),
      message: String((err as Error).message),
    });
    process.exit(1);
  }
  emit({ ev: 'ready', active: set.active });

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    const cmd = JSON.parse(line) as PeerCommand;
    if (cmd.op === 'send') set.send(Buffer.from(cmd.data, 'utf8'));
    else if (cmd.op === 'stats') {
      emit({
        ev: 'stats',
        id: cmd.id,
        active: set.active,
        failovers: set.counters.failovers,
        channels: set.stats().map((s, i) => ({
          ...s,
          counters: { ...s.counters },
          granted: channels[i]?.granted,
        })),
      });
    } else if (cmd.op === 'close') {
      void set.close().then(() => process.exit(0));
    }
  });
  // The test going away closes stdin: leave nothing behind in the namespace.
  lines.on('close', () => void set.close().then(() => process.exit(0)));
}

// Only as a child: the test imports this module's types, never its code.
if (process.env.CTSYNCD_CHANNEL_PEER === '1') void main(JSON.parse(process.argv[2] ?? '{}') as PeerSpec);
