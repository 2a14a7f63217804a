// The STATUS= line and READY=1 as `systemctl status` shows them; the real
// datagram socket is covered by test/integration/systemd.test.ts.
import { describe, expect, it } from 'vitest';
import { type DaemonStatusView, SystemdNotifier } from '../../src/systemd/notify.js';

function notifier() {
  const sent: string[] = [];
  const n = new SystemdNotifier({
    env: { NOTIFY_SOCKET: '/run/test.sock' },
    pid: 42,
    send: (_path, data) => {
      sent.push(data.toString());
      return 0;
    },
  });
  return { n, sent };
}

const view = (over: Partial<DaemonStatusView> = {}): DaemonStatusView => ({
  dumpDone: true,
  ready: true,
  localEntries: 10,
  peerEntries: 20,
  peersUp: 1,
  peers: 2,
  inSync: true,
  committing: false,
  ...over,
});

describe('SystemdNotifier.report', () => {
  it('says the dump is running until it is done', () => {
    const { n, sent } = notifier();
    n.report(view({ dumpDone: false, ready: false }));
    expect(sent).toEqual(['STATUS=reading the kernel conntrack table']);
  });

  it('waits for peers after the dump, then READY=1 once with the summary, then only changes', () => {
    const { n, sent } = notifier();
    n.report(view({ ready: false, inSync: false }));
    expect(sent.at(-1)).toBe(
      'STATUS=kernel table read; waiting for peers (10 local and 20 peer connections; 1/2 peers up; not in sync)',
    );
    n.report(view());
    expect(sent.at(-1)).toBe(
      'READY=1\nSTATUS=10 local and 20 peer connections; 1/2 peers up; in sync\nMAINPID=42',
    );
    n.report(view());
    expect(sent).toHaveLength(2);
    n.report(view({ committing: true }));
    expect(sent.at(-1)).toBe('STATUS=10 local and 20 peer connections; 1/2 peers up; in sync; committing');
  });
});
