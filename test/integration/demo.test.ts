// `ctsyncd demo`, the README's main job, end to end: it must finish with
// every connection alive and leave nothing behind.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { requireNetns } from './helpers/netns.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');

describe('ctsyncd demo', () => {
  it('fails over with every connection alive, in under a minute, and cleans up', async () => {
    requireNetns();
    const t0 = Date.now();
    const r = await run('node', [BIN, 'demo'], { timeout: 120_000 });
    const secs = (Date.now() - t0) / 1000;
    console.log(`demo took ${secs.toFixed(1)} s`);
    expect(r.stdout).toContain('20/20 connections survived the failover');
    expect(r.stdout).toMatch(/fw2: commit → 20 committed, \d+ updated, 0 failed/);
    const names = /namespaces: (.*)/.exec(r.stdout)![1]!.split(' ');
    expect(names).toHaveLength(6);
    const left = (await run('ip', ['netns', 'list'])).stdout;
    for (const n of names) expect(left).not.toContain(n);
    const logDir = /Logs of this run: (\S+)/.exec(r.stdout)![1]!;
    expect(existsSync(logDir)).toBe(false);
  }, 150_000);
});
