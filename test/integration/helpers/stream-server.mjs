// Counter-stream echo server for the failover test, run as a child
// `ip netns exec NS node stream-server.mjs JSON` (plain ESM, no build step).
// JSON: { "host": "10.99.x.y", "port": 5000, "intervalMs": 50, "maxMs": 300000 }.
//
// Every connection carries lines "<n>\n" with n = 1, 2, 3, ... from the
// client. The server checks that each line is the previous one plus one
// (a gap or a restart means the stream broke), and echoes every line back so
// the client checks the return path the same way. It also pushes its own
// counter, lines "S<n>\n" every intervalMs, so that the server has data of
// its own in flight whenever the path breaks, as the client does.
//
// Reads one JSON command per stdin line ({"op":"status","id":N}) and writes
// one JSON event per stdout line; closing stdin (or maxMs passing) ends the
// process, so nothing outlives the test even if it never got to kill us.
import net from 'node:net';
import { createInterface } from 'node:readline';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const conns = new Map();
let nextId = 0;

function emit(ev) {
  process.stdout.write(`${JSON.stringify(ev)}\n`);
}

const server = net.createServer((sock) => {
  const c = {
    id: nextId++,
    peer: `${sock.remoteAddress}:${sock.remotePort}`,
    received: 0,
    last: 0,
    pushed: 0,
    gaps: 0,
    error: null,
    closed: false,
    lastAt: Date.now(),
  };
  conns.set(c.id, c);
  sock.setNoDelay(true);
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const n = Number(line);
      if (n !== c.last + 1) c.gaps++;
      c.last = n;
      c.received++;
      c.lastAt = Date.now();
      sock.write(`${line}\n`);
    }
  });
  const timer = setInterval(() => {
    c.pushed++;
    sock.write(`S${c.pushed}\n`);
  }, cfg.intervalMs ?? 50);
  sock.on('error', (e) => {
    c.error = e.code ?? e.message;
  });
  sock.on('close', () => {
    c.closed = true;
    clearInterval(timer);
  });
});

server.on('error', (e) => {
  emit({ ev: 'error', error: e.message });
  process.exit(1);
});

server.listen(cfg.port, cfg.host, () => emit({ ev: 'listening', host: cfg.host, port: cfg.port }));

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  if (cmd.op === 'status') emit({ ev: 'status', id: cmd.id, now: Date.now(), conns: [...conns.values()] });
});
process.stdin.on('end', () => process.exit(0));
setTimeout(() => process.exit(0), cfg.maxMs ?? 300_000).unref();
