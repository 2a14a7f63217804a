// Classic BPF socket filters for netlink sockets: an assembler, a checker
// and an interpreter. The kernel runs a socket's filter before it queues a
// broadcast, so a message the filter drops never takes space in the
// receive buffer nor wakes the process (event-filter.ts builds the event
// socket's program). The interpreter is what the FakeKernel and the tests
// run, so they evaluate the very bytes the kernel gets; it follows
// net/core/filter.c: big-endian packet loads that end the program with 0
// (drop) when out of bounds, the SKF_AD_NLATTR / SKF_AD_NLATTR_NEST
// ancillary loads with nla_find()'s walk, 32-bit unsigned arithmetic.

import { endianness } from 'node:os';
import { NLA_HDRLEN, NLA_TYPE_MASK } from './constants.js';

// linux/bpf_common.h, linux/filter.h
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_MISC = 0x07;
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MEM = 0x60;
export const BPF_LEN = 0x80;
export const BPF_MSH = 0xa0;
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_A = 0x10;
export const BPF_TAX = 0x00;
export const BPF_TXA = 0x80;
/** Ancillary loads: LD|W|ABS with k = SKF_AD_OFF + one of these (as u32). */
export const SKF_AD_OFF = -0x1000;
export const SKF_AD_NLATTR = 12;
export const SKF_AD_NLATTR_NEST = 16;
/** The kernel refuses longer programs (linux/bpf_common.h). */
export const BPF_MAXINSNS = 4096;
/** Scratch memory words M[0..15]. */
export const BPF_MEMWORDS = 16;

const INSN_BYTES = 8;
/** nlmsg_pid sits at offset 12 of struct nlmsghdr. */
const NLMSG_PID_OFFSET = 12;
/** jt is a u8: at most this many port ids fit one jump chain. */
export const MAX_FILTERED_PORTIDS = 250;
/** What a filter returns to keep a whole message. */
export const BPF_ACCEPT = 0xffffffff;

const HOST_LE = endianness() === 'LE';

/** The value a big-endian BPF_H load reads from a host-order u16 `v`: what to compare nlmsg_type, nla_len with. */
export function hostU16AsLoaded(v: number, littleEndian = HOST_LE): number {
  return littleEndian ? ((v & 0xff) << 8) | ((v >>> 8) & 0xff) : v & 0xffff;
}

/** The value a big-endian BPF_W load reads from a host-order u32 `v` (nlmsg_pid). */
export function hostU32AsLoaded(v: number, littleEndian = HOST_LE): number {
  return littleEndian ? byteSwap32(v) : v >>> 0;
}

function byteSwap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | ((v >>> 24) & 0xff)) >>> 0;
}

// ---------------------------------------------------------------------------
// Assembler

/** A jump target; bind() fixes it before the next instruction emitted. */
export interface BpfLabel {
  readonly id: number;
}

type Item =
  | { kind: 'stmt'; code: number; k: number }
  | { kind: 'ja'; target: number }
  | { kind: 'cond'; code: number; k: number; jt: number; jf: number; trampT: boolean; trampF: boolean };

/**
 * Builds a program from statements and jumps to labels. Conditional jumps
 * reach at most 255 instructions ahead (jt and jf are u8); a farther target
 * gets a trampoline, an unconditional BPF_JA (32-bit k) placed right after
 * the jump. Labels only ever lie ahead: cBPF has no backward jumps, and
 * assemble() refuses a label bound before its jump.
 */
export class BpfAssembler {
  private readonly items: Item[] = [];
  /** Label id -> index of the item it precedes (items.length: the end). */
  private readonly bound: number[] = [];

  label(): BpfLabel {
    this.bound.push(-1);
    return { id: this.bound.length - 1 };
  }

  bind(l: BpfLabel): void {
    if (this.bound[l.id] !== -1) throw new Error(`BPF label ${l.id} bound twice`);
    this.bound[l.id] = this.items.length;
  }

  /** Any non-jump instruction. */
  stmt(code: number, k = 0): void {
    this.items.push({ kind: 'stmt', code, k: k >>> 0 });
  }

