// The validated-config cache (src/config/cache.ts): a hit only for the very
// bytes, build and flags an entry was stored for; anything doubtful is a
// miss; and what comes back equals what full validation produced.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigCache, type ConfigCacheFs, type ConfigCacheOptions } from '../../src/config/cache.js';
import { type Config, parseConfig } from '../../src/config/index.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const UID = process.getuid?.() ?? 0;

const CONFIG = [
  'node: { id: fw1 }',
  'cluster: { id: 7 }',
  'sync:',
  '  transport: udp',
  '  udp: { bind: 10.0.0.1, peers: [10.0.0.2] }',
  '  auth: none',
  'control: { socket: /run/ctsyncd/x.sock }',
  '',
].join('\n');

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ctsyncd-config-cache-'));
  file = join(dir, 'ctsyncd.yaml');
  writeFileSync(file, CONFIG);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const cacheOf = (over: Partial<ConfigCacheOptions> = {}) =>
  new ConfigCache({ dir: join(dir, 'cache'), fingerprint: 'build-1', uid: UID, pid: 4242, ...over });

/** A start: look up, and on a miss validate the bytes read and store them, as the daemon does. */
function start(cache: ConfigCache): { config: Config; hit: boolean } {
  const found = cache.lookup(file);
  if (!found) throw new Error('config file unreadable');
  if (found.hit) return { config: found.config, hit: true };
  const config = parseConfig(found.source.text, file);
  expect(cache.store(file, found.source, config)).toBeUndefined();
  return { config, hit: false };
}

/** Only JSON's own kinds of values: what JSON.parse gives back is the same value, not a lookalike. */
function expectPlainData(v: unknown, path = 'config'): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'undefined') return;
  if (typeof v === 'number') {
    expect(Number.isFinite(v), path).toBe(true);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => expectPlainData(x, `${path}[${i}]`));
    return;
  }
  expect(typeof v, path).toBe('object');
  expect(Object.getPrototypeOf(v), path).toBe(Object.prototype);
  for (const [k, x] of Object.entries(v as object)) expectPlainData(x, `${path}.${k}`);
}

