// The CLI's end of the control socket: one connection per request, and only
// to a socket of root's or our own: a socket another user planted (in a
// directory they could write) could answer a commit with a fake success.
import { statSync } from 'node:fs';
import net from 'node:net';
import {
  ControlError,
  encodeFrame,
  FrameDecoder,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  parseResponse,
} from './protocol.js';

export interface ControlRequestOptions {
  /** Whole exchange, connect to reply. Default 30 000; a commit of a large table may need more. */
  timeoutMs?: number;
  /** Who besides root may own the socket: this process's uid by default. */
  ownUid?: number;
}

// Callers catch what controlRequest throws without importing the protocol module.
export { ControlError, isControlError } from './protocol.js';

const REQUEST_ID = 1;

/**
 * Sends one command and resolves with its result. Rejects with a
 * ControlError: ENOTRUNNING (nothing listens at `path`), EACCES (the socket's
 * permissions shut us out), EUNSAFE_SOCKET (the socket belongs to another
 * user than root or us: nothing is sent to it), ETIMEDOUT, EPROTO (no or malformed reply), or the
 * code and message the daemon gave for a failed command. `args` that cannot
 * be sent are rejected before connecting (EBAD_VALUE, EFRAME_TOO_LARGE).
 */
export function controlRequest(
  path: string,
  cmd: string,
  args?: Record<string, unknown>,
  opts: ControlRequestOptions = {},
): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let request: Buffer;
  try {
    request = encodeFrame({ id: REQUEST_ID, cmd, ...(args === undefined ? {} : { args }) }, MAX_REQUEST_BYTES);
  } catch (err) {
    return Promise.reject(err);
  }
  const unsafe = socketOwnerProblem(path, opts.ownUid ?? process.getuid?.() ?? 0);
  if (unsafe !== undefined) return Promise.reject(unsafe);
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder(MAX_RESPONSE_BYTES);
    let settled = false;
    let connected = false;
    const socket = net.createConnection(path);
    const finish = (err: ControlError | undefined, result?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(result);
    };
    const timer = setTimeout(
      () => finish(new ControlError('ETIMEDOUT', `no reply from ctsyncd at ${path} within ${timeoutMs} ms`)),
      timeoutMs,
    );

    socket.on('connect', () => {
      connected = true;
      socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      const frame = decoder.push(chunk)[0];
      if (frame === undefined) return;
      if (!frame.ok) return finish(new ControlError('EPROTO', `bad reply from ctsyncd at ${path}: ${frame.message}`));
      const response = parseResponse(frame.value);
      if (response === undefined || (response.id !== undefined && response.id !== REQUEST_ID)) {
        return finish(new ControlError('EPROTO', `bad reply from ctsyncd at ${path}: not a response to this request`));
      }
      if (response.ok) finish(undefined, response.result);
      else finish(new ControlError(response.error.code, response.error.message));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(connectError(err, path, connected)));
    socket.on('close', () =>
      finish(new ControlError('EPROTO', `ctsyncd at ${path} closed the connection without a reply`)),
    );
  });
}

function connectError(err: NodeJS.ErrnoException, path: string, connected: boolean): ControlError {
  const code = err.code ?? '';
  if (!connected && (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK')) {
    return new ControlError('ENOTRUNNING', `ctsyncd is not running (no daemon at ${path})`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new ControlError('EACCES', `permission denied on control socket ${path} (run as root?)`, { cause: err });
  }
  return new ControlError('EPROTO', `control connection to ${path} failed: ${code || err.message}`, { cause: err });
}

/**
 * EUNSAFE_SOCKET when the socket at `path` (the file a connect would reach,
 * links followed) belongs to neither root nor `ownUid`. A missing or
 * unreadable path is left to the connect, which reports it as usual.
 */
function socketOwnerProblem(path: string, ownUid: number): ControlError | undefined {
  let uid: number;
  try {
    uid = statSync(path).uid;
  } catch {
    return undefined;
  }
  if (uid === 0 || uid === ownUid) return undefined;
  return new ControlError(
    'EUNSAFE_SOCKET',
    `control socket ${path} is owned by uid ${uid}, not by root or you (uid ${ownUid}): refusing to talk to it`,
    { context: { path, uid } },
  );
}
