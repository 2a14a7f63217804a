// The unit suite as StrykerJS runs it: no build step (mutants live in src/,
// the unit tests import src/ directly) and no JSON report.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    setupFiles: ['test/fast-check-setup.ts'],
    testTimeout: 120_000,
  },
});