describe('ConfigCache', () => {
  it('misses on the first start, stores, and hits on the next with the same config', () => {
    const first = start(cacheOf());
    expect(first.hit).toBe(false);
    const second = start(cacheOf());
    expect(second.hit).toBe(true);
    expect(second.config).toEqual(first.config);
  });

  it.each([
    ['the shipped conntrackd.yaml', readFileSync(join(REPO_ROOT, 'conntrackd.yaml'), 'utf8')],
    ['a small udp config', CONFIG],
    [
      'filters, auth and failover',
      [
        'node: { id: fw2 }',
        'cluster: { id: 4000000000 }',
        'sync:',
        '  mode: notrack',
        '  multicast: { interface: sync0 }',
        '  backupLinks: [{ multicast: { group: 225.0.0.51, interface: sync1 } }]',
        '  auth: { keyFiles: [/etc/ctsyncd/a.key, /etc/ctsyncd/b.key] }',
        'filter:',
        '  protocols: { accept: [tcp, udp] }',
        '  addresses: { ignore: [192.168.0.0/16, "2001:db8::/32"] }',
        'failover: { inject: true, trackFile: /run/ctsyncd/track }',
        'metrics: { enabled: false }',
        '',
      ].join('\n'),
    ],
  ])('gives back exactly what full validation gave: %s', (_name, text) => {
    writeFileSync(file, text);
    const fresh = parseConfig(text, file);
    expectPlainData(fresh);
    const first = start(cacheOf());
    expect(first.config).toEqual(fresh);
    const cached = start(cacheOf());
    expect(cached.hit).toBe(true);
    expect(cached.config).toEqual(fresh);
    // Key for key as the daemon and SIGHUP's comparison see them.
    expect(JSON.stringify(cached.config)).toBe(JSON.stringify(fresh));
  });

  it('misses when one byte of the file changes, and then holds the new one', () => {
    start(cacheOf());
    writeFileSync(file, CONFIG.replace('id: 7', 'id: 8'));
    const changed = cacheOf().lookup(file);
    expect(changed).toMatchObject({ hit: false, miss: 'stale' });
    const after = start(cacheOf());
    expect(after.hit).toBe(false);
    expect(after.config.cluster?.id).toBe(8);
    expect(start(cacheOf()).hit).toBe(true);
  });

  it('misses for another build (fingerprint) or other flags', () => {
    start(cacheOf());
    expect(cacheOf({ fingerprint: 'build-2' }).lookup(file)).toMatchObject({ hit: false, miss: 'stale' });
    expect(cacheOf({ flags: ['--some-override=1'] }).lookup(file)).toMatchObject({ hit: false, miss: 'stale' });
    start(cacheOf({ flags: ['--a'] }));
    expect(cacheOf({ flags: ['--a'] }).lookup(file)).toMatchObject({ hit: true });
    // Part boundaries count: ['--a', 'b'] is not ['--a b'].
    start(cacheOf({ flags: ['--a', 'b'] }));
    expect(cacheOf({ flags: ['--a b'] }).lookup(file)).toMatchObject({ hit: false, miss: 'stale' });
  });

  it('keeps one entry per config file, and another file with other bytes is its own miss', () => {
    start(cacheOf());
    const other = join(dir, 'other.yaml');
    writeFileSync(other, CONFIG.replace('fw1', 'fw9'));
    const cache = cacheOf();
    expect(cache.entryPath(other)).not.toBe(cache.entryPath(file));
    expect(cache.lookup(other)).toMatchObject({ hit: false, miss: 'absent' });
    expect(start(cacheOf()).hit).toBe(true);
  });

  it("another file's entry under this file's name (a name clash) is a miss, even with the same text", () => {
    const cache = cacheOf();
    start(cache);
    const other = join(dir, 'same-text.yaml');
    writeFileSync(other, CONFIG);
    mkdirSync(dirname(cache.entryPath(other)), { recursive: true });
    fs.copyFileSync(cache.entryPath(file), cache.entryPath(other));
    expect(cache.lookup(other)).toMatchObject({ hit: false, miss: 'stale' });
  });

  it('a store removes the entries of config files that are gone, and keeps the others', () => {
    const cache = cacheOf();
    const gone = join(dir, 'gone.yaml');
    const kept = join(dir, 'kept.yaml');
    for (const f of [gone, kept]) {
      writeFileSync(f, CONFIG);
      const found = cache.lookup(f);
      if (!found || found.hit) throw new Error('expected a miss');
      expect(cache.store(f, found.source, parseConfig(found.source.text, f))).toBeUndefined();
    }
    rmSync(gone);
    // Not an entry: left alone.
    writeFileSync(join(dir, 'cache', 'notes.txt'), 'x');
    expect(start(cache).hit).toBe(false);
    expect(fs.existsSync(cache.entryPath(gone))).toBe(false);
    expect(cache.lookup(kept)).toMatchObject({ hit: true });
    expect(start(cacheOf()).hit).toBe(true);
    expect(fs.existsSync(join(dir, 'cache', 'notes.txt'))).toBe(true);
  });

  it('is undefined when the config file cannot be read (the full load reports it)', () => {
    expect(cacheOf().lookup(join(dir, 'missing.yaml'))).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"format":1,"key":'],
    ['JSON of the wrong shape', '[1,2,3]'],
    ['no config', '{"format":1,"key":"x"}'],
    ['empty', ''],
  ])('treats a corrupt entry as a miss: %s', (_name, content) => {
    const cache = cacheOf();
    start(cache);
    writeFileSync(cache.entryPath(file), content, { mode: 0o600 });
    expect(cache.lookup(file)).toMatchObject({ hit: false, miss: 'corrupt' });
    // The next store replaces it.
    expect(start(cacheOf()).hit).toBe(false);
    expect(start(cacheOf()).hit).toBe(true);
  });

  it('an entry of another layout version is stale', () => {
    const cache = cacheOf();
    start(cache);
    const entry = JSON.parse(readFileSync(cache.entryPath(file), 'utf8')) as { format: number };
    writeFileSync(cache.entryPath(file), JSON.stringify({ ...entry, format: entry.format + 1 }), { mode: 0o600 });
    expect(cache.lookup(file)).toMatchObject({ hit: false, miss: 'stale' });
  });

  it('writes the entry with mode 0600 in a directory of mode 0700, leaving no temporary file', () => {
    const cache = cacheOf();
    start(cache);
    expect(statSync(cache.entryPath(file)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'cache')).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(join(dir, 'cache'))).toEqual([cache.entryPath(file).split('/').pop()]);
  });

  it('does not trust an entry others may write, another uid owns, or a symlink', () => {
    const cache = cacheOf();
    start(cache);
    const entry = cache.entryPath(file);
    chmodSync(entry, 0o666);
    expect(cache.lookup(file)).toMatchObject({ hit: false, miss: 'unsafe' });
    chmodSync(entry, 0o620);
    expect(cache.lookup(file)).toMatchObject({ hit: false, miss: 'unsafe' });
    chmodSync(entry, 0o600);
    expect(cacheOf({ uid: UID + 1 }).lookup(file)).toMatchObject({ hit: false, miss: 'unsafe' });
    expect(cache.lookup(file)).toMatchObject({ hit: true });

    const real = join(dir, 'elsewhere.json');
    fs.renameSync(entry, real);
    symlinkSync(real, entry);
    expect(cache.lookup(file)).toMatchObject({ hit: false, miss: 'unreadable' });
  });

  it('a directory where the entry should be is not read', () => {
    const cache = cacheOf();
    mkdirSync(cache.entryPath(file), { recursive: true });
    expect(cache.lookup(file)?.hit).toBe(false);
  });

  it('reports, without throwing, a directory it cannot create or write, and the next start validates in full', () => {
    // A regular file where the directory should be: mkdir fails even for root.
    const blocked = join(dir, 'blocked');
    writeFileSync(blocked, '');
    const cache = cacheOf({ dir: join(blocked, 'cache') });
    const found = cache.lookup(file);
    expect(found).toMatchObject({ hit: false, miss: 'unreadable' });
    if (!found || found.hit) throw new Error('expected a miss');
    expect(cache.store(file, found.source, parseConfig(found.source.text, file))).toBe('ENOTDIR');
    expect(cacheOf({ dir: join(blocked, 'cache') }).lookup(file)?.hit).toBe(false);
  });

  it('reports a failed write and removes its temporary file', () => {
    const failing: ConfigCacheFs = {
      ...fs,
      renameSync: () => {
        throw Object.assign(new Error('read-only file system'), { code: 'EROFS' });
      },
    };
    const cache = cacheOf({ fs: failing });
    const found = cache.lookup(file);
    if (!found || found.hit) throw new Error('expected a miss');
    expect(cache.store(file, found.source, parseConfig(found.source.text, file))).toBe('EROFS');
    expect(fs.readdirSync(join(dir, 'cache'))).toEqual([]);
    expect(cacheOf().lookup(file)).toMatchObject({ hit: false, miss: 'absent' });
  });

  it('does not write through a leftover temporary file (e.g. a symlink planted there)', () => {
    const cache = cacheOf();
    const entry = cache.entryPath(file);
    mkdirSync(dirname(entry), { recursive: true, mode: 0o700 });
    const target = join(dir, 'target');
    writeFileSync(target, 'untouched');
    symlinkSync(target, `${entry}.4242.tmp`);
    expect(start(cache).hit).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect(start(cacheOf()).hit).toBe(true);
  });

  it('flags of the same count but other values are stale', () => {
    start(cacheOf({ flags: ['--a', '--b'] }));
    expect(cacheOf({ flags: ['--a', '--c'] }).lookup(file)).toMatchObject({ hit: false, miss: 'stale' });
    expect(cacheOf({ flags: ['--a', '--b'] }).lookup(file)).toMatchObject({ hit: true });
  });

  it('without a uid to check (no process.getuid) an entry of ours is still a hit', () => {
    start(cacheOf({ uid: undefined }));
    expect(cacheOf({ uid: undefined }).lookup(file)).toMatchObject({ hit: true });
  });

  it('names the temporary file after the pid it was given', () => {
    const written: string[] = [];
    const recording: ConfigCacheFs = {
      ...fs,
      writeFileSync: ((path: string, ...rest: Parameters<typeof fs.writeFileSync> extends [unknown, ...infer R] ? R : never) => {
        written.push(path);
        return fs.writeFileSync(path, ...rest);
      }) as typeof fs.writeFileSync,
    };
    start(cacheOf({ fs: recording, pid: 31337 }));
    expect(written).toEqual([`${cacheOf().entryPath(file)}.31337.tmp`]);
  });

  it('does not write through a temporary file planted again between its removal and the write (exclusive create)', () => {
    const cache = cacheOf();
    const entry = cache.entryPath(file);
    const target = join(dir, 'target');
    writeFileSync(target, 'untouched');
    // The race: whatever the store removes, the link is back before it writes.
    const racing: ConfigCacheFs = {
      ...fs,
      rmSync: (path, opts) => {
        fs.rmSync(path, opts);
        if (path === `${entry}.4242.tmp`) symlinkSync(target, path);
      },
    };
    const found = cacheOf({ fs: racing }).lookup(file);
    if (!found || found.hit) throw new Error('expected a miss');
    expect(cacheOf({ fs: racing }).store(file, found.source, parseConfig(found.source.text, file))).toBe('EEXIST');
    expect(readFileSync(target, 'utf8')).toBe('untouched');
  });

  it('an error without a code is reported as EIO', () => {
    const failing: ConfigCacheFs = {
      ...fs,
      mkdirSync: () => {
        throw new Error('no code');
      },
    };
    const found = cacheOf().lookup(file);
    if (!found || found.hit) throw new Error('expected a miss');
    expect(cacheOf({ fs: failing }).store(file, found.source, parseConfig(found.source.text, file))).toBe('EIO');
  });

  it('an entry it cannot read after opening is unreadable, and every descriptor it opens is closed', () => {
    start(cacheOf());
    const open = new Set<number>();
    const tracking = (readFails: boolean): ConfigCacheFs => ({
      ...fs,
      openSync: ((...args: Parameters<typeof fs.openSync>) => {
        const fd = fs.openSync(...args);
        open.add(fd);
        return fd;
      }) as typeof fs.openSync,
      closeSync: (fd) => {
        open.delete(fd);
        fs.closeSync(fd);
      },
      readFileSync: ((...args: Parameters<typeof fs.readFileSync>) => {
        if (readFails && typeof args[0] === 'number') throw Object.assign(new Error('I/O error'), { code: 'EIO' });
        return fs.readFileSync(...args);
      }) as typeof fs.readFileSync,
    });
    expect(cacheOf({ fs: tracking(true) }).lookup(file)).toMatchObject({ hit: false, miss: 'unreadable' });
    expect(cacheOf({ fs: tracking(false) }).lookup(file)).toMatchObject({ hit: true });
    expect(open.size).toBe(0);
  });

  describe('an entry that is not a whole entry is corrupt', () => {
    const valid = (): Record<string, unknown> => {
      const c = cacheOf();
      start(c);
      return JSON.parse(readFileSync(c.entryPath(file), 'utf8')) as Record<string, unknown>;
    };
    const cases: [string, (e: Record<string, unknown>) => unknown][] = [
      ['null', () => null],
      ['a number', () => 5],
      ['no format', (e) => ({ ...e, format: undefined })],
      ['format as text', (e) => ({ ...e, format: String(e.format) })],
      ['no fingerprint', (e) => ({ ...e, fingerprint: undefined })],
      ['flags not a list', (e) => ({ ...e, flags: '' })],
      ['no flags', (e) => ({ ...e, flags: undefined })],
      ['no file', (e) => ({ ...e, file: undefined })],
      ['no text', (e) => ({ ...e, text: undefined })],
      ['config null', (e) => ({ ...e, config: null })],
      ['config text', (e) => ({ ...e, config: 'x' })],
    ];
    for (const [name, damage] of cases) {
      it(name, () => {
        const e = valid();
        const path = cacheOf().entryPath(file);
        writeFileSync(path, JSON.stringify(damage(e)));
        expect(cacheOf().lookup(file)).toMatchObject({ hit: false, miss: 'corrupt' });
      });
    }
  });

  it('a store prunes only the .json entries of gone files: not other files, not unreadable entries, not the one it wrote', () => {
    const cache = cacheOf();
    start(cache);
    const cacheDir = join(dir, 'cache');
    const gone = JSON.parse(readFileSync(cache.entryPath(file), 'utf8')) as Record<string, unknown>;
    gone.file = join(dir, 'gone.yaml');
    // Not an entry by name, though it holds one of a gone file.
    writeFileSync(join(cacheDir, 'notes.txt'), JSON.stringify(gone), { mode: 0o600 });
    // An entry it cannot make sense of.
    writeFileSync(join(cacheDir, 'corrupt.json'), 'not json', { mode: 0o600 });
    // The entry just written, for a config file that is gone by now.
    const vanished = join(dir, 'vanished.yaml');
    const found = cache.lookup(file);
    if (!found) throw new Error('config file unreadable');
    expect(cache.store(vanished, found.source, parseConfig(found.source.text, file))).toBeUndefined();
    expect(fs.readdirSync(cacheDir).sort()).toEqual(
      ['corrupt.json', 'notes.txt', cache.entryPath(file).split('/').pop(), cache.entryPath(vanished).split('/').pop()].sort(),
    );
  });
});
