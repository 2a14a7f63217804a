// Every fast-check property runs from a recorded seed: FC_SEED when set
// (to reproduce a failure), otherwise a fresh one per test file. A property
// that names its own seed keeps it. A failing test prints the seed.
import fc from 'fast-check';
import { beforeEach, onTestFailed } from 'vitest';

const fromEnv = process.env.FC_SEED;
if (fromEnv !== undefined && !/^-?\d+$/.test(fromEnv)) throw new Error(`FC_SEED=${fromEnv}: expected an integer`);
const seed = fromEnv !== undefined ? Number(fromEnv) | 0 : (Math.random() * 0x1_0000_0000) | 0;

fc.configureGlobal({ seed });

beforeEach(() => {
  onTestFailed(() => {
    console.error(`fast-check seed of this test file: ${seed} (FC_SEED=${seed} npx vitest run ... reproduces it)`);
  });
});
