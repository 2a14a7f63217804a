// Attributes withheld from peers (filter.stripAttributes), e.g. marks or
// labels whose meaning is local to one box. Applied on the way out, so the
// internal cache keeps the full local view for dumps and for diffing.

import type { StrippableAttribute } from '../config/schema.js';
import type { ConntrackEntry } from '../kernel/entry.js';

/** The ConntrackEntry fields behind each strippable attribute name. */
export const STRIP_FIELDS: Readonly<Record<StrippableAttribute, readonly (keyof ConntrackEntry)[]>> = {
  labels: ['labels', 'labelsMask'],
  helper: ['helper'],
  mark: ['mark'],
  secmark: ['secmark'],
  secctx: ['secctx'],
  counters: ['countersOrig', 'countersReply'],
  timestamp: ['timestamp'],
  seqadj: ['seqAdjOrig', 'seqAdjReply'],
  synproxy: ['synproxy'],
};

/**
 * Compiles a strip list once into a function. With an empty list, or for an
 * entry carrying none of the listed fields, the function returns its input
 * unchanged, so the common case allocates nothing. The input is never
 * mutated: cached entries are shared with the rest of the daemon.
 */
export function makeStripper(attrs: readonly StrippableAttribute[]): (e: ConntrackEntry) => ConntrackEntry {
  const fields = [...new Set(attrs.flatMap((a) => STRIP_FIELDS[a]))];
  if (fields.length === 0) return (e) => e;
  const drop = new Set<string>(fields);
  return (e) => {
    let present = false;
    for (const f of fields) {
      if (e[f] !== undefined) {
        present = true;
        break;
      }
    }
    if (!present) return e;
    // Copy without the fields rather than spread-and-delete: `delete` would
    // turn the copy into a slow dictionary-mode object.
    const out: Record<string, unknown> = {};
    for (const k in e) if (!drop.has(k)) out[k] = e[k as keyof ConntrackEntry];
    return out as unknown as ConntrackEntry;
  };
}

/** One-off form of makeStripper; prefer makeStripper on a hot path. */
export function stripAttributes(e: ConntrackEntry, attrs: readonly StrippableAttribute[]): ConntrackEntry {
  if (attrs.length === 0) return e;
  return makeStripper(attrs)(e);
}
