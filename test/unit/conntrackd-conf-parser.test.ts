// The conntrackd.conf tokenizer and cursor on their own (issue 18): exact
// tokens with their line and column, comments, and every error the cursor
// raises with the position it names. The importer's tests reach all of this
// only through whole files, where a token one column off or a message cut
// short goes unnoticed.
import { describe, expect, it } from 'vitest';
import {
  ConntrackdConfError,
  Cursor,
  isConntrackdConfError,
  show,
  type Token,
  tokenize,
} from '../../src/config/conntrackd-conf-parser.js';

const FILE = 'c.conf';

/** Tokens as [kind, text, line, column] rows, to compare whole. */
const rows = (text: string): [string, string, number, number][] =>
  tokenize(text).tokens.map((t) => [t.kind, t.text, t.line, t.column]);

/** The error `f` throws; fails the test when it returns. */
function thrown(f: () => unknown): ConntrackdConfError {
  try {
    f();
  } catch (err) {
    if (err instanceof ConntrackdConfError) return err;
    throw err;
  }
  throw new Error('returned, but an error was expected');
}

const cursor = (text: string): Cursor => new Cursor(tokenize(text).tokens, FILE);

describe('tokenize', () => {
  it.each<[string, string, [string, string, number, number][]]>([
    ['nothing', '', []],
    ['only blanks of every kind', ' \t\r\n\f\v\n', []],
    ['one word', 'Sync', [['word', 'Sync', 1, 1]]],
    [
      'words split by each blank',
      'a b\tc\rd\fe\vf',
      [
        ['word', 'a', 1, 1],
        ['word', 'b', 1, 3],
        ['word', 'c', 1, 5],
        ['word', 'd', 1, 7],
        ['word', 'e', 1, 9],
        ['word', 'f', 1, 11],
      ],
    ],
    [
      'braces split words without blanks',
      'a{b}c',
      [
        ['word', 'a', 1, 1],
        ['open', '{', 1, 2],
        ['word', 'b', 1, 3],
        ['close', '}', 1, 4],
        ['word', 'c', 1, 5],
      ],
    ],
    [
      'lines and columns restart after each newline',
      'Sync {\n  Mode FTFW\n\n   }',
      [
        ['word', 'Sync', 1, 1],
        ['open', '{', 1, 6],
        ['word', 'Mode', 2, 3],
        ['word', 'FTFW', 2, 8],
        ['close', '}', 4, 4],
      ],
    ],
    [
      'CRLF line ends',
      'a\r\n b\r\n',
      [
        ['word', 'a', 1, 1],
        ['word', 'b', 2, 2],
      ],
    ],
    [
      'a # ends a word and the rest of the line',
      'a#b c\nd',
      [
        ['word', 'a', 1, 1],
        ['word', 'd', 2, 1],
      ],
    ],
    [
      'quotes are ordinary characters',
      '"a b" \'c\'',
      [
        ['word', '"a', 1, 1],
        ['word', 'b"', 1, 4],
        ['word', "'c'", 1, 7],
      ],
    ],
    [
      'a comment without a newline at the end of the file',
      'x # last',
      [['word', 'x', 1, 1]],
    ],
  ])('%s', (_what, text, expected) => {
    expect(rows(text)).toEqual(expected);
  });

  it('keeps each line’s comment trimmed, without the #, and none for an empty one', () => {
    const { comments } = tokenize('a # one \n#\n  #   \n b #two#three\n# four');
    expect([...comments]).toEqual([
      [1, 'one'],
      [4, 'two#three'],
      [5, 'four'],
    ]);
  });

  it('reads a comment to the end of its line only', () => {
    const { tokens, comments } = tokenize('a # c { d }\n}');
    expect(tokens.map((t) => [t.kind, t.line])).toEqual([
      ['word', 1],
      ['close', 2],
    ]);
    expect(comments.get(1)).toBe('c { d }');
  });
});

