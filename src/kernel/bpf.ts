// Classic BPF socket filters for netlink sockets. The kernel runs a socket's
// filter before it queues a broadcast, so events our own requests caused
// (commit, inject, purge) never take space in the event socket's buffer: a
// 100k-entry commit cannot overrun the socket that must keep listening.

const BPF_LD_W_ABS = 0x00 | 0x00 | 0x20;
const BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00;
const BPF_RET_K = 0x06 | 0x00;
const INSN_BYTES = 8;
/** nlmsg_pid sits at offset 12 of struct nlmsghdr. */
const NLMSG_PID_OFFSET = 12;
/** jt is a u8: at most this many port ids fit one jump chain. */
export const MAX_FILTERED_PORTIDS = 250;

/**
 * A program that drops netlink messages whose nlmsg_pid is one of `portids`
 * and accepts everything else. ctnetlink sends one event per skb, so looking
 * at the first header is enough.
 */
export function dropPortidsFilter(portids: readonly number[]): Buffer {
  if (portids.length > MAX_FILTERED_PORTIDS) throw new RangeError(`at most ${MAX_FILTERED_PORTIDS} port ids`);
  const n = portids.length;
  const prog = Buffer.alloc((n + 3) * INSN_BYTES);
  let at = 0;
  const insn = (code: number, jt: number, jf: number, k: number) => {
    prog.writeUInt16LE(code, at);
    prog.writeUInt8(jt, at + 2);
    prog.writeUInt8(jf, at + 3);
    prog.writeUInt32LE(k >>> 0, at + 4);
    at += INSN_BYTES;
  };
  insn(BPF_LD_W_ABS, 0, 0, NLMSG_PID_OFFSET);
  // Absolute loads are big-endian; nlmsg_pid is in host (little-endian) order.
  for (const [i, portid] of portids.entries()) insn(BPF_JMP_JEQ_K, n - i, 0, byteSwap32(portid));
  insn(BPF_RET_K, 0, 0, 0xffffffff);
  insn(BPF_RET_K, 0, 0, 0);
  return prog;
}

/** What dropPortidsFilter's program does with a message, evaluated in TypeScript (fake kernel, tests). */
export function runPortidsFilter(program: Buffer, message: Buffer): boolean {
  let a = 0;
  for (let pc = 0; pc * INSN_BYTES < program.length; ) {
    const at = pc * INSN_BYTES;
    const code = program.readUInt16LE(at);
    const jt = program.readUInt8(at + 2);
    const jf = program.readUInt8(at + 3);
    const k = program.readUInt32LE(at + 4);
    if (code === BPF_LD_W_ABS) {
      if (k + 4 > message.length) return false;
      a = message.readUInt32BE(k);
      pc++;
    } else if (code === BPF_JMP_JEQ_K) {
      pc += 1 + (a === k ? jt : jf);
    } else if (code === BPF_RET_K) {
      return k !== 0;
    } else {
      throw new Error(`unsupported BPF opcode ${code}`);
    }
  }
  return false;
}

function byteSwap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | ((v >>> 24) & 0xff)) >>> 0;
}
