// YAML text → validated Config, with every problem mapped back to the line
// and column an operator has to edit. The YAML AST is kept next to the plain
// data so zod's issue paths can be resolved to node positions.

import { readFileSync } from 'node:fs';
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type YAMLError } from 'yaml';
import { z } from 'zod';
import { refuseConntrackdConf } from './conntrackd-detect.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { AT_KEY, type Config, configSchema, describeValue } from './schema.js';

type Path = readonly PropertyKey[];
type ZodIssue = z.core.$ZodIssue;
type RawIssue = z.core.$ZodRawIssue;

export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

const NOUNS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

function plural(n: number | bigint, one: string, many: string): string {
  return `${n} ${n === 1 || n === 1n ? one : many}`;
}

function boundMessage(issue: RawIssue & { code: 'too_small' | 'too_big' }): string {
  const small = issue.code === 'too_small';
  const bound = small ? issue.minimum : issue.maximum;
  const exclusive = issue.inclusive === false;
  const relation = small ? (exclusive ? 'more than' : 'at least') : exclusive ? 'less than' : 'at most';
  switch (issue.origin) {
    case 'array':
      return `expected ${relation} ${plural(bound, 'entry', 'entries')}, got ${Array.isArray(issue.input) ? issue.input.length : '?'}`;
    case 'string':
      return `expected ${relation} ${plural(bound, 'character', 'characters')}`;
    default:
      return `expected ${relation} ${bound}, got ${describeValue(issue.input)}`;
  }
}

/**
 * Messages for issues the schema does not phrase itself, in the same
 * "expected X, got Y" style. Returning undefined keeps zod's own text.
 */
function errorMap(issue: RawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type': {
      // z.int() reports a non-number as expected "number"; say what would actually pass.
      const wantsInt = issue.expected === 'number' && issue.inst instanceof z.ZodNumber && issue.inst.isInt;
      const noun = wantsInt ? 'an integer' : (NOUNS[issue.expected] ?? issue.expected);
      if (issue.input === undefined) return `required: expected ${noun}`;
      let hint = '';
      if (issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
        hint = ' (quote it to make it a string)';
      } else if ((issue.expected === 'int' || issue.expected === 'number') && typeof issue.input === 'string') {
        if (issue.input.trim() !== '' && Number.isFinite(Number(issue.input))) hint = ' (remove the quotes)';
      } else if (issue.expected === 'boolean' && typeof issue.input === 'string') {
        // YAML 1.2 no longer reads yes/no/on/off as booleans.
        hint = ' (write true or false)';
      }
      return `expected ${noun}, got ${describeValue(issue.input)}${hint}`;
    }
    case 'too_small':
    case 'too_big':
      return boundMessage(issue);
    case 'invalid_value':
      return `expected ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}`;
    default:
      return undefined;
  }
}

/** The object schema whose keys are valid at `path`, to suggest a spelling for an unknown key. */
function knownKeysAt(path: Path): string[] {
  let schema: z.core.$ZodType = configSchema;
  let i = 0;
  for (let guard = 0; guard < 100; guard++) {
    if (schema instanceof z.ZodPipe) schema = schema.in;
    else if (
      schema instanceof z.ZodOptional ||
      schema instanceof z.ZodDefault ||
      schema instanceof z.ZodPrefault ||
      schema instanceof z.ZodNullable
    )
      schema = schema.unwrap();
    else if (i === path.length) break;
    else if (schema instanceof z.ZodObject) {
      const next: z.core.$ZodType | undefined = schema.shape[String(path[i++])];
      if (next === undefined) return [];
      schema = next;
    } else if (schema instanceof z.ZodArray) {
      schema = schema.element;
      i++;
    } else return [];
  }
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function unknownKeyMessage(key: string, known: string[]): string {
  const lower = key.toLowerCase();
  const close = known
    .map((k) => ({ k, d: k.toLowerCase() === lower ? 0 : editDistance(lower, k.toLowerCase()) }))
    .filter(({ d }) => d <= Math.min(2, Math.floor(key.length / 3) + 1))
    .sort((a, b) => a.d - b.d)[0];
  if (close) return `unknown key "${key}", did you mean "${close.k}"?`;
  return known.length > 0 ? `unknown key "${key}"; expected one of: ${known.join(', ')}` : `unknown key "${key}"`;
}

interface Located {
  line: number;
  column: number;
}

class Locator {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  at(offset: number): Located {
    const { line, col } = this.lines.linePos(offset);
    // linePos reports line 0 before the first newline has been recorded.
    return line === 0 ? { line: 1, column: offset + 1 } : { line, column: col };
  }

  /** The node at `path`, or its nearest existing ancestor: a missing required key is reported at its parent map. */
  value(path: Path): Located {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return this.at(node.range[0]);
    }
    return { line: 1, column: 1 };
  }

  /** The key node `key` inside the map at `path`; falls back to the map. */
  key(path: Path, key: string): Located {
    const map = this.doc.getIn(path, true);
    if (isMap(map)) {
      for (const pair of map.items) {
        if (isScalar(pair.key) && String(pair.key.value) === key && pair.key.range) return this.at(pair.key.range[0]);
      }
    }
    return this.value(path);
  }

  /** Best-effort dotted path of the key or value containing `offset`, for YAML syntax errors. */
  pathAt(offset: number): PropertyKey[] {
    const path: PropertyKey[] = [];
    let node: unknown = this.doc.contents;
    const inside = (n: unknown): boolean =>
      isNode(n) && n.range !== undefined && n.range !== null && n.range[0] <= offset && offset < n.range[2];
    // One step down per round, into the key or value holding `offset`. (A
    // step function rather than a labelled `continue`: StrykerJS's
    // instrumenter moves a loop's label onto the block it wraps the loop in.)
    const step = (n: unknown): { key: string | undefined } | { seg: PropertyKey; node: unknown } | undefined => {
      if (isMap(n)) {
        for (const pair of n.items) {
          // A broken document can turn a whole line into a key; such a key is no path segment.
          const name = isScalar(pair.key) && /^\S+$/.test(String(pair.key.value)) ? String(pair.key.value) : undefined;
          if (inside(pair.key)) return { key: name };
          if (name !== undefined && inside(pair.value)) return { seg: name, node: pair.value };
        }
      } else if (isSeq(n)) {
        for (const [i, item] of n.items.entries()) if (inside(item)) return { seg: i, node: item };
      }
      return undefined;
    };
    for (;;) {
      const s = step(node);
      if (s === undefined) return path;
      if ('key' in s) return s.key === undefined ? path : [...path, s.key];
      path.push(s.seg);
      node = s.node;
    }
  }
}

