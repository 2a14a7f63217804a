// Writes dist/build-id: a hash of everything the build produced and of the
// dependency lock, run last by `npm run build`. The daemon keys its
// validated-config cache on it (src/config/cache.ts), so a rebuilt schema or
// another zod never reuses an entry an older build validated.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'build-id');

function* files(dir) {
  for (const d of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, d.name);
    if (d.isDirectory()) yield* files(p);
    else if (d.isFile() && p !== out) yield p;
  }
}

const h = createHash('sha256');
for (const p of [join(root, 'package.json'), join(root, 'package-lock.json'), ...files(dist)]) {
  h.update(`${relative(root, p)}\n`);
  h.update(readFileSync(p));
}
writeFileSync(out, `${h.digest('hex')}\n`);
