// The demo's traffic, run inside a namespace as `node dist/demo/traffic.js
// server PORT` or `... client HOST PORT COUNT`. The client keeps COUNT TCP
// connections streaming a counter that the server echoes, and prints one JSON
// status line per second: how many connections are alive and whether every
// echo came back in sequence. Nothing reconnects, so an alive connection has
// survived whatever happened on the path. Both exit when stdin closes.
import net from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);

function exitWithParent(): void {
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
}

if (mode === 'server') {
  const server = net.createServer((sock) => {
    sock.on('error', () => sock.destroy());
    sock.pipe(sock);
  });
  server.listen(Number(a), () => process.stdout.write('listening\n'));
  exitWithParent();
} else if (mode === 'client') {
  const host = a ?? '';
  const port = Number(b);
  const count = Number(c ?? 20);
  interface Conn {
    sent: number;
    echoed: number;
    broken: string | null;
    buf: string;
  }
  const conns: Conn[] = [];
  for (let i = 0; i < count; i++) {
    const conn: Conn = { sent: 0, echoed: 0, broken: null, buf: '' };
    conns.push(conn);
    const sock = net.connect({ host, port });
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    let timer: NodeJS.Timeout | undefined;
    sock.on('connect', () => {
      timer = setInterval(() => {
        conn.sent++;
        sock.write(`${conn.sent}\n`);
      }, 100);
    });
    sock.on('data', (d: string) => {
      conn.buf += d;
      for (let nl = conn.buf.indexOf('\n'); nl >= 0; nl = conn.buf.indexOf('\n')) {
        const n = Number(conn.buf.slice(0, nl));
        conn.buf = conn.buf.slice(nl + 1);
        if (n !== conn.echoed + 1 && conn.broken === null) conn.broken = `gap after ${conn.echoed}`;
        conn.echoed = n;
      }
    });
    const end = (why: string) => {
      if (timer) clearInterval(timer);
      if (conn.broken === null) conn.broken = why;
    };
    sock.on('error', (e) => end(e.message));
    sock.on('close', () => end('closed'));
  }
  setInterval(() => {
    const alive = conns.filter((x) => x.broken === null && x.echoed > 0).length;
    const echoed = Math.min(...conns.map((x) => x.echoed));
    const broken = conns.filter((x) => x.broken !== null).map((x) => x.broken);
    process.stdout.write(`${JSON.stringify({ alive, count, minEchoed: echoed, broken })}\n`);
  }, 1000);
  exitWithParent();
} else {
  process.stderr.write('usage: traffic.js server PORT | client HOST PORT COUNT\n');
  process.exit(2);
}
