// ulogd2 (Debian ulogd2 + ulogd2-json: NFCT → IP2STR → JSON), configured as
// most operators run it beside a sync daemon: new and destroy events, each
// logged as it comes (hash_enable=0), Debian's sync=1 on the JSON output (a
// write per line, no fsync). Shared by bench/flowlog.mjs (ulogd2 alone
// against ctsyncd's Stats mode) and bench/run.mjs --with-flowlog (ulogd2
// beside conntrackd against ctsyncd logging beside its own sync).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, startProcess, tail, verifyPid } from './daemons.mjs';
import { until } from './util.mjs';

export const ULOGD_BIN = '/usr/sbin/ulogd';
export const ULOGD_PLUGINS = '/usr/lib/x86_64-linux-gnu/ulogd';

/** What is missing to run ulogd2 here, or undefined. */
export function ulogdMissing(bin = ULOGD_BIN, plugins = ULOGD_PLUGINS) {
  for (const f of [bin, join(plugins, 'ulogd_inpflow_NFCT.so'), join(plugins, 'ulogd_output_JSON.so')]) {
    if (!existsSync(f)) return `${f} is missing: apt-get install ulogd2 ulogd2-json`;
  }
  return undefined;
}

/**
 * Writes dir/ulogd.conf: events to dir/ulogd.json (returned as `out`),
 * ulogd's own log to dir/ulogd.log, the event socket buffer `bufferBytes`.
 */
export function configureUlogd(dir, bufferBytes, plugins = ULOGD_PLUGINS) {
  const conf = join(dir, 'ulogd.conf');
  const out = join(dir, 'ulogd.json');
  const plugin = (name) => `plugin="${join(plugins, name)}"`;
  writeFileSync(
    conf,
    [
      '[global]',
      `logfile="${join(dir, 'ulogd.log')}"`,
      'loglevel=3',
      plugin('ulogd_inpflow_NFCT.so'),
      plugin('ulogd_filter_IP2STR.so'),
      plugin('ulogd_output_JSON.so'),
      'stack=ct1:NFCT,ip2str1:IP2STR,json1:JSON',
      '[ct1]',
      // NF_NETLINK_CONNTRACK_NEW | _DESTROY; each event logged as it comes.
      'event_mask=0x00000005',
      'hash_enable=0',
      `netlink_socket_buffer_size=${bufferBytes}`,
      'netlink_socket_buffer_maxsize=268435456',
      '[json1]',
      'sync=1',
      `file="${out}"`,
      '',
    ].join('\n'),
  );
  return { conf, out, log: join(dir, 'ulogd.log') };
}

/** Starts ulogd in `node`'s namespace ({ ns }) and waits until its JSON output is open. */
export async function startUlogd(node, u, bin = ULOGD_BIN, stderrPath = join(u.conf, '..', 'ulogd.stderr')) {
  const proc = startProcess(node, [bin, '-c', u.conf], stderrPath, 'ulogd');
  // The JSON output opens its file once the stack is up.
  await until(
    () => {
      if (!alive(proc)) throw new Error(`ulogd exited: ${tail(proc.logPath)} ${tail(u.log)}`);
      return existsSync(u.out);
    },
    'ulogd ready',
    30_000,
    { intervalMs: 20, diag: () => tail(u.log) },
  );
  verifyPid(proc, 'ulogd');
  return proc;
}

/** Overrun reports in ulogd's log: it says so, and logs nothing else of it. */
export function ulogdOverrunLines(u) {
  const log = tail(u.log, 100_000);
  return (log.match(/ENOBUFS|overrun|No buffer space/gi) ?? []).length;
}
