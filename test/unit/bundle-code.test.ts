// bin/ctsyncd loads the bundle with V8's code cache of it
// (scripts/lib/bundle-code.mjs): the same exports with a good cache, a
// damaged one or none, and the build's cache is one V8 accepts under
// bin/ctsyncd's flags (else every start silently parses the whole bundle).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { codeCache, loadBundle } from '../../scripts/lib/bundle-code.mjs';

const root = resolve(import.meta.dirname, '../..');
const loader = join(root, 'scripts', 'lib', 'bundle-code.mjs');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('bundle-code', () => {
  it('gives the module its exports, require, __filename and __dirname, with a good, a damaged or no cache', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-bc-'));
    dirs.push(dir);
    const file = join(dir, 'b.cjs');
    writeFileSync(file, "exports.where = [__filename, __dirname]; module.exports.sep = require('node:path').sep; exports.twice = (x) => 2 * x;");
    const cache = join(dir, 'b.cjs.cache');
    writeFileSync(cache, codeCache(file));
    const variants = [() => undefined, () => writeFileSync(cache, Buffer.alloc(64, 7)), () => rmSync(cache)];
    for (const damage of variants) {
      damage();
      const m = loadBundle(file, cache) as unknown as { where: string[]; sep: string; twice: (x: number) => number };
      expect(m.where).toEqual([file, dir]);
      expect(m.sep).toBe('/');
      expect(m.twice(21)).toBe(42);
    }
  });

  it("the build's cache of dist/bundle/ctsyncd.cjs is accepted under bin/ctsyncd's V8 flags", () => {
    const bundle = join(root, 'dist', 'bundle', 'ctsyncd.cjs');
    expect(existsSync(bundle), 'npm run build makes the bundle').toBe(true);
    const flags = readFileSync(join(root, 'bin', 'ctsyncd'), 'utf8').split('\n')[0]!.split(/\s+/).slice(3);
    expect(flags.length).toBeGreaterThan(0);
    const probe = "const [l, f] = process.argv.slice(1); import(l).then((b) => process.stdout.write(String(b.cacheAccepted(f, f + '.cache'))));";
    expect(execFileSync(process.execPath, [...flags, '-e', probe, loader, bundle], { encoding: 'utf8' })).toBe('true');
  });
});
