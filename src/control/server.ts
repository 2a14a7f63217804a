// The daemon's end of the control socket. Each connection reads framed JSON
// requests and answers them one at a time, in order; connections run
// concurrently. Nothing a client sends can throw into the event loop: bad
// input becomes an error reply, and only a frame that breaks the framing
// itself (an oversized length) closes the connection.
//
// No client can hold the daemon: each connection has a deadline (the time
// the daemon spends waiting on it, for request bytes or for it to take its
// replies; a byte every second does not renew it), its reply bytes queued
// beyond what it read are capped (replies go out piece by piece, with
// backpressure), and past maxConnections a few reserve connections still
// serve the commands a failover needs. The socket's directory must be
// root's or ours and writable by nobody else, or another user could put a
// socket of their own in its place.

import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { lstat, mkdir, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import type { LogContext, LogLevel } from '../log.js';
import {
  ControlError,
  type ControlErrorBody,
  type ControlResponse,
  encodeFrame,
  encodeFrameChunks,
  type Frame,
  FrameDecoder,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  parseRequest,
} from './protocol.js';

export type ControlHandler = (args: Record<string, unknown>) => unknown;
export type ControlLog = (level: LogLevel, msg: string, ctx?: LogContext) => void;

/** Time and timers, injectable so tests move the clock instead of waiting. */
export interface ControlClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: ControlClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ControlServerOptions {
  path: string;
  /** Permissions of the socket file. Default 0o600: only the daemon's user (root) may drive it. */
  mode?: number;
  /** Command name → handler. A handler may return a promise; what it resolves to is the reply's result. */
  handlers: Record<string, ControlHandler>;
  log?: ControlLog;
  /**
   * Milliseconds the daemon waits on one connection in all (for its request
   * bytes to arrive, for it to take its replies, idle between requests)
   * before closing it. Never renewed by traffic, so a client trickling a
   * request byte by byte is closed too; time spent running its commands
   * does not count, so a long commit is answered. Default 30 000.
   */
  deadlineMs?: number;
  /** Connections served as usual; beyond this only the reserve. Default 64. */
  maxConnections?: number;
  /**
   * Connections accepted beyond maxConnections, each for a single request
   * of reservedCommands: a failover gets through while every regular slot
   * is held by a stalled client. When the reserve is full, a new connection
   * replaces the oldest reserve one that has not sent its command yet.
   * Default 4.
   */
  reserveConnections?: number;
  /** The commands served on a reserve connection; others are refused there (EBUSY). Default none. */
  reservedCommands?: readonly string[];
  /**
   * Reply bytes handed to one connection's socket and not yet taken by its
   * reader; more waits until it reads. Default 4 MiB.
   */
  maxQueuedOutputBytes?: number;
  /**
   * Reply bytes held for all connections together that their readers have
   * not taken yet. Past it, the waiting reader with the least deadline left
   * is dropped (one that stopped reading), so stalled readers of big dumps
   * cannot add up. Default 512 MiB, the largest reply: one always fits.
   */
  maxUnreadOutputBytes?: number;
  /** Default: the system clock. */
  clock?: ControlClock;
  /** The daemon's uid, which may own the socket's directory besides root. Default process.getuid(). */
  ownUid?: number;
}

export interface ControlServerCounters {
  /** Connections accepted, reserve ones included. */
  connections: number;
  requests: number;
  /** Requests whose handler threw or whose result could not be sent. */
  failedRequests: number;
  /** Frames that were not valid requests, unknown commands and oversized frames. */
  badRequests: number;
  /** Connections closed because they used up deadlineMs (a trickled request, an unread reply, idle). */
  deadlineClosed: number;
  /** Of those, the ones closed with reply bytes still queued: a client that did not read its reply. */
  outputStalled: number;
  /** Connections dropped while waiting for their reader because all unread replies together passed maxUnreadOutputBytes. */
  outputDropped: number;
  /** Requests answered on a reserve connection, beyond maxConnections. */
  reserveServed: number;
  /** Connections beyond maxConnections closed unserved: another command, replaced by a newer one, or no reserve left. */
  refused: number;
}

/** One accepted connection and the deadline clock the daemon keeps for it. */
interface Conn {
  readonly socket: net.Socket;
  /** Accepted beyond maxConnections: one reserved command, then closed. */
  readonly reserve: boolean;
  /** A reserve connection whose command is being answered: it is not replaced by newer ones meanwhile. */
  answering: boolean;
  /** Milliseconds of deadline left while the clock is stopped. */
  left: number;
  /** When the clock was last started; undefined while it is stopped (a command runs). */
  since: number | undefined;
  timer: unknown;
  /** Reply pieces are being written. */
  writing: boolean;
  /** Bytes of the reply being written not yet handed to the socket. */
  unsent: number;
  /** Waiting for its reader to take what is queued. */
  waiting: boolean;
}

/** Frames read ahead of the one being handled before the socket is paused. */
const MAX_QUEUED_FRAMES = 16;
const PROBE_TIMEOUT_MS = 1000;
/** A reserve connection carries one small command; a bigger frame is not one of them. */
const RESERVE_REQUEST_BYTES = 64 * 1024;

export const CONTROL_DEFAULTS = {
  deadlineMs: 30_000,
  maxConnections: 64,
  reserveConnections: 4,
  maxQueuedOutputBytes: 4 * 1024 * 1024,
  maxUnreadOutputBytes: MAX_RESPONSE_BYTES,
} as const;

export class ControlServer {
  readonly counters: ControlServerCounters = {
    connections: 0,
    requests: 0,
    failedRequests: 0,
    badRequests: 0,
    deadlineClosed: 0,
    outputStalled: 0,
    outputDropped: 0,
    reserveServed: 0,
    refused: 0,
  };
  private readonly handlers: Map<string, ControlHandler>;
  private readonly reserved: ReadonlySet<string>;
  private readonly mode: number;
  private readonly log: ControlLog;
  private readonly clock: ControlClock;
  private readonly deadlineMs: number;
  private readonly maxConnections: number;
  private readonly reserveConnections: number;
  private readonly maxQueuedOutputBytes: number;
  private readonly maxUnreadOutputBytes: number;
  private server: net.Server | undefined;
  /** Open connections in the order they were accepted. */
  private readonly conns = new Set<Conn>();
  private state: 'new' | 'starting' | 'listening' | 'closed' = 'new';
  /** Identity of the socket file we created, so close() never unlinks a successor's. */
  private fileId: { dev: number; ino: number } | undefined;

  constructor(private readonly opts: ControlServerOptions) {
    // A Map, so "constructor" or "__proto__" never resolve to Object.prototype members.
    this.handlers = new Map(Object.entries(opts.handlers));
    this.reserved = new Set(opts.reservedCommands ?? []);
    this.mode = opts.mode ?? 0o600;
    this.log = opts.log ?? (() => {});
    this.clock = opts.clock ?? systemClock;
    this.deadlineMs = opts.deadlineMs ?? CONTROL_DEFAULTS.deadlineMs;
    this.maxConnections = opts.maxConnections ?? CONTROL_DEFAULTS.maxConnections;
    this.reserveConnections = opts.reserveConnections ?? CONTROL_DEFAULTS.reserveConnections;
    this.maxQueuedOutputBytes = opts.maxQueuedOutputBytes ?? CONTROL_DEFAULTS.maxQueuedOutputBytes;
    this.maxUnreadOutputBytes = opts.maxUnreadOutputBytes ?? CONTROL_DEFAULTS.maxUnreadOutputBytes;
  }

  get path(): string {
    return this.opts.path;
  }

  get activeConnections(): number {
    return this.conns.size;
  }

  /** Reply bytes handed to the sockets and not yet taken by their readers, all connections together. */
  get queuedOutputBytes(): number {
    let n = 0;
    for (const c of this.conns) n += c.socket.writableLength;
    return n;
  }

  /** Reply bytes held for readers that have not taken them: queued in the sockets or not handed to them yet. */
  get unreadOutputBytes(): number {
    let n = 0;
    for (const c of this.conns) n += unread(c);
    return n;
  }

  /**
   * Binds the socket. An existing socket file that still accepts connections
   * means another daemon owns it (EALREADY_RUNNING); one that refuses is left
   * over from a crash and is replaced. A non-socket at the path is never
   * touched (ECONTROL_SOCKET).
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new ControlError('ECONTROL_SOCKET', 'control server can be started once');
    this.state = 'starting';
    const path = this.opts.path;
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new ControlError('ECONTROL_SOCKET', `cannot create ${dir}: ${errnoOf(err)}`, { cause: err });
    }
    await this.checkDirectory(dir);
    await this.removeStaleSocket(path);
    // close() may have come during any await above: nothing is bound yet.
    if (this.isClosed()) return;
    const server = net.createServer((socket) => this.onConnection(socket));
    // So a close() during listen() closes it.
    this.server = server;
    await this.listen(server, path);
    if (this.isClosed()) {
      await closeServer(server);
      return;
    }
    try {
      chmodSync(path, this.mode);
      const st = lstatSync(path);
      this.fileId = { dev: st.dev, ino: st.ino };
    } catch (err) {
      this.server = undefined;
      await closeServer(server);
      throw new ControlError('ECONTROL_SOCKET', `cannot set permissions of ${path}: ${errnoOf(err)}`, { cause: err });
    }
    server.on('error', (err) => this.log('error', 'control socket error', { path, error: errnoOf(err) }));
    this.state = 'listening';
    this.log('info', 'control socket listening', {
      path,
      mode: `0${this.mode.toString(8)}`,
      maxConnections: this.maxConnections,
      reserve: this.reserveConnections,
    });
  }

  /** A method, so the compiler does not narrow `state` across the awaits in start(). */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /**
   * The socket's directory must be root's or the daemon's and writable by
   * nobody else: whoever can write there can replace our socket with one
   * that answers root's commit with a fake success.
   */
  private async checkDirectory(dir: string): Promise<void> {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(dir);
    } catch (err) {
      throw new ControlError('ECONTROL_SOCKET', `cannot inspect ${dir}: ${errnoOf(err)}`, { cause: err });
    }
    const problem = socketDirectoryProblem(st, this.opts.ownUid ?? process.getuid?.() ?? 0);
    if (problem !== undefined) {
      throw new ControlError(
        'EUNSAFE_SOCKET_DIR',
        `control socket directory ${dir} ${problem}: another user could replace the socket; refusing to start`,
        { context: { dir, uid: st.uid, mode: `0${(st.mode & 0o7777).toString(8)}` } },
      );
    }
  }

  /** Stops accepting, drops open connections (replies in flight are lost) and removes the socket file. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const conn of this.conns) this.drop(conn);
    this.conns.clear();
    const server = this.server;
    this.server = undefined;
    if (server?.listening) await closeServer(server);
    // libuv already unlinks the path when the listening handle closes; this
    // covers platforms that do not, and only if the file is still ours.
    try {
      const st = lstatSync(this.opts.path);
      if (this.fileId !== undefined && st.dev === this.fileId.dev && st.ino === this.fileId.ino) {
        unlinkSync(this.opts.path);
      }
    } catch {
      // Gone already.
    }
  }

  private async removeStaleSocket(path: string): Promise<void> {
    let isSocket: boolean;
    try {
      isSocket = (await lstat(path)).isSocket();
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw new ControlError('ECONTROL_SOCKET', `cannot inspect ${path}: ${errnoOf(err)}`, { cause: err });
    }
    if (!isSocket) {
      throw new ControlError('ECONTROL_SOCKET', `${path} exists and is not a socket; refusing to replace it`);
    }
    const probe = await probeSocket(path);
    if (probe === 'gone') return;
    if (probe === 'alive') {
      throw new ControlError(
        'EALREADY_RUNNING',
        `ctsyncd is already running: control socket ${path} accepts connections`,
      );
    }
    if (probe !== 'dead') {
      throw new ControlError('ECONTROL_SOCKET', `cannot tell whether control socket ${path} is in use: ${probe}`);
    }
    try {
      await unlink(path);
      this.log('info', 'removed stale control socket', { path });
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        throw new ControlError('ECONTROL_SOCKET', `cannot remove stale ${path}: ${errnoOf(err)}`, { cause: err });
      }
    }
  }

  private listen(server: net.Server, path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        const code = errnoOf(err);
        reject(
          code === 'EADDRINUSE'
            ? new ControlError('EALREADY_RUNNING', `ctsyncd is already running: ${path} was bound meanwhile`, {
                cause: err,
              })
            : new ControlError('ECONTROL_SOCKET', `cannot listen on ${path}: ${code}`, { cause: err }),
        );
      };
      server.once('error', onError);
      // The socket file is created with 0777 & ~umask inside listen(), before
      // any chmod could run; a matching umask closes that window. listen()
      // binds synchronously, so the umask is restored before anything else runs.
      const restore = narrowUmask(this.mode);
      try {
        server.listen(path, () => {
          server.removeListener('error', onError);
          resolve();
        });
      } catch (err) {
        onError(err as Error);
      } finally {
        restore();
      }
    });
  }

  private onConnection(socket: net.Socket): void {
    if (this.state !== 'listening') {
      socket.destroy();
      return;
    }
    let regular = 0;
    const reserve: Conn[] = [];
    for (const c of this.conns) {
      if (c.reserve) reserve.push(c);
      else regular++;
    }
    const isReserve = regular >= this.maxConnections;
    if (isReserve && reserve.length >= this.reserveConnections) {
      // Room is made by dropping the oldest reserve connection not being
      // answered (silent, or answered and not gone yet), so stalled clients
      // cannot keep a failover out; one whose command runs is left alone.
      const victim = reserve.find((c) => !c.answering);
      this.counters.refused++;
      if (victim === undefined) {
        this.log('warn', 'control connection refused: every connection and reserve slot is busy', {
          connections: this.conns.size,
        });
        socket.destroy();
        return;
      }
      this.drop(victim);
    }
    this.counters.connections++;
    const conn: Conn = {
      socket,
      reserve: isReserve,
      answering: false,
      left: this.deadlineMs,
      since: undefined,
      timer: undefined,
      writing: false,
      unsent: 0,
      waiting: false,
    };
    this.conns.add(conn);
    this.startClock(conn);
    socket.on('error', (err) => this.log('debug', 'control connection error', { error: errnoOf(err) }));
    socket.on('close', () => {
      this.stopClock(conn);
      this.conns.delete(conn);
    });
    if (isReserve) this.serveReserve(conn);
    else this.serve(conn);
  }

  /** A connection within maxConnections: any number of requests, answered in order. */
  private serve(conn: Conn): void {
    const { socket } = conn;
    const decoder = new FrameDecoder(MAX_REQUEST_BYTES);
    const queue: Frame[] = [];
    let busy = false;

    const drain = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        while (queue.length > 0 && !socket.destroyed) {
          const frame = queue.shift() as Frame;
          if (!frame.ok && frame.fatal) {
            this.counters.badRequests++;
            await this.reply(conn, { ok: false, error: { code: 'EREQUEST_TOO_LARGE', message: frame.message } });
            socket.end();
            return;
          }
          await this.reply(conn, frame.ok ? await this.handleTimed(conn, frame.value) : this.badFrame(frame.message));
        }
        if (socket.isPaused() && !socket.destroyed) socket.resume();
      } catch (err) {
        // reply() and handle() catch their own failures; this is a last line of defence.
        this.log('error', 'control connection failed', { error: String(err) });
        socket.destroy();
      } finally {
        busy = false;
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (decoder.failed) return;
      queue.push(...decoder.push(chunk));
      if (queue.length >= MAX_QUEUED_FRAMES) socket.pause();
      void drain();
    });
  }

  /**
   * A connection beyond maxConnections: its first frame is read, one of
   * reservedCommands is answered, anything else refused (EBUSY), and the
   * connection ends either way.
   */
  private serveReserve(conn: Conn): void {
    const { socket } = conn;
    const decoder = new FrameDecoder(RESERVE_REQUEST_BYTES);
    const answer = async (frame: Frame): Promise<void> => {
      const parsed = frame.ok ? parseRequest(frame.value) : undefined;
      let response: ControlResponse;
      if (frame.ok && parsed?.ok && this.reserved.has(parsed.request.cmd)) {
        this.counters.reserveServed++;
        response = await this.handleTimed(conn, frame.value);
      } else {
        this.counters.refused++;
        const id = parsed?.ok ? parsed.request.id : undefined;
        const names = [...this.reserved].join(', ');
        response = {
          ...(id === undefined ? {} : { id }),
          ok: false,
          error: {
            code: 'EBUSY',
            message: `all ${this.maxConnections} control connections are busy; beyond them only ${names === '' ? 'nothing' : names} is served`,
          },
        };
      }
      await this.reply(conn, response);
      // Answered: its slot may go to the next one, and it does not wait for
      // this client to close (the reply is with the kernel once written).
      conn.answering = false;
      socket.end(() => socket.destroy());
    };
    let read = false;
    socket.on('data', (chunk: Buffer) => {
      if (read) return;
      const frame = decoder.push(chunk)[0];
      if (frame === undefined) return;
      read = true;
      conn.answering = true;
      socket.pause();
      answer(frame).catch((err: unknown) => {
        this.log('error', 'control connection failed', { error: String(err) });
        socket.destroy();
      });
    });
  }

  /** The request's command, with the connection's deadline clock stopped while it runs. */
  private async handleTimed(conn: Conn, value: unknown): Promise<ControlResponse> {
    this.stopClock(conn);
    try {
      return await this.handle(value);
    } finally {
      if (!conn.socket.destroyed) this.startClock(conn);
    }
  }

  private startClock(conn: Conn): void {
    if (conn.since !== undefined) return;
    conn.since = this.clock.now();
    conn.timer = this.clock.setTimeout(() => this.expire(conn), Math.max(0, conn.left));
  }

  private stopClock(conn: Conn): void {
    if (conn.since === undefined) return;
    this.clock.clearTimeout(conn.timer);
    conn.left -= this.clock.now() - conn.since;
    conn.since = undefined;
    conn.timer = undefined;
  }

  private expire(conn: Conn): void {
    conn.since = undefined;
    conn.timer = undefined;
    conn.left = 0;
    // Its slot is free now, not once the close event comes.
    this.conns.delete(conn);
    if (conn.socket.destroyed) return;
    this.counters.deadlineClosed++;
    const unread = conn.writing || conn.socket.writableLength > 0;
    if (unread) this.counters.outputStalled++;
    this.log('debug', 'control connection closed at its deadline', { deadlineMs: this.deadlineMs, unreadReply: unread });
    conn.socket.destroy();
  }

  /** Closes a connection at once, its clock with it; its slot is free at once. */
  private drop(conn: Conn): void {
    this.stopClock(conn);
    this.conns.delete(conn);
    conn.socket.destroy();
  }

  private badFrame(message: string): ControlResponse {
    this.counters.badRequests++;
    return { ok: false, error: { code: 'EBAD_REQUEST', message } };
  }

  private async handle(value: unknown): Promise<ControlResponse> {
    const parsed = parseRequest(value);
    if (!parsed.ok) {
      this.counters.badRequests++;
      return { ...(parsed.id === undefined ? {} : { id: parsed.id }), ok: false, error: parsed.error };
    }
    const { id, cmd, args } = parsed.request;
    const withId = id === undefined ? {} : { id };
    const handler = this.handlers.get(cmd);
    if (handler === undefined) {
      this.counters.badRequests++;
      return { ...withId, ok: false, error: { code: 'EUNKNOWN_COMMAND', message: `unknown command: ${cmd}` } };
    }
    this.counters.requests++;
    try {
      const result = await handler(args ?? {});
      // JSON has no undefined; null keeps `result` present in the reply.
      return { ...withId, ok: true, result: result === undefined ? null : result };
    } catch (err) {
      this.counters.failedRequests++;
      const error = errorBody(err);
      this.log('warn', 'control command failed', { cmd, ...error });
      return { ...withId, ok: false, error };
    }
  }

  /**
   * Writes one response piece by piece, never more than maxQueuedOutputBytes
   * ahead of what the reader took: a client that stops reading holds that
   * much in its socket and the rest of the reply's text (until its deadline
   * ends it), never a second copy of a whole dump.
   */
  private async reply(conn: Conn, response: ControlResponse): Promise<void> {
    const { socket } = conn;
    if (socket.destroyed) return;
    let chunks: Iterable<Buffer>;
    let length: number;
    // Serialising a large dump is the daemon's time, not the client's.
    this.stopClock(conn);
    try {
      ({ chunks, length } = encodeFrameChunks(response, MAX_RESPONSE_BYTES));
      // The pieces hold the text now; the result itself (a dump's objects, often
      // larger than their text) need not live while a slow reader takes it.
      if (response.ok) response.result = null;
    } catch (err) {
      this.counters.failedRequests++;
      const code = err instanceof ControlError && err.code === 'EFRAME_TOO_LARGE' ? 'ERESPONSE_TOO_LARGE' : 'EINTERNAL';
      const message = (err as Error).message;
      this.log('error', 'control reply could not be encoded', { code, message });
      const frame = encodeFrame(
        { ...(response.id === undefined ? {} : { id: response.id }), ok: false, error: { code, message } },
        MAX_RESPONSE_BYTES,
      );
      chunks = [frame];
      length = frame.length;
    } finally {
      if (!socket.destroyed) this.startClock(conn);
    }
    conn.writing = true;
    conn.unsent = length;
    try {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        conn.unsent -= chunk.length;
        socket.write(chunk);
        if (socket.writableLength >= this.maxQueuedOutputBytes) {
          conn.waiting = true;
          this.limitUnreadOutput();
          await drained(socket);
          conn.waiting = false;
        }
      }
    } finally {
      conn.writing = false;
      conn.waiting = false;
      conn.unsent = 0;
    }
  }

  /**
   * While the replies held for all readers together pass maxUnreadOutputBytes,
   * drops the waiting reader with the least deadline left: the one that has
   * kept the daemon waiting longest, not one that is reading along.
   */
  private limitUnreadOutput(): void {
    let total = this.unreadOutputBytes;
    while (total > this.maxUnreadOutputBytes) {
      let victim: Conn | undefined;
      for (const c of this.conns) {
        if (c.waiting && !c.socket.destroyed && (victim === undefined || this.deadlineLeft(c) < this.deadlineLeft(victim))) {
          victim = c;
        }
      }
      if (victim === undefined) return;
      total -= unread(victim);
      this.counters.outputDropped++;
      this.log('warn', 'control connection dropped: replies waiting for their readers exceed the limit', {
        unreadBytes: total + unread(victim),
        limit: this.maxUnreadOutputBytes,
      });
      this.drop(victim);
    }
  }

  /** Milliseconds of deadline the connection has left now. */
  private deadlineLeft(conn: Conn): number {
    return conn.since === undefined ? conn.left : conn.left - (this.clock.now() - conn.since);
  }
}

