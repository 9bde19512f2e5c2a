/** Runner for OPA's YAML evaluation test cases (test/cases/testdata/v1 schema). */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RegoError } from './errors.js';
import { compile } from './policy.js';
import { equal, fromJSON, toJSON, type Value } from './value.js';

export interface ConformanceCase {
  note: string;
  query: string;
  modules?: string[];
  data?: unknown;
  input?: unknown;
  input_term?: string;
  want_result?: Record<string, unknown>[];
  want_error_code?: string;
  want_error?: string;
  sort_bindings?: boolean;
  strict_error?: boolean;
}

export interface CaseOutcome {
  category: string;
  file: string;
  note: string;
  status: 'pass' | 'fail' | 'skip';
  reason?: string;
}

export interface ConformanceReport {
  passed: number;
  failed: number;
  skipped: number;
  categories: Record<string, { passed: number; failed: number; skipped: number }>;
  cases: CaseOutcome[];
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (name.endsWith('.yaml') || name.endsWith('.yml')) out.push(p);
  }
  return out;
}

/** Run every case under `dir`; the category is the first folder below `dir` (or the file name). */
export function runConformance(
  dir: string,
  opts: { filter?: string; timeoutMs?: number } = {},
): ConformanceReport {
  const report: ConformanceReport = { passed: 0, failed: 0, skipped: 0, categories: {}, cases: [] };
  for (const file of yamlFiles(dir)) {
    const rel = relative(dir, file);
    const category = rel.includes('/') ? (rel.split('/')[0] as string) : rel.replace(/\.ya?ml$/, '');
    let cases: ConformanceCase[] = [];
    try {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'), { intAsBigInt: true })) {
        if ('errors' in doc && doc.errors.length) throw doc.errors[0];
        const js = doc.toJS({ maxAliasCount: -1 }) as { cases?: ConformanceCase[] } | null;
        if (js?.cases) cases.push(...js.cases);
      }
    } catch (e) {
      cases = [];
      record(report, {
        category,
        file: rel,
        note: rel,
        status: 'fail',
        reason: `cannot read: ${(e as Error).message}`,
      });
    }
    for (const tc of cases) {
      if (opts.filter && !String(tc.note).includes(opts.filter)) continue;
      record(report, { category, file: rel, note: String(tc.note), ...runCase(tc, opts.timeoutMs ?? 5000) });
    }
  }
  return report;
}

function record(r: ConformanceReport, o: CaseOutcome): void {
  r.cases.push(o);
  let cat = r.categories[o.category];
  if (!cat) r.categories[o.category] = cat = { passed: 0, failed: 0, skipped: 0 };
  if (o.status === 'pass') {
    r.passed++;
    cat.passed++;
  } else if (o.status === 'fail') {
    r.failed++;
    cat.failed++;
  } else {
    r.skipped++;
    cat.skipped++;
  }
}

/** Built-ins we deliberately do not implement; cases needing them are skipped. */
const UNSUPPORTED = /undefined function (net\.lookup_ip_addr|opa\.runtime|rego\.parse_module|test\.sleep)/;

