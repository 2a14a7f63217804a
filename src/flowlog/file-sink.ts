// The flow log file: append-only JSON lines, reopened on request (SIGUSR1,
// after logrotate moved it), optionally rotated by size with gzip, and
// written buffered (a flush interval) or with an fsync per batch. Writes are
// asynchronous and one at a time; lines arriving meanwhile wait in memory,
// and the FlowLog stops taking events from its queue while too many wait,
// so a slow or full disk fills the bounded queue, never the event path.
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CtsyncdError, errorCode, errorMessage } from '../common/errors.js';
import type { Logger } from '../log.js';

export type Durability = 'buffered' | 'fsync';

export interface FileSinkOptions {
  path: string;
  durability: Durability;
  /** Rotate past this many bytes into path.1.gz .. path.KEEP.gz. */
  rotate?: { maxBytes: number; keep: number } | undefined;
  log: Logger;
  /** Called when a write finished and room was made (the FlowLog resumes its queue). */
  onWritten?: () => void;
}

export interface FileSinkCounters {
  /** Lines written to the file. */
  written: number;
  /** Lines a failed write lost (ENOSPC, EIO, ...). */
  lost: number;
  writeErrors: number;
  reopens: number;
  rotations: number;
}

/** The flow log file could not be opened (EFLOWLOG_OPEN): the daemon does not start without it. */
export class FlowLogOpenError extends CtsyncdError {
  readonly code = 'EFLOWLOG_OPEN';
}

/** File mode of a new flow log: it names inside hosts, so not world-readable. */
const FILE_MODE = 0o640;
/** Lines are gathered as bytes in chunks of this size (a longer line gets a chunk of its own). */
const CHUNK = 256 * 1024;
/**
 * Buffered mode writes this much without waiting for the flush interval: a
 * busy second makes many megabytes of lines, and holding them all until
 * the interval would stop the flow log taking events (its high-water mark)
 * and fill its queue.
 */
const WRITE_AT = 4 * CHUNK;

export class FileSink {
  readonly counters: FileSinkCounters = { written: 0, lost: 0, writeErrors: 0, reopens: 0, rotations: 0 };
  private fh: FileHandle | undefined;
  private size = 0;
  /** Lines waiting, as bytes: full chunks, then `chunk` up to `used`. */
  private full: Buffer[] = [];
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private pendingLines = 0;
  private pendingChars = 0;
  private writing: Promise<void> | undefined;
  private reopenWanted = false;
  private compressing: Promise<void> = Promise.resolve();
  private lastError: string | undefined;
  private closed = false;

  constructor(private readonly opts: FileSinkOptions) {}

  get path(): string {
    return this.opts.path;
  }

  /** Bytes of lines waiting to be written. */
  get pendingBytes(): number {
    return this.pendingChars;
  }

  async open(): Promise<void> {
    try {
      await this.openFile();
    } catch (e) {
      throw new FlowLogOpenError(`cannot open the flow log ${this.opts.path}: ${errorMessage(e)}`, {
        cause: e,
        context: { path: this.opts.path, errno: errorCode(e) },
      });
    }
  }

  private async openFile(): Promise<void> {
    const fh = await open(this.opts.path, 'a', FILE_MODE);
    this.fh = fh;
    this.size = (await fh.stat()).size;
  }

  write(line: string): void {
    const len = Buffer.byteLength(line, 'utf8');
    const c = this.room(len + 1);
    this.used += c.write(line, this.used, len, 'utf8');
    this.endLine(c, len);
  }

  writeBytes(b: Buffer, len: number): void {
    const c = this.room(len + 1);
    this.used += b.copy(c, this.used, 0, len);
    this.endLine(c, len);
  }

  /** The chunk to write `need` bytes into at `used`, a new one when the current one has not the room. */
  private room(need: number): Buffer {
    if (this.chunk.length - this.used >= need) return this.chunk;
    if (this.used > 0) this.full.push(this.chunk.subarray(0, this.used));
    this.chunk = Buffer.allocUnsafe(Math.max(CHUNK, need));
    this.used = 0;
    return this.chunk;
  }

  private endLine(c: Buffer, len: number): void {
    c[this.used++] = 0x0a;
    this.pendingLines++;
    this.pendingChars += len + 1;
    if (this.pendingChars >= WRITE_AT && this.writing === undefined) void this.flush();
  }

  /** Reopens the file before the next write (logrotate moved it away; SIGUSR1). */
  reopen(): Promise<void> {
    this.reopenWanted = true;
    return this.flush();
  }

