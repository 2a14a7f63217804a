// Real flows through a firewall namespace and what the kernel and the flow
// log say of them: shared by the flow log's integration tests (JSON file,
// IPFIX).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { FlowRecord } from '../../../src/flowlog/index.js';
import { waitFor } from './cluster.js';
import type { Netns } from './netns.js';

/** The JSON-lines flow log at `path` (none yet: no records). */
export function records(path: string): FlowRecord[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as FlowRecord);
}

/**
 * One TCP exchange from the client's port `sport` to `server`:`port` (an
 * echo server socat runs in `sv`, pushed to `children` to be killed), closed
 * by both sides.
 */
export async function tcpFlow(
  cl: Netns,
  sv: Netns,
  server: string,
  sport: number,
  port: number,
  children: ChildProcess[],
): Promise<void> {
  const echo = spawn('ip', ['netns', 'exec', sv.name, 'socat', '-T', '10', `TCP-LISTEN:${port},reuseaddr`, 'EXEC:cat'], { stdio: 'ignore' });
  children.push(echo);
  await waitFor(
    async () => (await sv.exec('ss', ['-Htln', `sport = :${port}`])).stdout.includes(`:${port}`),
    'the TCP server listening',
    10_000,
  );
  const { stdout } = await cl.exec('sh', ['-c', `printf 'hello flow\\n' | socat -T 5 - TCP:${server}:${port},sourceport=${sport}`], {
    timeoutMs: 20_000,
  });
  expect(stdout).toBe('hello flow\n');
}

export interface CtLine {
  proto: 'tcp' | 'udp';
  orig: { src: string; dst: string; sport: number; dport: number };
  reply: { src: string; dst: string; sport: number; dport: number };
}

/** conntrack -L of the firewall for one protocol, parsed. */
export async function conntrackList(fw: Netns, proto: 'tcp' | 'udp'): Promise<CtLine[]> {
  const { stdout } = await fw.exec('conntrack', ['-L', '-p', proto]);
  const out: CtLine[] = [];
  for (const line of stdout.split('\n')) {
    const f = [...line.matchAll(/(src|dst|sport|dport)=(\S+)/g)].map((m) => m[2]!);
    if (f.length < 8) continue;
    out.push({
      proto,
      orig: { src: f[0]!, dst: f[1]!, sport: Number(f[2]), dport: Number(f[3]) },
      reply: { src: f[4]!, dst: f[5]!, sport: Number(f[6]), dport: Number(f[7]) },
    });
  }
  return out;
}
