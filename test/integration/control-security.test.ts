// The control socket and the key files against local users and stalled
// clients, on a real daemon in its own namespace: a flood of clients that
// each trickle one byte does not keep failover, commit or stats out; the
// daemon refuses a socket directory others could write to (or another user
// owns) and a key file others could read; the client refuses a socket
// planted by another user.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { Cluster, waitFor } from './helpers/cluster.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');

let cluster: Cluster | undefined;
const sockets: net.Socket[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  await cluster?.destroy();
  cluster = undefined;
});

/** Runs the daemon (or a client command) in fw1's namespace; resolves with its exit status and stderr. */
async function ctsyncd(c: Cluster, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('ip', ['netns', 'exec', c.node('fw1').ns.name, 'node', BIN, ...args], { timeout: 60_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    }),
  );
}

/** fw1's config with its control socket moved to `socket` (and anything else replaced by `edit`). */
function fw1Config(c: Cluster, socket: string, edit: (yaml: string) => string = (y) => y): string {
  const n = c.node('fw1');
  const file = join(c.dir, `fw1-${randomBytes(3).toString('hex')}.yaml`);
  writeFileSync(file, edit(c.configFor(n, 0).replace(n.socket, socket)));
  return file;
}

describe('control socket under a stalled-client flood', () => {
  it('64 clients trickling one byte each: commit, stats and failover are still answered', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp', extraYaml: () => 'metrics: { enabled: false }' });
    const c = cluster;
    c.start('fw1');
    await c.waitReady('fw1');
    const path = c.node('fw1').socket;

    // Every regular connection taken by a client that sent one byte of a frame header and then nothing.
    for (let i = 0; i < 64; i++) {
      const s = net.createConnection(path);
      s.on('error', () => {});
      sockets.push(s);
      await new Promise<void>((r, reject) => {
        s.once('connect', () => r());
        s.once('error', reject);
      });
      s.write(Buffer.from([0]));
    }
    const before = (await c.request('fw1', 'stats')) as { control: { open: number; reserveServed: number } };
    // The flood (and this request, served from the reserve) is in.
    expect(before.control.open).toBeGreaterThanOrEqual(65);
    expect(before.control.reserveServed).toBe(1);

    expect(await c.request('fw1', 'commit')).toMatchObject({ failed: 0 });
    expect(await c.request('fw1', 'failover', { state: 'primary' })).toMatchObject({ state: 'primary', failed: 0 });
    // Through the CLI too, as keepalived's notify script would.
    const cli = await ctsyncd(c, ['--config', c.node('fw1').configPath, 'stats', '--json']);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    // Anything else waits for a regular slot.
    await expect(c.request('fw1', 'dump', { cache: 'internal' })).rejects.toMatchObject({ code: 'EBUSY' });

    const after = (await c.request('fw1', 'stats')) as {
      control: { reserveServed: number; refused: number; deadlineClosed: number };
    };
    expect(after.control.reserveServed).toBe(5);
    expect(after.control.refused).toBe(1);
    // No stalled client has used up its 30 s yet; each still holds its slot.
    expect(sockets.every((s) => !s.destroyed)).toBe(true);

    // Once the flood is gone, everything is served on regular connections again.
    for (const s of sockets.splice(0)) s.destroy();
    await waitFor(
      async () => ((await c.request('fw1', 'stats')) as { control: { open: number } }).control.open === 1,
      'the flood to be gone',
      15_000,
    );
    expect(Array.isArray(await c.request('fw1', 'dump', { cache: 'internal' }))).toBe(true);
  });
});

describe('refused at start', () => {
  it('a socket directory others may write to, or that another user owns', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp' });
    const c = cluster;
    for (const [name, prepare, reason] of [
      ['open', (d: string) => chmodSync(d, 0o777), 'is writable by group or others (mode 0777'],
      ['theirs', (d: string) => chownSync(d, 65534, 65534), 'is owned by uid 65534'],
    ] as const) {
      const dir = join(c.dir, name);
      mkdirSync(dir, { mode: 0o755 });
      prepare(dir);
      const socket = join(dir, 'ctl.sock');
      const r = await ctsyncd(c, ['--config', fw1Config(c, socket)]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`ctsyncd: cannot start: control socket directory ${dir} ${reason}`);
      expect(r.stderr).toContain('EUNSAFE_SOCKET_DIR');
      expect(existsSync(socket)).toBe(false);
    }
  });

  it('a key file others may read, or a weak key', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp' });
    const c = cluster;
    const key = join(c.dir, 'sync.key');
    const withKey = (y: string) => y.replace('  auth: none', `  auth: { keyFile: ${key} }`);
    for (const [content, mode, code] of [
      [randomBytes(32).toString('hex'), 0o644, 'EAUTH_KEY_PERMS'],
      ['00'.repeat(32), 0o600, 'EAUTH_KEY_WEAK'],
    ] as const) {
      writeFileSync(key, content);
      chmodSync(key, mode);
      const r = await ctsyncd(c, ['--config', fw1Config(c, join(c.dir, 'key.sock'), withKey)]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`ctsyncd: cannot start: key file ${key}`);
      expect(r.stderr).toContain(code);
    }
  });
});

describe('the client', () => {
  it('will not talk to a socket another user planted', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp' });
    const c = cluster;
    const socket = join(c.dir, 'planted.sock');
    let received = 0;
    // A stand-in for a fake daemon that would answer commit with a success.
    const server = net.createServer((s) => s.on('data', (d: Buffer) => (received += d.length)));
    servers.push(server);
    await new Promise<void>((r) => server.listen(socket, r));
    chownSync(socket, 65534, 65534);
    const cfg = fw1Config(c, socket);
    // Bounded: a client that did talk to the silent stand-in would wait for its reply.
    const r = await run('node', [BIN, '--config', cfg, 'commit'], { timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code, stderr: e.stderr ?? '' }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`control socket ${socket} is owned by uid 65534, not by root or you`);
    expect(received).toBe(0);
    await expect(controlRequest(socket, 'stats')).rejects.toMatchObject({ code: 'EUNSAFE_SOCKET' });
  });
});
