// The daemon's end of the control socket. Each connection reads framed JSON
// requests and answers them one at a time, in order; connections run
// concurrently. Nothing a client sends can throw into the event loop: bad
// input becomes an error reply, and only a frame that breaks the framing
// itself (an oversized length) closes the connection.

import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import type { LogContext, LogLevel } from '../log.js';
import {
  ControlError,
  type ControlErrorBody,
  type ControlResponse,
  encodeFrame,
  type Frame,
  FrameDecoder,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  parseRequest,
} from './protocol.js';

export type ControlHandler = (args: Record<string, unknown>) => unknown;
export type ControlLog = (level: LogLevel, msg: string, ctx?: LogContext) => void;

export interface ControlServerOptions {
  path: string;
  /** Permissions of the socket file. Default 0o600: only the daemon's user (root) may drive it. */
  mode?: number;
  /** Command name → handler. A handler may return a promise; what it resolves to is the reply's result. */
  handlers: Record<string, ControlHandler>;
  log?: ControlLog;
  /** A connection with no request running is closed after this long without traffic. Default 60 000. */
  idleTimeoutMs?: number;
  /** Connections beyond this are closed as soon as they are accepted. Default 64. */
  maxConnections?: number;
}

export interface ControlServerCounters {
  connections: number;
  requests: number;
  /** Requests whose handler threw or whose result could not be sent. */
  failedRequests: number;
  /** Frames that were not valid requests, unknown commands and oversized frames. */
  badRequests: number;
}

/** Frames read ahead of the one being handled before the socket is paused. */
const MAX_QUEUED_FRAMES = 16;
const PROBE_TIMEOUT_MS = 1000;

export class ControlServer {
  readonly counters: ControlServerCounters = { connections: 0, requests: 0, failedRequests: 0, badRequests: 0 };
  private readonly handlers: Map<string, ControlHandler>;
  private readonly mode: number;
  private readonly log: ControlLog;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private state: 'new' | 'starting' | 'listening' | 'closed' = 'new';
  /** Identity of the socket file we created, so close() never unlinks a successor's. */
  private fileId: { dev: number; ino: number } | undefined;

  constructor(private readonly opts: ControlServerOptions) {
    // A Map, so "constructor" or "__proto__" never resolve to Object.prototype members.
    this.handlers = new Map(Object.entries(opts.handlers));
    this.mode = opts.mode ?? 0o600;
    this.log = opts.log ?? (() => {});
  }

  get path(): string {
    return this.opts.path;
  }

  get activeConnections(): number {
    return this.sockets.size;
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
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new ControlError('ECONTROL_SOCKET', `cannot create ${dirname(path)}: ${errnoOf(err)}`, { cause: err });
    }
    await this.removeStaleSocket(path);
    const server = net.createServer((socket) => this.onConnection(socket));
    server.maxConnections = this.opts.maxConnections ?? 64;
    await this.listen(server, path);
    try {
      chmodSync(path, this.mode);
      const st = lstatSync(path);
      this.fileId = { dev: st.dev, ino: st.ino };
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw new ControlError('ECONTROL_SOCKET', `cannot set permissions of ${path}: ${errnoOf(err)}`, { cause: err });
    }
    server.on('error', (err) => this.log('error', 'control socket error', { path, error: errnoOf(err) }));
    this.server = server;
    this.state = 'listening';
    this.log('info', 'control socket listening', { path, mode: `0${this.mode.toString(8)}` });
  }

  /** Stops accepting, drops open connections (replies in flight are lost) and removes the socket file. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
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
    this.counters.connections++;
    this.sockets.add(socket);
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
            await this.reply(socket, { ok: false, error: { code: 'EREQUEST_TOO_LARGE', message: frame.message } });
            socket.end();
            return;
          }
          await this.reply(socket, frame.ok ? await this.handle(frame.value) : this.badFrame(frame.message));
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

    socket.setTimeout(this.opts.idleTimeoutMs ?? 60_000);
    socket.on('timeout', () => {
      if (!busy) socket.destroy();
    });
    socket.on('error', (err) => this.log('debug', 'control connection error', { error: errnoOf(err) }));
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      if (decoder.failed) return;
      queue.push(...decoder.push(chunk));
      if (queue.length >= MAX_QUEUED_FRAMES) socket.pause();
      void drain();
    });
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

  /** Writes one response, waiting out backpressure so a huge dump never piles up in memory twice. */
  private async reply(socket: net.Socket, response: ControlResponse): Promise<void> {
    if (socket.destroyed) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(response, MAX_RESPONSE_BYTES);
    } catch (err) {
      this.counters.failedRequests++;
      const code = err instanceof ControlError && err.code === 'EFRAME_TOO_LARGE' ? 'ERESPONSE_TOO_LARGE' : 'EINTERNAL';
      const message = (err as Error).message;
      this.log('error', 'control reply could not be encoded', { code, message });
      frame = encodeFrame(
        { ...(response.id === undefined ? {} : { id: response.id }), ok: false, error: { code, message } },
        MAX_RESPONSE_BYTES,
      );
    }
    if (socket.write(frame)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        socket.removeListener('drain', done);
        socket.removeListener('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }
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
