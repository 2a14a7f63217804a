// Reading keepalived's notify FIFO (vrrp_notify_fifo or notify_fifo).
//
// The FIFO is opened O_RDWR | O_NONBLOCK, as keepalived itself opens it
// (lib/notify.c, fifo_open()): holding a write end ourselves means we never
// see EOF when keepalived closes its end on a stop or reload, and O_RDWR
// never blocks in open() waiting for a writer. The fd is a pipe to libuv
// (uv_guess_handle says UV_NAMED_PIPE for S_ISFIFO), so net.Socket polls it
// with epoll: no threadpool thread sits in a blocking read().
//
// keepalived creates the FIFO when the path is missing and then unlinks it
// when it stops or reloads; a new keepalived creates a new FIFO at the same
// path, which our open fd does not see. So the path is checked periodically
// and the FIFO reopened (recreated if missing) when it is no longer the one
// we hold. Nothing written in between is lost: keepalived keeps its own fd
// open, so the data waits in the new pipe until we open it. A FIFO that
// ctsyncd created is left in place by keepalived (it gets EEXIST and only
// unlinks FIFOs it created), which is why we create it when missing.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { type Logger, silentLogger } from '../log.js';
import type { FailoverSequencer } from './sequencer.js';
import { CtsyncdError } from '../common/errors.js';

/** The path exists and is not a FIFO (a symlink counts: keepalived opens with O_NOFOLLOW). */
export class NotifyFifoError extends CtsyncdError {
  readonly code = 'ENOTFIFO' as const;
  constructor(readonly path: string) {
    super(`${path} exists and is not a FIFO; keepalived's notify_fifo needs a FIFO (and not a symlink to one)`, { context: { path } });
  }
}

export function isNotifyFifoError(err: unknown): err is NotifyFifoError {
  return err instanceof Error && (err as { code?: unknown }).code === 'ENOTFIFO';
}

/** keepalived's lines are about 30 bytes plus the name; anything past this is not one of them. */
export const DEFAULT_MAX_LINE_BYTES = 4096;
export const DEFAULT_RECHECK_MS = 1000;

/**
 * Splits a byte stream into lines at '\n' (splitting bytes, not strings, so
 * a multi-byte character across two reads survives). A line longer than
 * maxBytes is dropped whole, up to and including its newline.
 */
export class LineSplitter {
  readonly counters = { lines: 0, overlong: 0 };
  private parts: Buffer[] = [];
  private pending = 0;
  private discarding = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxBytes = DEFAULT_MAX_LINE_BYTES,
    private readonly onOverlong?: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.discarding) {
        if (this.pending + (end - start) > this.maxBytes) {
          this.counters.overlong++;
          this.discarding = true;
          this.parts = [];
          this.pending = 0;
          this.onOverlong?.();
        } else if (end > start) {
          this.parts.push(chunk.subarray(start, end));
          this.pending += end - start;
        }
      }
      if (nl === -1) return;
      if (this.discarding) this.discarding = false;
      else this.emit();
      start = nl + 1;
    }
  }

  /** Drops an unfinished line (its stream ended); true if there was one. */
  reset(): boolean {
    const had = this.pending > 0 || this.discarding;
    this.parts = [];
    this.pending = 0;
    this.discarding = false;
    return had;
  }

  private emit(): void {
    const line = Buffer.concat(this.parts, this.pending).toString('utf8');
    this.parts = [];
    this.pending = 0;
    if (line.trim() === '') return;
    this.counters.lines++;
    this.onLine(line);
  }
}

export interface NotifyFifoReaderOptions {
  path: string;
  onLine: (line: string) => void;
  log?: Logger;
  maxLineBytes?: number;
  /** How often the path is checked for a replaced or removed FIFO; 0 leaves it to check(). */
  recheckMs?: number;
}

export interface NotifyFifoCounters {
  bytes: number;
  /** FIFOs created by us (the path was missing). */
  created: number;
  /** Switches to a FIFO that replaced the one we held. */
  reopens: number;
  /** Unfinished lines dropped when their FIFO was replaced. */
  partial: number;
  errors: number;
}

