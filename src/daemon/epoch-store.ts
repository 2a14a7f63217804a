// The last epoch this node used, kept across restarts (see
// src/sync/engine/epoch.ts for why epochs must only increase). One small
// file per node id under the state directory (systemd's StateDirectory=),
// replaced atomically; written before the epoch is used.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { chooseEpoch, type EpochSource } from '../sync/engine/epoch.js';


export interface EpochStoreOptions {
  dir: string;
  nodeId: string;
  log: Logger;
  /** Wall clock, milliseconds since 1970 (Date.now by default; the daemon's injected clock may be fake). */
  wallClock?: () => number;
}

export class FileEpochStore implements EpochSource {
  readonly path: string;
  private last: number | undefined;
  private warned = false;

  constructor(private readonly opts: EpochStoreOptions) {
    this.path = join(opts.dir, `epoch-${opts.nodeId}`);
  }

  take(): number {
    if (this.last === undefined) this.last = this.read();
    const epoch = chooseEpoch(this.last, (this.opts.wallClock ?? Date.now)());
    this.last = epoch;
    this.write(epoch);
    return epoch;
  }

  private read(): number | undefined {
    try {
      const text = readFileSync(this.path, 'utf8').trim();
      const n = Number(text);
      if (/^\d{1,10}$/.test(text) && n <= 0xffff_ffff) return n;
      this.opts.log.warn('epoch file unreadable, the clock decides the epoch', { path: this.path });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.warnOnce('read', e);
    }
    return undefined;
  }

  private write(epoch: number): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
      writeFileSync(tmp, `${epoch}\n`, { mode: 0o600 });
      renameSync(tmp, this.path);
    } catch (e) {
      this.warnOnce('write', e);
    }
  }

  private warnOnce(op: string, e: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.opts.log.warn('epoch file not usable: epochs follow the clock alone (a restart within a second, or a clock stepped back, makes peers challenge this node until they believe it)', {
      path: this.path,
      op,
      error: String(e),
    });
  }
}
