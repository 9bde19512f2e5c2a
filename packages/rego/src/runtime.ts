/**
 * Evaluation runtime: the rule tree, per-query context, and the helpers compiled closures call
 * (data lookups, rule evaluation with memoisation and conflict checks, function calls, built-ins).
 */
import type { Module, Rule, Term } from './ast.js';
import type { BuiltinContext, BuiltinDef } from './builtins/types.js';
import { BuiltinError } from './builtins/types.js';
import { type Location, RegoError } from './errors.js';
import { compare, equal, keyOf, RObject, RSet, type Value } from './value.js';

export type Frame = (Value | undefined)[];
export type Cont = () => void;
export type Step = (c: Ctx, f: Frame, k: Cont) => void;
export type Ground = (c: Ctx, f: Frame) => Value | undefined;
export type Iter = (c: Ctx, f: Frame, k: (v: Value) => void) => void;
export type Match = (c: Ctx, f: Frame, v: Value, k: Cont) => void;

export interface CTerm {
  g: Ground | undefined;
  it: Iter;
  /** the term's value when it is a compile-time constant (scalars and collections of constants) */
  k?: Value | undefined;
  /** the frame slot when the term is just a local variable's value */
  fs?: number | undefined;
}

const UNDEF = Symbol('undefined');
const IN_PROGRESS = Symbol('in progress');
type Memo = Value | typeof UNDEF | typeof IN_PROGRESS;

/** Replacement installed by `with <function> as <value>`. */
export type FnOverride = { value: Value } | { fn: (c: Ctx, args: Value[]) => Value | undefined };

/** Evaluation state for one query. */
export interface Ctx {
  input: Value | undefined;
  data: Value;
  /** values of rules evaluated so far (IN_PROGRESS while a rule is being evaluated) */
  memo: Map<RuleNode, Memo>;
  overrides: { path: string[]; value: Value }[];
  fnOverrides: Map<string, FnOverride>;
  steps: number;
  maxSteps: number;
  deadline: number;
  strict: boolean;
  /** value of time.now_ns(); undefined: the clock at the start of the evaluation (startMs) */
  nowNs: bigint | undefined;
  startMs: number;
  print: (msg: string) => void;
  builtinErrors: RegoError[];
  seed: number;
  /** context handed to built-ins, made on first use */
  bctx?: BuiltinContext | undefined;
}

/** Thrown to abandon further solutions (negation, constant-valued rules). */
class Cut {}

export function evalError(code: string, msg: string, loc?: Location): RegoError {
  return new RegoError(code, msg, loc);
}

export function budgetExceeded(c: Ctx): never {
  throw new RegoError(
    'eval_cancel_error',
    c.steps > c.maxSteps ? 'evaluation budget exceeded (steps)' : 'evaluation budget exceeded (time)',
  );
}

export function tick(c: Ctx): void {
  if (++c.steps > c.maxSteps || ((c.steps & 0x3ff) === 0 && Date.now() > c.deadline)) budgetExceeded(c);
}

// ---------------------------------------------------------------------------------------------
// Rule tree

export interface Clause {
  body: Step;
  /** produce the head outputs after the body succeeded */
  value: Ground | undefined;
  keys: Ground[];
  element: Ground | undefined;
  constant: boolean;
  /** function parameters, matched in this clause's own variable slots */
  params: Match[];
}

export interface CompiledRule {
  kind: 'complete' | 'set' | 'object' | 'func';
  nslots: number;
  clauses: Clause[];
  params: Match[];
  loc: Location;
  rule: Rule;
  module: Module;
  /** index: (input ref path, expected value key) for simple equality guards */
  guard?: { path: string[]; key: string } | undefined;
}

export class RuleNode {
  readonly children = new Map<string, RuleNode>();
  rules: CompiledRule[] = [];
  defaultValue: Ground | undefined;
  defaultRule: CompiledRule | undefined;
  funcs: CompiledRule[] = [];
  arity = -1;
  /** raw rules before compilation */
  pending: { rule: Rule; module: Module; env: ModuleEnv }[] = [];
  index: { path: string[]; byKey: Map<string, CompiledRule[]>; rest: CompiledRule[] } | undefined;
  constructor(
    readonly path: string[],
    readonly parent: RuleNode | undefined,
  ) {}
  /** holds (non-function) rules; set once rules are placed */
  isRule = false;
  get isFunc(): boolean {
    return this.arity >= 0;
  }
  child(k: string): RuleNode {
    let c = this.children.get(k);
    if (!c) {
      c = new RuleNode([...this.path, k], this);
      this.children.set(k, c);
    }
    return c;
  }
  get name(): string {
    return this.path.join('.');
  }
}