function runCase(
  tc: ConformanceCase,
  timeoutMs: number,
): { status: 'pass' | 'fail' | 'skip'; reason?: string } {
  const modules = (tc.modules ?? []).map((source, i) => ({ file: `test-${i}.rego`, source }));
  const wantErr = tc.want_error_code !== undefined || tc.want_error !== undefined;
  const compiled = compile(modules);
  if (!compiled.ok) {
    const e = compiled.errors[0] as RegoError;
    const unsup = compiled.errors.find((x) => UNSUPPORTED.test(x.message));
    if (unsup)
      return {
        status: 'skip',
        reason: `unsupported built-in ${unsup.message.replace(/^undefined function /, '')}`,
      };
    const m = UNSUPPORTED.exec(e.message);
    if (m)
      return {
        status: 'skip',
        reason: `unsupported built-in ${e.message.replace(/^undefined function /, '')}`,
      };
    return checkError(tc, e, wantErr);
  }
  const policy = compiled.policy;
  try {
    let input: Value | undefined;
    if (tc.input_term !== undefined) {
      const r = policy.evaluateRaw(`__input_term := ${tc.input_term}`, {});
      input = r[0]?.__input_term;
    } else if (tc.input !== undefined) input = fromJSON(tc.input);
    const results = policy.evaluateRaw(tc.query, {
      input,
      data: tc.data === undefined ? fromJSON({}) : fromJSON(tc.data),
      raw: true,
      strict: tc.strict_error === true,
      timeoutMs,
      nowNs: BigInt(Date.now()) * 1_000_000n,
    });
    if (wantErr)
      return {
        status: 'fail',
        reason: `expected error ${tc.want_error_code ?? ''} ${tc.want_error ?? ''}, got result`,
      };
    const want = (tc.want_result ?? []).map((b) => fromJSON(b));
    const got = results.map((b) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(b)) if (!k.startsWith('__') && !k.startsWith('$')) o[k] = toJSON(v);
      return fromJSON(o);
    });
    if (tc.want_result === undefined) return { status: 'pass' };
    if (sameBindings(want, got, tc.sort_bindings === true)) return { status: 'pass' };
    return {
      status: 'fail',
      reason: `want ${JSON.stringify(toJSONSafe(want))} got ${JSON.stringify(toJSONSafe(got))}`,
    };
  } catch (e) {
    if (e instanceof RegoError) {
      const m = UNSUPPORTED.exec(e.message);
      if (m) return { status: 'skip', reason: `unsupported built-in: ${e.message}` };
      return checkError(tc, e, wantErr);
    }
    return {
      status: 'fail',
      reason: `internal error: ${(e as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? e}`,
    };
  }
}

function toJSONSafe(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v, (_k, x) =>
      typeof x === 'bigint'
        ? x.toString()
        : x instanceof Object && !Array.isArray(x) && 'm' in x
          ? toJSON(x as Value)
          : x,
    ),
  );
}

function checkError(
  tc: ConformanceCase,
  e: RegoError,
  wantErr: boolean,
): { status: 'pass' | 'fail'; reason?: string } {
  if (!wantErr) return { status: 'fail', reason: `unexpected error ${e.code}: ${e.message}` };
  if (tc.want_error_code && tc.want_error_code !== e.code)
    return { status: 'fail', reason: `want code ${tc.want_error_code} got ${e.code}: ${e.message}` };
  const short = e.location ? `${e.location.file}:${e.location.line}: ${e.code}: ${e.message}` : '';
  if (tc.want_error && !`${e.code}: ${e.message}`.includes(tc.want_error) && !short.includes(tc.want_error))
    return {
      status: 'fail',
      reason: `want error containing ${JSON.stringify(tc.want_error)} got ${JSON.stringify(e.message)}`,
    };
  return { status: 'pass' };
}

function sameBindings(want: Value[], got: Value[], sorted: boolean): boolean {
  if (want.length !== got.length) return false;
  if (!sorted) return want.every((w, i) => equal(w, got[i] as Value));
  const used = new Array(got.length).fill(false);
  for (const w of want) {
    const i = got.findIndex((g, j) => !used[j] && equal(w, g));
    if (i < 0) return false;
    used[i] = true;
  }
  return true;
}

/** Plain-text summary: one line per category, then `N passed, N failed, N skipped`. */
export function formatReport(r: ConformanceReport): string {
  const lines: string[] = [];
  for (const [cat, s] of Object.entries(r.categories).sort(([a], [b]) => (a < b ? -1 : 1)))
    lines.push(
      `${cat.padEnd(40)} pass ${String(s.passed).padStart(4)}  fail ${String(s.failed).padStart(4)}  skip ${String(s.skipped).padStart(4)}`,
    );
  lines.push(`${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
  return lines.join('\n');
}
