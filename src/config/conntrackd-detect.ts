// Recognises a conntrackd.conf given where ctsyncd's YAML belongs (`-C
// /etc/conntrackd/conntrackd.conf`, the path every conntrackd script passes),
// so the answer is "convert it", not a YAML parser's complaint about line 1.
// No imports beyond the error base: the client commands load this on
// keepalived's notify path, before any YAML parser.
import { CtsyncdError } from '../common/errors.js';

/** conntrackd.conf's top-level sections (read_config_yy.y). */
const SECTION = /^(sync|general|stats|helper)\s*(\{.*)?$/i;

/**
 * Where a conntrackd.conf shows itself: the first line that is not blank or
 * a # comment opens one of its sections (`General {`, `Sync {`, or the
 * keyword with its brace on the next line). No YAML configuration starts
 * that way: a top-level YAML key ends in a colon.
 */
export function detectConntrackdConf(text: string): { line: number; section: string } | undefined {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.replace(/#.*/, '').trim();
    if (l === '') continue;
    const m = SECTION.exec(l);
    if (!m) return undefined;
    if (m[2] === undefined) {
      // The brace may stand on the next significant line.
      const next = lines.slice(i + 1).find((x) => x.replace(/#.*/, '').trim() !== '');
      if (next === undefined || !next.trim().startsWith('{')) return undefined;
    }
    return { line: i + 1, section: m[1]! };
  }
  return undefined;
}

/** A conntrackd.conf where ctsyncd's configuration was expected. */
export class ConntrackdConfGivenError extends CtsyncdError {
  readonly code = 'ECONNTRACKD_CONF';

  constructor(
    readonly file: string,
    readonly line: number,
    section: string,
  ) {
    super(
      `${file}:${line}: this is a conntrackd.conf (its ${section} section), not a ctsyncd configuration; ` +
        `convert it once with: ctsyncd import-conntrackd ${file} > /etc/ctsyncd/conntrackd.yaml, then use -C /etc/ctsyncd/conntrackd.yaml`,
      { context: { file, line, section } },
    );
  }
}

/** Throws ConntrackdConfGivenError when `text` is a conntrackd.conf. */
export function refuseConntrackdConf(text: string, file: string): void {
  const found = detectConntrackdConf(text);
  if (found) throw new ConntrackdConfGivenError(file, found.line, found.section);
}
