import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { scanControlSocket } from '../../src/cli/socket-path.js';

const DEFAULT = '/run/ctsyncd/ctsyncd.sock';

/** What the YAML parser says, or undefined when the document does not parse to a usable path. */
function viaYaml(text: string): string | undefined {
  try {
    const doc = parse(text) as { control?: { socket?: unknown } } | null;
    const s = doc?.control?.socket;
    if (s === undefined) return DEFAULT;
    return typeof s === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the YAML parser reads the document at all (a file broken elsewhere may still name its socket). */
function yamlDocument(text: string): { parses: boolean } {
  try {
    parse(text);
    return { parses: true };
  } catch {
    return { parses: false };
  }
}

describe('scanControlSocket', () => {
  it('reads the shipped configuration without the parser, and agrees with it', () => {
    const text = readFileSync(resolve(import.meta.dirname, '../../conntrackd.yaml'), 'utf8');
    expect(scanControlSocket(text, DEFAULT)).toBe('/run/ctsyncd/ctsyncd.sock');
    expect(viaYaml(text)).toBe('/run/ctsyncd/ctsyncd.sock');
    const moved = text.replace('socket: /run/ctsyncd/ctsyncd.sock', 'socket: /tmp/x/y.sock # moved');
    expect(scanControlSocket(moved, DEFAULT)).toBe('/tmp/x/y.sock');
  });

  it('reads block and flow spellings, and the default when there is no control key', () => {
    const cases: [string, string | undefined][] = [
      ['node: { id: a }\ncontrol:\n  socket: /a.sock\n  mode: "0660"\n', '/a.sock'],
      ['control:\n  mode: "0660"\n  socket: \'/b.sock\'\nlog: { level: info }\n', '/b.sock'],
      ['control: { socket: /c.sock, mode: "0600" }\n', '/c.sock'],
      ['control: { mode: "0600" }\n', DEFAULT],
      ['control:\n  mode: "0600"\n', DEFAULT],
      ['node:\n  id: a\nsync:\n  transport: udp\n', DEFAULT],
      // Doubt: handed to the parser.
      ['control: &c\n  socket: /d.sock\n', undefined],
      ['control:\n  socket: "/e\\u0041.sock"\n', undefined],
      ['control:\n  socket:\n    /f.sock\n', undefined],
      ['control:\n  socket: /g.sock\ncontrol:\n  socket: /h.sock\n', undefined],
      ['{ control: { socket: /i.sock } }\n', undefined],
      ['control: { socket: /j.sock,\n  mode: "0600" }\n', undefined],
      ['control:\n\tsocket: /k.sock\n', undefined],
      ['control:\n  socket: relative.sock\n', undefined],
      ['node: { id: control }\n', undefined],
      ['control:\n  socket: /l.sock\n  socket: /m.sock\n', undefined],
      ['control:\n  "socket": /n.sock\n', undefined],
    ];
    for (const [text, want] of cases) {
      expect(scanControlSocket(text, DEFAULT), text).toBe(want);
      // Whenever the scan answers, the parser says the same.
      if (want !== undefined) expect(viaYaml(text), text).toBe(want);
    }
  });

  it('never disagrees with the YAML parser on generated configurations', () => {
    const key = fc.constantFrom('control', 'socket', 'mode', 'node', 'log', 'sync', 'x');
    const value = fc.constantFrom('/a.sock', '/b/c.sock', '"/q.sock"', "'/s.sock'", 'rel', '"0660"', '', '{ socket: /f.sock }', '&a /z', '# c');
    const line = fc.tuple(fc.constantFrom('', '  ', '    '), key, value).map(([ind, k, v]) => `${ind}${k}: ${v}`);
    let answered = 0;
    let compared = 0;
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), (ls) => {
        const text = `${ls.join('\n')}\n`;
        const got = scanControlSocket(text, DEFAULT);
        // Where the YAML parses, an answer is the parser's. (A file broken
        // elsewhere still names its socket: a notify step must not fail for
        // an unrelated typo.)
        if (got === undefined) return;
        answered++;
        const doc = yamlDocument(text);
        if (doc.parses) {
          compared++;
          expect(got, text).toBe(viaYaml(text));
        }
      }),
      { numRuns: 5000 },
    );
    // Not vacuous: the scan answers, and is checked against the parser, for a good share of the documents.
    expect(answered).toBeGreaterThan(1000);
    expect(compared).toBeGreaterThan(500);
  });
});
