// load.ts on its own (issue 18): where each problem is reported (line,
// column, dotted path), the spelling suggestions at their distance bounds,
// the messages of each issue kind whole, and the positions of YAML syntax
// errors in nested maps and lists. config.test.ts covers the schema's rules;
// these pin the mapping from issue to file position and text.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/index.js';
import { formatPath } from '../../src/config/load.js';

const FILE = 't.yaml';
const y = (...lines: string[]): string => `${lines.join('\n')}\n`;

/** A valid config whose sync is a block map: cases append from line 6 on. */
const BASE = ['node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: none', '  multicast: { interface: sync0 }'];

function parseError(yaml: string): ConfigError {
  try {
    parseConfig(yaml, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('parsed, but a ConfigError was expected');
}

/** Every issue as "line:column path message". */
const issues = (yaml: string): string[] =>
  parseError(yaml).issues.map((i) => `${i.line}:${i.column} ${i.path === '' ? '(root)' : i.path} ${i.message}`);

describe('formatPath', () => {
  it.each<[PropertyKey[], string]>([
    [[], ''],
    [['a'], 'a'],
    [['a', 'b'], 'a.b'],
    [['a', 0], 'a[0]'],
    [['a', 0, 'b', 12], 'a[0].b[12]'],
    [[0, 'a'], '[0].a'],
    [[0, 1], '[0][1]'],
  ])('%j → %j', (path, text) => {
    expect(formatPath(path)).toBe(text);
  });
});

describe('unknown keys: the suggestion at its distance bound', () => {
  const SYNC_KEYS = 'protocol, mode, transport, mtu, multicast, udp, backupLinks, reliability, auth';
  it.each([
    // Up to 3 characters the bound is 1 edit, then 2 (never more).
    ['mt', 'did you mean "mtu"?'],
    ['md', `; expected one of: ${SYNC_KEYS}`],
    ['m', `; expected one of: ${SYNC_KEYS}`],
    ['mxx', 'did you mean "mtu"?'],
    // mode (2 edits) comes before mtu (1) in the schema: the closest wins.
    ['mtd', 'did you mean "mtu"?'],
    ['xode', 'did you mean "mode"?'],
    ['mdoe', 'did you mean "mode"?'],
    ['AUTH2', 'did you mean "auth"?'],
    ['reliabilty', 'did you mean "reliability"?'],
    ['relibilty', 'did you mean "reliability"?'],
    ['rliblty', `; expected one of: ${SYNC_KEYS}`],
    ['BACKUPLINKS', 'did you mean "backupLinks"?'],
  ])('%s: %s', (key, tail) => {
    const sep = tail.startsWith(';') ? '' : ', ';
    expect(issues(y(...BASE, `  ${key}: 1`))).toEqual([`6:3 sync.${key} unknown key "${key}"${sep}${tail}`]);
  });

  it('at the top level', () => {
    expect(issues(y(...BASE, 'cluster2: {}'))).toEqual(['6:1 cluster2 unknown key "cluster2", did you mean "cluster"?']);
  });

  it('inside a list item or a choice of shapes: the key and its place, with no list to choose from', () => {
    expect(
      issues(
        y(...BASE, '  backupLinks: [ { multicast: { interface: x, intrface: y } }, { frob: 1, multicast: { interface: z } } ]'),
      ),
    ).toEqual([
      '6:47 sync.backupLinks[0].multicast.intrface unknown key "intrface"',
      '6:66 sync.backupLinks[1].frob unknown key "frob"',
    ]);
    expect(issues(y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: { keyFile: /k, frob: 1 }', '  multicast: { interface: sync0 }'))).toEqual([
      '4:24 sync.auth.frob unknown key "frob"',
    ]);
  });

  it('in a map reached through an alias: at the key where it is written, and at the alias where it is used', () => {
    expect(
      issues(
        y(
          'node: { id: fw1 }',
          'cluster: { id: 1 }',
          'sync: { multicast: &m { interface: sync0, frob: 1 }, auth: none, backupLinks: [ { multicast: *m } ] }',
        ),
      ),
    ).toEqual([
      '3:43 sync.multicast.frob unknown key "frob"; expected one of: group, port, interface, sendBufferBytes, receiveBufferBytes',
      '3:94 sync.backupLinks[0].multicast.frob unknown key "frob"',
    ]);
  });
});

describe('messages of each issue kind, whole', () => {
  it.each([
    ['a list one entry too long', '  backupLinks: [ { multicast: { interface: a } }, { multicast: { interface: b } }, { multicast: { interface: c } }, { multicast: { interface: d } } ]', '6:16 sync.backupLinks expected at most 3 entries, got 4'],
    ['a number below its minimum', '  mtu: 0', '6:8 sync.mtu expected at least 512, got number 0'],
    ['a number above its maximum', '  mtu: 99999', '6:8 sync.mtu expected at most 65507, got number 99999'],
    ['a quoted number with blanks', "  mtu: ' 1400 '", '6:8 sync.mtu expected an integer, got string " 1400 " (remove the quotes)'],
    ['a quoted word that Number() reads as infinite', '  mtu: Infinity', '6:8 sync.mtu expected an integer, got string "Infinity"'],
    ['a fraction where an integer goes', '  mtu: 1500.5', '6:8 sync.mtu expected an integer, got number 1500.5'],
    ['a boolean where an integer goes', '  mtu: true', '6:8 sync.mtu expected an integer, got boolean true'],
    ['an empty quoted string', "  mtu: ''", '6:8 sync.mtu expected an integer, got string ""'],
    ['a scalar where a list goes', '  udp: { bind: 10.0.0.1, peers: x }', '6:33 sync.udp.peers expected a list, got string "x"'],
    ['a missing required integer', '  udp: { bind: 10.0.0.1, peers: [10.0.0.2] }\n  transport: udp\n  reliability: { ackWindow: null }', '8:29 sync.reliability.ackWindow expected an integer, got an empty value'],
  ])('%s', (_what, line, issue) => {
    expect(issues(y(...BASE, line))).toEqual([issue]);
  });

  it.each([
    ['a string one character short', "failover: { vrrpName: '' }", '6:23 failover.vrrpName expected at least 1 character'],
    ['a choice of shapes matching none', 'filter: { expectations: x }', '6:25 filter.expectations expected all, none, or a mapping with helpers, got string "x"'],
    ['a number where true or false goes: no hint', 'metrics: { enabled: 1 }', '6:21 metrics.enabled expected true or false, got number 1'],
    ['a number where a string goes', 'metrics: { listen: 1 }', '6:20 metrics.listen expected a string, got number 1 (quote it to make it a string)'],
    ['one of many values', 'log: { level: x }', '6:15 log.level expected one of "error", "warn", "info", "debug", "trace", got string "x"'],
  ])('%s', (_what, line, issue) => {
    expect(issues(y(...BASE, line))).toEqual([issue]);
  });

  it('a required mapping left empty, at its key', () => {
    expect(issues(y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: none', '  multicast:'))).toEqual([
      '5:13 sync.multicast expected a mapping, got an empty value',
    ]);
  });

  it('a missing integer is asked for as an integer', () => {
    expect(issues(y('node: { id: fw1 }', 'cluster: { }', 'sync:', '  auth: none', '  multicast: { interface: sync0 }'))).toEqual([
      '2:10 cluster.id required: expected an integer',
    ]);
  });

  it('a missing top-level key, at the document, which starts after its comments', () => {
    expect(issues('# comment\n\ncluster: { id: 1 }\n')).toEqual(['3:1 node required: expected a mapping']);
  });

  it('a type error inside the one shape of a choice that fits, at the value', () => {
    expect(issues(y(...BASE, 'filter: { expectations: { helpers: x } }'))).toEqual([
      '6:36 filter.expectations.helpers expected a list, got string "x"',
    ]);
    expect(issues(y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: { keyFile: 1 }', '  multicast: { interface: sync0 }'))).toEqual([
      '4:20 sync.auth.keyFile expected a string, got number 1 (quote it to make it a string)',
    ]);
  });

  it('a document that is a list', () => {
    expect(issues('[1, 2]\n')).toEqual(['1:1 (root) expected a mapping, got a list']);
  });
});

describe('YAML syntax errors: position and the path that holds them', () => {
  it.each([
    ['a flow map never closed, on a last line without a newline', '{ a: 1 ', ['1:8 (root) Flow map must end with a } [YAML MISSING_CHAR]']],
    ['the same with its newline', '{ a: 1 \n', ['2:1 (root) Flow map must end with a } [YAML MISSING_CHAR]']],
    ['a duplicate key in a nested block map', y('sync:', '  reliability:', '    ackWindow: 1', '    ackWindow: 2'), ['4:5 sync.reliability.ackWindow Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['a duplicate key in a map in a list', y('sync:', '  backupLinks:', '    - udp: { a: 1, a: 2 }'), ['3:20 sync.backupLinks[0].udp.a Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['a duplicate top-level key', y('node: { id: fw1 }', 'node: { id: fw2 }'), ['2:1 node Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['a stray ]', 'a: [1, 2]]\n', ['1:10 (root) Unexpected flow-seq-end token in YAML stream: "]" [YAML UNEXPECTED_TOKEN]']],
    // A key with blanks is no path segment, nor is a key that is a list.
    ['under a key with blanks', 'key with spaces: { a: 1, a: 2 }\n', ['1:26 (root) Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['under a key that is a list', '? [a, b]\n: { c: 1, c: 2 }\n', ['2:11 (root) Map keys must be unique [YAML DUPLICATE_KEY]']],
    // Keys with no value before the error: an empty scalar in a block map, no node at all in a flow map.
    ['after a flow-map key with no value', '{ a, b: { c: 1, c: 2 } }\n', ['1:17 b.c Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['after a key with no value', 'a:\nb: { c: 1, c: 2 }\n', ['2:12 b.c Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['inside a scalar', 'a: "x\\qy"\n', ['1:6 a Invalid escape sequence \\q [YAML BAD_DQ_ESCAPE]']],
    ['at a key with blanks', 'a b: 1\na b: 2\n', ['2:1 (root) Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['in a map in a flow list after a scalar', 'a: [ x, { c: 1, c: 2 } ]\n', ['1:17 a[1].c Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['in a document that is a list', '- a\n- { b: 1, b: 2 }\n', ['2:11 [1].b Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['a tab as indentation', 'a: 1\n\tb: 2\n', ['2:1 (root) Tabs are not allowed as indentation [YAML TAB_AS_INDENT]']],
  ])('%s', (_what, yaml, want) => {
    expect(issues(yaml)).toEqual(want);
  });

  it('an alias to no anchor is reported at 1:1 with the YAML library’s error as its cause', () => {
    const err = parseError('x: &a [1, 2]\ny: *b\n');
    expect(err.issues).toEqual([
      { file: FILE, line: 1, column: 1, path: '', message: 'Unresolved alias (the anchor must be set before the alias): b' },
    ]);
    expect(err.cause).toBeInstanceOf(Error);
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-load-mcf-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('an unreadable file: one issue at 0:0 with the reason, and the error as its cause', () => {
    const file = join(dir, 'missing.yaml');
    let err: unknown;
    try {
      loadConfig(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.issues).toEqual([
      { file, line: 0, column: 0, path: '', message: `cannot read config file: ENOENT: no such file or directory, open '${file}'` },
    ]);
    expect((ce.cause as { code?: string }).code).toBe('ENOENT');
  });

  it('names the file in the issues of what it read', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, y(...BASE, '  mtu: 0'));
    expect(() => loadConfig(file)).toThrow(`${file}:6:8 sync.mtu expected at least 512, got number 0`);
  });
});