  /** A conditional jump; an omitted target falls through to the next instruction. */
  jump(code: number, k: number, jt?: BpfLabel, jf?: BpfLabel): void {
    const next = jt === undefined || jf === undefined ? this.label() : undefined;
    this.items.push({
      kind: 'cond',
      code,
      k: k >>> 0,
      jt: (jt ?? next!).id,
      jf: (jf ?? next!).id,
      trampT: false,
      trampF: false,
    });
    if (next) this.bind(next);
  }

  ja(target: BpfLabel): void {
    this.items.push({ kind: 'ja', target: target.id });
  }

  ret(k: number): void {
    this.stmt(BPF_RET | BPF_K, k);
  }

  /** Instructions before trampolines: a lower bound of the assembled length. */
  get size(): number {
    return this.items.length;
  }

  assemble(): Buffer {
    for (const [id, at] of this.bound.entries()) if (at < 0) throw new Error(`BPF label ${id} never bound`);
    const width = (it: Item) => (it.kind === 'cond' ? 1 + Number(it.trampT) + Number(it.trampF) : 1);
    let addr: number[] = [];
    const labelAddr = (id: number) => addr[this.bound[id]!]!;
    // Trampolines only ever get added, so this settles.
    for (let changed = true; changed; ) {
      changed = false;
      addr = [];
      let pc = 0;
      for (const it of this.items) {
        addr.push(pc);
        pc += width(it);
      }
      addr.push(pc);
      for (const [i, it] of this.items.entries()) {
        if (it.kind !== 'cond') continue;
        const pc0 = addr[i]!;
        const t = labelAddr(it.jt);
        const f = labelAddr(it.jf);
        if (t <= pc0 || f <= pc0) throw new Error('BPF jumps go forward only');
        if (!it.trampT && t - pc0 - 1 > 255) {
          it.trampT = changed = true;
        } else if (!it.trampF && f - pc0 - 1 > 255) {
          it.trampF = changed = true;
        }
      }
    }
    const total = addr[addr.length - 1]!;
    const prog = Buffer.alloc(total * INSN_BYTES);
    let at = 0;
    const put = (code: number, jt: number, jf: number, k: number) => {
      prog.writeUInt16LE(code, at);
      prog.writeUInt8(jt, at + 2);
      prog.writeUInt8(jf, at + 3);
      prog.writeUInt32LE(k >>> 0, at + 4);
      at += INSN_BYTES;
    };
    for (const [i, it] of this.items.entries()) {
      const pc0 = addr[i]!;
      if (it.kind === 'stmt') put(it.code, 0, 0, it.k);
      else if (it.kind === 'ja') put(BPF_JMP | BPF_JA, 0, 0, labelAddr(it.target) - pc0 - 1);
      else {
        const t = labelAddr(it.jt);
        const f = labelAddr(it.jf);
        // Layout after the jump: [ja t] if trampT, then [ja f] if trampF.
        const jt = it.trampT ? 0 : t - pc0 - 1;
        const jf = it.trampF ? Number(it.trampT) : f - pc0 - 1;
        put(it.code, jt, jf, it.k);
        if (it.trampT) put(BPF_JMP | BPF_JA, 0, 0, t - (pc0 + 1) - 1);
        if (it.trampF) {
          const here = pc0 + 1 + Number(it.trampT);
          put(BPF_JMP | BPF_JA, 0, 0, f - here - 1);
        }
      }
    }
    return prog;
  }
}

// ---------------------------------------------------------------------------
// The own-portid program

/**
 * A program that drops netlink messages whose nlmsg_pid is one of `portids`
 * and accepts everything else. ctnetlink sends one event per skb, so looking
 * at the first header is enough. Messages shorter than a header are accepted
 * (a load past the end would end the program with "drop").
 */
export function dropPortidsFilter(portids: readonly number[]): Buffer {
  if (portids.length > MAX_FILTERED_PORTIDS) throw new RangeError(`at most ${MAX_FILTERED_PORTIDS} port ids`);
  const asm = new BpfAssembler();
  const accept = asm.label();
  const drop = asm.label();
  emitOwnPortids(asm, portids, accept, drop);
  asm.bind(accept);
  asm.ret(BPF_ACCEPT);
  asm.bind(drop);
  asm.ret(0);
  return asm.assemble();
}

