// `npm run mutate [-- PATHS]`: StrykerJS on the core folders (stryker.config.mjs),
// or only on the given files or folders. Incremental: reports/stryker-incremental.json
// keeps the last results, so only mutants in changed code or under changed tests rerun.
// Runs at low priority; STRYKER_CONCURRENCY raises the default of one test process.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const globs = process.argv.slice(2).map((p) => {
  if (!existsSync(p)) {
    console.error(`mutate: no such file or folder: ${p}`);
    process.exit(2);
  }
  return statSync(p).isDirectory() ? `${p.replace(/\/$/, '')}/**/*.ts` : p;
});
const args = ['-n', '10', 'npx', 'stryker', 'run', ...(globs.length > 0 ? ['--mutate', globs.join(',')] : [])];
// One fast-check seed for every mutant, so a mutant's verdict does not depend on the draw.
const env = { ...process.env, FC_SEED: process.env.FC_SEED ?? '18' };
const r = spawnSync('nice', args, { stdio: 'inherit', env });
process.exit(r.status ?? 1);
