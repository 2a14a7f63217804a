// The control socket on real Unix sockets in a scratch directory: the
// framing, the server's replies to good and bad clients, stale-socket
// handling, and the client's error codes.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import {
  ControlError,
  type ControlResponse,
  encodeFrame,
  encodeFrameChunks,
  type Frame,
  FrameDecoder,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  parseRequest,
  parseResponse,
  REPLY_CHUNK_BYTES,
} from '../../src/control/protocol.js';
import {
  type ControlClock,
  type ControlHandler,
  ControlServer,
  type ControlServerOptions,
  socketDirectoryProblem,
} from '../../src/control/server.js';

let dir = '';
const servers: ControlServer[] = [];
const rawServers: net.Server[] = [];
const rawSockets = new Set<net.Socket>();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ctsyncd-ctl-'));
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const s of rawSockets) s.destroy();
  rawSockets.clear();
  await Promise.all(rawServers.splice(0).map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A stand-in daemon that misbehaves as `onConnection` says. */
async function rawServer(path: string, onConnection: (s: net.Socket) => void): Promise<void> {
  const server = net.createServer((s) => {
    rawSockets.add(s);
    onConnection(s);
  });
  rawServers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
}

function codeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const handlers: Record<string, ControlHandler> = {
  echo: (args) => args,
  add: (args) => Number(args.a) + Number(args.b),
  nothing: () => undefined,
  big: () => ({ n: 12345678901234567890n }),
  later: async (args) => {
    await sleep(Number(args.ms));
    return { id: args.id };
  },
  failCode: () => {
    throw codeError('EBAD_ARGS', 'dump needs cache: internal or external');
  },
  failPlain: () => {
    throw new Error('something broke');
  },
  failString: () => {
    throw 'a string';
  },
  failAsync: async () => {
    await sleep(1);
    throw codeError('EBUSY', 'commit already in progress');
  },
};

async function startServer(opts: { path?: string; mode?: number } = {}): Promise<ControlServer> {
  const server = new ControlServer({ path: opts.path ?? join(dir, 'ctsyncd.sock'), mode: opts.mode, handlers });
  servers.push(server);
  await server.start();
  return server;
}

/** A hand-driven connection for sending what the real client never would. */
class RawClient {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(MAX_REQUEST_BYTES * 16);

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.frames.push(...this.decoder.push(chunk)));
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  request(value: unknown): void {
    this.write(encodeFrame(value, MAX_REQUEST_BYTES));
  }

  /** Raw bytes framed correctly: a valid frame around an invalid payload. */
  framedBytes(payload: Buffer | string): void {
    const body = Buffer.from(payload);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    this.write(Buffer.concat([header, body]));
  }

  async responses(n: number): Promise<unknown[]> {
    await until(() => this.frames.length >= n, `${n} responses`);
    return this.frames.slice(0, n).map((f) => (f.ok ? f.value : f));
  }

  end(): void {
    this.socket.destroy();
  }
}