/** Jumps to `drop` for our own port ids, to `accept` for a runt; falls through otherwise. */
export function emitOwnPortids(
  asm: BpfAssembler,
  portids: readonly number[],
  accept: BpfLabel,
  drop: BpfLabel,
  littleEndian = HOST_LE,
): void {
  if (portids.length === 0) return;
  asm.stmt(BPF_LD | BPF_W | BPF_LEN);
  asm.jump(BPF_JMP | BPF_JGE | BPF_K, NLMSG_PID_OFFSET + 4, undefined, accept);
  asm.stmt(BPF_LD | BPF_W | BPF_ABS, NLMSG_PID_OFFSET);
  for (const portid of portids) asm.jump(BPF_JMP | BPF_JEQ | BPF_K, hostU32AsLoaded(portid, littleEndian), drop);
}

/** Whether `program` keeps `message`; the same as runClassicBpf(...) !== 0. */
export function runPortidsFilter(program: Buffer, message: Buffer): boolean {
  return runClassicBpf(program, message) !== 0;
}

// ---------------------------------------------------------------------------
// Checker: what the kernel's bpf_check_classic() refuses

const ALU_OPS = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR];
const COND_OPS = [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET];
const ANCILLARY = [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60];

function knownCode(code: number): boolean {
  const cls = code & 0x07;
  switch (cls) {
    case BPF_LD:
      return [BPF_W | BPF_ABS, BPF_H | BPF_ABS, BPF_B | BPF_ABS, BPF_W | BPF_IND, BPF_H | BPF_IND, BPF_B | BPF_IND]
        .concat([BPF_IMM, BPF_MEM, BPF_W | BPF_LEN])
        .some((m) => code === (BPF_LD | m));
    case BPF_LDX:
      return [BPF_IMM, BPF_MEM, BPF_W | BPF_LEN, BPF_B | BPF_MSH].some((m) => code === (BPF_LDX | m));
    case BPF_ST:
    case BPF_STX:
      return code === cls;
    case BPF_ALU:
      return code === (BPF_ALU | BPF_NEG) || ALU_OPS.some((op) => code === (BPF_ALU | op | BPF_K) || code === (BPF_ALU | op | BPF_X));
    case BPF_JMP:
      return code === (BPF_JMP | BPF_JA) || COND_OPS.some((op) => code === (BPF_JMP | op | BPF_K) || code === (BPF_JMP | op | BPF_X));
    case BPF_RET:
      return code === (BPF_RET | BPF_K) || code === (BPF_RET | BPF_A);
    default:
      return code === (BPF_MISC | BPF_TAX) || code === (BPF_MISC | BPF_TXA);
  }
}

/**
 * Why the kernel would refuse `program` (SO_ATTACH_FILTER → EINVAL), or
 * undefined: the length, opcodes, jump ranges, scratch indexes, division by
 * a constant zero, a final RET, and that every scratch word is written on
 * every path before it is read (the kernel's check_load_and_stores(), whose
 * exact flow rule this repeats).
 */
