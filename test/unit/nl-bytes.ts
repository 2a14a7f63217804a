// Raw netlink attributes built by hand, for the decoders' malformed-input
// tables: a length that lies, a nest of anything.
import { NLA_F_NESTED } from '../../src/kernel/constants.js';

/** One attribute, padded to 4 bytes; its length field is 4 + the data unless `len` says otherwise. */
export function attr(type: number, data: number[] | Buffer, len?: number): Buffer {
  const d = Buffer.from(data);
  const b = Buffer.alloc((4 + d.length + 3) & ~3);
  b.writeUInt16LE(len ?? 4 + d.length, 0);
  b.writeUInt16LE(type, 2);
  d.copy(b, 4);
  return b;
}

/** A nested attribute holding `children`. */
export function nest(type: number, ...children: Buffer[]): Buffer {
  return attr(type | NLA_F_NESTED, Buffer.concat(children));
}
