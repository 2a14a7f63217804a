// Bundles the compiled CLI (dist/cli.js and everything it imports, eagerly
// or with import()) into one CommonJS file, dist/bundle/ctsyncd.cjs, which
// bin/ctsyncd runs when present.
// Why: Node's ESM loader resolves, reads, compiles and links each of
// ctsyncd's ~90 files on its own, which was most of a restarted daemon's
// time before it answered. One CommonJS file is read and compiled once
// (V8 compiles functions lazily, so the code that does not run costs only
// a pre-parse). Laziness is kept: esbuild wraps every module reached
// through import() in an init function that runs on first use, and with
// dynamic import marked unsupported each import() becomes such an init or
// a require() at the same place, so client commands still load no daemon,
// schema or YAML, and the daemon loads no schema on a validated-config
// cache hit. Packages stay external (node_modules as installed, required at
// their first use). Measured against the alternatives (bench/startup.mjs,
// CPU until the control socket listens): ESM with code splitting (~20
// chunks) took ~10-15 % more; one ESM file with the packages inside took
// as long as no bundle and slowed client commands. A V8 code cache of its top
// level (ctsyncd.cjs.cache, written below, loaded by bin/ctsyncd through
// scripts/lib/bundle-code.mjs) spares every start parsing the whole file.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist', 'cli.js')],
  outfile: join(outdir, 'ctsyncd.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  supported: { 'dynamic-import': false },
  // import.meta.url in CommonJS: this file's URL. Paths derived from it
  // still work: dist/bundle/ is two levels below the package root, like
  // dist/<area>/*.js.
  define: { 'import.meta.url': '__ctsyncd_bundle_url' },
  banner: { js: "const __ctsyncd_bundle_url = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
// The code cache, made by a Node with bin/ctsyncd's V8 flags (V8 rejects a
// cache made under other flags): by this Node, so a Node upgraded later
// without `npm run build` only loses the cache, never the start.
const bundleFile = join(outdir, 'ctsyncd.cjs');
const flags = readFileSync(join(root, 'bin', 'ctsyncd'), 'utf8').split('\n')[0].split(/\s+/).slice(3);
const made = spawnSync(
  process.execPath,
  [
    ...flags,
    '-e',
    "const [f, o] = process.argv.slice(1); import(process.env.BUNDLE_CODE).then((b) => { require('node:fs').writeFileSync(o, b.codeCache(f)); if (!b.cacheAccepted(f, o)) process.exit(3); });",
    bundleFile,
    `${bundleFile}.cache`,
  ],
  { env: { ...process.env, BUNDLE_CODE: join(root, 'scripts', 'lib', 'bundle-code.mjs') }, stdio: 'inherit' },
);
if (made.status !== 0) throw new Error(`bundle: writing the code cache failed (${made.status ?? made.signal})`);
