// A restarted daemon must answer on its control socket and ask its peers for
// their state as soon as it can (issue 13: within 150 ms of exec). Loading
// zod and yaml costs ~0.15 s of that, prom-client ~65 ms, lru-cache ~10 ms
// (and as much again to build one): a start from the validated-config cache
// needs none of them before it listens; the daemon loads prom-client after
// the dump (MetricsService.load), the external cache lru-cache at its first
// delete.
// One value imported from config/index.js (SYSLOG_FACILITIES) once brought
// the schema, zod and yaml into every start; nothing reports such a slip,
// so this walks what the start-up path loads.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const src = join(root, 'src');

/** What `cli.ts` runs for the daemon: itself, then runDaemon's import()s (config/cache on a cache hit). */
const START_PATH = ['cli.ts', 'config/cache.ts', 'daemon.ts', 'systemd/notify.ts', 'log.ts'].map((f) => join(src, f));

/** Packages a start must not load before the daemon runs: the schema's, the metrics registry's, the tombstones'. */
const DEFERRED_PACKAGES = ['zod', 'yaml', 'prom-client', 'lru-cache'];

interface Reached {
  /** src/ files loaded, each with the file that first imported it. */
  files: Map<string, string | undefined>;
  /** Packages loaded, each with the src/ file importing it. */
  packages: Map<string, string>;
}

/**
 * The import and export declarations of a file that load a module at run
 * time: `import type`, and imports whose every name is `type X`, load nothing
 * (the compiler drops them). Dynamic import() is not followed: it runs later.
 */
function valueImports(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false);
  const out: string[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      const c = st.importClause;
      const typeOnly =
        c !== undefined &&
        (c.isTypeOnly ||
          (c.name === undefined &&
            c.namedBindings !== undefined &&
            ts.isNamedImports(c.namedBindings) &&
            c.namedBindings.elements.length > 0 &&
            c.namedBindings.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) out.push(st.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) && !st.isTypeOnly) {
      out.push(st.moduleSpecifier.text);
    }
  }
  return out;
}

function resolveSrc(from: string, spec: string): string | undefined {
  const target = resolve(dirname(from), spec.replace(/\.js$/, '.ts'));
  if (existsSync(target)) return target;
  const index = join(target.replace(/\.ts$/, ''), 'index.ts');
  return existsSync(index) ? index : undefined;
}

/** Package name of a bare specifier ('zod/v4' → zod, '@scope/x/y' → @scope/x); undefined for node: and relative ones. */
function packageOf(spec: string): string | undefined {
  if (spec.startsWith('.') || spec.startsWith('node:')) return undefined;
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function reach(starts: string[]): Reached {
  const files = new Map<string, string | undefined>(starts.map((s) => [s, undefined]));
  const packages = new Map<string, string>();
  const queue = [...starts];
  while (queue.length > 0) {
    const f = queue.shift()!;
    for (const spec of valueImports(f)) {
      const pkg = packageOf(spec);
      if (pkg !== undefined) {
        if (!packages.has(pkg)) packages.set(pkg, f);
        continue;
      }
      const target = spec.startsWith('.') ? resolveSrc(f, spec) : undefined;
      if (target && !files.has(target)) {
        files.set(target, f);
        queue.push(target);
      }
    }
  }
  return { files, packages };
}

/** The import chain from a start file to `file`, as paths relative to the repository. */
function chain(r: Reached, file: string): string[] {
  const out: string[] = [];
  for (let f: string | undefined = file; f !== undefined; f = r.files.get(f)) out.unshift(relative(root, f));
  return out;
}

describe('the daemon start-up path', () => {
  const r = reach(START_PATH);

  it('reaches the daemon and its kernel, sync and control modules', () => {
    const names = [...r.files.keys()].map((f) => relative(src, f));
    for (const f of ['daemon.ts', 'control/server.ts', 'kernel/conntrack-events.ts', 'sync/engine/sync-node.ts', 'cache/external-cache.ts']) {
      expect(names).toContain(f);
    }
  });

  it.each(DEFERRED_PACKAGES)('does not load %s before the daemon runs', (pkg) => {
    const by = r.packages.get(pkg);
    expect(by === undefined ? undefined : chain(r, by)).toBeUndefined();
  });

  it('does not load the config schema (a cache hit needs no validation)', () => {
    const schema = join(src, 'config', 'schema.ts');
    expect(r.files.has(schema) ? chain(r, schema) : undefined).toBeUndefined();
  });

  it('finds a package behind a value import, and not behind a type-only one', () => {
    // The walk itself: config/index.ts loads the schema and so zod; a file
    // importing only its types would not.
    const viaIndex = reach([join(src, 'config', 'index.ts')]);
    expect(viaIndex.packages.has('zod')).toBe(true);
    expect(valueImports(join(src, 'daemon.ts'))).not.toContain('./config/index.js');
  });
});