export interface ModuleEnv {
  module: Module;
  pkg: string[];
  imports: Map<string, Term>;
  ruleNames: Set<string>;
}

export type FnTarget = (c: Ctx) => (c2: Ctx, args: Value[]) => Value | undefined;

export interface Seg {
  g: Ground | undefined;
  /** slot to bind when iterating (-1: wildcard) */
  slot: number;
  m: Match | undefined;
}

// ---------------------------------------------------------------------------------------------
// Runtime helpers

/** A term with at most one value; its iterator is made only if something asks for it. */
class GroundTerm implements CTerm {
  k: Value | undefined = undefined;
  fs: number | undefined = undefined;
  private iter: Iter | undefined = undefined;
  constructor(readonly g: Ground) {}
  get it(): Iter {
    if (this.iter === undefined) this.iter = iterOfGround(this.g);
    return this.iter;
  }
}

export function groundTerm(g: Ground): CTerm {
  return new GroundTerm(g);
}

/** The iterator of a ground term (made by a helper so the closure stays anonymous and cheap to create). */
function iterOfGround(g: Ground): Iter {
  return (c, f, k) => {
    const v = g(c, f);
    if (v !== undefined) k(v);
  };
}

/** A constant term; Rego values are immutable, so one value is shared by every evaluation. */
export function constTerm(v: Value): CTerm {
  const t = groundTerm(() => v);
  t.k = v;
  return t;
}

export function iterTerm(it: Iter): CTerm {
  return { g: undefined, it, k: undefined };
}

export function evalGround(t: CTerm, c: Ctx, f: Frame): Value | undefined {
  if (t.g) return t.g(c, f);
  let out: Value | undefined;
  t.it(c, f, (v) => {
    out ??= v;
  });
  return out;
}

export function collection(items: CTerm[], build: (vs: Value[]) => Value): CTerm {
  const n = items.length;
  if (items.every((i) => i.k !== undefined)) return constTerm(build(items.map((i) => i.k as Value)));
  if (items.every((i) => i.g)) {
    const gs = items.map((i) => i.g as Ground);
    return groundTerm((c, f) => {
      const vs: Value[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = (gs[i] as Ground)(c, f);
        if (v === undefined) return undefined;
        vs[i] = v;
      }
      return build(vs);
    });
  }
  return iterTerm((c, f, k) => iterAll(items, 0, [], c, f, (vs) => k(build(vs.slice()))));
}

export function iterOrdered(
  items: CTerm[],
  order: number[],
  i: number,
  acc: Value[],
  c: Ctx,
  f: Frame,
  k: (vs: Value[]) => void,
): void {
  if (i === order.length) {
    k(acc);
    return;
  }
  const at = order[i] as number;
  (items[at] as CTerm).it(c, f, (v) => {
    acc[at] = v;
    iterOrdered(items, order, i + 1, acc, c, f, k);
  });
}

export function iterAll(
  items: CTerm[],
  i: number,
  acc: Value[],
  c: Ctx,
  f: Frame,
  k: (vs: Value[]) => void,
): void {
  if (i === items.length) {
    k(acc);
    return;
  }
  (items[i] as CTerm).it(c, f, (v) => {
    acc[i] = v;
    iterAll(items, i + 1, acc, c, f, k);
  });
}

export function iterMatch(t: CTerm, m: Match): (next: Step) => Step {
  const g = t.g;
  if (g)
    return (next) => (c, f, k) => {
      const v = g(c, f);
      if (v !== undefined) m(c, f, v, () => next(c, f, k));
    };
  const it = t.it;
  return (next) => (c, f, k) => it(c, f, (v) => m(c, f, v, () => next(c, f, k)));
}

