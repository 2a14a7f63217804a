// The validated-config cache. Loading the YAML parser and the schema
// validator costs a starting daemon ~150 ms, a third of its start before
// this cache; a restart almost always finds the same file, so after one full
// validation the resolved config is kept as JSON, and the next start with
// the same file (and the same build of ctsyncd) reads it back without
// loading either. This module must stay light: node built-ins only, no
// zod, no yaml, nothing from the schema but its type.
//
// What a resolved config depends on, and so what an entry must match:
// - the config file's bytes (parseConfig is pure: no includes, no
//   environment, no file system; key files are read by the daemon at start,
//   not at validation);
// - the code that validates it: the build fingerprint (dist/build-id, a hash
//   of the built files and the lockfile, written by `npm run build`), so a
//   rebuilt schema or a new zod never reads an old entry;
// - the command-line options that shape it: none today (`--config` only
//   names the file), but the caller passes them so that a future override
//   is covered without a format change.
// An entry holds all three (and the file's path) and is used only if each is
// equal, byte for byte: no digest, so no node:crypto to load (~10 ms) and no
// collision to reason about. The path names the entry (one per config file,
// replaced on change), so a cache directory holds one small file per config
// in use.
//
// Nothing here is trusted that root did not write: an entry is read only if
// it is a regular file (no symlink followed), owned by our uid and writable
// by nobody else, and it is written atomically (a temporary file renamed
// over it) with mode 0600. Any doubt is a miss, and a miss is the normal
// path: full validation with file:line:column errors.
import * as nodeFs from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from './schema.js';

/** Where the daemon keeps it: systemd's CacheDirectory=ctsyncd (contrib/systemd/ctsyncd.service). */
export const CONFIG_CACHE_DIR = '/var/cache/ctsyncd/config';

/** Bumped when the entry's layout changes, so an old layout is a miss, not a misread. */
const FORMAT = 1;

/** The file system calls the cache makes; node:fs in the daemon, the same in tests (which point `dir` at a temporary directory). */
export type ConfigCacheFs = Pick<
  typeof nodeFs,
  | 'openSync'
  | 'fstatSync'
  | 'readFileSync'
  | 'closeSync'
  | 'mkdirSync'
  | 'writeFileSync'
  | 'renameSync'
  | 'rmSync'
  | 'readdirSync'
  | 'existsSync'
>;

export interface ConfigCacheOptions {
  /** The directory holding the entries; created (mode 0700) on the first store. */
  dir: string;
  /** Identifies the code that validated an entry (dist/build-id). */
  fingerprint: string;
  /** Command-line options that shape the config; an entry must carry the same. */
  flags?: readonly string[];
  fs?: ConfigCacheFs;
  /** The uid an entry must belong to (process.getuid()). */
  uid?: number;
  /** Names the temporary file of a store; process.pid in the daemon. */
  pid?: number;
}

/** Why an entry was not used; the caller logs it and validates in full. */
export type ConfigCacheMiss = 'absent' | 'stale' | 'corrupt' | 'unsafe' | 'unreadable';

/** The config file as read once: the same text is both compared and, on a miss, validated, so the two cannot disagree. */
export interface ConfigSource {
  /** The config file's text, as loadConfig would have read it. */
  text: string;
}

export type ConfigCacheLookup =
  | { hit: true; config: Config; source: ConfigSource }
  | { hit: false; miss: ConfigCacheMiss; source: ConfigSource };

/** What an entry file holds: what the config was validated from, and the result. */
interface Entry {
  format: number;
  fingerprint: string;
  flags: string[];
  /** The config file's absolute path. */
  file: string;
  text: string;
  config: Config;
}

export class ConfigCache {
  private readonly fs: ConfigCacheFs;
  private readonly uid: number | undefined;
  private readonly pid: number;

  constructor(private readonly opts: ConfigCacheOptions) {
    this.fs = opts.fs ?? nodeFs;
    this.uid = opts.uid;
    this.pid = opts.pid ?? 0;
  }

  /** The entry file for `file`: named by its absolute path (a name clash only costs a miss: the entry holds the path). */
  entryPath(file: string): string {
    return join(this.opts.dir, `${pathName(resolve(file))}.json`);
  }

