// Throwaway network namespaces for kernel tests. Every name carries this
// process's pid and a random suffix, so parallel runs never collide, and
// every namespace made here is deleted again (also on a failed test).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const created = new Set<string>();

export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${randomBytes(3).toString('hex')}`.slice(0, 15);
}

/** Fails (never skips) when namespaces cannot be made: CI must run these tests. */
export function requireNetns(): void {
  if (process.getuid?.() !== 0) throw new Error('kernel tests need root (run: sudo npm test)');
  if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip') && !existsSync('/usr/bin/ip'))
    throw new Error('kernel tests need iproute2 (scripts/install-system-deps.sh installs it)');
}

export interface Netns {
  name: string;
  path: string;
  exec(cmd: string, args: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  execSync(cmd: string, args: string[]): string;
  destroy(): Promise<void>;
}

export async function createNetns(prefix = 'cts'): Promise<Netns> {
  requireNetns();
  const name = uniqueName(prefix);
  await run('ip', ['netns', 'add', name]);
  created.add(name);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    path: `/var/run/netns/${name}`,
    exec: (cmd, args, opts) =>
      run('ip', ['netns', 'exec', name, cmd, ...args], {
        timeout: opts?.timeoutMs ?? 60_000,
        maxBuffer: 256 * 1024 * 1024,
      }),
    execSync: (cmd, args) =>
      execFileSync('ip', ['netns', 'exec', name, cmd, ...args], {
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
        timeout: 60_000,
      }),
    destroy: async () => {
      if (!created.has(name)) return;
      created.delete(name);
      await run('ip', ['netns', 'del', name]).catch(() => undefined);
    },
  };
}

process.on('exit', () => {
  for (const name of created) {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});
