// keepalived's track_file, written by ctsyncd so that a node whose external
// cache is not in sync (it would promote with no state) loses VRRP elections
// to one that is.
//
// keepalived 2.2.7 semantics (keepalived.conf(5) "Track files";
// keepalived/trackers/track_file.c):
//  - keepalived watches the file's *directory* with inotify (IN_CLOSE_WRITE,
//    IN_DELETE, IN_MOVE) and re-reads the file when it is closed after a
//    write or renamed onto the name. So write PATH.tmp, then rename: the
//    IN_MOVED_TO for PATH is seen, the events for PATH.tmp are not ours.
//  - It reads up to 127 bytes and takes strtol(buf, NULL, 0): "1\n" is 1.
//    An empty or missing file, or a deleted one, reads as 0, i.e. "in sync",
//    which is why the file is never removed or truncated in place.
//  - The value is multiplied by the weight: with `weight -60`, 1 lowers the
//    priority by 60 and 0 leaves it. With weight 0, any non-zero value puts
//    the instance or group into FAULT instead. On a member of a
//    vrrp_sync_group keepalived forces the weight to 0 (so 1 means FAULT)
//    unless sync_group_tracking_weight is set: put the track_file on the sync
//    group. The address owner (priority 255) needs weight 0.
//  - The directory must exist when keepalived loads its config ("Track file
//    directory ... does not exist - removing"); ctsyncd creating it later is
//    too late for a keepalived that is already running.
//  - `init_file [VALUE] [overwrite]` writes VALUE (default 0) at keepalived
//    startup if the file is missing, or always with overwrite.
//
// Suggested keepalived config (a path directly under /run: the directory
// always exists, and tmpfs drops a stale value at reboot):
//
//   track_file ctsyncd_sync {
//       file "/run/ctsyncd-sync"
//       weight -60
//       init_file 1          # not in sync until ctsyncd says so
//   }
//   vrrp_sync_group G1 { group { VI_LAN VI_WAN } track_file { ctsyncd_sync } }
//
// Not `init_file 1 overwrite`: a keepalived restart would reset the file to 1
// while ctsyncd, which writes only on change, still believes it wrote 0.
//
// Choose the weight larger than the priority gap between the nodes, so an
// out-of-sync node loses to an in-sync one whatever their base priorities;
// when both are out of sync both lose the same amount and the election is
// as without ctsyncd.
//
// Writes are synchronous: a few bytes on tmpfs, only on a change of state,
// and two writes can never land out of order.
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { type Logger, silentLogger } from '../log.js';

export interface TrackFileCounters {
  writes: number;
  writeErrors: number;
}

export class TrackFile {
  readonly counters: TrackFileCounters = { writes: 0, writeErrors: 0 };
  /** What the file holds, as far as we know: undefined before the first write and after a failed one. */
  private written: 0 | 1 | undefined;
  private readonly log: Logger;

  constructor(
    readonly path: string,
    log?: Logger,
  ) {
    this.log = log ?? silentLogger;
  }

  /** 0 (in sync) or 1 (not in sync) as last written; undefined if unknown. */
  get value(): 0 | 1 | undefined {
    return this.written;
  }

  /** Not in sync until proven: writes 1 whatever was written before. */
  start(): void {
    this.written = undefined;
    this.write(1);
  }

  /** Writes 0 when in sync, 1 when not; only on change. Never throws. */
  set(inSync: boolean): void {
    const value = inSync ? 0 : 1;
    if (value === this.written) return;
    this.write(value);
  }

  private write(value: 0 | 1): void {
    const tmp = `${this.path}.tmp`;
    try {
      fs.mkdirSync(dirname(this.path), { recursive: true });
      fs.writeFileSync(tmp, `${value}\n`, { mode: 0o644 });
      fs.renameSync(tmp, this.path);
      const previous = this.written;
      this.written = value;
      this.counters.writes++;
      this.log.info('keepalived track file written', {
        path: this.path,
        value,
        inSync: value === 0,
        previous: previous ?? 'unknown',
      });
    } catch (err) {
      // Retry on the next set() even if it asks for the same value.
      this.written = undefined;
      this.counters.writeErrors++;
      this.log.error('keepalived track file write failed', {
        path: this.path,
        value,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}