describe('show', () => {
  it.each([
    ['', "''"],
    ['abc', "'abc'"],
    ['x'.repeat(40), `'${'x'.repeat(40)}'`],
    ['x'.repeat(41), `'${'x'.repeat(37)}...'`],
    [`${'a'.repeat(37)}bcdefgh`, `'${'a'.repeat(37)}...'`],
  ])('%j → %s', (text, shown) => {
    expect(show(text)).toBe(shown);
  });
});

describe('ConntrackdConfError', () => {
  it('names file:line:column, or the file alone at line 0', () => {
    const e = new ConntrackdConfError(FILE, 3, 7, 'bad');
    expect(e.message).toBe('c.conf:3:7: bad');
    expect(String(e)).toBe('c.conf:3:7: bad');
    expect(e.code).toBe('ECONNTRACKD_CONF');
    expect(e.context).toEqual({ file: FILE, line: 3, column: 7 });
    expect([e.file, e.line, e.column, e.reason]).toEqual([FILE, 3, 7, 'bad']);
    expect(new ConntrackdConfError(FILE, 0, 0, 'empty').message).toBe('c.conf: empty');
  });

  it.each<[string, boolean, unknown]>([
    ['the error', true, new ConntrackdConfError(FILE, 1, 1, 'x')],
    ['another Error with its code', true, Object.assign(new Error('x'), { code: 'ECONNTRACKD_CONF' })],
    ['an Error with another code', false, Object.assign(new Error('x'), { code: 'ENOENT' })],
    ['a plain object with the code', false, { code: 'ECONNTRACKD_CONF' }],
    ['undefined', false, undefined],
  ])('isConntrackdConfError(%s) is %s', (_what, expected, value) => {
    expect(isConntrackdConfError(value)).toBe(expected);
  });
});

