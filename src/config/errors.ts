import { CtsyncdError } from '../common/errors.js';
export interface ConfigIssue {
  file: string;
  /** 1-based. 0 (with column 0) when the problem is the file as a whole, e.g. it cannot be read. */
  line: number;
  /** 1-based. */
  column: number;
  /** Dotted path of the offending key, list indices in brackets: `sync.udp.peers[1]`. Empty for the whole document. */
  path: string;
  message: string;
}

/** One issue per line, in the `file:line:col` form editors and CI logs turn into links. */
export function formatIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}:${issue.column} ${issue.path === '' ? '(root)' : issue.path} ${issue.message}`;
}

/**
 * Everything wrong with one config file. The daemon and `ctsyncd check` print
 * `message` as is; tooling reads `issues`. `code` is stable so callers need
 * not match on class identity across module copies.
 */
export class ConfigError extends CtsyncdError {
  readonly code = 'ECONFIG' as const;
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], options?: { cause?: unknown }) {
    const sorted = [...issues].sort((a, b) => a.line - b.line || a.column - b.column);
    super(sorted.map(formatIssue).join('\n'), { cause: options?.cause, context: { issues: sorted.length } });
    this.issues = sorted;
  }

  // Error's default prefixes "ConfigError: ", which breaks the one-issue-per-line form.
  override toString(): string {
    return this.message;
  }
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof Error && (err as { code?: unknown }).code === 'ECONFIG';
}
