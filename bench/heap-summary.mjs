#!/usr/bin/env node
// bench/heap-summary: where a V8 heap snapshot's bytes are, by node type and
// constructor or string/array kind (self sizes, the top groups), and the total.
// `node bench/run.mjs --heap-snapshot DIR` takes one of each ctsyncd daemon
// right after replication.
//   node bench/heap-summary.mjs FILE.heapsnapshot... [--top 25] [--per N] [--shapes]
// --per N also prints each group's bytes per N (e.g. per replicated entry);
// --shapes groups plain objects (Object) by their property names as well.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args.splice(i, 2)[1]) : def;
};
const TOP = opt('--top', 25);
const PER = opt('--per', 0);
const shapesAt = args.indexOf('--shapes');
const SHAPES = shapesAt >= 0;
if (SHAPES) args.splice(shapesAt, 1);
if (args.length === 0) {
  console.error('usage: node bench/heap-summary.mjs FILE.heapsnapshot... [--top N] [--per ENTRIES]');
  process.exit(2);
}

for (const file of args) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const meta = snap.snapshot.meta;
  const F = meta.node_fields.length;
  const iType = meta.node_fields.indexOf('type');
  const iName = meta.node_fields.indexOf('name');
  const iSize = meta.node_fields.indexOf('self_size');
  const types = meta.node_types[iType];
  const { nodes, strings, edges } = snap;
  const iEdges = meta.node_fields.indexOf('edge_count');
  const EF = meta.edge_fields.length;
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const edgeTypes = meta.edge_types[eType];
  const groups = new Map();
  let total = 0;
  let count = 0;
  let edge = 0;
  for (let i = 0; i < nodes.length; i += F) {
    const type = types[nodes[i + iType]];
    const size = nodes[i + iSize];
    let name = strings[nodes[i + iName]];
    const firstEdge = edge;
    edge += nodes[i + iEdges] * EF;
    if (SHAPES && type === 'object' && name === 'Object') {
      const props = [];
      for (let e = firstEdge; e < edge; e += EF) {
        if (edgeTypes[edges[e + eType]] === 'property') props.push(strings[edges[e + eName]]);
      }
      name = `Object {${props.join(',')}}`;
    }
    // Strings by kind, not content; arrays and code by their name.
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '';
    else if (name.length > 100) name = `${name.slice(0, 97)}...`;
    const k = `${type}${name ? ` ${name}` : ''}`;
    const g = groups.get(k) ?? { n: 0, bytes: 0 };
    g.n++;
    g.bytes += size;
    groups.set(k, g);
    total += size;
    count++;
  }
  const mb = (b) => (b / 2 ** 20).toFixed(1).padStart(7);
  console.log(`\n${file}\n  ${count} objects, ${mb(total)} MiB self size${PER ? `, ${(total / PER).toFixed(0)} B per entry` : ''}`);
  for (const [k, g] of [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, TOP)) {
    const per = PER ? `${(g.bytes / PER).toFixed(1).padStart(7)} B/entry ${(g.n / PER).toFixed(2).padStart(6)} objs/entry` : '';
    console.log(`  ${mb(g.bytes)} MiB ${String(g.n).padStart(9)} objs ${per}  ${k}`);
  }
}