  /**
   * Reads `file` and looks its entry up. Undefined when `file` itself cannot
   * be read: the caller's full load reports that exactly as before.
   */
  lookup(file: string): ConfigCacheLookup | undefined {
    let bytes: Buffer;
    try {
      bytes = this.fs.readFileSync(file);
    } catch {
      return undefined;
    }
    const source: ConfigSource = { text: bytes.toString('utf8') };
    const read = this.readEntry(this.entryPath(file));
    if (typeof read === 'string') return { hit: false, miss: read, source };
    const flags = this.opts.flags ?? [];
    const same =
      read.format === FORMAT &&
      read.fingerprint === this.opts.fingerprint &&
      read.file === resolve(file) &&
      read.text === source.text &&
      read.flags.length === flags.length &&
      read.flags.every((f, i) => f === flags[i]);
    return same ? { hit: true, config: read.config, source } : { hit: false, miss: 'stale', source };
  }

  /**
   * Keeps `config`, the full validation of `source`, for the next start.
   * Returns the error code when it could not (the daemon runs on; the next
   * start validates in full again).
   */
  store(file: string, source: ConfigSource, config: Config): string | undefined {
    const path = this.entryPath(file);
    const tmp = `${path}.${this.pid}.tmp`;
    const entry: Entry = {
      format: FORMAT,
      fingerprint: this.opts.fingerprint,
      flags: [...(this.opts.flags ?? [])],
      file: resolve(file),
      text: source.text,
      config,
    };
    try {
      this.fs.mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
      // 'wx': a leftover temporary file is someone else's; do not write through it.
      this.fs.rmSync(tmp, { force: true });
      this.fs.writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600, flag: 'wx' });
      this.fs.renameSync(tmp, path);
      this.prune(path);
      return undefined;
    } catch (e) {
      try {
        this.fs.rmSync(tmp, { force: true });
      } catch {
        // nothing more to clean up
      }
      return (e as NodeJS.ErrnoException).code ?? 'EIO';
    }
  }

  /**
   * Removes the entries of config files that no longer exist (test runs and
   * renamed configs leave them), so the directory holds the configs in use.
   * Runs only after a store, that is after a full validation, never on the
   * path of a hit. Best effort: an entry it cannot read stays.
   */
  private prune(keep: string): void {
    try {
      for (const name of this.fs.readdirSync(this.opts.dir)) {
        const path = join(this.opts.dir, name);
        if (!name.endsWith('.json') || path === keep) continue;
        const entry = this.readEntry(path);
        if (typeof entry !== 'string' && !this.fs.existsSync(entry.file)) this.fs.rmSync(path, { force: true });
      }
    } catch {
      // the entries stay until the next store
    }
  }

  private readEntry(path: string): Entry | ConfigCacheMiss {
    let fd: number;
    try {
      fd = this.fs.openSync(path, nodeFs.constants.O_RDONLY | nodeFs.constants.O_NOFOLLOW);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'unreadable';
    }
    try {
      const st = this.fs.fstatSync(fd);
      if (!st.isFile() || (st.mode & 0o022) !== 0 || (this.uid !== undefined && st.uid !== this.uid)) return 'unsafe';
      const entry = parseEntry(this.fs.readFileSync(fd, 'utf8'));
      return entry ?? 'corrupt';
    } catch {
      return 'unreadable';
    } finally {
      this.fs.closeSync(fd);
    }
  }
}

function parseEntry(text: string): Entry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Partial<Entry>;
  const fine =
    typeof e.format === 'number' &&
    typeof e.fingerprint === 'string' &&
    Array.isArray(e.flags) &&
    typeof e.file === 'string' &&
    typeof e.text === 'string' &&
    typeof e.config === 'object' &&
    e.config !== null;
  return fine ? (e as Entry) : undefined;
}

/** A file name for a path: FNV-1a, 2 x 32 bits. Not a digest to trust: the entry itself holds the path. */
function pathName(path: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ path.length;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c ^ (i & 0xff), 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
