// Mutation testing of the core (issue 18): `npm run mutate` for every core
// folder, `npm run mutate -- src/sync/engine/seq-window.ts ...` for some.
// Incremental: results are kept in reports/stryker-incremental.json, so a
// second run only retests mutants in code or tests that changed since.
// Slow (minutes per file at concurrency 1), so not part of CI; the scores
// per folder and their date live in TESTING.md.
const core = [
  'src/sync/**/*.ts',
  'src/cache/**/*.ts',
  'src/kernel/ct-codec.ts',
  'src/kernel/ct-record.ts',
  'src/kernel/netlink-codec.ts',
  'src/config/**/*.ts',
];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  // related: false. Vitest's "related" lookup follows static imports only, and
  // the config tests reach src/config through src/cli.ts, so with it the dry
  // run found no tests for src/config ("No tests were found"). perTest
  // coverage still runs only the tests that cover each mutant.
  vitest: { configFile: 'vitest.stryker.config.ts', related: false },
  // Typecheck-level mutants (e.g. a removed property) are caught by tsc in CI, not here.
  checkers: [],
  mutate: core,
  coverageAnalysis: 'perTest',
  // Mutants in module-level code (constants, tables) would run the whole suite each; skipped.
  ignoreStatic: true,
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  timeoutMS: 5000,
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp',
  // Another run's sandbox (.stryker-tmp-<name>, beside this one) is not copied into ours.
  ignorePatterns: ['.stryker-tmp*'],
  cleanTempDir: 'always',
};
