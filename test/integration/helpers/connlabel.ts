// conntrack(8) maps label names through /etc/xtables/connlabel.conf. A test
// gets its own name, added on the first free bit when missing; other lines
// (other runs' names) are left alone.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';

const FILE = '/etc/xtables/connlabel.conf';

/** Returns the bit number that `name` maps to, adding it if needed. */
export function ensureConnlabel(name: string): number {
  if (!existsSync('/etc/xtables')) mkdirSync('/etc/xtables', { recursive: true });
  const text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : '';
  const used = new Set<number>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (!m) continue;
    if (m[2] === name) return Number(m[1]);
    used.add(Number(m[1]));
  }
  let bit = 0;
  while (used.has(bit)) bit++;
  if (bit > 127) throw new Error(`${FILE} has no free label bit`);
  appendFileSync(FILE, `${text && !text.endsWith('\n') ? '\n' : ''}${bit}\t${name}\n`);
  return bit;
}