function yamlIssues(errors: readonly YAMLError[], locator: Locator, file: string): ConfigIssue[] {
  return errors.map((err) => ({
    file,
    ...locator.at(err.pos[0]),
    path: formatPath(locator.pathAt(err.pos[0])),
    message: `${err.message} [YAML ${err.code}]`,
  }));
}

/**
 * The one alternative of a failed union that the value's type matched (its
 * issues are all below the value itself), e.g. the mapping branch of
 * `sync.auth` for a mapping with a bad key path; undefined when none or
 * several did.
 */
function matchedBranch(issue: ZodIssue & { code: 'invalid_union' }): ZodIssue[] | undefined {
  const typed = issue.errors.filter(
    (branch) => !branch.some((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value')),
  );
  return typed.length === 1 ? typed[0] : undefined;
}

function zodIssues(issue: ZodIssue, locator: Locator, file: string): ConfigIssue[] {
  if (issue.code === 'invalid_union') {
    // Say what is wrong inside the mapping rather than "expected none or a mapping" about a mapping.
    const branch = matchedBranch(issue);
    if (branch) return branch.flatMap((i) => zodIssues({ ...i, path: [...issue.path, ...i.path] }, locator, file));
  }
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(issue.path);
    return issue.keys.map((key) => ({
      file,
      ...locator.key(issue.path, key),
      path: formatPath([...issue.path, key]),
      message: unknownKeyMessage(key, known),
    }));
  }
  const atKey = issue.code === 'custom' && issue.params?.at === AT_KEY.at && issue.path.length > 0;
  const where = atKey
    ? locator.key(issue.path.slice(0, -1), String(issue.path[issue.path.length - 1]))
    : locator.value(issue.path);
  return [{ file, ...where, path: formatPath(issue.path), message: issue.message }];
}

/**
 * Parses and validates one config document. Pure: no file system access, so
 * key files and the socket directory are checked by whoever opens them.
 * @throws ConfigError listing every problem found.
 */
export function parseConfig(text: string, file: string): Config {
  // Before YAML: a conntrackd.conf would only give a parser error about line 1.
  refuseConntrackdConf(text, file);
  const lineCounter = new LineCounter();
  // prettyErrors off: positions are reported in our own format, and the
  // pretty variant appends a source excerpt to the message.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const locator = new Locator(doc, lineCounter);
  if (doc.errors.length > 0) throw new ConfigError(yamlIssues(doc.errors, locator, file));

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Alias bombs and similar are caught here rather than by the parser.
    const message = err instanceof Error ? err.message : String(err);
    throw new ConfigError([{ file, line: 1, column: 1, path: '', message }], { cause: err });
  }

  const result = configSchema.safeParse(data, { error: errorMap });
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.flatMap((issue) => zodIssues(issue, locator, file)));
}

/**
 * Reads and validates a config file. A file that cannot be read is reported
 * like any other problem, as a ConfigError whose single issue has line 0 and
 * column 0 (no position in the file applies).
 * @throws ConfigError
 */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError([{ file, line: 0, column: 0, path: '', message: `cannot read config file: ${reason}` }], {
      cause: err,
    });
  }
  return parseConfig(text, file);
}
