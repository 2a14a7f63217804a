// The unit suite as StrykerJS runs it: no build step (mutants live in src/,
// the unit tests import src/ directly) and no JSON report. STRYKER_TESTS
// (comma-separated globs) narrows it, e.g. to a folder's direct unit tests
// when the whole suite is too slow for the time at hand; TESTING.md says
// which test set each recorded score was measured with.
import { defineConfig } from 'vitest/config';

const narrowed = process.env.STRYKER_TESTS?.split(',').filter((g) => g !== '');

export default defineConfig({
  test: {
    include: narrowed && narrowed.length > 0 ? narrowed : ['test/unit/**/*.test.ts'],
    setupFiles: ['test/fast-check-setup.ts'],
    testTimeout: 120_000,
  },
});
