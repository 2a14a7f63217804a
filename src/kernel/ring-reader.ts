// The JavaScript half of the event socket's reader thread (the addon's
// readerStart): the thread writes what it reads into a ring, as segments,
// and this hands them to the receiver in order, on the event loop, then
// gives their room back. A segment is a 16-byte header {bytes, errno,
// datagrams, truncated} and what one batch of reads returned (whole netlink
// datagrams back to back, padded to 16): the same as one recvBatch() with
// its status, so the receiver learns the same things in the same order:
// the events, then ENOBUFS (an overrun at that point of the stream) or
// "read empty" (EAGAIN), as markers between them. A header whose bytes is
// RING_WRAP says the next segment starts at offset 0.
import type { NetlinkReceiver } from './transport.js';

export const RING_HDR = 16;
export const RING_WRAP = 0xffff_ffff;
const EAGAIN = 11;

/**
 * What the thread shares: the ring, where its writing ends, and where
 * handling ends. Once the socket is closed, tail() stays where it was and
 * release() does nothing: the thread is gone.
 */
export interface RingSource {
  readonly ring: Buffer;
  /** The position (bytes since the start, never wrapping) up to which segments are complete. */
  tail(): number;
  /** Segments before `head` are handled; the thread may write there again. */
  release(head: number): void;
}

export class RingReader {
  /** Where the next segment to handle starts (a position, like tail()). */
  private head = 0;

  constructor(private readonly src: RingSource) {}

  /** Bytes written and not yet handled. */
  get heldBytes(): number {
    return this.src.tail() - this.head;
  }

  /**
   * Hands the written segments to `to` in order, until none is left or
   * `stop()` says so after a segment; their room goes back to the thread.
   * True when segments are left to hand over.
   */
  deliver(to: NetlinkReceiver | undefined, stop: () => boolean): boolean {
    const ring = this.src.ring;
    const size = ring.length;
    let head = this.head;
    let tail = this.src.tail();
    while (head < tail) {
      const off = head % size;
      const bytes = ring.readUInt32LE(off);
      if (bytes === RING_WRAP) {
        head += size - off;
        continue;
      }
      const err = ring.readInt32LE(off + 4);
      head += RING_HDR + ((bytes + 15) & ~15);
      if (bytes > 0) to?.onData(ring, off + RING_HDR, off + RING_HDR + bytes);
      if (err === EAGAIN) to?.onEmpty?.();
      else if (err !== 0) to?.onError(err);
      if (stop()) break;
      // Whatever the thread wrote meanwhile, in this same turn.
      if (head >= tail) tail = this.src.tail();
    }
    this.head = head;
    this.src.release(head);
    return head < tail;
  }
}
