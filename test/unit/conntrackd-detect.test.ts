// A conntrackd.conf given where ctsyncd's YAML belongs is recognised by its
// first significant line (src/config/conntrackd-detect.ts), and only then.
import { describe, expect, it } from 'vitest';
import { ConntrackdConfGivenError, detectConntrackdConf, refuseConntrackdConf } from '../../src/config/conntrackd-detect.js';

describe('detectConntrackdConf', () => {
  const cases: Array<[string, string, { line: number; section: string } | undefined]> = [
    ['empty', '', undefined],
    ['blank lines and comments only', '\n  \n# General {\n', undefined],
    ['a section after comments and blanks', '# conntrackd\n\nGeneral {\n', { line: 3, section: 'General' }],
    ['lower case, a comment after the brace', 'sync { # x\n', { line: 1, section: 'sync' }],
    ['Stats after a bare #', '#\nStats {\n', { line: 2, section: 'Stats' }],
    ['the brace on the next significant line', 'Sync\n# c\n\n  {\n', { line: 1, section: 'Sync' }],
    ['the keyword, then a bare # and the brace', 'Helper\n#\n{\n', { line: 1, section: 'Helper' }],
    ['an indented section after a line of blanks', '  \t\n  General {\n', { line: 2, section: 'General' }],
    ['the brace after a line of blanks', 'Sync\n   \n{\n', { line: 1, section: 'Sync' }],
    ['the brace with a comment after it', 'General\n  { # options\n', { line: 1, section: 'General' }],
    ['a line that ends with a brace is not one', 'Sync\nMode FTFW {\n', undefined],
    ['the keyword with no brace after it', 'Sync\n\nnode: x\n', undefined],
    ['the keyword at the end of the file', 'General', undefined],
    ['YAML first, a section later', 'node: { id: fw1 }\nGeneral {\n', undefined],
    ['a YAML key named like a section', 'sync:\n  auth: none\n', undefined],
  ];
  it.each(cases)('%s', (_name, text, want) => {
    expect(detectConntrackdConf(text)).toEqual(want);
  });
});

describe('refuseConntrackdConf', () => {
  it('throws for a conntrackd.conf, naming the file, line and section and the command that converts it', () => {
    let err: unknown;
    try {
      refuseConntrackdConf('\nGeneral {\n}\n', '/etc/conntrackd/conntrackd.conf');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConntrackdConfGivenError);
    const e = err as ConntrackdConfGivenError;
    expect(e.code).toBe('ECONNTRACKD_CONF');
    expect({ file: e.file, line: e.line }).toEqual({ file: '/etc/conntrackd/conntrackd.conf', line: 2 });
    // What a log line or a control reply carries.
    expect(e.context).toEqual({ file: '/etc/conntrackd/conntrackd.conf', line: 2, section: 'General' });
    expect(e.message).toBe(
      '/etc/conntrackd/conntrackd.conf:2: this is a conntrackd.conf (its General section), not a ctsyncd configuration; ' +
        'convert it once with: ctsyncd import-conntrackd /etc/conntrackd/conntrackd.conf > /etc/ctsyncd/conntrackd.yaml, then use -C /etc/ctsyncd/conntrackd.yaml',
    );
  });

  it('is silent for a YAML configuration', () => {
    expect(() => refuseConntrackdConf('node: { id: fw1 }\n', 'c.yaml')).not.toThrow();
  });
});
