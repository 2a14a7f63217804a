// control.socket from a configuration's text without the YAML parser.
//
// Every client command (a keepalived notify step, an operator's `-s`) needs
// only this one value, and loading the `yaml` package costs a Node client
// about as much CPU as Node's own start-up. The two spellings a config uses
// in practice are read here: a block mapping
//     control:
//       socket: /run/ctsyncd/ctsyncd.sock
// and a flow mapping on the `control:` line, `control: { socket: /x, ... }`.
// Anything else that mentions `control` or `socket` (anchors, quotes with
// escapes, multi-line flows, a second `control:`, tabs) returns undefined and
// the caller parses the file properly. A wrong answer here would send the
// command to another daemon, so every doubt falls back.

/** The socket path, DEFAULT when the file has no `control` key; undefined = parse the YAML instead. */
export function scanControlSocket(text: string, fallback: string): string | undefined {
  if (text.includes('\t') || text.includes('\r')) return undefined;
  const lines = text.split('\n');
  const controlAt: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^control\s*:/.test(line)) controlAt.push(i);
    else if (/^\S/.test(line) && /control|socket/.test(stripComment(line) ?? line)) return undefined;
  }
  if (controlAt.length === 0) {
    // Mentioned nowhere as a top-level key; anything subtler goes to the parser.
    return /\bcontrol\b|[&*!%{}[\]]|^---|^\.\.\./m.test(text) ? undefined : fallback;
  }
  if (controlAt.length > 1) return undefined;
  const at = controlAt[0]!;
  const head = stripComment(lines[at]!.replace(/^control\s*:/, ''));
  if (head === undefined) return undefined;
  const rest = head.trim();
  if (rest.startsWith('{')) return flowSocket(rest, fallback);
  if (rest !== '') return undefined;
  // Block mapping: the indented lines that follow.
  let indent: number | undefined;
  let found: string | undefined;
  for (let i = at + 1; i < lines.length; i++) {
    const raw = lines[i]!;
    const body = stripComment(raw);
    if (body === undefined) return undefined;
    if (body.trim() === '') continue;
    const ind = raw.length - raw.trimStart().length;
    if (ind === 0) break;
    if (indent === undefined) indent = ind;
    if (ind !== indent) {
      if (ind > indent) continue; // a nested value of another key
      return undefined;
    }
    const m = /^\s+([A-Za-z_][\w-]*)\s*:(.*)$/.exec(body);
    if (!m) return undefined;
    if (m[1] !== 'socket') continue;
    if (found !== undefined) return undefined;
    found = scalar(m[2]!.trim());
    if (found === undefined) return undefined;
  }
  return found ?? fallback;
}

function flowSocket(flow: string, fallback: string): string | undefined {
  if (!flow.endsWith('}') || flow.indexOf('{', 1) >= 0 || flow.indexOf('}') !== flow.length - 1) return undefined;
  let found: string | undefined;
  for (const part of flow.slice(1, -1).split(',')) {
    if (part.trim() === '') continue;
    const m = /^\s*([A-Za-z_][\w-]*)\s*:(.*)$/.exec(part);
    if (!m) return undefined;
    if (m[1] !== 'socket') continue;
    if (found !== undefined) return undefined;
    found = scalar(m[2]!.trim());
    if (found === undefined) return undefined;
  }
  return found ?? fallback;
}

/** A plain or simply quoted absolute path; undefined for anything else. */
function scalar(v: string): string | undefined {
  let s = v;
  if ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))) {
    s = s.slice(1, -1);
    if (s.length === 0 || /["'\\]/.test(s)) return undefined;
  }
  return /^\/[A-Za-z0-9._/@+=-]*$/.test(s) ? s : undefined;
}

/** The line without a trailing comment; undefined when a `#` might be inside quotes. */
function stripComment(line: string): string | undefined {
  const hash = line.search(/(^|\s)#/);
  if (hash < 0) return line;
  const before = line.slice(0, hash);
  if (/["']/.test(before)) return undefined;
  return before;
}
