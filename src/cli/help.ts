// Help texts live in help/ at the package root (help/ctsyncd.txt for the
// usage, help/<command>.txt per command), read only when asked for. The
// compiled module sits in dist/cli/ and the source in src/cli/: both are two
// levels below the root.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtsyncdError } from '../common/errors.js';
import { cliControlCommand } from '../control/commands.js';
import { localCommand } from './local-commands.js';

export const HELP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'help');

/** A help file that should ship with the package is missing: a packaging fault, not a usage error. */
export class HelpMissingError extends CtsyncdError {
  readonly code = 'EHELP_MISSING';
}

/** True when `topic` is a declared command with a help text. */
export function hasHelp(topic: string): boolean {
  if (cliControlCommand(topic) !== undefined) return true;
  const local = localCommand(topic);
  return local !== undefined && local.help !== false;
}

/** The usage (no topic) or a command's help, exactly as shipped. */
export function helpText(topic?: string): string {
  const file = join(HELP_DIR, `${topic ?? 'ctsyncd'}.txt`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new HelpMissingError(`help text ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