export function checkClassicBpf(program: Buffer): string | undefined {
  if (program.length % INSN_BYTES !== 0) return 'length is not a whole number of instructions';
  const n = program.length / INSN_BYTES;
  if (n === 0 || n > BPF_MAXINSNS) return `${n} instructions (1..${BPF_MAXINSNS})`;
  for (let pc = 0; pc < n; pc++) {
    const { code, jt, jf, k } = insnAt(program, pc);
    if (!knownCode(code)) return `unknown opcode 0x${code.toString(16)} at ${pc}`;
    const cls = code & 0x07;
    if (cls === BPF_ALU && (code === (BPF_ALU | BPF_DIV | BPF_K) || code === (BPF_ALU | BPF_MOD | BPF_K)) && k === 0)
      return `division by zero at ${pc}`;
    if ((code === (BPF_LD | BPF_MEM) || code === (BPF_LDX | BPF_MEM) || cls === BPF_ST || cls === BPF_STX) && k >= BPF_MEMWORDS)
      return `scratch word ${k} at ${pc}`;
    if (code === (BPF_JMP | BPF_JA) && k >= n - pc - 1) return `jump out of the program at ${pc}`;
    if (cls === BPF_JMP && code !== (BPF_JMP | BPF_JA) && (pc + jt + 1 >= n || pc + jf + 1 >= n))
      return `jump out of the program at ${pc}`;
    if (code === (BPF_LD | BPF_W | BPF_ABS) && (k | 0) < 0 && (k | 0) >= SKF_AD_OFF && !ANCILLARY.includes((k | 0) - SKF_AD_OFF))
      return `unknown ancillary load at ${pc}`;
  }
  if ((insnAt(program, n - 1).code & 0x07) !== BPF_RET) return 'the last instruction is not a RET';
  const masks = new Uint16Array(n).fill(0xffff);
  let memvalid = 0;
  for (let pc = 0; pc < n; pc++) {
    memvalid &= masks[pc]!;
    const { code, jt, jf, k } = insnAt(program, pc);
    const cls = code & 0x07;
    if (cls === BPF_ST || cls === BPF_STX) memvalid |= 1 << k;
    else if (code === (BPF_LD | BPF_MEM) || code === (BPF_LDX | BPF_MEM)) {
      if (!(memvalid & (1 << k))) return `scratch word ${k} read before it is written at ${pc}`;
    } else if (code === (BPF_JMP | BPF_JA)) {
      masks[pc + 1 + k] = masks[pc + 1 + k]! & memvalid;
      memvalid = 0xffff;
    } else if (cls === BPF_JMP) {
      masks[pc + 1 + jt] = masks[pc + 1 + jt]! & memvalid;
      masks[pc + 1 + jf] = masks[pc + 1 + jf]! & memvalid;
      memvalid = 0xffff;
    }
  }
  return undefined;
}

function insnAt(program: Buffer, pc: number): { code: number; jt: number; jf: number; k: number } {
  const at = pc * INSN_BYTES;
  return {
    code: program.readUInt16LE(at),
    jt: program.readUInt8(at + 2),
    jf: program.readUInt8(at + 3),
    k: program.readUInt32LE(at + 4),
  };
}

// ---------------------------------------------------------------------------
// Interpreter

export interface RunOptions {
  /** Host byte order of netlink headers (nla_len); the machine's by default. */
  littleEndian?: boolean;
}

/**
 * Runs a classic BPF program over one skb's bytes (`packet`, linear, as a
 * netlink broadcast is) and returns what it returns: 0 drops, anything else
 * keeps. Throws on an instruction the checker would refuse or an ancillary
 * load other than NLATTR/NLATTR_NEST: those are bugs in our programs, not
 * verdicts.
 */
