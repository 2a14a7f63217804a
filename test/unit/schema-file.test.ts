// contrib/ctsyncd.schema.json is what editors validate ctsyncd YAML with. It
// is generated (scripts/gen-schema.mjs) from the schema the daemon validates
// with; this test fails as soon as the two drift apart.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/index.js';
import { configReference } from '../../src/config/reference.js';

const FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'contrib', 'ctsyncd.schema.json');

describe('contrib/ctsyncd.schema.json', () => {
  it('is exactly what configJsonSchema() produces (regenerate: npm run build && node scripts/gen-schema.mjs)', () => {
    const committed = readFileSync(FILE, 'utf8');
    expect(committed).toBe(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });
});

describe('README configuration reference', () => {
  it('lists every key of the shipped schema, as scripts/config-reference.mjs generates it', () => {
    const root = join(import.meta.dirname, '..', '..');
    const schema = JSON.parse(readFileSync(join(root, 'contrib', 'ctsyncd.schema.json'), 'utf8'));
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toContain(configReference(schema));
  });
});

describe('configReference on a small schema (exact rows)', () => {
  it('one row per leaf key, alternatives merged, a word-or-mapping key listed itself too, | escaped', () => {
    const schema = {
      type: 'object',
      properties: {
        a: { type: 'string', default: 'x', description: 'p|q' },
        b: { anyOf: [{ type: 'string' }, { type: 'object', properties: { c: { type: 'number', default: 3 } } }] },
        d: { oneOf: [{ type: 'object', properties: { e: {} } }] },
        g: { anyOf: [{ type: 'object', properties: { h: {} } }, { type: 'object', properties: { h: { default: 1 } } }] },
        i: { properties: { j: {} } },
        k: { type: 'object' },
      },
    };
    expect(configReference(schema).split('\n')).toEqual([
      '| key | default | meaning |',
      '|---|---|---|',
      '| `a` | `"x"` | p/q |',
      '| `b` |  |  |',
      '| `b.c` | `3` |  |',
      '| `d.e` |  |  |',
      '| `g.h` |  |  |',
      '| `i` |  |  |',
      '| `k` |  |  |',
    ]);
  });

  it('an object whose anyOf only names required keys (the root: sync, flowlog or both) is walked by its properties', () => {
    const schema = {
      type: 'object',
      description: 'root',
      properties: { sync: { type: 'object', properties: { mode: { default: 'ftfw' } } }, flowlog: { type: 'string' } },
      anyOf: [{ required: ['sync'] }, { required: ['flowlog'] }],
    };
    expect(configReference(schema).split('\n').slice(2)).toEqual(['| `sync.mode` | `"ftfw"` |  |', '| `flowlog` |  |  |']);
  });
});