describe('FrameDecoder', () => {
  it('decodes frames fed one byte at a time, including multi-byte UTF-8 split across bytes', () => {
    const values = [{ cmd: 'stats' }, { cmd: 'echo', args: { text: 'grüße ✓ 🔥' } }, [1, 2, 3], 'plain', null];
    const bytes = Buffer.concat(values.map((v) => encodeFrame(v, MAX_REQUEST_BYTES)));
    const decoder = new FrameDecoder(MAX_REQUEST_BYTES);
    const out: Frame[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...decoder.push(bytes.subarray(i, i + 1)));
    expect(out).toEqual(values.map((value) => ({ ok: true, value })));
    expect(decoder.pendingBytes).toBe(0);
  });

  it('decodes many frames from one chunk and keeps a partial tail for later', () => {
    const bytes = Buffer.concat([encodeFrame({ a: 1 }, 100), encodeFrame({ b: 2 }, 100), encodeFrame({ c: 3 }, 100)]);
    const decoder = new FrameDecoder(100);
    expect(decoder.push(bytes.subarray(0, bytes.length - 3))).toEqual([
      { ok: true, value: { a: 1 } },
      { ok: true, value: { b: 2 } },
    ]);
    expect(decoder.push(bytes.subarray(bytes.length - 3))).toEqual([{ ok: true, value: { c: 3 } }]);
  });

  it('reports bad JSON and bad UTF-8 without losing the frames after them', () => {
    const bad = (s: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, s.length]), s]);
    const decoder = new FrameDecoder(100);
    const frames = decoder.push(
      Buffer.concat([
        bad(Buffer.from('{nope')),
        bad(Buffer.from([0xff, 0xfe])),
        bad(Buffer.alloc(0)),
        encodeFrame(7, 100),
      ]),
    );
    expect(frames.map((f) => (f.ok ? f.value : `${f.code}${f.fatal ? '!' : ''}`))).toEqual([
      'EBAD_JSON',
      'EBAD_JSON',
      'EBAD_JSON',
      7,
    ]);
  });

  it('gives up on a length prefix over the limit, before the body arrives, and ignores what follows', () => {
    const decoder = new FrameDecoder(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1025);
    const [frame, ...rest] = decoder.push(header);
    expect(rest).toEqual([]);
    expect(frame).toMatchObject({ ok: false, code: 'EFRAME_TOO_LARGE', fatal: true });
    expect(decoder.failed).toBe(true);
    expect(decoder.push(encodeFrame({ a: 1 }, 1024))).toEqual([]);
  });

  it('encodeFrame refuses values that are too large or not JSON', () => {
    expect(() => encodeFrame('x'.repeat(200), 100)).toThrow(expect.objectContaining({ code: 'EFRAME_TOO_LARGE' }));
    expect(() => encodeFrame(undefined, 100)).toThrow(expect.objectContaining({ code: 'EBAD_VALUE' }));
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => encodeFrame(circular, 100)).toThrow(expect.objectContaining({ code: 'EBAD_VALUE' }));
  });

  it('parseRequest and parseResponse accept only the documented shapes', () => {
    expect(parseRequest({ id: 3, cmd: 'stats', args: { kind: 'ct' } })).toEqual({
      ok: true,
      request: { id: 3, cmd: 'stats', args: { kind: 'ct' } },
    });
    expect(parseRequest({ cmd: 'stats' })).toEqual({ ok: true, request: { cmd: 'stats' } });
    for (const bad of [
      null,
      [],
      'stats',
      5,
      {},
      { cmd: '' },
      { cmd: 5 },
      { cmd: 'x', args: [] },
      { cmd: 'x', id: 'a' },
    ]) {
      expect(parseRequest(bad)).toMatchObject({ ok: false, error: { code: 'EBAD_REQUEST' } });
    }
    expect(parseRequest({ id: 9, cmd: 5 })).toMatchObject({ ok: false, id: 9 });
    expect(parseResponse({ id: 1, ok: true, result: null })).toEqual({ id: 1, ok: true, result: null });
    expect(parseResponse({ ok: false, error: { code: 'E', message: 'm' } })).toEqual({
      ok: false,
      error: { code: 'E', message: 'm' },
    });
    for (const bad of [
      null,
      { ok: true },
      { ok: false },
      { ok: false, error: { code: 1, message: 'm' } },
      { ok: 'yes' },
    ]) {
      expect(parseResponse(bad)).toBeUndefined();
    }
  });
});

