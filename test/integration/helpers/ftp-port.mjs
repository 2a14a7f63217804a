// A minimal FTP control session inside one namespace, so that the kernel's FTP
// helper (nf_conntrack_ftp, assigned by an nftables `ct helper` rule) sees a
// PORT command and sets up the expectation of the data connection itself.
// Run as `ip netns exec NS node ftp-port.mjs JSON` (plain ESM, no build step).
// JSON: { "server": "10.99.x.1", "client": "10.99.x.2", "port": 21, "dataPort": 50020, "maxMs": 120000 },
// both addresses the namespace's own (not loopback: ctsyncd never replicates that).
//
// A server on server:port greets; a client connects from client, logs
// in ("USER": the helper reads a command only right after a newline it has
// seen in that direction, so never the first one) and sends
// "PORT a,b,c,d,hi,lo" naming its own address; once the server acknowledged it, the client
// prints one JSON line {"ev":"ready","sport":N} and both keep the
// connection open (the expectation lives as long as its master and its own
// timeout). Closing stdin, or maxMs passing, ends the process.
import net from 'node:net';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const port = cfg.port ?? 21;
const serverAddress = cfg.server ?? '127.0.0.1';
const clientAddress = cfg.client ?? '127.0.0.1';
const dataPort = cfg.dataPort ?? 50020;

const server = net.createServer((sock) => {
  sock.setEncoding('latin1');
  sock.write('220 ready\r\n');
  sock.on('data', (d) => {
    if (/^USER /m.test(d)) sock.write('331 password required\r\n');
    if (/^PORT /m.test(d)) sock.write('200 PORT command successful\r\n');
  });
  sock.on('error', () => {});
});

server.listen(port, serverAddress, () => {
  const c = net.connect({ port, host: serverAddress, localAddress: clientAddress });
  c.setEncoding('latin1');
  c.on('data', (d) => {
    if (d.startsWith('220')) {
      c.write('USER anonymous\r\n');
    } else if (d.startsWith('331')) {
      c.write(`PORT ${clientAddress.replace(/\./g, ',')},${dataPort >> 8},${dataPort & 0xff}\r\n`);
    } else if (d.startsWith('200')) {
      process.stdout.write(`${JSON.stringify({ ev: 'ready', sport: c.localPort })}\n`);
    }
  });
  c.on('error', (e) => {
    process.stderr.write(`client: ${e.message}\n`);
    process.exit(1);
  });
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
setTimeout(() => process.exit(0), cfg.maxMs ?? 120_000).unref();
