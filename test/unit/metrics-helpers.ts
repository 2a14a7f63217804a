// Shared by the metrics unit and integration tests: a parser for the
// Prometheus text exposition, and the metric names a Grafana dashboard's
// PromQL expressions use.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family name → type, from the # TYPE lines. */
  types: Map<string, string>;
  samples: PromSample[];
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = m[3]!;
    const value = /^nan$/i.test(raw) ? Number.NaN : raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (!/^nan$/i.test(raw) && Number.isNaN(value)) throw new Error(`bad sample value: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { types, samples };
}

/** Every series name a query may use: the families, plus _bucket/_sum/_count of histograms and summaries. */
export function seriesNames(e: Exposition): Set<string> {
  const out = new Set<string>(e.samples.map((s) => s.name));
  for (const [name, type] of e.types) {
    out.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) out.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) out.add(name + suffix);
  }
  return out;
}

/** The one sample of name whose labels are exactly `labels`. */
export function sampleValue(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const hits = e.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} ${want}`);
  return hits[0]?.value;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * Metric names in a PromQL expression: identifiers that are neither
 * functions, keywords, label names (inside {} or by(...)), nor durations.
 */
export function promqlMetricNames(expr: string): string[] {
  let e = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  // Grafana variables outside brackets ($__interval, ${x}).
  e = e.replace(/\$\{[^}]*\}|\$[A-Za-z0-9_]+/g, ' ');
  const names: string[] = [];
  for (const m of e.matchAll(/(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = e.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest)) continue; // a function
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** label_values(metric, label) / label_values(label) / query_result(expr) / metrics(regex). */
function variableQueryMetricNames(q: string): string[] {
  const lv = /^\s*label_values\s*\(\s*(.*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.exec(q);
  if (lv) return promqlMetricNames(lv[1]!);
  if (/^\s*label_values\s*\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.test(q)) return [];
  const qr = /^\s*query_result\s*\((.*)\)\s*$/.exec(q);
  if (qr) return promqlMetricNames(qr[1]!);
  return promqlMetricNames(q);
}

export interface DashboardQuery {
  where: string;
  expr: string;
  names: string[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every PromQL query of a dashboard: panel targets (rows included), annotations and query variables. */
export function dashboardQueries(dash: Json): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const panels = (list: unknown): Json[] =>
    Array.isArray(list) ? list.filter(isObj).flatMap((p) => [p, ...panels(p.panels)]) : [];
  for (const p of panels(dash.panels)) {
    for (const t of Array.isArray(p.targets) ? p.targets.filter(isObj) : []) {
      if (typeof t.expr === 'string') out.push({ where: `panel "${String(p.title)}" ${String(t.refId)}`, expr: t.expr, names: promqlMetricNames(t.expr) });
    }
  }
  const annotations = isObj(dash.annotations) && Array.isArray(dash.annotations.list) ? dash.annotations.list.filter(isObj) : [];
  for (const a of annotations) {
    if (typeof a.expr === 'string') out.push({ where: `annotation "${String(a.name)}"`, expr: a.expr, names: promqlMetricNames(a.expr) });
  }
  const vars = isObj(dash.templating) && Array.isArray(dash.templating.list) ? dash.templating.list.filter(isObj) : [];
  for (const v of vars) {
    if (v.type !== 'query') continue;
    const q = isObj(v.query) && typeof v.query.query === 'string' ? v.query.query : typeof v.query === 'string' ? v.query : '';
    out.push({ where: `variable $${String(v.name)}`, expr: q, names: variableQueryMetricNames(q) });
  }
  return out;
}

export const DASHBOARD_PATH = resolve(import.meta.dirname, '../../contrib/grafana/ctsyncd.json');

export function loadDashboard(): Json {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Json;
}

/** Queries naming a metric the exposition lacks, as "where: name" lines. */
export function missingDashboardMetrics(dash: Json, e: Exposition): string[] {
  const have = seriesNames(e);
  return dashboardQueries(dash).flatMap((q) => q.names.filter((n) => !have.has(n)).map((n) => `${q.where}: ${n}`));
}