describe('ControlServer and controlRequest', () => {
  it('answers a request with the handler result', async () => {
    const server = await startServer();
    const path = server.path;
    expect(await controlRequest(path, 'echo', { x: [1, 'two'] })).toEqual({ x: [1, 'two'] });
    expect(await controlRequest(path, 'add', { a: 2, b: 40 })).toBe(42);
    expect(await controlRequest(path, 'echo')).toEqual({});
    expect(await controlRequest(path, 'nothing')).toBeNull();
    expect(await controlRequest(path, 'big')).toEqual({ n: '12345678901234567890' });
    expect(server.counters).toMatchObject({ requests: 5, failedRequests: 0, badRequests: 0 });
  });

  it('serves concurrent clients independently', async () => {
    const server = await startServer();
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => controlRequest(server.path, 'later', { id: i, ms: (i * 7) % 30 })),
    );
    expect(results).toEqual(Array.from({ length: 25 }, (_, i) => ({ id: i })));
    expect(server.counters.connections).toBe(25);
  });

  it('answers pipelined requests on one connection in order, echoing ids', async () => {
    const server = await startServer();
    const raw = await RawClient.connect(server.path);
    raw.request({ id: 1, cmd: 'later', args: { id: 'slow', ms: 40 } });
    raw.request({ id: 2, cmd: 'later', args: { id: 'fast', ms: 0 } });
    raw.request({ cmd: 'add', args: { a: 1, b: 1 } });
    expect(await raw.responses(3)).toEqual([
      { id: 1, ok: true, result: { id: 'slow' } },
      { id: 2, ok: true, result: { id: 'fast' } },
      { ok: true, result: 2 },
    ]);
    raw.end();
  });

  it('answers an unknown command, including Object.prototype names, with EUNKNOWN_COMMAND', async () => {
    const server = await startServer();
    for (const cmd of ['nope', 'constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      await expect(controlRequest(server.path, cmd)).rejects.toMatchObject({
        code: 'EUNKNOWN_COMMAND',
        message: `unknown command: ${cmd}`,
      });
    }
    expect(await controlRequest(server.path, 'add', { a: 1, b: 2 })).toBe(3);
  });

  it('answers malformed requests with EBAD_REQUEST and keeps the connection usable', async () => {
    const server = await startServer();
    const raw = await RawClient.connect(server.path);
    raw.framedBytes('{"cmd": "echo",');
    raw.framedBytes(Buffer.from([0xc3, 0x28]));
    raw.request([1, 2]);
    raw.request({ args: {} });
    raw.request({ id: 5, cmd: 'echo', args: 'not an object' });
    raw.request({ id: 6, cmd: 'add', args: { a: 20, b: 22 } });
    const replies = await raw.responses(6);
    expect(replies.slice(0, 5).map((r) => (r as { error: { code: string } }).error.code)).toEqual(
      Array(5).fill('EBAD_REQUEST'),
    );
    expect(replies[4]).toMatchObject({ id: 5, ok: false });
    expect(replies[5]).toEqual({ id: 6, ok: true, result: 42 });
    expect(raw.closed).toBe(false);
    expect(server.counters.badRequests).toBe(5);
    raw.end();
  });

  it('refuses an oversize length prefix with an error reply, closes that connection and serves on', async () => {
    const server = await startServer();
    const raw = await RawClient.connect(server.path);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_REQUEST_BYTES + 1);
    raw.write(header);
    const [reply] = await raw.responses(1);
    expect(reply).toMatchObject({ ok: false, error: { code: 'EREQUEST_TOO_LARGE' } });
    await until(() => raw.closed, 'the server to close the connection');
    expect(await controlRequest(server.path, 'add', { a: 1, b: 1 })).toBe(2);
  });

  it('survives raw garbage byte streams', async () => {
    const server = await startServer();
    const streams = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0, 0, 0, 3, 0xde, 0xad, 0xbe, 0, 0, 0, 1, 0x7b]),
      Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)),
    ];
    for (const bytes of streams) {
      const raw = await RawClient.connect(server.path);
      raw.write(bytes);
      await sleep(20);
      raw.end();
    }
    // An abandoned half frame, then a client that vanishes mid-reply.
    const half = await RawClient.connect(server.path);
    half.write(Buffer.from([0, 0, 0, 50, 0x7b]));
    half.end();
    const quitter = await RawClient.connect(server.path);
    quitter.request({ cmd: 'later', args: { ms: 30 } });
    quitter.end();
    await sleep(60);
    expect(await controlRequest(server.path, 'echo', { still: 'alive' })).toEqual({ still: 'alive' });
    await until(() => server.activeConnections === 0, 'garbage connections to close');
  });

  it('turns a thrown error into an error reply with its code, or EINTERNAL', async () => {
    const server = await startServer();
    const path = server.path;
    await expect(controlRequest(path, 'failCode')).rejects.toMatchObject({
      code: 'EBAD_ARGS',
      message: 'dump needs cache: internal or external',
    });
    await expect(controlRequest(path, 'failAsync')).rejects.toMatchObject({
      code: 'EBUSY',
      message: 'commit already in progress',
    });
    await expect(controlRequest(path, 'failPlain')).rejects.toMatchObject({
      code: 'EINTERNAL',
      message: 'something broke',
    });
    await expect(controlRequest(path, 'failString')).rejects.toMatchObject({ code: 'EINTERNAL', message: 'a string' });
    const err = await controlRequest(path, 'failCode').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect(server.counters.failedRequests).toBe(5);
  });

  it('replaces a stale socket file left by a killed daemon', async () => {
    const path = join(dir, 'ctsyncd.sock');
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
    ]);
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', () => reject(new Error('listener child exited early')));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(statSync(path).isSocket()).toBe(true);
    await expect(controlRequest(path, 'echo')).rejects.toMatchObject({ code: 'ENOTRUNNING' });

    const server = await startServer({ path });
    expect(await controlRequest(path, 'add', { a: 3, b: 4 })).toBe(7);
    await server.close();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses to start while another server answers on the path, and leaves it alone', async () => {
    const first = await startServer();
    const second = new ControlServer({ path: first.path, handlers: {} });
    const err = await second.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect(err).toMatchObject({ code: 'EALREADY_RUNNING', message: expect.stringContaining(first.path) });
    await second.close();
    expect(await controlRequest(first.path, 'add', { a: 1, b: 1 })).toBe(2);
  });

  it('refuses to replace a path that is not a socket', async () => {
    const path = join(dir, 'not-a-socket');
    writeFileSync(path, 'precious');
    const server = new ControlServer({ path, handlers });
    await expect(server.start()).rejects.toMatchObject({ code: 'ECONTROL_SOCKET' });
    expect(statSync(path).isFile()).toBe(true);
  });

  it('creates the socket 0600 by default, honours another mode, and creates the parent directory 0755', async () => {
    const a = await startServer();
    expect(statSync(a.path).mode & 0o777).toBe(0o600);
    const nested = join(dir, 'run', 'ctsyncd', 'ctl.sock');
    const b = await startServer({ path: nested, mode: 0o660 });
    expect(statSync(b.path).mode & 0o777).toBe(0o660);
    expect(statSync(join(dir, 'run', 'ctsyncd')).mode & 0o777).toBe(0o755);
  });

  it('removes its socket file on close, with clients still connected', async () => {
    const server = await startServer();
    const raw = await RawClient.connect(server.path);
    await server.close();
    expect(existsSync(server.path)).toBe(false);
    await until(() => raw.closed, 'the client to be dropped');
  });

  it('client: a missing socket is ENOTRUNNING with a readable message', async () => {
    const path = join(dir, 'absent.sock');
    const err = await controlRequest(path, 'stats').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect(err).toMatchObject({ code: 'ENOTRUNNING', message: `ctsyncd is not running (no daemon at ${path})` });
  });

  it('client: no reply in time is ETIMEDOUT', async () => {
    const path = join(dir, 'silent.sock');
    await rawServer(path, () => {});
    await expect(controlRequest(path, 'stats', undefined, { timeoutMs: 100 })).rejects.toMatchObject({
      code: 'ETIMEDOUT',
    });
  });

  it.each([
    ['garbage', (s: net.Socket) => s.end(Buffer.from('\u0000\u0000\u0000\u0002{x'))],
    ['a non-response', (s: net.Socket) => s.end(encodeFrame({ hello: 1 }, 100))],
    ['another id', (s: net.Socket) => s.end(encodeFrame({ id: 99, ok: true, result: 1 }, 100))],
    ['nothing before closing', (s: net.Socket) => s.end()],
  ])('client: %s as the reply is EPROTO', async (_label, answer) => {
    const path = join(dir, 'odd.sock');
    await rawServer(path, (s) => s.once('data', () => answer(s)));
    await expect(controlRequest(path, 'stats')).rejects.toMatchObject({ code: 'EPROTO' });
  });
});