/** Does the step have a solution? Resets the given slots after a cut. */
export function exists(step: Step, c: Ctx, f: Frame, slots: number[]): boolean {
  const cut = new Cut();
  try {
    step(c, f, () => {
      throw cut;
    });
    return false;
  } catch (e) {
    if (e === cut) {
      for (const s of slots) f[s] = undefined;
      return true;
    }
    throw e;
  }
}

export function forEachEntry(d: Value, k: (key: Value, val: Value) => void): void {
  if (Array.isArray(d)) {
    for (let i = 0; i < d.length; i++) k(i, d[i] as Value);
  } else if (d instanceof RObject) {
    for (const [key, val] of d.sortedEntries()) k(key, val);
  } else if (d instanceof RSet) {
    for (const x of d.sorted()) k(x, x);
  }
}

export function indexValue(v: Value, key: Value): Value | undefined {
  if (Array.isArray(v)) {
    if (typeof key === 'number' && Number.isInteger(key)) return v[key];
    return undefined;
  }
  if (v instanceof RObject) return typeof key === 'string' ? v.getStr(key) : v.get(key);
  if (v instanceof RSet) return v.has(key) ? key : undefined;
  return undefined;
}

export function walkValue(c: Ctx, f: Frame, v: Value, segs: Seg[], i: number, k: (v: Value) => void): void {
  if (i === segs.length) {
    k(v);
    return;
  }
  const seg = segs[i] as Seg;
  if (seg.g) {
    const key = seg.g(c, f);
    if (key === undefined) return;
    const x = indexValue(v, key);
    if (x !== undefined) walkValue(c, f, x, segs, i + 1, k);
    return;
  }
  const slot = seg.slot;
  const m = seg.m;
  forEachEntry(v, (key, val) => {
    if (m) m(c, f, key, () => walkValue(c, f, val, segs, i + 1, k));
    else if (slot >= 0) {
      f[slot] = key;
      walkValue(c, f, val, segs, i + 1, k);
      f[slot] = undefined;
    } else walkValue(c, f, val, segs, i + 1, k);
  });
}

function findOverride(c: Ctx, path: string[]): Value | undefined {
  for (const o of c.overrides) if (arrEq(o.path, path)) return o.value;
  return undefined;
}

