// keepalived's VRRP notifications, as lines on its notify FIFO or as the four
// arguments it appends to a `notify` script. Formats checked against the
// keepalived 2.2.7 source:
//
//   FIFO (keepalived/vrrp/vrrp_notify.c, notify_fifo()):
//     snprintf(line, size, "%s \"%s\" %s %d\n", type, name, state, priority)
//     e.g. `INSTANCE "VI_LAN" MASTER 150`, `GROUP "G1" BACKUP 0`
//     type is GROUP or INSTANCE; state is MASTER, BACKUP, FAULT, STOP,
//     DELETED, MASTER_RX_LOWER_PRI, MASTER_PRIORITY or BACKUP_PRIORITY (the
//     last two only with notify_priority_changes); priority is the instance's
//     effective priority (a uint8_t) and always 0 for a group. keepalived
//     2.2.7 also writes `GROUP "G1" STOP 0` on shutdown (seen running it),
//     although keepalived.conf(5) says STOP applies to instances. The same FIFO
//     (the global notify_fifo) also carries the checker's lines
//     (keepalived/check/ipwrapper.c): `VS [vip]:tcp:80 UP`,
//     `RS [rip]:tcp:80 [vip]:tcp:80 DOWN`.
//
//   notify script (notify_script_exec()): configured args, then
//     GROUP|INSTANCE NAME MASTER|BACKUP|FAULT|STOP|DELETED PRIORITY
//     with the name unquoted.
//
// Nothing here throws: input comes from another process (or an operator
// typing into the FIFO), and a bad line must cost a counter, not the daemon.

/** What ctsyncd does on a notification; 'stop' is recorded but runs nothing. */
export type FailoverTarget = 'primary' | 'backup' | 'fault' | 'stop';

export type VrrpState =
  | 'MASTER'
  | 'BACKUP'
  | 'FAULT'
  | 'STOP'
  | 'DELETED'
  | 'MASTER_RX_LOWER_PRI'
  | 'MASTER_PRIORITY'
  | 'BACKUP_PRIORITY';

export interface VrrpNotifyEvent {
  readonly kind: 'vrrp';
  /** A vrrp_sync_group emits GROUP lines, and INSTANCE lines for each member. */
  readonly scope: 'group' | 'instance';
  readonly name: string;
  readonly state: VrrpState;
  /** Undefined for the events that are not state changes (MASTER_RX_LOWER_PRI, *_PRIORITY). */
  readonly target: FailoverTarget | undefined;
  readonly priority: number;
}

/** A well-formed line of keepalived's checker (LVS) notifications; ctsyncd has no use for them. */
export interface CheckerNotifyEvent {
  readonly kind: 'checker';
  readonly type: 'VS' | 'RS' | 'CHECKER';
  readonly line: string;
}

export type NotifyEvent = VrrpNotifyEvent | CheckerNotifyEvent;

const TARGETS: Readonly<Record<VrrpState, FailoverTarget | undefined>> = {
  MASTER: 'primary',
  BACKUP: 'backup',
  FAULT: 'fault',
  STOP: 'stop',
  DELETED: 'stop',
  MASTER_RX_LOWER_PRI: undefined,
  MASTER_PRIORITY: undefined,
  BACKUP_PRIORITY: undefined,
};

/** The states keepalived passes to notify scripts; the rest exist only on the FIFO. */
const SCRIPT_STATES: ReadonlySet<string> = new Set(['MASTER', 'BACKUP', 'FAULT', 'STOP', 'DELETED']);

// The name is greedy so a name containing a quote still parses; keepalived
// does not escape it, and the state and priority after it cannot contain one.
const FIFO_LINE = /^(INSTANCE|GROUP) "(.+)" ([A-Z_]+) (\d{1,3})$/;
const CHECKER_LINE = /^(VS|RS|CHECKER) \S/;

/** One FIFO line, with or without its newline. Undefined when it is not a line keepalived writes. */
export function parseNotifyLine(line: string): NotifyEvent | undefined {
  if (typeof line !== 'string') return undefined;
  const text = line.replace(/\r?\n$/, '').trim();
  const checker = CHECKER_LINE.exec(text);
  if (checker) return { kind: 'checker', type: checker[1] as CheckerNotifyEvent['type'], line: text };
  const m = FIFO_LINE.exec(text);
  if (!m) return undefined;
  return vrrpEvent(m[1] as string, m[2] as string, m[3] as string, m[4] as string, false);
}

/**
 * The arguments of a `notify` script. keepalived appends its four after the
 * ones configured with the script, so the last four are used and anything
 * before them is the configured part.
 */
export function parseNotifyArgs(argv: readonly string[]): VrrpNotifyEvent | undefined {
  if (!Array.isArray(argv) || argv.length < 4) return undefined;
  const [type, name, state, priority] = argv.slice(-4) as [unknown, unknown, unknown, unknown];
  if (typeof type !== 'string' || typeof name !== 'string' || typeof state !== 'string') return undefined;
  if (typeof priority !== 'string' || !/^\d{1,3}$/.test(priority)) return undefined;
  return vrrpEvent(type, name, state, priority, true);
}

function vrrpEvent(
  type: string,
  name: string,
  state: string,
  priority: string,
  script: boolean,
): VrrpNotifyEvent | undefined {
  if (type !== 'INSTANCE' && type !== 'GROUP') return undefined;
  if (name === '' || /[\0\n]/.test(name)) return undefined;
  if (!Object.hasOwn(TARGETS, state)) return undefined;
  if (script && !SCRIPT_STATES.has(state)) return undefined;
  const prio = Number(priority);
  if (!Number.isInteger(prio) || prio < 0 || prio > 255) return undefined;
  const vrrpState = state as VrrpState;
  return {
    kind: 'vrrp',
    scope: type === 'GROUP' ? 'group' : 'instance',
    name,
    state: vrrpState,
    target: TARGETS[vrrpState],
    priority: prio,
  };
}
