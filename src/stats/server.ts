// The HTTP endpoint on metrics.listen: GET /metrics (Prometheus text
// exposition), /healthz (the process runs) and /readyz (the daemon is ready:
// initial kernel dump done, first peer sync attempted). Plain node:http; no
// other paths, no other methods.
// node:http is loaded in start(): the daemon builds this server before its
// control socket listens, and loading node:http then would hold that back.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type Logger, silentLogger } from '../log.js';
import { CtsyncdError } from '../common/errors.js';

export interface MetricsEndpoint {
  readonly contentType: string;
  scrape(): Promise<string>;
}

export interface MetricsServerOptions {
  /** An IP literal (IPv6 without brackets) or a host name. */
  host: string;
  /** 0 picks a free port (tests); see address(). */
  port: number;
  metrics: MetricsEndpoint;
  ready: () => boolean;
  log?: Logger;
}

/** Listening on metrics.listen failed (address in use, not local, ...). */
export class MetricsListenError extends CtsyncdError {
  readonly code = 'EMETRICS_LISTEN';
  constructor(
    readonly listen: string,
    cause: NodeJS.ErrnoException,
  ) {
    super(`cannot serve metrics on ${listen} (metrics.listen): ${describeErrno(cause)}`, { cause, context: { listen } });
  }
}

function describeErrno(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'EADDRINUSE':
      return 'address already in use (EADDRINUSE); another ctsyncd or exporter holds that port';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host (EADDRNOTAVAIL)';
    case 'EACCES':
      return 'permission denied (EACCES)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name does not resolve (${e.code})`;
    default:
      return e.code ? `${e.message} (${e.code})` : e.message;
  }
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const TEXT = 'text/plain; charset=utf-8';
/** A scrape of a loopback endpoint takes milliseconds; these only stop stuck clients. */
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 64;

export class MetricsServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;

  /** close() was called: a start() still on its way must not leave a server listening. */
  private closed = false;

  constructor(private readonly opts: MetricsServerOptions) {
    this.log = opts.log ?? silentLogger;
  }

  /** Resolves once listening; rejects with a MetricsListenError naming the address. */
  async start(): Promise<void> {
    const { createServer } = await import('node:http');
    if (this.closed) return;
    const server = createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.maxConnections = MAX_CONNECTIONS;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.on('clientError', (_e, socket) => socket.destroy());
    const listen = formatHostPort(this.opts.host, this.opts.port);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => reject(new MetricsListenError(listen, e));
      server.once('error', onError);
      server.listen({ host: this.opts.host, port: this.opts.port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    if (this.closed) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return;
    }
    server.on('error', (e) => this.log.error('metrics server error', { error: e.message }));
    this.server = server;
    const a = this.address();
    this.log.info('serving metrics', { listen: a ? formatHostPort(a.host, a.port) : listen });
  }

  /** The bound address (the real port when 0 was asked for); undefined when not listening. */
  address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Idle keep-alive connections would hold close() open.
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      reply(res, 404, `not found: ${path ?? ''} (try /metrics, /healthz or /readyz)\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      reply(res, 405, `method ${req.method ?? ''} not allowed (GET or HEAD)\n`);
      return;
    }
    if (path === '/healthz') {
      reply(res, 200, 'ok\n');
    } else if (path === '/readyz') {
      const ready = this.opts.ready();
      reply(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready: initial kernel dump or first peer sync still running\n');
    } else {
      try {
        const body = await this.opts.metrics.scrape();
        reply(res, 200, body, this.opts.metrics.contentType);
      } catch (e) {
        this.log.error('metrics scrape failed', { error: (e as Error).message });
        reply(res, 500, `scrape failed: ${(e as Error).message}\n`);
      }
    }
  }
}

function reply(res: ServerResponse, status: number, body: string, contentType = TEXT): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  // HEAD gets the headers only.
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
