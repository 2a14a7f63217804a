#!/usr/bin/env node
// Writes README.md's configuration reference table (between the
// config-reference markers) from contrib/ctsyncd.schema.json, which is itself
// generated from the schema the daemon validates with. --check only compares.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configReference } from '../dist/config/reference.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';

{
  const schema = JSON.parse(readFileSync(join(root, 'contrib', 'ctsyncd.schema.json'), 'utf8'));
  const readmePath = join(root, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md lacks the ${START} / ${END} markers`);
  const next = `${readme.slice(0, a + START.length)}\n${configReference(schema)}\n${readme.slice(b)}`;
  if (process.argv.includes('--check')) {
    if (next !== readme) {
      console.error('config-reference: README.md is stale: run node scripts/config-reference.mjs');
      process.exit(1);
    }
    console.log('config-reference: README.md is up to date');
  } else {
    writeFileSync(readmePath, next);
  }
}
