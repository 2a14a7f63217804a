// Shared keys and the HMAC-SHA256 trailer of sync datagrams.
//
// Two key files allow a rolling key change: every node first loads
// [old, new] (signs with old, accepts both), then [new, old], then [new].

import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CtsyncdError } from '../../common/errors.js';

export interface AuthKeys {
  /** Signs every datagram sent. */
  sign: Buffer;
  /** Any of these verifies a received datagram; sign is the first. */
  verify: Buffer[];
}

/**
 * node:crypto, loaded on first use: ~40 internal modules (~10 ms) that a
 * cluster without sync.auth never needs, and that would otherwise load
 * before a starting daemon's control socket listens. Synchronous, as the
 * datagram codec that signs and verifies is.
 */
const nodeCrypto = (() => {
  let loaded: typeof import('node:crypto') | undefined;
  return () => (loaded ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto'));
})();

export const HMAC_BYTES = 32;
/**
 * 256 bits, the HMAC-SHA256 block's worth of key material: what
 * `openssl rand -hex 32` gives. Shorter keys are refused, not padded.
 */
export const MIN_KEY_BYTES = 32;
/** Fewer distinct byte values than this in a key of MIN_KEY_BYTES or more is a pattern, not a random key. */
export const MIN_DISTINCT_KEY_BYTES = 8;
/** Fewer hex digits than this are taken as a raw (short) key rather than hex. */
const MIN_HEX_CHARS = 32;

/**
 * EAUTH_KEY: a key file that cannot be read or decoded. EAUTH_KEY_PERMS: one
 * that others could read or replace (not a regular file, owned by someone
 * other than root or the daemon's user, or any group/other permission bit).
 * EAUTH_KEY_WEAK: a key too short or too regular to be secret.
 */
export type WireKeyErrorCode = 'EAUTH_KEY' | 'EAUTH_KEY_PERMS' | 'EAUTH_KEY_WEAK';

export class WireKeyError extends CtsyncdError {
  readonly code: WireKeyErrorCode;

  constructor(
    readonly file: string,
    reason: string,
    options?: { cause?: unknown; code?: WireKeyErrorCode },
  ) {
    super(`${file === '' ? 'auth keys' : `key file ${file}`}: ${reason}`, { cause: options?.cause, context: { file } });
    this.code = options?.code ?? 'EAUTH_KEY';
  }
}

/**
 * Decodes one key file. Trimmed content of 32+ characters that are all hex
 * digits is a hex key (what `openssl rand -hex 32` writes, newline and
 * all); anything else is used byte for byte, so `head -c 32 /dev/urandom`
 * works too. A raw key is deliberately not trimmed: trimming would change
 * random bytes that happen to be whitespace.
 */
export function parseKeyFile(file: string, content: Buffer): Buffer {
  const text = content.toString('latin1').trim();
  let key: Buffer;
  if (text.length >= MIN_HEX_CHARS && /^[0-9A-Fa-f]+$/.test(text)) {
    // Buffer.from(hex) silently drops an odd last digit; a typo must not shorten the key.
    if (text.length % 2 !== 0) throw new WireKeyError(file, `odd number (${text.length}) of hex digits`);
    key = Buffer.from(text, 'hex');
  } else {
    key = Buffer.from(content);
  }
  const weak = keyWeakness(key);
  if (weak !== undefined) throw new WireKeyError(file, weak, { code: 'EAUTH_KEY_WEAK' });
  return key;
}

/** Why `key` is no usable secret, or undefined. */
export function keyWeakness(key: Buffer): string | undefined {
  if (key.length < MIN_KEY_BYTES) {
    return `key of ${key.length} bytes, at least ${MIN_KEY_BYTES} are needed (e.g. openssl rand -hex 32)`;
  }
  const distinct = new Set(key).size;
  if (distinct === 1) return `key is one byte (0x${key[0]!.toString(16).padStart(2, '0')}) repeated`;
  if (distinct < MIN_DISTINCT_KEY_BYTES) {
    return `key has only ${distinct} distinct byte values, not a random key (e.g. openssl rand -hex 32)`;
  }
  return undefined;
}

/** What keyFileExposure looks at: the file's stat, as fstat gives it. */
export interface KeyFileStat {
  uid: number;
  mode: number;
  isFile(): boolean;
}

/**
 * Why a key file with this stat could be read or replaced by someone other
 * than root and the daemon's user (`ownUid`), or undefined when it cannot.
 */
export function keyFileExposure(st: KeyFileStat, ownUid: number): string | undefined {
  if (!st.isFile()) return 'not a regular file';
  if (st.uid !== 0 && st.uid !== ownUid) return `owned by uid ${st.uid}, not by root or the daemon's user (uid ${ownUid})`;
  const open = st.mode & 0o077;
  if (open !== 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    return `mode ${mode} lets group or others ${open & 0o044 ? 'read' : 'write'} it; chmod 600 it`;
  }
  return undefined;
}

/**
 * Reads 1 or 2 key files: the first signs, all verify. Each must be safe
 * (keyFileExposure) and strong (keyWeakness); the stat checked is that of
 * the very file read. Throws WireKeyError.
 */
export function loadAuthKeys(files: string[], ownUid: number = process.getuid?.() ?? 0): AuthKeys {
  if (files.length < 1 || files.length > 2) {
    throw new WireKeyError('', `expected 1 or 2 key files, got ${files.length}`);
  }
  const verify: Buffer[] = [];
  for (const file of files) {
    let content: Buffer;
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const exposure = keyFileExposure(fstatSync(fd), ownUid);
      if (exposure !== undefined) throw new WireKeyError(file, exposure, { code: 'EAUTH_KEY_PERMS' });
      content = readFileSync(fd);
    } catch (err) {
      if (err instanceof WireKeyError) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      throw new WireKeyError(file, `cannot read: ${msg}`, { cause: err });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    verify.push(parseKeyFile(file, content));
  }
  return { sign: verify[0]!, verify };
}

export function hmac(key: Buffer, data: Buffer): Buffer {
  return nodeCrypto().createHmac('sha256', key).update(data).digest();
}

/** Whether mac is the HMAC of data under any of the keys; constant time per key. */
export function verifyHmac(keys: readonly Buffer[], data: Buffer, mac: Buffer): boolean {
  for (const key of keys) {
    if (nodeCrypto().timingSafeEqual(hmac(key, data), mac)) return true;
  }
  return false;
}
