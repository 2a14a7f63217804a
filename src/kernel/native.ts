// Typed access to the project's N-API addon (native/ctsyncd_native.c).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  socketOpen(domain: number, type: number, protocol: number, netnsPath: string | null): number;
  netlinkBind(fd: number, groups: number): number;
  setIntOption(fd: number, level: number, name: number, value: number): void;
  getIntOption(fd: number, level: number, name: number): number;
  netlinkSend(fd: number, buf: Buffer, offset: number, length: number): number;
  /** netlinkSend on a libuv pool thread; done gets the bytes sent or -errno. buf and fd must stay untouched until then. */
  netlinkSendAsync(fd: number, buf: Buffer, offset: number, length: number, done: (result: number) => void): void;
  recvBatch(fd: number, buf: Buffer, status: Int32Array, maxDatagrams: number, minSpace: number): number;
  /** Classic BPF program (struct sock_filter[]); empty detaches. */
  attachFilter(fd: number, program: Buffer): void;
  close(fd: number): void;
  /** One datagram to a Unix datagram socket ("@name": abstract). Returns 0 or an errno. */
  unixDgramSend(path: string, data: Buffer): number;
  /** A non-blocking Unix datagram socket of our own (close with close()); throws a SyscallError. */
  unixDgramOpen(): number;
  /** One datagram to `path` without ever blocking (MSG_DONTWAIT): 0, or an errno (EAGAIN: the receiver's queue is full). */
  unixDgramSendTo(fd: number, path: string, data: Buffer, offset: number, length: number): number;
  pollStart(fd: number, callback: (events: number) => void): PollHandle;
  pollClose(handle: PollHandle): void;
  pollRef(handle: PollHandle, on: boolean): void;
  /** Stops polling for `ms` milliseconds, then polls again; what arrives meanwhile waits in the socket's queue. */
  pollPause(handle: PollHandle, ms: number): void;
  /** sched_setscheduler(2) on one thread id (0: the calling thread); throws a SyscallError. */
  setScheduler(tid: number, policy: number, priority: number): void;
  /** The calling thread's kernel id (gettid). */
  threadId(): number;
  /** The calling thread's name in /proc (prctl PR_SET_NAME; 15 bytes kept); throws a SyscallError. */
  setThreadName(name: string): void;
  /** Bytes the socket's receive queue holds now, as counted against SO_RCVBUF (SO_MEMINFO). */
  receiveQueueBytes(fd: number): number;
  /**
   * A thread of its own reading fd into a ring of ringBytes (a multiple of
   * 16), handed over as `ring`: segments of a 16-byte header {bytes, errno,
   * datagrams, truncated} and what one batch of reads returned, padded to
   * 16; a header whose bytes is 0xffffffff says the next segment starts at
   * offset 0. woken() runs on the event loop after new segments.
   */
  readerStart(
    fd: number,
    ringBytes: number,
    minSpace: number,
    maxDatagrams: number,
    coalesceMs: number,
    woken: () => void,
  ): { handle: ReaderHandle; ring: Buffer };
  /** The position (bytes written since the start) up to which segments are complete. */
  readerTail(handle: ReaderHandle): number;
  /** Segments before `head` are handled: their room is the thread's again. */
  readerRelease(handle: ReaderHandle, head: number): void;
  /** [most bytes ever held, times the ring was full]. */
  readerStats(handle: ReaderHandle): [number, number];
  readerRef(handle: ReaderHandle, on: boolean): void;
  /** Ends the thread (joined before it returns); close the fd after. */
  readerClose(handle: ReaderHandle): void;
}

declare const readerHandleBrand: unique symbol;
export type ReaderHandle = { readonly [readerHandleBrand]: true };

declare const pollHandleBrand: unique symbol;
export type PollHandle = { readonly [pollHandleBrand]: true };

/** An errno-carrying error thrown by the addon. */
export interface SyscallError extends Error {
  errno: number;
  syscall: string;
}

export function isSyscallError(e: unknown): e is SyscallError {
  return e instanceof Error && typeof (e as Partial<SyscallError>).errno === 'number';
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  // src/kernel/native.ts and dist/kernel/native.js both sit two levels below the root.
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const require = createRequire(import.meta.url);
  cached = require(join(root, 'build', 'ctsyncd_native.node')) as NativeAddon;
  return cached;
}
