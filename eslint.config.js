// One lint tool: ESLint with typescript-eslint. Formatting follows the
// existing code (2 spaces, single quotes, 120 columns).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layers of src/: each entry names what it may import, and only entries
// declared before it (checked below), so the graph has no cycle. The kernel
// codec knows nothing of caches; the sync engine nothing of the cache that
// stores what it receives (it writes to an interface the cache implements);
// caches nothing of the config file (they take plain options); only the
// daemon wires them together, and the binary's commands sit on top.
// A folder under src/ or a root module src/NAME.ts is one entry.
const MAY_IMPORT = {
  common: [],
  log: ['common'],
  kernel: ['common', 'log'],
  config: ['common', 'kernel'],
  sync: ['common', 'log', 'kernel'],
  cache: ['common', 'log', 'kernel', 'sync'],
  keepalived: ['common', 'log', 'kernel', 'sync', 'cache'],
  systemd: ['common', 'log', 'kernel'],
  flowlog: ['common', 'log', 'kernel', 'cache'],
  stats: ['common', 'log', 'kernel', 'sync', 'cache', 'keepalived', 'flowlog'],
  control: ['common', 'log', 'kernel', 'sync', 'cache', 'keepalived', 'stats'],
  daemon: ['common', 'log', 'kernel', 'config', 'sync', 'cache', 'keepalived', 'systemd', 'flowlog', 'stats', 'control'],
  cli: ['common', 'log', 'kernel', 'config', 'flowlog', 'control'],
  demo: ['common', 'log', 'kernel', 'config', 'control', 'daemon'],
};
const ENTRIES = Object.keys(MAY_IMPORT);
for (const [i, name] of ENTRIES.entries()) {
  for (const dep of MAY_IMPORT[name]) {
    if (!ENTRIES.slice(0, i).includes(dep)) throw new Error(`eslint.config.js: ${name} may only import entries declared before it, not ${dep}`);
  }
}

// Inside a folder split by concern, the parts are layered the same way:
// the sync engine speaks the wire format; the wire format and the
// transports know nothing of each other or of the engine.
const PARTS = {
  sync: { wire: [], transport: [], engine: ['wire'] },
};

/** An import specifier that reaches the folder or root module `name` from anywhere below src/. */
const reaching = (name) => `^(?:\\.\\./)+${name}(?:/|\\.js$)`;

const restrict = (files, patterns) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});

const topPatterns = (name) =>
  ENTRIES.filter((t) => t !== name && !MAY_IMPORT[name].includes(t)).map((target) => ({
    regex: reaching(target),
    message: `src/${name} may not import src/${target} (eslint.config.js MAY_IMPORT): layers import downward only.`,
  }));

// A later block for the same files replaces the rule's options, so each
// part's block repeats its folder's patterns and adds the siblings it may not reach.
const layering = ENTRIES.flatMap((name) => [
  restrict([`src/${name}/**/*.ts`, `src/${name}.ts`], topPatterns(name)),
  ...Object.entries(PARTS[name] ?? {}).map(([part, allowed]) =>
    restrict(
      [`src/${name}/${part}/**/*.ts`],
      [
        ...topPatterns(name),
        ...Object.keys(PARTS[name])
          .filter((sibling) => sibling !== part && !allowed.includes(sibling))
          .map((sibling) => ({
            regex: `^\\.\\./(?:\\.\\./${name}/)?${sibling}/`,
            message: `src/${name}/${part} may not import src/${name}/${sibling} (eslint.config.js PARTS).`,
          })),
      ],
    ),
  ),
]);

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'test-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        performance: 'readonly',
        NodeJS: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      'no-constant-condition': ['error', { checkLoops: false }],
      'no-empty': ['error', { allowEmptyCatch: true }],
      // Misfires on our own methods named apply (caches, sinks).
      'prefer-spread': 'off',
    },
  },
  ...layering,
);