  /** Writes what waits (fsync()ed in that mode); resolves once it is written or counted lost. */
  flush(): Promise<void> {
    if (this.writing) return this.writing.then(() => (this.pendingLines > 0 || this.reopenWanted ? this.flush() : undefined));
    if (this.pendingLines === 0 && !this.reopenWanted) return Promise.resolve();
    this.writing = this.writeOut().finally(() => {
      this.writing = undefined;
      this.opts.onWritten?.();
    });
    return this.writing;
  }

  private async writeOut(): Promise<void> {
    if (this.closed) return;
    if (this.reopenWanted) {
      this.reopenWanted = false;
      await this.swapFile(false);
    }
    if (this.pendingLines === 0) return;
    const lines = this.pendingLines;
    const chunks = this.full;
    if (this.used > 0) chunks.push(this.chunk.subarray(0, this.used));
    const total = this.pendingChars;
    this.full = [];
    // The written part of the chunk goes with this write; the rest of it takes the next lines.
    this.chunk = this.chunk.subarray(this.used);
    if (this.chunk.length < 4096) this.chunk = Buffer.allocUnsafe(CHUNK);
    this.used = 0;
    this.pendingLines = 0;
    this.pendingChars = 0;
    try {
      if (!this.fh) await this.openFile();
      const fh = this.fh!;
      await writeAll(fh, chunks);
      if (this.opts.durability === 'fsync') await fh.sync();
      this.size += total;
      this.counters.written += lines;
      this.lastError = undefined;
    } catch (e) {
      // A full disk loses these lines, counted; the next batch tries again.
      this.counters.lost += lines;
      this.counters.writeErrors++;
      const code = errorCode(e);
      if (code !== this.lastError) this.opts.log.warn('flow log: write failed; lines lost and counted', { path: this.opts.path, code, lines });
      this.lastError = code;
      return;
    }
    const r = this.opts.rotate;
    if (r && this.size >= r.maxBytes) await this.swapFile(true);
  }

  /** Closes the file and opens `path` again; rotating, moves it to path.1.gz first (compressed meanwhile). */
  private async swapFile(rotating: boolean): Promise<void> {
    const old = this.fh;
    this.fh = undefined;
    await old?.close().catch(() => undefined);
    if (rotating) {
      // One rotation at a time: the previous file must be path.1.gz before it moves up.
      await this.compressing;
      const moved = `${this.opts.path}.rotating`;
      try {
        await rename(this.opts.path, moved);
        this.counters.rotations++;
        this.compressing = this.compress(moved);
      } catch (e) {
        this.opts.log.warn('flow log: rotation failed; appending to the same file', { path: this.opts.path, code: errorCode(e) });
      }
    } else {
      this.counters.reopens++;
    }
    try {
      await this.openFile();
    } catch (e) {
      // Retried at the next write; the lines meanwhile count as lost there.
      this.opts.log.warn('flow log: cannot open the file', { path: this.opts.path, code: errorCode(e) });
    }
  }

  /** path.1.gz .. path.(keep-1).gz move up one, `moved` becomes path.1.gz. */
  private async compress(moved: string): Promise<void> {
    const keep = this.opts.rotate?.keep ?? 1;
    const p = this.opts.path;
    const ignore = () => undefined;
    try {
      await unlink(`${p}.${keep}.gz`).catch(ignore);
      for (let k = keep - 1; k >= 1; k--) await rename(`${p}.${k}.gz`, `${p}.${k + 1}.gz`).catch(ignore);
      const tmp = `${p}.1.gz.tmp`;
      await pipeline(createReadStream(moved), createGzip(), createWriteStream(tmp, { mode: FILE_MODE }));
      await rename(tmp, `${p}.1.gz`);
      await unlink(moved);
    } catch (e) {
      this.opts.log.warn('flow log: compressing a rotated file failed; it stays uncompressed', { file: moved, code: errorCode(e) });
    }
  }

  /** Writes what waits, waits for a rotation's compression, closes the file. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.compressing;
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }
}

/** Writes every byte of `chunks`, in order: one writev, then whatever a short write left. */
async function writeAll(fh: FileHandle, chunks: Buffer[]): Promise<void> {
  let i = 0;
  let off = 0;
  while (i < chunks.length) {
    const rest = off === 0 ? chunks.slice(i) : [chunks[i]!.subarray(off), ...chunks.slice(i + 1)];
    let done = (await fh.writev(rest)).bytesWritten;
    while (i < chunks.length && done >= chunks[i]!.length - off) {
      done -= chunks[i]!.length - off;
      off = 0;
      i++;
    }
    off += done;
  }
}