/** Reply bytes held for this connection's reader. */
function unread(conn: Conn): number {
  return conn.unsent + conn.socket.writableLength;
}

/** Resolves once the socket's queued output was taken, or the socket closed. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.removeListener('drain', done);
      socket.removeListener('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

/** What is unsafe about the control socket's directory, from its stat; undefined when nothing is. */
export function socketDirectoryProblem(
  st: { uid: number; mode: number; isDirectory(): boolean },
  ownUid: number,
): string | undefined {
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== 0 && st.uid !== ownUid) {
    return `is owned by uid ${st.uid}, not by root or the daemon's user (uid ${ownUid})`;
  }
  if ((st.mode & 0o022) !== 0) {
    return `is writable by group or others (mode 0${(st.mode & 0o7777).toString(8)}; chmod go-w it)`;
  }
  return undefined;
}

function errnoOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(err);
}

/** The thrown error's own code when it has one, so handlers can fail with meaningful codes. */
function errorBody(err: unknown): ControlErrorBody {
  const code = (err as { code?: unknown } | null)?.code;
  return {
    code: typeof code === 'string' && code !== '' ? code : 'EINTERNAL',
    message: err instanceof Error ? err.message : String(err),
  };
}

/**
 * 'alive' when something accepts a connection (or the backlog is full, or it
 * hangs: assume a live owner rather than steal its path), 'dead' on
 * ECONNREFUSED, 'gone' when the file vanished, else the errno.
 */
function probeSocket(path: string): Promise<'alive' | 'dead' | 'gone' | string> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path);
    const finish = (verdict: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => finish('alive'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => finish('alive'));
    socket.once('error', (err) => {
      const code = errnoOf(err);
      finish(code === 'ECONNREFUSED' ? 'dead' : code === 'ENOENT' ? 'gone' : code === 'EAGAIN' ? 'alive' : code);
    });
  });
}

/** Sets a umask that lets nothing beyond `mode` through; returns the restorer. No-op where umask cannot be set. */
function narrowUmask(mode: number): () => void {
  try {
    const previous = process.umask(0o777 & ~mode);
    return () => process.umask(previous);
  } catch {
    // Worker threads may not change the process umask; chmod still follows.
    return () => {};
  }
}
