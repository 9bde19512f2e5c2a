import type { Module } from './ast.js';
import { defaultBuiltins } from './builtins/index.js';
import type { BuiltinDef } from './builtins/types.js';
import { Compiler, type Ctx, type Frame, type RuleNode, type Step } from './compiler.js';
import { RegoError } from './errors.js';
import { parseModule, parseQuery } from './parser.js';
import { fromJSON, RObject, toJSON, type Value } from './value.js';

/** A Rego source file to compile. */
export interface ModuleSource {
  file: string;
  source: string;
}

export interface CompileOptions {
  /** extra or replacement built-ins, merged over the default table */
  builtins?: BuiltinDef[];
}

export interface EvaluateOptions {
  /** the `input` document (plain JSON); omitted means undefined input */
  input?: unknown;
  /** base documents under `data` (plain JSON) */
  data?: unknown;
  /** raise built-in errors instead of treating them as undefined (OPA's strict-builtin-errors) */
  strict?: boolean;
  /** evaluation budget in steps (default 5,000,000) */
  maxSteps?: number;
  /** wall-clock budget in milliseconds (default 5,000) */
  timeoutMs?: number;
  /** value of time.now_ns() for this evaluation, in ns since the epoch (default: clock at start) */
  nowNs?: bigint;
  /** receives print() output (default: discard) */
  print?: (msg: string) => void;
  /** input/data already converted to Rego values (skips JSON conversion) */
  raw?: boolean;
}

/** One solution of a query: variable name → value (plain JSON; sets become sorted arrays). */
export type Bindings = Record<string, unknown>;

export interface TestResult {
  name: string;
  package: string;
  passed: boolean;
  error?: RegoError;
  durationMs: number;
}

export type CompileResult = { ok: true; policy: CompiledPolicy } | { ok: false; errors: RegoError[] };

const DEFAULT_STEPS = 5_000_000;
const DEFAULT_TIMEOUT = 5_000;

interface CompiledQuery {
  step: Step;
  nslots: number;
  vars: [string, number][];
}

/** A compiled bundle of modules, ready to evaluate queries. */
export class CompiledPolicy {
  private readonly queries = new Map<string, CompiledQuery>();
  private readonly dataCache = new WeakMap<object, Value>();
  /** decide() paths → their compiled `__out := path` query and the slot of __out */
  private readonly decisions = new Map<string, { q: CompiledQuery; slot: number }>();

  constructor(
    private readonly compiler: Compiler,
    readonly modules: Module[],
  ) {}

  /**
   * Evaluate a query such as `data.authz.allow = x` or `x := data.authz.decision`.
   * Returns the list of bindings (one per solution) or undefined when the query has no solution.
   * Throws RegoError for parse/compile errors in the query and for evaluation errors.
   */
  evaluate(query: string, opts: EvaluateOptions = {}): Bindings[] | undefined {
    const q = this.compileQuery(query);
    const c = this.newCtx(opts);
    const f: Frame = new Array(q.nslots);
    const out: Bindings[] = [];
    run(c, () =>
      q.step(c, f, () => {
        const b: Bindings = {};
        for (const [name, slot] of q.vars) {
          if (name.startsWith('$')) continue;
          const v = f[slot];
          if (v !== undefined) b[name] = toJSON(v);
        }
        out.push(b);
      }),
    );
    return out.length ? out : undefined;
  }

  /** Like evaluate but keeps Rego values (sets, non-string keys, bigints) in the bindings. */
  evaluateRaw(query: string, opts: EvaluateOptions = {}): Record<string, Value>[] {
    const q = this.compileQuery(query);
    const c = this.newCtx(opts);
    const f: Frame = new Array(q.nslots);
    const out: Record<string, Value>[] = [];
    run(c, () =>
      q.step(c, f, () => {
        const b: Record<string, Value> = {};
        for (const [name, slot] of q.vars) {
          const v = f[slot];
          if (v !== undefined) b[name] = v;
        }
        out.push(b);
      }),
    );
    return out;
  }

  /**
   * Fast path: the value of one document, e.g. `decide("data.zone.allow", { input })`.
   * Returns the plain JSON value or undefined.
   */
  decide(path: string, opts: EvaluateOptions = {}): unknown {
    const v = this.decideRaw(path, opts);
    return v === undefined ? undefined : toJSON(v);
  }

  /** decide() without JSON conversion of the result. */
  decideRaw(path: string, opts: EvaluateOptions = {}): Value | undefined {
    let d = this.decisions.get(path);
    if (d === undefined) {
      const q = this.compileQuery(`__out := ${path}`);
      d = { q, slot: q.vars.find(([n]) => n === '__out')?.[1] as number };
      if (this.decisions.size > 1000) this.decisions.clear();
      this.decisions.set(path, d);
    }
    const { q, slot } = d;
    const c = this.newCtx(opts);
    const f: Frame = new Array(q.nslots);
    let out: Value | undefined;
    run(c, () =>
      q.step(c, f, () => {
        out = f[slot];
      }),
    );
    return out;
  }

