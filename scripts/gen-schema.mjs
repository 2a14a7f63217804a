// Writes contrib/ctsyncd.schema.json, the JSON Schema editors validate
// ctsyncd YAML with, from configJsonSchema() in the compiled config module,
// i.e. from the very schema the daemon validates with. Run after a build:
//   npm run build && node scripts/gen-schema.mjs
// --check only compares, and exits 1 when the committed file is stale
// (test/unit/schema-file.test.ts checks the same from the sources).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'config', 'index.js');
const target = join(root, 'contrib', 'ctsyncd.schema.json');

if (!existsSync(compiled)) {
  process.stderr.write('gen-schema: dist/ is missing: run `npm run build` first\n');
  process.exit(1);
}
const { configJsonSchema } = await import(pathToFileURL(compiled).href);
// Same serialisation as the test: two-space JSON and a final newline.
const text = `${JSON.stringify(configJsonSchema(), null, 2)}\n`;

if (process.argv.includes('--check')) {
  const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
  if (current !== text) {
    process.stderr.write('gen-schema: contrib/ctsyncd.schema.json is stale: run node scripts/gen-schema.mjs\n');
    process.exit(1);
  }
  process.stdout.write('gen-schema: contrib/ctsyncd.schema.json is up to date\n');
} else {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, text);
  process.stdout.write(`gen-schema: wrote ${target}\n`);
}