describe('Cursor', () => {
  it('peek does not move, next does, and both end in undefined', () => {
    const c = cursor('a b');
    expect(c.peek()?.text).toBe('a');
    expect(c.peek()?.text).toBe('a');
    expect(c.next()?.text).toBe('a');
    expect(c.next()?.text).toBe('b');
    expect(c.peek()).toBeUndefined();
    expect(c.next()).toBeUndefined();
    expect(c.next()).toBeUndefined();
  });

  it('error() at a token names it; at the end the last token; with no tokens line 0', () => {
    const c = cursor('a\n  b');
    const first = c.peek()!;
    expect(c.error(first, 'r').message).toBe('c.conf:1:1: r');
    expect(c.error(undefined, 'r').message).toBe('c.conf:2:3: r');
    expect(cursor('').error(undefined, 'r').message).toBe('c.conf: r');
    expect(c.file).toBe(FILE);
  });

  describe('value', () => {
    it('takes the next word, on any line', () => {
      const c = cursor('Port\n\n 3780 next');
      const kw = c.next()!;
      const v = c.value(kw, 'a number');
      expect([v.text, v.line, v.column]).toEqual(['3780', 3, 2]);
      expect(c.peek()?.text).toBe('next');
    });

    it.each([
      ['the end of the file', 'Port', 'c.conf:1:1: Port needs a number before the end of the file'],
      ['a brace', 'Port\n  }', "c.conf:2:3: Port needs a number, got '}'"],
      ['an opening brace', 'Port {', "c.conf:1:6: Port needs a number, got '{'"],
    ])('refuses %s, at it', (_what, text, message) => {
      const c = cursor(text);
      const kw = c.next()!;
      expect(thrown(() => c.value(kw, 'a number')).message).toBe(message);
      // Nothing consumed: the caller's error names what is there.
      expect(c.peek()?.text).toBe(text.includes('}') ? '}' : text.includes('{') ? '{' : undefined);
    });
  });

  describe('optionalWordOnLine', () => {
    it.each([
      ['a word on the same line', 'Multicast Default {', 'Default', '{'],
      ['a word on the next line', 'Multicast\nDefault {', undefined, 'Default'],
      ['a brace', 'Multicast {', undefined, '{'],
      ['the end of the file', 'Multicast', undefined, undefined],
    ])('%s', (_what, text, taken, after) => {
      const c = cursor(text);
      const kw = c.next()!;
      expect(c.optionalWordOnLine(kw)?.text).toBe(taken);
      expect(c.peek()?.text).toBe(after);
    });
  });

  describe('block', () => {
    it('hands each token inside to item, which consumes what belongs to it, and stops after the }', () => {
      const c = cursor('S { a 1\n b 2 } after');
      const owner = c.next()!;
      const seen: string[] = [];
      c.block(owner, (t) => {
        seen.push(`${t.text}=${c.value(t, 'v').text}@${t.line}:${t.column}`);
      });
      expect(seen).toEqual(['a=1@1:5', 'b=2@2:2']);
      expect(c.next()?.text).toBe('after');
    });

    it('an empty block calls item never', () => {
      const c = cursor('S {}');
      let calls = 0;
      c.block(c.next()!, () => calls++);
      expect(calls).toBe(0);
      expect(c.peek()).toBeUndefined();
    });

    it.each([
      ['no { but a word', 'S x', "c.conf:1:3: expected { after S, got 'x'"],
      ['no { but a }', 'S\n}', "c.conf:2:1: expected { after S, got '}'"],
      ['the end of the file', 'S', 'c.conf:1:1: expected { after S'],
      ['a { never closed', 'S\n  { a', 'c.conf:2:3: the { of S (line 2) is never closed'],
      ['a { inside', 'S { a\n   { } }', 'c.conf:2:4: unexpected { (a block needs an option name before it)'],
    ])('refuses %s', (_what, text, message) => {
      const c = cursor(text);
      const owner = c.next()!;
      expect(thrown(() => c.block(owner, () => undefined)).message).toBe(message);
    });
  });

  describe('skipStatement', () => {
    /** Skips the statement at the first token and returns the text of the next one. */
    const after = (text: string): string | undefined => {
      const c = cursor(text);
      c.skipStatement(c.next()!);
      return c.peek()?.text;
    };

    it.each([
      ['the rest of the line', 'Opt 1 2 3\nnext', 'next'],
      ['nothing more on the line', 'Opt\nnext', 'next'],
      ['a block opened on the line, whatever its lines', 'Opt x {\n a { b }\n c\n} next', 'next'],
      ['a block right after the keyword', 'Opt { { } } next', 'next'],
      ['up to the } of the enclosing block', 'Opt 1 } next', '}'],
      ['to the end of the file', 'Opt 1 2', undefined],
    ])('skips %s', (_what, text, next) => {
      expect(after(text)).toBe(next);
    });

    it('stops at the end of the line even when a block follows on the next', () => {
      expect(after('Opt 1\n{ x }')).toBe('{');
    });

    it('refuses a block it opened that is never closed, naming the {', () => {
      const c = cursor('Opt a {\n b { }');
      const kw = c.next()!;
      expect(thrown(() => c.skipStatement(kw)).message).toBe('c.conf:1:7: the { on line 1 is never closed');
    });

    it('is not recursive: 100,000 nested blocks are skipped', () => {
      const c = cursor(`Opt ${'{'.repeat(100_000)}${'}'.repeat(100_000)} next`);
      c.skipStatement(c.next()!);
      expect(c.peek()?.text).toBe('next');
    });
  });

  describe('skipBlock', () => {
    it('skips the block after the owner, whatever it holds', () => {
      const c = cursor('Helper {\n Type ftp { QueueNum 0 }\n x }\nnext');
      c.skipBlock(c.next()!);
      expect(c.peek()?.text).toBe('next');
    });

    it.each([
      ['no { but a word', 'Helper x {}', "c.conf:1:8: expected { after Helper, got 'x'"],
      ['the end of the file', 'Helper', 'c.conf:1:1: expected { after Helper'],
      ['a { never closed', 'Helper\n { { }', 'c.conf:2:2: the { on line 2 is never closed'],
    ])('refuses %s', (_what, text, message) => {
      const c = cursor(text);
      const owner: Token = c.next()!;
      expect(thrown(() => c.skipBlock(owner)).message).toBe(message);
    });
  });
});
