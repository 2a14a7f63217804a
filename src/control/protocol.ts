// The control socket protocol: each frame is a 4-byte big-endian length and
// that many bytes of UTF-8 JSON. A client sends requests
// `{ id?, cmd, args? }` and gets one response per request, in order, each
// echoing the request's id. Unlike conntrackd's one-int-then-text protocol,
// replies are structured (the CLI formats them) and failures carry a code.
import { CtsyncdError, type CtsyncdErrorOptions } from '../common/errors.js';

/** Requests are small commands; a bigger length prefix is a confused or hostile client. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** A full cache dump of a million entries fits; V8 cannot build much larger strings anyway. */
export const MAX_RESPONSE_BYTES = 512 * 1024 * 1024;
const HEADER_BYTES = 4;

export interface ControlRequest {
  id?: number;
  cmd: string;
  args?: Record<string, unknown>;
}

export interface ControlErrorBody {
  code: string;
  message: string;
}

export type ControlResponse =
  | { id?: number; ok: true; result: unknown }
  | { id?: number; ok: false; error: ControlErrorBody };

/**
 * Errors of the control interface on both sides. Server start-up:
 * EALREADY_RUNNING, ECONTROL_SOCKET. Client: ENOTRUNNING, EACCES,
 * ETIMEDOUT, EPROTO, or the code of a failed command as the server sent it.
 */
export class ControlError extends CtsyncdError {
  constructor(
    readonly code: string,
    message: string,
    options?: CtsyncdErrorOptions,
  ) {
    super(message, options);
  }
}

export function isControlError(err: unknown): err is ControlError {
  return err instanceof ControlError;
}

export type FrameErrorCode =
  /** The length prefix exceeds the limit; the stream cannot be resynchronised. */
  | 'EFRAME_TOO_LARGE'
  /** The payload is not UTF-8 JSON; framing is intact, the next frame may be fine. */
  | 'EBAD_JSON';

export type Frame =
  | { ok: true; value: unknown }
  | { ok: false; code: FrameErrorCode; message: string /** No further frames can be read. */; fatal: boolean };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Incremental decoder: push() whatever the socket delivered and get back the
 * frames it completed. Chunks are kept as a list and joined once per frame,
 * so a large frame arriving in many pieces costs linear time. Never throws.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the frame being read, once its header is complete. */
  private need: number | undefined;
  private dead = false;

  constructor(private readonly maxFrameBytes: number) {}

  /** True after a fatal error; later input is ignored. */
  get failed(): boolean {
    return this.dead;
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    if (this.dead || chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.need === undefined) {
        if (this.buffered < HEADER_BYTES) break;
        const length = this.take(HEADER_BYTES).readUInt32BE(0);
        if (length > this.maxFrameBytes) {
          this.dead = true;
          this.chunks = [];
          this.buffered = 0;
          frames.push({
            ok: false,
            code: 'EFRAME_TOO_LARGE',
            message: `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`,
            fatal: true,
          });
          break;
        }
        this.need = length;
      }
      if (this.buffered < this.need) break;
      const body = this.take(this.need);
      this.need = undefined;
      frames.push(parseBody(body));
    }
    return frames;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

function parseBody(body: Buffer): Frame {
  try {
    return { ok: true, value: JSON.parse(utf8.decode(body)) };
  } catch (err) {
    return { ok: false, code: 'EBAD_JSON', message: `not UTF-8 JSON: ${(err as Error).message}`, fatal: false };
  }
}

/** BigInt counters become decimal strings; JSON has no 64-bit integers. */
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/**
 * One frame holding `value` as JSON. Throws a ControlError (EFRAME_TOO_LARGE
 * or EBAD_VALUE) when the value is too big or cannot be serialised.
 */
export function encodeFrame(value: unknown, maxFrameBytes: number): Buffer {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, replacer);
  } catch (err) {
    throw new ControlError('EBAD_VALUE', `value cannot be sent as JSON: ${(err as Error).message}`, { cause: err });
  }
  if (json === undefined) throw new ControlError('EBAD_VALUE', 'value cannot be sent as JSON');
  const length = Buffer.byteLength(json);
  if (length > maxFrameBytes) {
    throw new ControlError('EFRAME_TOO_LARGE', `frame of ${length} bytes exceeds the limit of ${maxFrameBytes}`);
  }
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.write(json, HEADER_BYTES, 'utf8');
  return frame;
}

