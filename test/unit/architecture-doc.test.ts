// ARCHITECTURE.md is where a newcomer starts; a name in it that no longer
// exists sends them looking for code that is gone. Every identifier and
// every path it names in backticks must exist in the tree.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(ts|c)$/.test(e.name)) out.push(p);
  }
  return out;
}

// src/ and native/, plus the lint config whose layer table the document cites.
const files = [...walk(join(root, 'src')), ...walk(join(root, 'native')), join(root, 'eslint.config.js')];
const text = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
const srcNames = new Set(files.map((f) => basename(f)));

/**
 * Declared names of src/ from the TypeScript AST: each top-level (or
 * namespace-level) declaration, with the members of classes, interfaces and
 * object-literal types. A call site is not a declaration.
 */
const declared = new Map<string, { file: string; members: Set<string> }[]>();
for (const f of files.filter((x) => x.endsWith('.ts'))) {
  const sf = ts.createSourceFile(f, text.get(f)!, ts.ScriptTarget.Latest, true);
  const add = (name: string, members: Set<string>) => {
    const list = declared.get(name) ?? [];
    list.push({ file: f, members });
    declared.set(name, list);
  };
  const membersOf = (node: ts.Node): Set<string> => {
    const out = new Set<string>();
    const take = (m: ts.ClassElement | ts.TypeElement) => {
      if (m.name && (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name))) out.add(m.name.text);
    };
    if (ts.isClassDeclaration(node)) {
      for (const m of node.members) {
        take(m);
        // Constructor parameter properties (readonly config: Config).
        if (ts.isConstructorDeclaration(m)) for (const p of m.parameters) if (ts.isIdentifier(p.name) && p.modifiers?.length) out.add(p.name.text);
      }
    } else if (ts.isInterfaceDeclaration(node)) node.members.forEach(take);
    else if (ts.isTypeAliasDeclaration(node) && ts.isTypeLiteralNode(node.type)) node.type.members.forEach(take);
    return out;
  };
  for (const st of sf.statements) {
    if (ts.isClassDeclaration(st) || ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st) || ts.isFunctionDeclaration(st) || ts.isEnumDeclaration(st)) {
      if (st.name) add(st.name.text, membersOf(st));
    } else if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) if (ts.isIdentifier(d.name)) add(d.name.text, new Set());
    }
  }
}

/** Files declaring `name` at top level (class, interface, type, function, const). */
function declaring(name: string): { file: string; members: Set<string> }[] {
  return declared.get(name) ?? [];
}

const mentioned = (name: string) => {
  const re = new RegExp(`\\b${name}\\b`);
  return files.some((f) => re.test(text.get(f)!));
};

/** A kernel constant such as IPS_CONFIRMED, which src/kernel/constants.ts spells IPS.CONFIRMED. */
const constantInTable = (name: string) => {
  const at = name.indexOf('_');
  const family = new RegExp(`\\b${name.slice(0, at)}\\b`);
  const member = new RegExp(`\\b${name.slice(at + 1)}\\s*:`);
  return files.some((f) => family.test(text.get(f)!) && member.test(text.get(f)!));
};

/** Names of other packages the document may mention, checked against what the package exports. */
const EXTERNAL: Record<string, string> = { LineCounter: 'yaml', Long: 'long' };

function exportedBy(pkg: string, name: string): boolean {
  const dir = join(root, 'node_modules', pkg);
  if (!existsSync(dir)) return false;
  const re = new RegExp(`\\b${name}\\b`);
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.d\.ts$/.test(f))
    .some((f) => re.test(readFileSync(join(dir, f), 'utf8')));
}

/** What one backticked span claims exists, or undefined when it names no code (a command, a config key, ...). */
export function problem(span: string): string | undefined {
  const s = span.trim();
  // Paths: src/..., native/..., contrib/..., or a bare file name of ours.
  const pathLike = /^[\w.\-/]+\.(ts|c|mjs|json|proto|md|sh|service|conf)$/.test(s) || /^(src|native|contrib|test|bench|proto|scripts|bin)\//.test(s);
  if (pathLike) {
    const p = s.replace(/\/$/, '');
    if (existsSync(join(root, p)) || existsSync(join(root, 'src', p)) || srcNames.has(basename(p))) return undefined;
    return `path ${s} does not exist`;
  }
  const m = /^([A-Za-z_$][\w$]*)(?:\.([A-Za-z_$][\w$]*))?(\(\))?$/.exec(s);
  if (!m) return undefined;
  const [, head, member, call] = m as unknown as [string, string, string | undefined, string | undefined];
  const pascal = /^[A-Z][a-z0-9]+[A-Za-z0-9]*$/.test(head) && /[a-z]/.test(head);
  const camel = /^[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*$/.test(head);
  const constant = /^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/.test(head);
  if (member !== undefined) {
    // Type.member: the member must appear in a file that declares the type.
    if (!pascal) return undefined; // e.g. a config key such as failover.inject
    const homes = declaring(head);
    if (homes.length === 0) return `${head} is not declared in src/`;
    return homes.some((h) => h.members.has(member)) ? undefined : `${head} has no member ${member}`;
  }
  if (EXTERNAL[head] !== undefined) {
    return exportedBy(EXTERNAL[head], head) ? undefined : `${head} is not exported by ${EXTERNAL[head]}`;
  }
  if (pascal) return declaring(head).length > 0 ? undefined : `${head} is not declared in src/`;
  if (constant) return mentioned(head) || constantInTable(head) ? undefined : `${head} does not occur in src/`;
  if (camel || call) return mentioned(head) ? undefined : `${head} does not occur in src/`;
  return undefined;
}

describe('ARCHITECTURE.md', () => {
  const doc = readFileSync(join(root, 'ARCHITECTURE.md'), 'utf8');
  const spans = [...doc.matchAll(/`([^`\n]+)`/g)].map((x) => x[1]!);

  it('names identifiers at all (the check below would pass vacuously otherwise)', () => {
    expect(spans.filter((s) => /^[A-Z][a-z]\w*$/.test(s)).length).toBeGreaterThan(20);
  });

  it('names only identifiers and paths that exist', () => {
    const wrong = [...new Set(spans)].map((s) => [s, problem(s)] as const).filter(([, p]) => p !== undefined);
    expect(wrong.map(([s, p]) => `\`${s}\`: ${p}`)).toEqual([]);
  });

  it('the check itself catches a missing member, type and file', () => {
    expect(problem('Daemon.noSuchMethodAnywhere')).toMatch(/no member/);
    expect(problem('NoSuchClassAnywhere')).toMatch(/not declared/);
    expect(problem('src/sync/no-such-file.ts')).toMatch(/does not exist/);
    expect(problem('noSuchFunctionAnywhere()')).toMatch(/does not occur/);
    expect(problem('failover.inject')).toBeUndefined();
    // Called in the file, but not declared there.
    expect(problem('Daemon.setImmediate')).toMatch(/no member/);
    expect(problem('IPS_NO_SUCH_BIT')).toMatch(/does not occur/);
  });
});
