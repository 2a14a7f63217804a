// Integration tests run the real binary (bin/ctsyncd → dist/), so build it
// once before any test file runs. A failed build does not stop unit tests:
// the integration tests then fail on their own, and `npm ci` (prepare) and
// `npm run typecheck` in CI fail on a broken build anyway.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

export default function setup(): void {
  try {
    execFileSync('node', ['scripts/build-native.mjs'], { stdio: 'inherit' });
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'pipe' });
  } catch (e) {
    // A stale dist/ must not stand in for the current source.
    rmSync('dist', { recursive: true, force: true });
    const out = (e as { stdout?: Buffer }).stdout?.toString() ?? String(e);
    console.warn(`global-setup: build failed, integration tests will fail:\n${out.slice(0, 4000)}`);
  }
}
