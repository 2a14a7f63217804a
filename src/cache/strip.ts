// Attributes withheld from peers (filter.stripAttributes), e.g. marks or
// labels whose meaning is local to one box. Applied on the way out, so the
// internal cache keeps the full local view for dumps and for diffing.

import type { ConntrackEntry } from '../kernel/entry.js';

/**
 * Names of filter.stripAttributes. The config schema lists the same names
 * (STRIPPABLE_ATTRIBUTES); a unit test keeps the two in step.
 */
export type StrippableAttribute =
  | 'labels'
  | 'helper'
  | 'mark'
  | 'secmark'
  | 'secctx'
  | 'counters'
  | 'timestamp'
  | 'seqadj'
  | 'synproxy';

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
 * The entry without the listed attributes. Returns the input itself when the
 * list is empty or the entry carries none of them, so the common case
 * allocates nothing; otherwise a shallow copy. The input is never mutated:
 * cached entries are shared with the rest of the daemon.
 */
export function stripAttributes(e: ConntrackEntry, attrs: readonly StrippableAttribute[]): ConntrackEntry {
  if (attrs.length === 0 || !carriesAny(e, attrs)) return e;
  // Copy without the fields rather than spread-and-delete: `delete` would
  // turn the copy into a slow dictionary-mode object.
  const out: Record<string, unknown> = {};
  for (const k in e) if (!listed(k, attrs)) out[k] = e[k as keyof ConntrackEntry];
  return out as unknown as ConntrackEntry;
}

function carriesAny(e: ConntrackEntry, attrs: readonly StrippableAttribute[]): boolean {
  for (const a of attrs) for (const f of STRIP_FIELDS[a]) if (e[f] !== undefined) return true;
  return false;
}

function listed(field: string, attrs: readonly StrippableAttribute[]): boolean {
  for (const a of attrs) for (const f of STRIP_FIELDS[a]) if (f === field) return true;
  return false;
}
