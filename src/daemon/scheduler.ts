// process.scheduler (conntrackd's Scheduler): the CPU scheduling policy the
// daemon puts itself under at start. conntrackd is one thread; ctsyncd is a
// Node process with several (the event loop, V8's and libuv's helpers), and
// Linux schedules each thread on its own, so the policy is set on every
// thread there is, the event loop's first: threads created later inherit it
// from their creator, as they would from a unit's CPUSchedulingPolicy=.
import { readdirSync } from 'node:fs';

/** <sched.h> policy numbers. */
export const SCHED_POLICY = { other: 0, fifo: 1, rr: 2 } as const;

export type SchedulerPolicy = keyof typeof SCHED_POLICY;

/** The validated process.scheduler. */
export interface SchedulerSetting {
  policy: SchedulerPolicy;
  priority: number;
}

export interface SchedulerSystem {
  /** Thread ids of this process, the calling (main) thread among them. */
  threads(): number[];
  /** The calling thread's id. */
  self(): number;
  /** sched_setscheduler(tid, policy, priority); throws an error with `errno`. */
  set(tid: number, policy: number, priority: number): void;
}

export interface SchedulerOutcome {
  policy: SchedulerPolicy;
  priority: number;
  /** Threads set. */
  threads: number;
  /** Threads that refused, with the reason (EPERM without CAP_SYS_NICE; ESRCH for one that just ended). */
  failed: { tid: number; error: string }[];
}

/** Sets `s` on every thread, the calling one first. Never throws: conntrackd only warns on failure too. */
export function applyScheduler(s: SchedulerSetting, sys: SchedulerSystem): SchedulerOutcome {
  const policy = SCHED_POLICY[s.policy];
  const self = sys.self();
  const others = sys.threads().filter((t) => t !== self);
  const out: SchedulerOutcome = { policy: s.policy, priority: s.priority, threads: 0, failed: [] };
  for (const tid of [self, ...others]) {
    try {
      sys.set(tid, policy, s.priority);
      out.threads++;
    } catch (e) {
      out.failed.push({ tid, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

/** The real system: /proc/self/task and the addon's sched_setscheduler. The main thread's tid is the pid. */
export function linuxScheduler(setScheduler: (tid: number, policy: number, priority: number) => void): SchedulerSystem {
  return {
    threads: () =>
      readdirSync('/proc/self/task')
        .map(Number)
        .filter((n) => Number.isInteger(n) && n > 0),
    self: () => process.pid,
    set: setScheduler,
  };
}