export class NotifyFifoReader {
  readonly counters: NotifyFifoCounters = { bytes: 0, created: 0, reopens: 0, partial: 0, errors: 0 };
  private readonly splitter: LineSplitter;
  private readonly log: Logger;
  private socket: net.Socket | undefined;
  private fd = -1;
  private ident: { dev: number; ino: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The last problem check() logged, so a persistent one is logged once. */
  private reported: string | undefined;

  constructor(private readonly opts: NotifyFifoReaderOptions) {
    this.log = opts.log ?? silentLogger;
    const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.splitter = new LineSplitter(opts.onLine, max, () =>
      this.log.warn('keepalived notify FIFO line too long, dropped', { path: opts.path, maxBytes: max }),
    );
  }

  get path(): string {
    return this.opts.path;
  }

  /** Complete lines delivered to onLine. */
  get lines(): number {
    return this.splitter.counters.lines;
  }

  /** Lines dropped for exceeding maxLineBytes. */
  get overlong(): number {
    return this.splitter.counters.overlong;
  }

  /**
   * Creates the FIFO if missing and starts reading. Throws NotifyFifoError
   * when the path is something else, or the fs error (EACCES, ENOENT for a
   * missing directory, ...) as is.
   */
  open(): void {
    if (this.closed) throw new Error('NotifyFifoReader is closed');
    if (this.socket) return;
    this.openPath();
    const every = this.opts.recheckMs ?? DEFAULT_RECHECK_MS;
    if (every > 0 && !this.timer) {
      this.timer = setInterval(() => this.check(), every);
      this.timer.unref();
    }
  }

  /**
   * Reopens when the path no longer names the FIFO we hold (keepalived
   * unlinked it, or replaced it with a new one). Never throws.
   */
  check(): void {
    if (this.closed) return;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(this.opts.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return this.report('stat', err);
    }
    if (st && !st.isFIFO()) return this.report('not a FIFO', new NotifyFifoError(this.opts.path));
    if (st && this.socket && this.ident && st.dev === this.ident.dev && st.ino === this.ident.ino) {
      this.reported = undefined;
      return;
    }
    try {
      this.openPath();
      this.counters.reopens++;
      this.reported = undefined;
      this.log.info('keepalived notify FIFO reopened', { path: this.opts.path, recreated: !st });
    } catch (err) {
      this.report('reopen', err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.release();
  }

  private openPath(): void {
    const path = this.opts.path;
    let created = false;
    try {
      const st = fs.lstatSync(path);
      if (!st.isFIFO()) throw new NotifyFifoError(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Node has no mkfifo(); mkfifo(1) is coreutils. EEXIST means keepalived
      // created it meanwhile, which is as good.
      try {
        // Required here, not imported: node:child_process would load with every daemon, FIFO or not.
        const { execFileSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
        execFileSync('mkfifo', ['-m', '0600', path], { stdio: ['ignore', 'ignore', 'pipe'] });
        created = true;
      } catch (mkErr) {
        const st = lstatOrUndefined(path);
        if (!st) throw mkErr;
        if (!st.isFIFO()) throw new NotifyFifoError(path);
      }
    }
    // libuv adds O_CLOEXEC itself.
    const { O_RDWR, O_NONBLOCK, O_NOFOLLOW } = fs.constants;
    const fd = fs.openSync(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW);
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
      if (!st.isFIFO()) throw new NotifyFifoError(path);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    if (created) {
      this.counters.created++;
      this.log.info('keepalived notify FIFO created', { path });
    }
    // Only now that the new one is open: what the old pipe still holds was
    // written before keepalived let go of it, so it goes first.
    this.release();
    this.fd = fd;
    this.ident = { dev: st.dev, ino: st.ino };
    const socket = new net.Socket({ fd, readable: true, writable: false });
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.counters.bytes += chunk.length;
      this.splitter.push(chunk);
    });
    socket.on('error', (err) => {
      this.counters.errors++;
      this.log.error('keepalived notify FIFO read failed', { path, error: err.message });
    });
    // With our own write end open this does not happen; if it does, the
    // next check() opens the FIFO again.
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.fd = -1;
      this.ident = undefined;
      if (!this.closed) this.log.warn('keepalived notify FIFO closed unexpectedly', { path });
    });
  }

  /** Reads what is left in the held pipe, then closes it. */
  private release(): void {
    const socket = this.socket;
    if (!socket) return;
    const fd = this.fd;
    this.socket = undefined;
    this.fd = -1;
    this.ident = undefined;
    if (!this.closed) this.drain(fd);
    if (this.splitter.reset()) this.counters.partial++;
    socket.destroy();
  }

  // Bytes libuv has not read yet are still in the kernel's pipe buffer;
  // reading them directly is safe because the socket is destroyed next.
  private drain(fd: number): void {
    const buf = Buffer.allocUnsafe(65536);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') this.report('drain', err);
        return;
      }
      if (n <= 0) return;
      this.counters.bytes += n;
      this.splitter.push(Buffer.from(buf.subarray(0, n)));
    }
  }

  private report(what: string, err: unknown): void {
    this.counters.errors++;
    const error = err instanceof Error ? err.message : String(err);
    const key = `${what}: ${error}`;
    if (key === this.reported) return;
    this.reported = key;
    this.log.error('keepalived notify FIFO check failed', { path: this.opts.path, what, error });
  }
}

function lstatOrUndefined(path: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(path);
  } catch {
    return undefined;
  }
}

export interface NotifyFifoHandle {
  readonly reader: NotifyFifoReader;
  close(): void;
}

/**
 * keepalived-fifo mode: FIFO lines → parser → sequencer. Throws what
 * NotifyFifoReader.open() throws.
 */
export function runNotifyFifo(
  path: string,
  sequencer: FailoverSequencer,
  log: Logger,
  opts: { maxLineBytes?: number; recheckMs?: number } = {},
): NotifyFifoHandle {
  const reader = new NotifyFifoReader({ ...opts, path, log, onLine: (line) => sequencer.handleLine(line) });
  reader.open();
  log.info('following keepalived notify FIFO', { path });
  return { reader, close: () => reader.close() };
}
