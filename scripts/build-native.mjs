// Builds the project's N-API addon with the system C compiler against the
// headers of the Node that runs this script. No node-gyp, no download.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'ctsyncd_native.c');
const output = join(root, 'build', 'ctsyncd_native.node');

const candidates = [
  process.env.CTSYNCD_NODE_INCLUDE,
  resolve(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean);
const include = candidates.find((dir) => existsSync(join(dir, 'node_api.h')));
if (!include) {
  console.error(`build-native: node_api.h not found in ${candidates.join(', ')}`);
  process.exit(1);
}
if (existsSync(output) && statSync(output).mtimeMs > statSync(source).mtimeMs) process.exit(0);
mkdirSync(dirname(output), { recursive: true });
const cc = process.env.CC || 'cc';
const args = [
  '-O2',
  '-g',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wno-unused-parameter',
  '-fPIC',
  '-shared',
  '-DNODE_GYP_MODULE_NAME=ctsyncd_native',
  `-I${include}`,
  source,
  '-o',
  output,
];
try {
  execFileSync(cc, args, { stdio: 'inherit' });
} catch {
  console.error(`build-native: ${cc} ${args.join(' ')} failed`);
  process.exit(1);
}
