// Counter-stream client for the failover test, run as a child
// `ip netns exec NS node stream-client.mjs JSON` (plain ESM, no build step).
// JSON: { "host": "10.99.x.y", "port": 5000, "count": 50, "intervalMs": 50,
//         "connectTimeoutMs": 10000, "maxMs": 300000 }.
//
// Opens `count` TCP connections to host:port. Each sends "<n>\n" with
// n = 1, 2, 3, ... every intervalMs and checks that the echoed lines come
// back as exactly that sequence, and likewise that the server's own counter
// ("S<n>\n" lines) arrives as 1, 2, 3, ...: a number that is not the
// previous one plus one is a gap, and an error or close ends the connection. Nothing ever
// reconnects, so a connection that is alive with advancing echoes has
// survived everything that happened on the path.
//
// Reads one JSON command per stdin line ({"op":"status","id":N}) and writes
// one JSON event per stdout line; closing stdin (or maxMs passing) ends the
// process, so nothing outlives the test even if it never got to kill us.
import net from 'node:net';
import { createInterface } from 'node:readline';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const count = cfg.count ?? 50;
const intervalMs = cfg.intervalMs ?? 50;
const conns = [];
const STALL_MS = 300;

function emit(ev) {
  process.stdout.write(`${JSON.stringify(ev)}\n`);
}

function open(index) {
  const c = {
    index,
    localPort: 0,
    connected: false,
    sent: 0,
    echoed: 0,
    pushed: 0,
    gaps: 0,
    error: null,
    closed: false,
    lastEchoAt: 0,
    // Pauses of more than STALL_MS between two echoes: { endedAt, ms }.
    stalls: [],
  };
  conns.push(c);
  const sock = net.connect({ host: cfg.host, port: cfg.port });
  sock.setNoDelay(true);
  sock.setEncoding('utf8');
  const connectTimer = setTimeout(() => {
    if (!c.connected) sock.destroy(new Error('connect timeout'));
  }, cfg.connectTimeoutMs ?? 10_000);
  let timer;
  sock.on('connect', () => {
    clearTimeout(connectTimer);
    c.connected = true;
    c.localPort = sock.localPort;
    c.lastEchoAt = Date.now();
    timer = setInterval(() => {
      c.sent++;
      sock.write(`${c.sent}\n`);
    }, intervalMs);
  });
  let buf = '';
  sock.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('S')) {
        const n = Number(line.slice(1));
        if (n !== c.pushed + 1) c.gaps++;
        c.pushed = n;
        continue;
      }
      const n = Number(line);
      if (n !== c.echoed + 1) c.gaps++;
      c.echoed = n;
      const now = Date.now();
      if (now - c.lastEchoAt > STALL_MS && c.stalls.length < 100) c.stalls.push({ endedAt: now, ms: now - c.lastEchoAt });
      c.lastEchoAt = now;
    }
  });
  sock.on('error', (e) => {
    c.error = e.code ?? e.message;
  });
  sock.on('close', () => {
    c.closed = true;
    clearTimeout(connectTimer);
    clearInterval(timer);
  });
}

// A short stagger keeps the 50 handshakes from arriving as one burst.
for (let i = 0; i < count; i++) setTimeout(() => open(i), i * 5);

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  if (cmd.op === 'status') emit({ ev: 'status', id: cmd.id, now: Date.now(), conns });
});
process.stdin.on('end', () => process.exit(0));
setTimeout(() => process.exit(0), cfg.maxMs ?? 300_000).unref();