function arrEq(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isPrefix(p: string[], full: string[]): boolean {
  if (p.length > full.length) return false;
  for (let i = 0; i < p.length; i++) if (p[i] !== full[i]) return false;
  return true;
}

export function baseChild(base: Value | undefined, key: Value): Value | undefined {
  if (base instanceof RObject) {
    const v = base.get(key);
    // JSON data only has string keys: data[2] finds data["2"] as OPA does
    if (v === undefined && typeof key === 'number') return base.getStr(String(key));
    return v;
  }
  return undefined;
}

/** Lookup data with all-ground keys. */
export function lookupData(c: Ctx, root: RuleNode, keys: Value[]): Value | undefined {
  let node = root;
  let base: Value | undefined = c.data;
  const n = keys.length;
  const ov = c.overrides.length > 0;
  for (let i = 0; i < n; i++) {
    if (ov) {
      const o = findOverride(c, node.path);
      if (o !== undefined) return indexPath(o, keys, i);
    }
    if (node.isRule) {
      const v = evalNode(c, node);
      return v === undefined ? undefined : indexPath(v, keys, i);
    }
    const key = keys[i] as Value;
    const child = typeof key === 'string' ? node.children.get(key) : undefined;
    const b = baseChild(base, key);
    if (!child || child.isFunc) return b === undefined ? undefined : indexPath(b, keys, i + 1);
    node = child;
    base = b;
  }
  if (ov) {
    const o = findOverride(c, node.path);
    if (o !== undefined) return o;
  }
  if (node.isRule) return evalNode(c, node);
  return materialize(c, node, base);
}

export function indexPath(v: Value, keys: Value[], from: number): Value | undefined {
  let x: Value | undefined = v;
  for (let i = from; i < keys.length && x !== undefined; i++) {
    const k = keys[i] as Value;
    const y: Value | undefined = indexValue(x, k);
    x = y === undefined && typeof k === 'number' && x instanceof RObject ? x.getStr(String(k)) : y;
  }
  return x;
}

export function walkData(
  c: Ctx,
  f: Frame,
  node: RuleNode,
  base: Value | undefined,
  segs: Seg[],
  i: number,
  k: (v: Value) => void,
): void {
  if (c.overrides.length > 0) {
    const o = findOverride(c, node.path);
    if (o !== undefined) {
      walkValue(c, f, o, segs, i, k);
      return;
    }
  }
  if (node.isRule) {
    const v = evalNode(c, node);
    if (v !== undefined) walkValue(c, f, v, segs, i, k);
    return;
  }
  if (i === segs.length) {
    const v = materialize(c, node, base);
    if (v !== undefined) k(v);
    return;
  }
  const seg = segs[i] as Seg;
  const step = (key: Value) => {
    const child = typeof key === 'string' ? node.children.get(key) : undefined;
    const b = baseChild(base, key);
    if (child && !child.isFunc) walkData(c, f, child, b, segs, i + 1, k);
    else if (b !== undefined) walkValue(c, f, b, segs, i + 1, k);
  };
  if (seg.g) {
    const key = seg.g(c, f);
    if (key !== undefined) step(key);
    return;
  }
  const keys = new Map<string, Value>();
  for (const [kk, ch] of node.children) if (!ch.isFunc) keys.set(keyOf(kk), kk);
  if (base instanceof RObject) for (const kk of base.keys()) keys.set(keyOf(kk), kk);
  const sorted = [...keys.values()].sort(compare);
  for (const key of sorted) {
    if (seg.m) seg.m(c, f, key, () => step(key));
    else if (seg.slot >= 0) {
      f[seg.slot] = key;
      step(key);
      f[seg.slot] = undefined;
    } else step(key);
  }
}

function materialize(c: Ctx, node: RuleNode, base: Value | undefined): Value | undefined {
  if (c.overrides.length > 0) {
    const o = findOverride(c, node.path);
    if (o !== undefined) return o;
  }
  if (node.isFunc) return undefined;
  if (node.isRule) return evalNode(c, node);
  const out = base instanceof RObject ? base.clone() : new RObject();
  if (base !== undefined && !(base instanceof RObject) && node.children.size === 0) return base;
  for (const [k, ch] of node.children) {
    if (ch.isFunc) continue;
    const v = materialize(c, ch, baseChild(base, k));
    if (v !== undefined) out.set(k, v);
  }
  return out;
}

export function evalNode(c: Ctx, node: RuleNode): Value | undefined {
  const memo = c.memo;
  const m = memo.get(node);
  if (m !== undefined) {
    if (m === UNDEF) return undefined;
    if (m === IN_PROGRESS) throw evalError('rego_recursion_error', `rule ${node.name} is recursive`);
    return m;
  }
  memo.set(node, IN_PROGRESS);
  let v: Value | undefined;
  try {
    v = computeNode(c, node);
  } catch (e) {
    memo.delete(node);
    throw e;
  }
  if (v !== undefined && c.overrides.length > 0) v = patchOverrides(c, node.path, v);
  memo.set(node, v === undefined ? UNDEF : v);
  return v;
}

function patchOverrides(c: Ctx, path: string[], v: Value): Value {
  let out = v;
  for (const o of c.overrides)
    if (o.path.length > path.length && isPrefix(path, o.path))
      out = setPath(out, o.path.slice(path.length), o.value);
  return out;
}

function selectRules(c: Ctx, node: RuleNode): CompiledRule[] {
  const idx = node.index;
  if (!idx) return node.rules;
  let v: Value | undefined = c.input;
  for (const p of idx.path) {
    if (v === undefined) break;
    v = indexValue(v, p);
  }
  if (v === undefined) return idx.rest;
  const hit = idx.byKey.get(keyOf(v));
  if (!hit) return idx.rest;
  if (idx.rest.length === 0) return hit;
  return [...hit, ...idx.rest];
}

function computeNode(c: Ctx, node: RuleNode): Value | undefined {
  const rules = selectRules(c, node);
  const first = rules[0] ?? node.rules[0];
  if (!first) {
    if (node.defaultValue) return node.defaultValue(c, []);
    return undefined;
  }
  if (first.kind === 'complete') {
    let result: Value | undefined;
    for (const r of rules) {
      const v = evalCompleteRule(c, r);
      if (v === undefined) continue;
      if (result !== undefined && !equal(result, v))
        throw evalError('eval_conflict_error', 'complete rules must not produce multiple outputs', r.loc);
      result = v;
    }
    if (result === undefined && node.defaultValue) result = node.defaultValue(c, []);
    return result;
  }
  if (first.kind === 'set') {
    const s = new RSet();
    // one continuation for all the node's rules (each rule sets the frame and clause it reads)
    const st: SetState = { f: NO_FRAME, cl: first.clauses[0] as Clause };
    const emit = setEmitter(c, s, st);
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as CompiledRule;
      const f: Frame = new Array(r.nslots);
      const cl = r.clauses[0] as Clause;
      st.f = f;
      st.cl = cl;
      cl.body(c, f, emit);
    }
    return s;
  }
  // object-valued (partial objects, ref heads with variables)
  // containers built here may be extended; values produced by rules may not (that is a conflict)
  const owned = new WeakSet<object>();
  let o: Value = new RObject();
  owned.add(o);
  for (const r of rules) {
    const f: Frame = new Array(r.nslots);
    const cl = r.clauses[0] as Clause;
    let emitted = false;
    const emit = (keys: Value[], val: Value | undefined, elem: Value | undefined) => {
      o = insertNested(o, keys, val, elem, r.loc, owned);
    };
    const runClause = (ci: number): void => {
      const clause = r.clauses[ci] as Clause;
      clause.body(c, f, () => {
        const keys: Value[] = [];
        for (const kg of cl.keys) {
          const kv = kg(c, f);
          if (kv === undefined) return;
          keys.push(kv);
        }
        emitted = true;
        emit(keys, clause.element ? undefined : clause.value?.(c, f), clause.element?.(c, f));
      });
    };
    runClause(0);
    for (let ci = 1; !emitted && ci < r.clauses.length; ci++) runClause(ci);
  }
  const mergeChild = (path: Value[], ch: RuleNode): void => {
    if (ch.isFunc) return;
    if (ch.isRule) {
      const v = evalNode(c, ch);
      if (v !== undefined) o = insertNested(o, path, v, undefined, ch.rules[0]?.loc, owned);
      return;
    }
    for (const [k, g] of ch.children) mergeChild([...path, k], g);
  };
  for (const [k, ch] of node.children) mergeChild([k], ch);
  return o;
}

