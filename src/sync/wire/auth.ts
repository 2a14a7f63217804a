// Shared keys and the HMAC-SHA256 trailer of sync datagrams.
//
// Two key files allow a rolling key change: every node first loads
// [old, new] (signs with old, accepts both), then [new, old], then [new].

import { readFileSync } from 'node:fs';
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
/** 128 bits: below that, an HMAC key is guessable offline from captured traffic. */
export const MIN_KEY_BYTES = 16;
/** Fewer hex digits than this are taken as a raw (short) key rather than hex. */
const MIN_HEX_CHARS = 32;

export class WireKeyError extends CtsyncdError {
  readonly code = 'EAUTH_KEY' as const;
  constructor(
    readonly file: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file === '' ? 'auth keys' : `key file ${file}`}: ${reason}`, { cause: options?.cause, context: { file } });
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
  if (key.length < MIN_KEY_BYTES) {
    throw new WireKeyError(file, `key of ${key.length} bytes, at least ${MIN_KEY_BYTES} are needed`);
  }
  return key;
}

/** Reads 1 or 2 key files: the first signs, all verify. Throws WireKeyError. */
export function loadAuthKeys(files: string[]): AuthKeys {
  if (files.length < 1 || files.length > 2) {
    throw new WireKeyError('', `expected 1 or 2 key files, got ${files.length}`);
  }
  const verify: Buffer[] = [];
  for (const file of files) {
    let content: Buffer;
    try {
      content = readFileSync(file);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new WireKeyError(file, `cannot read: ${msg}`, { cause: err });
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
