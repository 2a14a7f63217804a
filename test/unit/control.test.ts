// The control socket on real Unix sockets in a scratch directory: the
// framing, the server's replies to good and bad clients, stale-socket
// handling, and the client's error codes.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import {
  ControlError,
  encodeFrame,
  type Frame,
  FrameDecoder,
  MAX_REQUEST_BYTES,
  parseRequest,
  parseResponse,
} from '../../src/control/protocol.js';
import { type ControlHandler, ControlServer } from '../../src/control/server.js';

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