/** Timers that fire only when the test moves the clock: deadlines without waiting, and without timing assertions. */
class FakeClock implements ControlClock {
  private t = 1_000_000;
  private readonly timers = new Map<number, { due: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { due: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Moves time on, firing what falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.timers.entries()].filter(([, x]) => x.due <= end).sort((a, b) => a[1].due - b[1].due)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].due;
      next[1].fn();
    }
    this.t = end;
  }
}

const RESERVED = ['failover', 'commit', 'stats', 'ping'];

async function limitedServer(opts: Partial<ControlServerOptions> & { extra?: Record<string, ControlHandler> } = {}) {
  const clock = new FakeClock();
  const { extra, ...rest } = opts;
  const server = new ControlServer({
    path: join(dir, 'ctl.sock'),
    handlers: {
      ...handlers,
      failover: (a) => ({ state: a.state ?? 'primary', steps: 4, failed: 0 }),
      commit: () => ({ committed: 0 }),
      stats: () => ({ ready: true }),
      ping: () => ({ pong: true }),
      ...extra,
    },
    clock,
    reservedCommands: RESERVED,
    ...rest,
  });
  servers.push(server);
  await server.start();
  return { server, clock };
}

describe('ControlServer limits', () => {
  it('closes a client that trickles its request at its deadline: traffic does not renew it', async () => {
    const { server, clock } = await limitedServer({ deadlineMs: 1000 });
    const raw = await RawClient.connect(server.path);
    const frame = encodeFrame({ cmd: 'echo', args: { a: 1 } }, MAX_REQUEST_BYTES);
    for (let i = 0; i < 3; i++) {
      raw.write(frame.subarray(i, i + 1));
      await sleep(5);
      clock.advance(333);
    }
    expect(server.counters.deadlineClosed).toBe(0);
    clock.advance(1);
    expect(server.counters.deadlineClosed).toBe(1);
    await until(() => raw.closed, 'the trickling client to be closed');
    expect(raw.frames).toEqual([]);
    expect(server.counters).toMatchObject({ requests: 0, outputStalled: 0 });
  });

  it('does not count the time a command runs: a long commit is answered, the idle wait after it is', async () => {
    let release: () => void = () => {};
    let started = false;
    const { server, clock } = await limitedServer({
      deadlineMs: 1000,
      extra: {
        slow: () =>
          new Promise((r) => {
            started = true;
            release = () => r({ done: true });
          }),
      },
    });
    const raw = await RawClient.connect(server.path);
    raw.request({ id: 1, cmd: 'slow' });
    await until(() => started, 'the command to start');
    clock.advance(60_000);
    expect(server.counters.deadlineClosed).toBe(0);
    release();
    expect(await raw.responses(1)).toEqual([{ id: 1, ok: true, result: { done: true } }]);
    clock.advance(999);
    expect(raw.closed).toBe(false);
    clock.advance(1);
    await until(() => raw.closed, 'the idle client to be closed');
    expect(server.counters.deadlineClosed).toBe(1);
  });

  it.each([
    ['failover', { state: 'primary' }, { state: 'primary', steps: 4, failed: 0 }],
    ['commit', {}, { committed: 0 }],
    ['stats', {}, { ready: true }],
    ['ping', {}, { pong: true }],
  ])('answers %s beyond maxConnections while every regular connection is stalled', async (cmd, args, want) => {
    const { server } = await limitedServer({ maxConnections: 4, reserveConnections: 2 });
    const stalled = await Promise.all(Array.from({ length: 4 }, () => RawClient.connect(server.path)));
    for (const s of stalled) s.write(Buffer.from([0]));
    await until(() => server.activeConnections === 4, 'four stalled connections');
    expect(await controlRequest(server.path, cmd, args)).toEqual(want);
    expect(server.counters).toMatchObject({ reserveServed: 1, refused: 0 });
    expect(stalled.some((s) => s.closed)).toBe(false);
  });

  it('refuses any other command beyond maxConnections with EBUSY, naming what is served', async () => {
    const { server } = await limitedServer({ maxConnections: 1, reserveConnections: 1 });
    const stalled = await RawClient.connect(server.path);
    stalled.write(Buffer.from([0]));
    await until(() => server.activeConnections === 1, 'the stalled connection');
    const err = await controlRequest(server.path, 'echo', { a: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'EBUSY',
      message: 'all 1 control connections are busy; beyond them only failover, commit, stats, ping is served',
    });
    expect(server.counters).toMatchObject({ reserveServed: 0, refused: 1 });
    await until(() => server.activeConnections === 1, 'the refused connection to be gone');
    // A reserve connection serves one request and ends.
    const raw = await RawClient.connect(server.path);
    raw.request({ id: 1, cmd: 'ping' });
    raw.request({ id: 2, cmd: 'ping' });
    expect(await raw.responses(1)).toEqual([{ id: 1, ok: true, result: { pong: true } }]);
    await until(() => raw.closed, 'the reserve connection to end');
    expect(raw.frames).toHaveLength(1);
  });

  it('a full reserve makes room by dropping its oldest silent connection', async () => {
    const { server } = await limitedServer({ maxConnections: 1, reserveConnections: 2 });
    const regular = await RawClient.connect(server.path);
    regular.write(Buffer.from([0]));
    await until(() => server.activeConnections === 1, 'the regular connection');
    const silent1 = await RawClient.connect(server.path);
    await until(() => server.activeConnections === 2, 'the first reserve connection');
    const silent2 = await RawClient.connect(server.path);
    await until(() => server.activeConnections === 3, 'the second reserve connection');
    expect(await controlRequest(server.path, 'failover', { state: 'backup' })).toMatchObject({ state: 'backup' });
    await until(() => silent1.closed, 'the oldest silent reserve connection to be dropped');
    expect(silent2.closed).toBe(false);
    expect(regular.closed).toBe(false);
    expect(server.counters).toMatchObject({ reserveServed: 1, refused: 1 });
  });

  it('reserve clients that were answered and never close do not keep the next failover out', async () => {
    const { server } = await limitedServer({ maxConnections: 1, reserveConnections: 2 });
    const regular = await RawClient.connect(server.path);
    regular.write(Buffer.from([0]));
    await until(() => server.activeConnections === 1, 'the regular connection');
    const lingering: RawClient[] = [];
    for (let i = 0; i < 4; i++) {
      const raw = await RawClient.connect(server.path);
      raw.request({ id: i, cmd: 'ping' });
      await raw.responses(1);
      lingering.push(raw);
    }
    expect(await controlRequest(server.path, 'failover', { state: 'fault' })).toMatchObject({ state: 'fault' });
    expect(server.counters).toMatchObject({ reserveServed: 5, refused: 0 });
    for (const raw of lingering) raw.end();
  });

  it('a reader that stops holds at most the output cap in its socket, and is closed at its deadline, counted', async () => {
    const items = Array.from({ length: 100_000 }, (_, i) => ({ i, src: `10.0.${i >> 8}.${i & 255}`, state: 'ESTABLISHED' }));
    const cap = 64 * 1024;
    const { server, clock } = await limitedServer({ deadlineMs: 1000, maxQueuedOutputBytes: cap, extra: { big: () => items } });
    const expected = encodeFrame({ id: 7, ok: true, result: items }, MAX_RESPONSE_BYTES);
    expect(expected.length).toBeGreaterThan(4 * 1024 * 1024);

    const socket = net.createConnection(server.path);
    await new Promise((r) => socket.once('connect', r));
    socket.pause();
    socket.write(encodeFrame({ id: 7, cmd: 'big' }, MAX_REQUEST_BYTES));
    await until(() => server.queuedOutputBytes > 0, 'the reply to back up');
    await sleep(50);
    expect(server.queuedOutputBytes).toBeLessThanOrEqual(cap + REPLY_CHUNK_BYTES);
    clock.advance(1000);
    expect(server.counters).toMatchObject({ deadlineClosed: 1, outputStalled: 1 });
    socket.destroy();
    await until(() => server.activeConnections === 0, 'the stalled reader to be gone');

    // A reader that reads gets the whole reply, byte for byte what one frame of it would be.
    const reader = net.createConnection(server.path);
    const got: Buffer[] = [];
    reader.on('data', (d: Buffer) => got.push(d));
    reader.write(encodeFrame({ id: 7, cmd: 'big' }, MAX_REQUEST_BYTES));
    await until(() => got.reduce((n, b) => n + b.length, 0) >= expected.length, 'the whole reply');
    reader.destroy();
    expect(Buffer.concat(got).equals(expected)).toBe(true);
  });

  it('stalled readers cannot add up: past the limit on unread replies, the one waiting longest is dropped, counted', async () => {
    const items = Array.from({ length: 60_000 }, (_, i) => ({ i, src: `10.0.${i >> 8}.${i & 255}`, state: 'ESTABLISHED' }));
    const replyBytes = encodeFrame({ id: 1, ok: true, result: items }, MAX_RESPONSE_BYTES).length;
    const { server, clock } = await limitedServer({
      deadlineMs: 10_000,
      maxQueuedOutputBytes: 64 * 1024,
      maxUnreadOutputBytes: Math.round(replyBytes * 1.5),
      extra: { big: () => items },
    });
    const stalled = async (): Promise<net.Socket> => {
      const socket = net.createConnection(server.path);
      await new Promise((r) => socket.once('connect', r));
      socket.on('error', () => {});
      socket.pause();
      socket.write(encodeFrame({ id: 1, cmd: 'big' }, MAX_REQUEST_BYTES));
      return socket;
    };
    const first = await stalled();
    await until(() => server.queuedOutputBytes > 0, 'the first reply to back up');
    expect(server.unreadOutputBytes).toBeLessThanOrEqual(replyBytes);
    clock.advance(100);
    const second = await stalled();
    await until(() => server.counters.outputDropped === 1, 'the first reader to be dropped');
    await until(() => server.activeConnections === 1, 'only the second reader left');
    expect(server.unreadOutputBytes).toBeLessThanOrEqual(replyBytes);
    expect(server.counters).toMatchObject({ outputDropped: 1, deadlineClosed: 0 });
    // The newer reader is the one left, and gets its whole reply once it reads.
    let got = 0;
    second.on('data', (d: Buffer) => (got += d.length));
    second.resume();
    await until(() => got === replyBytes, 'the second reply, whole');
    first.destroy();
    second.destroy();
  });

  it.each([
    ['root, 0755', { uid: 0, mode: 0o40755, dir: true }, 0, undefined],
    ['root, 0700', { uid: 0, mode: 0o40700, dir: true }, 0, undefined],
    ["the daemon's user, 0755", { uid: 998, mode: 0o40755, dir: true }, 998, undefined],
    ['root, 0775', { uid: 0, mode: 0o40775, dir: true }, 0, /writable by group or others \(mode 0775/],
    ['root, 0777', { uid: 0, mode: 0o40777, dir: true }, 0, /writable by group or others/],
    ['root, sticky 1777 (/tmp)', { uid: 0, mode: 0o41777, dir: true }, 0, /mode 01777/],
    ['another user, 0755', { uid: 1000, mode: 0o40755, dir: true }, 0, /owned by uid 1000, not by root or the daemon's user \(uid 0\)/],
    ['not a directory', { uid: 0, mode: 0o100644, dir: false }, 0, /is not a directory/],
  ])('socket directory: %s', (_name, st, ownUid, want) => {
    const got = socketDirectoryProblem({ uid: st.uid, mode: st.mode, isDirectory: () => st.dir }, ownUid);
    if (want === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(want);
  });

  it('refuses to start in a directory others may write or another user owns, creating nothing there', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const a = new ControlServer({ path: join(open, 'ctl.sock'), handlers });
    servers.push(a);
    const err = await a.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect(err).toMatchObject({
      code: 'EUNSAFE_SOCKET_DIR',
      message: expect.stringContaining(`control socket directory ${open} is writable by group or others`),
    });
    expect(readdirSync(open)).toEqual([]);

    const theirs = join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    const owner = statSync(theirs).uid;
    // A daemon whose user is neither root nor the directory's owner.
    const b = new ControlServer({ path: join(theirs, 'ctl.sock'), handlers, ownUid: owner + 1 });
    servers.push(b);
    if (owner === 0) {
      await expect(b.start()).resolves.toBeUndefined();
    } else {
      await expect(b.start()).rejects.toMatchObject({ code: 'EUNSAFE_SOCKET_DIR' });
    }
    if (process.getuid?.() === 0) {
      const other = join(dir, 'other');
      mkdirSync(other, { mode: 0o755 });
      chownSync(other, 65534, 65534);
      const c = new ControlServer({ path: join(other, 'ctl.sock'), handlers });
      servers.push(c);
      await expect(c.start()).rejects.toMatchObject({
        code: 'EUNSAFE_SOCKET_DIR',
        message: expect.stringContaining('is owned by uid 65534'),
      });
    }
  });

  it('client: refuses a socket owned by another user than root or itself, sending nothing', async () => {
    const path = join(dir, 'planted.sock');
    let received = 0;
    await rawServer(path, (s) => s.on('data', (d: Buffer) => (received += d.length)));
    if (process.getuid?.() === 0) chownSync(path, 65534, 65534);
    const owner = statSync(path).uid;
    // Run as a user who is neither root nor the socket's owner.
    const err = await controlRequest(path, 'commit', {}, { ownUid: owner === 0 ? 1 : owner + 1 }).catch((e: unknown) => e);
    if (owner === 0) {
      // Not root here and not able to plant a foreign socket: root's socket is always trusted.
      expect(err).toMatchObject({ code: 'ETIMEDOUT' });
      return;
    }
    expect(err).toBeInstanceOf(ControlError);
    expect(err).toMatchObject({
      code: 'EUNSAFE_SOCKET',
      message: expect.stringContaining(`is owned by uid ${owner}, not by root or you`),
    });
    await sleep(20);
    expect(received).toBe(0);
  });

  it('a close() during start() leaves nothing listening, at any point of the start', async () => {
    for (const turns of [0, 1, 2, 3, 5, 10, 20]) {
      const path = join(dir, `race-${turns}.sock`);
      const server = new ControlServer({ path, handlers });
      const started = server.start();
      for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
      await server.close();
      await expect(started).resolves.toBeUndefined();
      await expect(controlRequest(path, 'echo')).rejects.toMatchObject({ code: 'ENOTRUNNING' });
    }
  });
});

describe('encodeFrameChunks', () => {
  const cases: Array<[string, ControlResponse]> = [
    ['a list with an id', { id: 3, ok: true, result: [{ a: 1 }, 'two', 3, null, [4]] }],
    ['a list without an id', { ok: true, result: [{ text: 'grüße ✓ 🔥' }] }],
    ['an empty list', { id: 1, ok: true, result: [] }],
    ['what JSON cannot hold, and bigints', { ok: true, result: [undefined, () => 1, 12345678901234567890n] }],
    ['an object', { id: 2, ok: true, result: { n: 1n, list: [1, 2] } }],
    ['an error', { id: 2, ok: false, error: { code: 'EBUSY', message: 'busy' } }],
  ];
  it.each(cases)('%s: the pieces are the bytes of encodeFrame', (_name, response) => {
    const { length, chunks } = encodeFrameChunks(response, MAX_RESPONSE_BYTES, 8);
    const joined = Buffer.concat([...chunks]);
    expect(joined.equals(encodeFrame(response, MAX_RESPONSE_BYTES))).toBe(true);
    expect(length).toBe(joined.length);
  });

  it('any JSON list, in pieces of any size, is the bytes of encodeFrame', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue()), fc.option(fc.nat()), fc.integer({ min: 1, max: 300 }), (list, id, size) => {
        const response: ControlResponse = id === null ? { ok: true, result: list } : { id, ok: true, result: list };
        const joined = Buffer.concat([...encodeFrameChunks(response, MAX_RESPONSE_BYTES, size).chunks]);
        expect(joined.equals(encodeFrame(response, MAX_RESPONSE_BYTES))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a list over the limit before the first piece, as encodeFrame does', () => {
    const response: ControlResponse = { ok: true, result: ['x'.repeat(100), 'y'.repeat(100)] };
    expect(() => encodeFrameChunks(response, 150)).toThrow(expect.objectContaining({ code: 'EFRAME_TOO_LARGE' }));
    expect(() => encodeFrame(response, 150)).toThrow(expect.objectContaining({ code: 'EFRAME_TOO_LARGE' }));
  });
});
