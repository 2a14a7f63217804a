// Types and constants of the sync wire format, shared by the datagram
// framing (datagram-encoder.ts, datagram-decoder.ts) and the protobuf codec
// (proto-codec.ts). A file of its own so that no two of those import each
// other for a type: framing uses the codec, the codec only needs these.

import type { EntryRecord } from '../../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../../kernel/entry.js';
import type { AuthKeys } from './auth.js';

/**
 * 3: challenge / challenge-response, and resync requests that name the
 * peer's epoch and carry a request number (freshness, see
 * src/sync/engine/freshness.ts). Version 2 nodes are not understood.
 */
export const PROTOCOL_VERSION = 3;

export type WireMessage =
  /**
   * The sender passes entries of its record table as EntryRecords (encoded
   * without an entry object, same bytes); the decoder yields objects.
   */
  | { kind: 'ct-new' | 'ct-update'; seq: number; entry: ConntrackEntry | EntryRecord }
  /**
   * Names the entry: only family, orig and zone travel. The decoder fills
   * reply with mirrorTuple(orig) when absent and drops any other field.
   */
  | { kind: 'ct-delete'; seq: number; entry: ConntrackEntry }
  | { kind: 'exp-new' | 'exp-delete'; seq: number; entry: ExpectEntry }
  /** Inclusive range of the PEER's sequence numbers, addressed to that peer (on multicast every node sees it). */
  | { kind: 'ack' | 'nack'; peer: string; epoch: number; from: number; to: number }
  /** seq = the next sequence number the sender will use, so receivers detect tail loss. */
  | { kind: 'alive'; seq: number }
  /** "I (re)started, here is my first seq." Receivers answer an epoch they have not verified with a challenge. */
  | { kind: 'hello'; seq: number }
  | { kind: 'hello-ack'; peer: string; epoch: number }
  /**
   * Asks `peer`, in its epoch `epoch`, for its whole state. `request`
   * increases with every request the sender makes in its epoch; a peer
   * honours each number once. peer '' (version 2's "every node") is ignored.
   */
  | { kind: 'resync-request'; peer: string; epoch: number; request: number }
  /** "Prove you are live": answer with this nonce, signed, in your current epoch. */
  | { kind: 'challenge'; peer: string; nonceHi: number; nonceLo: number }
  /**
   * The answer to `peer`'s challenge, addressed to its epoch `epoch`;
   * seq = the next sequence number the responder will use (the receiver
   * starts tracking its stream there). firstEpoch = the epoch the
   * responder started with; its seqs have gone on since, through every
   * rollover. A receiver that believed an epoch from firstEpoch on carries
   * on instead of treating the new epoch as a restart. 0 (absent) from a
   * sender that does not say: every new epoch of it is a restart.
   */
  | {
      kind: 'challenge-response';
      seq: number;
      peer: string;
      epoch: number;
      nonceHi: number;
      nonceLo: number;
      firstEpoch: number;
    }
  /** peer '' = all. */
  | { kind: 'bulk-start'; seq: number; bulkId: number; peer: string }
  | { kind: 'bulk-end'; seq: number; bulkId: number; peer: string; count: number };

export interface DatagramHeader {
  version: number;
  cluster: number;
  node: string;
  epoch: number;
  /** Datagram.number (see EncoderOptions.number); undefined when the sender does not number its datagrams. */
  number?: number | undefined;
}

export interface EncoderOptions {
  cluster: number;
  node: string;
  epoch: number;
  /** Upper bound of the whole datagram in bytes, HMAC trailer included. */
  mtu: number;
  auth?: AuthKeys | undefined;
  /**
   * When given, every datagram carries the number it returns at flush
   * (Datagram.number): a receiver counts a datagram as a sign of life only
   * when its number is past every one seen, so a replay is none.
   */
  number?: () => number;
}

export type WireErrorCode =
  /** Shorter than the fixed prefix (or than prefix + HMAC when flagged as signed). */
  | 'ETRUNC'
  /** Does not start with 'CS': not ctsyncd traffic. */
  | 'EMAGIC'
  /** Another protocol version, or reserved flag bits set. */
  | 'EVERSION'
  /** Another cluster id. */
  | 'ECLUSTER'
  /** Auth configured and the datagram is unsigned or no key verifies it. */
  | 'EAUTH'
  /** Malformed protobuf. */
  | 'EDECODE'
  /** Larger than maxSize. */
  | 'ESIZE'
  /** Well-formed protobuf holding an impossible value (address length, port > 65535, ...). */
  | 'EVALUE';

export interface WireError {
  code: WireErrorCode;
  reason: string;
}

export type DecodeResult =
  | {
      ok: true;
      header: DatagramHeader;
      messages: WireMessage[];
      /** Messages of a kind this version does not know, skipped. */
      unknownMessages: number;
      /** Carried an HMAC trailer (verified only when auth keys were given). */
      signed: boolean;
    }
  | { ok: false; error: WireError };

export interface DecodeOptions {
  cluster: number;
  auth?: AuthKeys | undefined;
  /** Larger datagrams are ESIZE. Default MAX_DATAGRAM_BYTES. */
  maxSize?: number;
  /**
   * Read ct-new and ct-update entries of the common shape as EntryRecords
   * (src/kernel/ct-record.ts), without entry objects: for a receiver that
   * stores records. They live in the decoder's scratch space and are valid
   * only until the next decodeDatagram(): copy what must be kept. Default
   * false: every entry an object.
   */
  records?: boolean;
}

export const MAGIC_0 = 0x43; // 'C'
export const MAGIC_1 = 0x53; // 'S'
export const FLAG_HMAC = 0x01;
export const PREFIX_BYTES = 8;
/** The largest IPv4 UDP payload. */
export const MAX_DATAGRAM_BYTES = 65_507;
/** Ethernet 1500 minus IPv4 and UDP headers. */
export const DEFAULT_MTU = 1472;
/** Room for the header, an HMAC and the largest entry with every field at its limit. */
export const MIN_MTU = 512;
/**
 * A bound on the encoded size of any single message under the field limits
 * (3 IPv6 tuples, labels, names of 32 bytes, ...: about 600 bytes); the
 * writer's slack past the MTU, so a message that turns out too big is
 * written in full and then discarded.
 */
export const MAX_MESSAGE_BYTES = 2048;
/** Far above what fits an MTU of real messages; bounds the work on a hostile 64 KiB datagram. */
export const MAX_MESSAGES_PER_DATAGRAM = 4096;
