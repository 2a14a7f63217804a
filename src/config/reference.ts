// The README's configuration reference table, generated from the JSON Schema
// (itself generated from the schema the daemon validates with), so the
// documentation cannot drift from what the daemon accepts.

interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  default?: unknown;
  description?: string;
}

export function configReference(schema: unknown): string {
  const rows: [string, string, string][] = [];
  const leaf = (path: string, n: SchemaNode) => {
    if (rows.some((r) => r[0] === path)) return;
    const d = n.default === undefined ? '' : `\`${JSON.stringify(n.default)}\``;
    rows.push([path, d, (n.description ?? '').replace(/\|/g, '/')]);
  };
  const walk = (path: string, node: SchemaNode | undefined) => {
    if (!node) return;
    const alts = node.anyOf ?? node.oneOf;
    // An object whose anyOf only says which keys are required (the root: sync, flowlog or both) is walked as an object.
    if (alts && !(node.properties && alts.every((x) => !x.properties))) {
      const objects = alts.filter((x) => x.properties);
      // A key that is a word or a mapping (filter.expectations: all | { helpers }) gets its own row too.
      if (objects.length < alts.length) leaf(path, node);
      for (const x of objects) walk(path, x);
      return;
    }
    if (node.type === 'object' && node.properties) {
      for (const [k, v] of Object.entries(node.properties)) walk(path ? `${path}.${k}` : k, v);
      return;
    }
    leaf(path, node);
  };
  walk('', schema as SchemaNode);
  return [
    '| key | default | meaning |',
    '|---|---|---|',
    ...rows.map((r) => `| \`${r[0]}\` | ${r[1]} | ${r[2]} |`),
  ].join('\n');
}