interface SetState {
  f: Frame;
  cl: Clause;
}
const NO_FRAME: Frame = [];

/**
 * The continuation adding a set rule's element. Made here, not as a named local closure: bundlers
 * that keep function names (tsx, esbuild keepNames) would redefine the name of every such closure.
 */
function setEmitter(c: Ctx, s: RSet, st: SetState): Cont {
  return () => {
    const e = st.cl.element?.(c, st.f);
    if (e !== undefined) s.add(e);
  };
}

function insertNested(
  o: Value,
  keys: Value[],
  val: Value | undefined,
  elem: Value | undefined,
  loc: Location | undefined,
  owned: WeakSet<object>,
): Value {
  const conflict = () => evalError('eval_conflict_error', 'object keys must be unique', loc);
  if (keys.length === 0) {
    if (elem !== undefined) {
      let s = o instanceof RSet && owned.has(o) ? o : undefined;
      if (!s) {
        if (o !== undefined && !(o instanceof RSet)) throw conflict();
        s = o instanceof RSet ? o.clone() : new RSet();
        owned.add(s);
      }
      s.add(elem);
      return s;
    }
    return val as Value;
  }
  if (!(o instanceof RObject) || !owned.has(o)) throw conflict();
  const [k0, ...rest] = keys as [Value, ...Value[]];
  const prev = o.get(k0);
  if (rest.length === 0 && elem === undefined) {
    if (prev !== undefined && !equal(prev, val as Value)) {
      if (prev instanceof RSet && val instanceof RSet && owned.has(prev)) {
        for (const v of val.m.values()) prev.add(v);
        o.set(k0, prev);
        return o;
      }
      throw conflict();
    }
    o.set(k0, val as Value);
    return o;
  }
  let inner = prev;
  if (inner === undefined) {
    inner = rest.length === 0 ? new RSet() : new RObject();
    owned.add(inner);
  }
  o.set(k0, insertNested(inner, rest, val, elem, loc, owned));
  return o;
}