  /** Run every `test_*` rule as `opa test` does. */
  test(opts: EvaluateOptions = {}): TestResult[] {
    const results: TestResult[] = [];
    const walk = (n: RuleNode) => {
      const last = n.path[n.path.length - 1] ?? '';
      if (last.startsWith('test_') && (n.isRule || n.isFunc)) {
        const pkg = n.path.slice(1, -1).join('.');
        const t0 = performance.now();
        try {
          const r = n.isFunc ? undefined : this.decideRaw(n.path.join('.'), opts);
          results.push({ name: last, package: pkg, passed: r === true, durationMs: performance.now() - t0 });
        } catch (e) {
          const err = e instanceof RegoError ? e : new RegoError('eval_internal_error', String(e));
          results.push({
            name: last,
            package: pkg,
            passed: false,
            error: err,
            durationMs: performance.now() - t0,
          });
        }
      }
      for (const ch of n.children.values()) walk(ch);
    };
    walk(this.compiler.root);
    return results;
  }

  private compileQuery(query: string): CompiledQuery {
    let q = this.queries.get(query);
    if (q) return q;
    const body = parseQuery(query, 'query');
    this.compiler.errors.length = 0;
    const cq = this.compiler.compileQuery(body, undefined);
    q = { step: cq.step, nslots: cq.nslots, vars: [...cq.vars] };
    if (this.queries.size > 1000) this.queries.clear();
    this.queries.set(query, q);
    return q;
  }

  /**
   * JSON → Rego value. `data` is converted once per object (by identity: callers pass the same,
   * unchanged document with every request); `input` is small and fresh per request, so it is
   * converted every time (caching it would also return stale values for a reused, mutated object).
   */
  private conv(x: unknown, raw: boolean | undefined, byIdentity: boolean): Value {
    if (raw) return x as Value;
    if (byIdentity && x !== null && typeof x === 'object') {
      const hit = this.dataCache.get(x);
      if (hit !== undefined) return hit;
      const v = fromJSON(x);
      this.dataCache.set(x, v);
      return v;
    }
    return fromJSON(x);
  }

  private newCtx(opts: EvaluateOptions): Ctx {
    const now = Date.now();
    return {
      input: opts.input === undefined ? undefined : this.conv(opts.input, opts.raw, false),
      data: opts.data === undefined ? EMPTY_DATA : this.conv(opts.data, opts.raw, true),
      memo: new Map(),
      // shared empty containers: `with` replaces them, never mutates them
      overrides: NO_OVERRIDES,
      fnOverrides: NO_FN_OVERRIDES,
      steps: 0,
      maxSteps: opts.maxSteps ?? DEFAULT_STEPS,
      deadline: now + (opts.timeoutMs ?? DEFAULT_TIMEOUT),
      strict: opts.strict ?? false,
      nowNs: opts.nowNs,
      startMs: now,
      print: opts.print ?? discard,
      builtinErrors: [],
      seed: now,
      bctx: undefined,
    };
  }
}

const NO_OVERRIDES: Ctx['overrides'] = [];
/** data when none is given (values are immutable, so one empty object serves every evaluation) */
const EMPTY_DATA: Value = new RObject();
const NO_FN_OVERRIDES: Ctx['fnOverrides'] = new Map();
const discard = (_msg: string): void => {};

function run(_c: Ctx, f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof RegoError) throw e;
    if (e instanceof RangeError && /call stack/i.test(e.message))
      throw new RegoError('eval_cancel_error', 'evaluation budget exceeded (stack depth)');
    throw e;
  }
}

/**
 * Compile Rego modules. `modules` maps file name → source (or a list of {file, source}).
 * Returns { ok: true, policy } or { ok: false, errors } with OPA error codes and file:line:col.
 */
export function compile(
  modules: Record<string, string> | ModuleSource[],
  options: CompileOptions = {},
): CompileResult {
  const list: ModuleSource[] = Array.isArray(modules)
    ? modules
    : Object.entries(modules).map(([file, source]) => ({ file, source }));
  const errors: RegoError[] = [];
  const parsed: Module[] = [];
  for (const m of list) {
    try {
      parsed.push(parseModule(m.source, m.file));
    } catch (e) {
      if (e instanceof RegoError) errors.push(e);
      else
        errors.push(
          new RegoError('rego_parse_error', String((e as Error)?.message ?? e), {
            file: m.file,
            line: 1,
            col: 1,
          }),
        );
    }
  }
  if (errors.length) return { ok: false, errors };
  const builtins = defaultBuiltins();
  for (const b of options.builtins ?? []) builtins.set(b.name, b);
  const compiler = new Compiler({ builtins });
  try {
    compiler.compileModules(parsed);
  } catch (e) {
    if (e instanceof RegoError) compiler.errors.push(e);
    else if (e instanceof RangeError)
      compiler.errors.push(
        new RegoError(
          'rego_compile_error',
          'policy too deeply nested',
          parsed[0] ? { file: parsed[0].file, line: 1, col: 1 } : undefined,
        ),
      );
    else throw e;
  }
  if (compiler.errors.length) return { ok: false, errors: dedupe(compiler.errors) };
  return { ok: true, policy: new CompiledPolicy(compiler, parsed) };
}

function dedupe(errs: RegoError[]): RegoError[] {
  const seen = new Set<string>();
  return errs.filter((e) => {
    const k = e.format();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
