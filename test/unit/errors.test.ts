import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CtsyncdError, errorCode, errorMessage, isCtsyncdError } from '../../src/common/errors.js';
import { ConfigError } from '../../src/config/errors.js';
import { KernelOpError } from '../../src/kernel/errors.js';

class ProbeError extends CtsyncdError {
  readonly code = 'EPROBE';
}

describe('CtsyncdError', () => {
  it('carries code, message, context and cause, and its own class name', () => {
    const cause = new Error('underneath');
    const e = new ProbeError('probe failed', { cause, context: { peer: 'fw2' } });
    expect(e).toBeInstanceOf(Error);
    expect(isCtsyncdError(e)).toBe(true);
    expect(e.code).toBe('EPROBE');
    expect(e.name).toBe('ProbeError');
    expect(e.cause).toBe(cause);
    expect(e.context).toEqual({ peer: 'fw2' });
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: 'EPROBE', message: 'probe failed', context: { peer: 'fw2' } });
  });

  it('subclasses keep their codes and context', () => {
    const k = new KernelOpError('dump', 16);
    expect(isCtsyncdError(k)).toBe(true);
    expect(k.code).toBe('EKERNEL_EBUSY');
    expect(k.context).toEqual({ op: 'dump', errno: 16 });
    const c = new ConfigError([{ file: 'f.yaml', line: 3, column: 5, path: 'a.b', message: 'bad' }]);
    expect(errorCode(c)).toBe('ECONFIG');
    expect(c.toString()).toBe(c.message);
  });

  it('errorCode and errorMessage read anything thrown', () => {
    expect(errorCode(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(errorCode(new Error('x'))).toBe('EINTERNAL');
    expect(errorCode(undefined)).toBe('EINTERNAL');
    expect(errorCode('text')).toBe('EINTERNAL');
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(Object.create(null))).toBe('unprintable error');
  });
});

describe('error classes of src/', () => {
  const src = join(__dirname, '..', '..', 'src');
  const files = (function walk(dir: string, out: string[] = []): string[] {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, out);
      else if (e.name.endsWith('.ts')) out.push(p);
    }
    return out;
  })(src);

  it('all extend CtsyncdError (one base, a stable code each)', () => {
    const direct: string[] = [];
    let ours = 0;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/class (\w+) extends (\w+)/g)) {
        if (m[2] === 'Error' && m[1] !== 'CtsyncdError') direct.push(`${relative(src, f)}: ${m[1]}`);
        if (m[2] === 'CtsyncdError') ours++;
      }
    }
    expect(direct).toEqual([]);
    expect(ours).toBeGreaterThanOrEqual(10);
  });
});