function evalCompleteRule(c: Ctx, r: CompiledRule): Value | undefined {
  const f: Frame = new Array(r.nslots);
  for (const cl of r.clauses) {
    let result: Value | undefined;
    const vg = cl.value as Ground;
    if (cl.constant) {
      if (exists(cl.body, c, f, [])) return vg(c, f);
      for (let i = 0; i < f.length; i++) f[i] = undefined;
      continue;
    }
    cl.body(c, f, () => {
      const v = vg(c, f);
      if (v === undefined) return;
      if (result !== undefined && !equal(result, v))
        throw evalError('eval_conflict_error', 'complete rules must not produce multiple outputs', r.loc);
      result = v;
    });
    if (result !== undefined) return result;
  }
  return undefined;
}

export function callUserFunction(c: Ctx, node: RuleNode, args: Value[]): Value | undefined {
  tick(c);
  let result: Value | undefined;
  for (const r of node.funcs) {
    const f: Frame = new Array(r.nslots);
    let got: Value | undefined;
    for (const cl of r.clauses) {
      const params = cl.params;
      const bindParams = (i: number, k: Cont): void => {
        if (i === params.length) k();
        else (params[i] as Match)(c, f, args[i] as Value, () => bindParams(i + 1, k));
      };
      bindParams(0, () =>
        cl.body(c, f, () => {
          const v = (cl.value as Ground)(c, f);
          if (v === undefined) return;
          if (got !== undefined && !equal(got, v))
            throw evalError(
              'eval_conflict_error',
              'functions must not produce multiple outputs for same inputs',
              r.loc,
            );
          got = v;
        }),
      );
      if (got !== undefined) break;
    }
    if (got === undefined) continue;
    if (result !== undefined && !equal(result, got))
      throw evalError(
        'eval_conflict_error',
        'functions must not produce multiple outputs for same inputs',
        r.loc,
      );
    result = got;
  }
  if (result === undefined && node.defaultRule) {
    const d = node.defaultRule;
    const f: Frame = new Array(d.nslots);
    return (d.clauses[0] as Clause).value?.(c, f);
  }
  return result;
}

/** The built-in context of an evaluation, made once on first use (its fields are fixed per evaluation). */
function builtinContext(c: Ctx): BuiltinContext {
  const b: BuiltinContext = {
    nowNs: c.nowNs ?? BigInt(c.startMs) * 1_000_000n,
    charge(n) {
      c.steps += n;
      if (c.steps > c.maxSteps) budgetExceeded(c);
    },
    print: c.print,
    cache: new Map(),
    seed: c.seed,
  };
  c.bctx = b;
  return b;
}

export function callBuiltin(
  c: Ctx,
  bi: BuiltinDef,
  args: Value[],
  name: string,
  loc?: Location,
): Value | undefined {
  try {
    return bi.fn(args, c.bctx ?? builtinContext(c));
  } catch (e) {
    if (e instanceof RegoError) {
      if (e.code === 'eval_cancel_error') throw e;
      const err = e.location ? e : new RegoError(e.code, e.message, loc);
      if (c.strict || e.code === 'eval_conflict_error') throw err;
      c.builtinErrors.push(err);
      return undefined;
    }
    if (e instanceof RangeError) throw e;
    const err = new BuiltinError(`${name}: ${(e as Error).message}`);
    if (c.strict) throw new RegoError(err.code, err.message, loc);
    c.builtinErrors.push(err);
    return undefined;
  }
}

export function saveCtx(c: Ctx): Ctx {
  return { ...c };
}

export function restoreCtx(c: Ctx, s: Ctx): void {
  c.input = s.input;
  c.data = s.data;
  c.memo = s.memo;
  c.overrides = s.overrides;
  c.fnOverrides = s.fnOverrides;
}

/** Copy-on-write set of a nested path. */
export function setPath(v: Value, path: Value[], x: Value): Value {
  if (path.length === 0) return x;
  const [k, ...rest] = path as [Value, ...Value[]];
  const o = v instanceof RObject ? v.clone() : new RObject();
  o.set(k, setPath(o.get(k) ?? new RObject(), rest, x));
  return o;
}