/** Bytes per piece of a reply handed to the socket: small next to the output cap, large enough to be cheap. */
export const REPLY_CHUNK_BYTES = 64 * 1024;

/**
 * The frame encodeFrame(response) gives, as pieces of about `chunkBytes`
 * each, for writing with backpressure. A successful response whose result is
 * a list (a dump) is never joined into one string or one Buffer: each element
 * is serialised once, the pieces are built as the iterator is read, and each
 * element's text is dropped once it went out, so a reader that stops holds at
 * most the dump's text, not the text and a frame of it. Throws like
 * encodeFrame (EFRAME_TOO_LARGE, EBAD_VALUE) before the first piece.
 */
export function encodeFrameChunks(
  response: ControlResponse,
  maxFrameBytes: number,
  chunkBytes: number = REPLY_CHUNK_BYTES,
): { length: number; chunks: Iterable<Buffer> } {
  if (!response.ok || !Array.isArray(response.result)) {
    const frame = encodeFrame(response, maxFrameBytes);
    return { length: frame.length, chunks: slices(frame, chunkBytes) };
  }
  const items = response.result as unknown[];
  // JSON.stringify's own rendering of {id?, ok, result: [...]}: key order as built in the server.
  const head = `{${response.id === undefined ? '' : `"id":${JSON.stringify(response.id)},`}"ok":true,"result":[`;
  const parts: string[] = new Array<string>(items.length);
  let length = Buffer.byteLength(head) + 2 + Math.max(0, items.length - 1);
  try {
    for (let i = 0; i < items.length; i++) {
      // As inside an array: what JSON cannot hold (undefined, functions) is null.
      const text = JSON.stringify(items[i], replacer) ?? 'null';
      parts[i] = text;
      length += Buffer.byteLength(text);
      if (length > maxFrameBytes) break;
    }
  } catch (err) {
    throw new ControlError('EBAD_VALUE', `value cannot be sent as JSON: ${(err as Error).message}`, { cause: err });
  }
  if (length > maxFrameBytes) {
    throw new ControlError('EFRAME_TOO_LARGE', `frame of ${length}+ bytes exceeds the limit of ${maxFrameBytes}`);
  }
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(length, 0);
  function* pieces(): Generator<Buffer> {
    let text = head;
    for (let i = 0; i < parts.length; i++) {
      text += i === 0 ? parts[i] : `,${parts[i]}`;
      parts[i] = '';
      if (text.length >= chunkBytes) {
        yield Buffer.from(text);
        text = '';
      }
    }
    text += ']}';
    yield Buffer.from(text);
  }
  return {
    length: HEADER_BYTES + length,
    chunks: (function* () {
      yield header;
      yield* pieces();
    })(),
  };
}

function* slices(frame: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < frame.length; at += size) yield frame.subarray(at, at + size);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a decoded frame is a request; the id is recovered when possible so even a rejection can echo it. */
export function parseRequest(
  value: unknown,
): { ok: true; request: ControlRequest } | { ok: false; id?: number; error: ControlErrorBody } {
  if (!isPlainObject(value))
    return { ok: false, error: { code: 'EBAD_REQUEST', message: 'request must be a JSON object' } };
  const rawId = value.id;
  const id = typeof rawId === 'number' && Number.isSafeInteger(rawId) ? rawId : undefined;
  const bad = (message: string) => ({
    ok: false as const,
    ...(id === undefined ? {} : { id }),
    error: { code: 'EBAD_REQUEST', message },
  });
  if (rawId !== undefined && id === undefined) return bad('id must be an integer');
  if (typeof value.cmd !== 'string' || value.cmd === '') return bad('cmd must be a non-empty string');
  if (value.args !== undefined && !isPlainObject(value.args)) return bad('args must be a JSON object');
  const request: ControlRequest = { cmd: value.cmd };
  if (id !== undefined) request.id = id;
  if (value.args !== undefined) request.args = value.args;
  return { ok: true, request };
}

/** Checks a decoded frame is a response. */
export function parseResponse(value: unknown): ControlResponse | undefined {
  if (!isPlainObject(value)) return undefined;
  const id = typeof value.id === 'number' ? value.id : undefined;
  if (value.ok === true && 'result' in value)
    return { ...(id === undefined ? {} : { id }), ok: true, result: value.result };
  if (value.ok !== false || !isPlainObject(value.error)) return undefined;
  const { code, message } = value.error;
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  return { ...(id === undefined ? {} : { id }), ok: false, error: { code, message } };
}
