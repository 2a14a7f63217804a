// Tokens of conntrackd.conf (conntrack-tools' src/read_config_lex.l) and a
// cursor the importer walks them with. The grammar is free-form: words,
// braces and `#` comments to the end of the line; line breaks carry no
// meaning to conntrackd, but they do to us when an option we do not know has
// to be skipped (see Cursor.skipStatement). Pure and total: any text either
// tokenizes or, for the cursor, ends in a ConntrackdConfError naming the line.
import { CtsyncdError } from '../common/errors.js';

export type TokenKind = 'word' | 'open' | 'close';

export interface Token {
  kind: TokenKind;
  text: string;
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units. */
  column: number;
}

export interface Lexed {
  tokens: Token[];
  /** Trailing `#` comment of each line that has one, without the `#`, trimmed. */
  comments: Map<number, string>;
}

/**
 * A conntrackd.conf that cannot be read as one: unbalanced braces, an option
 * without its value, a value of the wrong kind. Line 0 means the file as a
 * whole (e.g. it has no Sync section).
 */
export class ConntrackdConfError extends CtsyncdError {
  readonly code = 'ECONNTRACKD_CONF' as const;

  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(line > 0 ? `${file}:${line}:${column}: ${reason}` : `${file}: ${reason}`, { context: { file, line, column } });
  }

  // Error's default prefixes the class name, which breaks the file:line form.
  override toString(): string {
    return this.message;
  }
}

export function isConntrackdConfError(err: unknown): err is ConntrackdConfError {
  return err instanceof Error && (err as { code?: unknown }).code === 'ECONNTRACKD_CONF';
}

const WHITESPACE = new Set([' ', '\t', '\r', '\n', '\f', '\v']);

export function tokenize(text: string): Lexed {
  const tokens: Token[] = [];
  const comments = new Map<number, string>();
  let line = 1;
  let lineStart = 0;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '\n') {
      line++;
      i++;
      lineStart = i;
      continue;
    }
    if (WHITESPACE.has(ch)) {
      i++;
      continue;
    }
    if (ch === '#') {
      let end = text.indexOf('\n', i);
      if (end < 0) end = text.length;
      const comment = text.slice(i + 1, end).trim();
      if (comment !== '') comments.set(line, comment);
      i = end;
      continue;
    }
    const column = i - lineStart + 1;
    if (ch === '{' || ch === '}') {
      tokens.push({ kind: ch === '{' ? 'open' : 'close', text: ch, line, column });
      i++;
      continue;
    }
    let end = i;
    while (end < text.length && !WHITESPACE.has(text[end]!) && !'{}#'.includes(text[end]!)) end++;
    tokens.push({ kind: 'word', text: text.slice(i, end), line, column });
    i = end;
  }
  return { tokens, comments };
}

/** Quotes a token for a message, shortening garbage. */
export function show(text: string): string {
  const short = text.length > 40 ? `${text.slice(0, 37)}...` : text;
  return `'${short}'`;
}

export class Cursor {
  private pos = 0;

  constructor(
    private readonly tokens: readonly Token[],
    readonly file: string,
  ) {}

  peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  next(): Token | undefined {
    const t = this.tokens[this.pos];
    if (t !== undefined) this.pos++;
    return t;
  }

  error(at: Token | undefined, reason: string): ConntrackdConfError {
    if (at === undefined) {
      const last = this.tokens[this.tokens.length - 1];
      return new ConntrackdConfError(this.file, last?.line ?? 0, last?.column ?? 0, reason);
    }
    return new ConntrackdConfError(this.file, at.line, at.column, reason);
  }

  /** The value word after `kw`, on any line, as conntrackd reads it. */
  value(kw: Token, what: string): Token {
    const t = this.peek();
    if (t === undefined || t.kind !== 'word') {
      throw this.error(
        t ?? kw,
        `${kw.text} needs ${what}${t === undefined ? ' before the end of the file' : `, got ${show(t.text)}`}`,
      );
    }
    this.pos++;
    return t;
  }

  /** The next token when it is a word on the same line as `kw`. */
  optionalWordOnLine(kw: Token): Token | undefined {
    const t = this.peek();
    if (t === undefined || t.kind !== 'word' || t.line !== kw.line) return undefined;
    this.pos++;
    return t;
  }

  /**
   * Reads the block that must follow `owner` (`owner {`) and hands each
   * token inside it to `item`, which consumes whatever belongs to it. Nested
   * blocks are handled by `item` calling block() again; braces it does not
   * expect are errors.
   */
  block(owner: Token, item: (t: Token) => void): void {
    const open = this.peek();
    if (open?.kind !== 'open') {
      throw this.error(
        open ?? owner,
        `expected { after ${owner.text}${open === undefined ? '' : `, got ${show(open.text)}`}`,
      );
    }
    this.pos++;
    for (;;) {
      const t = this.next();
      if (t === undefined) {
        throw this.error(open, `the { of ${owner.text} (line ${open.line}) is never closed`);
      }
      if (t.kind === 'close') return;
      if (t.kind === 'open') throw this.error(t, `unexpected { (a block needs an option name before it)`);
      item(t);
    }
  }

  /**
   * Skips an option we cannot interpret: the rest of `kw`'s line and, if a
   * block opens on it, the whole block. Stops before a } that closes the
   * enclosing block. Never recursive, so nesting depth cannot overflow.
   */
  skipStatement(kw: Token): void {
    for (;;) {
      const t = this.peek();
      if (t === undefined || t.kind === 'close' || t.line !== kw.line) return;
      this.pos++;
      if (t.kind === 'open') {
        this.skipBalanced(t);
        return;
      }
    }
  }

  /** Skips the block that must follow `owner`, whatever it holds. */
  skipBlock(owner: Token): void {
    const open = this.peek();
    if (open?.kind !== 'open') {
      throw this.error(
        open ?? owner,
        `expected { after ${owner.text}${open === undefined ? '' : `, got ${show(open.text)}`}`,
      );
    }
    this.pos++;
    this.skipBalanced(open);
  }

  /** Skips to the } matching the already consumed `open`. */
  private skipBalanced(open: Token): void {
    let depth = 1;
    for (;;) {
      const t = this.next();
      if (t === undefined) throw this.error(open, `the { on line ${open.line} is never closed`);
      if (t.kind === 'open') depth++;
      else if (t.kind === 'close' && --depth === 0) return;
    }
  }
}
