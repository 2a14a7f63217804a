// The expectation the unit tests use: what an FTP helper sets up for a
// master connection, the reply side opening a data connection to `port`.
import { IPPROTO } from '../../src/kernel/constants.js';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';

export function ftpExpectation(master: ConntrackEntry, port: number, over: Partial<ExpectEntry> = {}): ExpectEntry {
  return {
    family: master.family,
    master: master.orig,
    tuple: { src: master.reply.src, dst: master.orig.src, proto: IPPROTO.TCP, sport: 0, dport: port },
    mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 255, sport: 0, dport: 0xffff },
    timeout: 300,
    helper: 'ftp',
    ...over,
  };
}
