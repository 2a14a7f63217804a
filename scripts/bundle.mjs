// Bundles the compiled CLI (dist/cli.js and everything it imports, eagerly
// or with import()) into dist/bundle/, which bin/ctsyncd runs when present.
// Why: Node's ESM loader resolves, reads and links each of ctsyncd's ~90
// files on its own, which was most of a restarted daemon's time before it
// answered. Code splitting keeps every import() a separate chunk, so client
// commands still load no daemon, schema or YAML, and the daemon loads no
// schema on a validated-config cache hit. Packages stay external
// (node_modules as installed). Paths found from import.meta.url keep working:
// the chunks sit two levels below the package root, like dist/<area>/*.js.
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist', 'cli.js')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
});