export function runClassicBpf(program: Buffer, packet: Buffer, opts: RunOptions = {}): number {
  const le = opts.littleEndian ?? HOST_LE;
  const n = program.length / INSN_BYTES;
  const mem = new Uint32Array(BPF_MEMWORDS);
  const len = packet.length;
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < n; pc++) {
    const at = pc * INSN_BYTES;
    const code = program.readUInt16LE(at);
    const jt = program[at + 2]!;
    const jf = program[at + 3]!;
    const k = program.readUInt32LE(at + 4);
    const cls = code & 0x07;
    switch (cls) {
      case BPF_LD:
      case BPF_LDX: {
        const mode = code & 0xe0;
        let v: number;
        if (mode === BPF_IMM) v = k;
        else if (mode === BPF_LEN) v = len;
        else if (mode === BPF_MEM) v = mem[k]!;
        else if (mode === BPF_MSH) {
          if (k >= len) return 0;
          v = (packet[k]! & 0x0f) << 2;
        } else {
          const size = code & 0x18;
          if (mode === BPF_ABS && (k | 0) < 0) {
            if (size !== BPF_W || (k | 0) < SKF_AD_OFF) throw new Error(`unsupported negative load at ${pc}`);
            const ad = (k | 0) - SKF_AD_OFF;
            if (ad === SKF_AD_NLATTR) v = nlattr(packet, a, x, le);
            else if (ad === SKF_AD_NLATTR_NEST) v = nlattrNest(packet, a, x, le);
            else throw new Error(`unsupported ancillary load ${ad} at ${pc}`);
          } else {
            const off = mode === BPF_IND ? (x + k) >>> 0 : k;
            const bytes = size === BPF_W ? 4 : size === BPF_H ? 2 : 1;
            // A load past the end ends the program with 0 (drop), as in the kernel.
            if (off + bytes > len) return 0;
            v = bytes === 4 ? packet.readUInt32BE(off) : bytes === 2 ? packet.readUInt16BE(off) : packet[off]!;
          }
        }
        if (cls === BPF_LD) a = v >>> 0;
        else x = v >>> 0;
        break;
      }
      case BPF_ST:
        mem[k] = a;
        break;
      case BPF_STX:
        mem[k] = x;
        break;
      case BPF_ALU: {
        const op = code & 0xf0;
        if (op === BPF_NEG) {
          a = -a >>> 0;
          break;
        }
        const s = code & BPF_X ? x : k;
        switch (op) {
          case BPF_ADD:
            a = (a + s) >>> 0;
            break;
          case BPF_SUB:
            a = (a - s) >>> 0;
            break;
          case BPF_MUL:
            a = Math.imul(a, s) >>> 0;
            break;
          case BPF_DIV:
            if (s === 0) return 0;
            a = Math.floor(a / s) >>> 0;
            break;
          case BPF_MOD:
            if (s === 0) return 0;
            a = a % s >>> 0;
            break;
          case BPF_OR:
            a = (a | s) >>> 0;
            break;
          case BPF_AND:
            a = (a & s) >>> 0;
            break;
          case BPF_XOR:
            a = (a ^ s) >>> 0;
            break;
          case BPF_LSH:
            a = s >= 32 ? 0 : (a << s) >>> 0;
            break;
          case BPF_RSH:
            a = s >= 32 ? 0 : a >>> s;
            break;
          default:
            throw new Error(`unsupported ALU opcode 0x${code.toString(16)} at ${pc}`);
        }
        break;
      }
      case BPF_JMP: {
        const op = code & 0xf0;
        if (op === BPF_JA) {
          pc += k;
          break;
        }
        const s = code & BPF_X ? x : k;
        let taken: boolean;
        if (op === BPF_JEQ) taken = a === s;
        else if (op === BPF_JGT) taken = a > s;
        else if (op === BPF_JGE) taken = a >= s;
        else if (op === BPF_JSET) taken = (a & s) !== 0;
        else throw new Error(`unsupported jump opcode 0x${code.toString(16)} at ${pc}`);
        pc += taken ? jt : jf;
        break;
      }
      case BPF_RET:
        return (code & 0x18) === BPF_A ? a : k;
      case BPF_MISC:
        if (code === (BPF_MISC | BPF_TAX)) x = a;
        else if (code === (BPF_MISC | BPF_TXA)) a = x;
        else throw new Error(`unsupported opcode 0x${code.toString(16)} at ${pc}`);
        break;
      default:
        throw new Error(`unsupported opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('BPF program ran off its end');
}

function hostU16(b: Buffer, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}

/**
 * nla_find() over b[start, start + rem): the first attribute of `type`
 * (flags masked off) among well-formed ones, stopping at the first
 * malformed header; its offset, or 0.
 */
function nlaFind(b: Buffer, start: number, rem: number, type: number, le: boolean): number {
  let pos = start;
  while (rem >= NLA_HDRLEN) {
    const nlaLen = hostU16(b, pos, le);
    if (nlaLen < NLA_HDRLEN || nlaLen > rem) return 0;
    if ((hostU16(b, pos + 2, le) & NLA_TYPE_MASK) === type) return pos;
    const step = (nlaLen + 3) & ~3;
    pos += step;
    rem -= step;
  }
  return 0;
}

/** SKF_AD_NLATTR: the attribute of type x among those starting at offset a, searched to the end of the skb. */
function nlattr(b: Buffer, a: number, x: number, le: boolean): number {
  const len = b.length;
  if (len < NLA_HDRLEN || a > len - NLA_HDRLEN) return 0;
  return nlaFind(b, a, len - a, x, le);
}

/** SKF_AD_NLATTR_NEST: the attribute of type x inside the attribute at offset a. */
function nlattrNest(b: Buffer, a: number, x: number, le: boolean): number {
  const len = b.length;
  if (len < NLA_HDRLEN || a > len - NLA_HDRLEN) return 0;
  const nlaLen = hostU16(b, a, le);
  if (nlaLen > len - a) return 0;
  // nla_find_nested(): the payload, nla_len - 4 bytes (negative: nothing).
  return nlaFind(b, a + NLA_HDRLEN, nlaLen - NLA_HDRLEN, x, le);
}
