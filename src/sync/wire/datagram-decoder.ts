// Decoding of received sync datagrams: the checks of the framing (see
// datagram-encoder.ts for the layout and the authentication policy), then
// the protobuf body. Never throws: a bad datagram is an error value.

import { HMAC_BYTES, verifyHmac } from './auth.js';
import { readDatagram, readerRelease, readerReset, WireFail } from './proto-codec.js';
import {
  type DecodeOptions,
  type DecodeResult,
  FLAG_HMAC,
  MAGIC_0,
  MAGIC_1,
  MAX_DATAGRAM_BYTES,
  MAX_MESSAGES_PER_DATAGRAM,
  PREFIX_BYTES,
  PROTOCOL_VERSION,
  type WireErrorCode,
} from './types.js';

function reject(code: WireErrorCode, reason: string): DecodeResult {
  return { ok: false, error: { code, reason } };
}

/** Decodes and checks one received datagram. Never throws: a bad datagram is an error value. */
export function decodeDatagram(buf: Buffer, opts: DecodeOptions): DecodeResult {
  const len = buf.length;
  const maxSize = opts.maxSize ?? MAX_DATAGRAM_BYTES;
  if (len > maxSize) return reject('ESIZE', `${len} bytes, more than ${maxSize}`);
  if (len < 2) return reject('ETRUNC', `${len} bytes, shorter than the ${PREFIX_BYTES}-byte prefix`);
  if (buf[0] !== MAGIC_0 || buf[1] !== MAGIC_1) {
    return reject('EMAGIC', `starts with 0x${buf.toString('hex', 0, 2)}, not 'CS'`);
  }
  if (len < PREFIX_BYTES) return reject('ETRUNC', `${len} bytes, shorter than the ${PREFIX_BYTES}-byte prefix`);
  const version = buf[2]!;
  if (version !== PROTOCOL_VERSION)
    return reject('EVERSION', `version ${version}, this node speaks ${PROTOCOL_VERSION}`);
  const flags = buf[3]!;
  if ((flags & ~FLAG_HMAC) !== 0) {
    return reject(
      'EVERSION',
      `unknown flags 0x${flags.toString(16).padStart(2, '0')} in a version ${version} datagram`,
    );
  }
  const cluster = buf.readUInt32BE(4);
  if (cluster !== opts.cluster) return reject('ECLUSTER', `cluster ${cluster}, this node is in ${opts.cluster}`);
  const signed = (flags & FLAG_HMAC) !== 0;
  let end = len;
  if (signed) {
    if (len < PREFIX_BYTES + HMAC_BYTES) {
      return reject('ETRUNC', `${len} bytes, too short for the prefix and an HMAC of ${HMAC_BYTES}`);
    }
    end = len - HMAC_BYTES;
  }
  if (opts.auth) {
    if (!signed) return reject('EAUTH', 'unsigned datagram, and this node requires authentication');
    if (!verifyHmac(opts.auth.verify, buf.subarray(0, end), buf.subarray(end))) {
      return reject('EAUTH', 'HMAC does not match any loaded key');
    }
  }
  try {
    readerReset(buf, PREFIX_BYTES, opts.records === true);
    const body = readDatagram(end, MAX_MESSAGES_PER_DATAGRAM);
    return {
      ok: true,
      header: { version, cluster, node: body.node, epoch: body.epoch, number: body.number },
      messages: body.messages,
      unknownMessages: body.unknownMessages,
      signed,
    };
  } catch (err) {
    if (err instanceof WireFail) return reject(err.code, err.reason);
    // A bug, not bad input; still not worth the daemon.
    return reject('EDECODE', `internal error: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    readerRelease();
  }
}
