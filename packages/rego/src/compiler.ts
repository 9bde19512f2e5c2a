/**
 * Compiler: turns parsed modules into a tree of rule nodes whose bodies are closures.
 * Each body is ordered for safety (OPA's reordering), variables get frame slots, and every
 * expression is linked at compile time to its continuation so evaluation allocates little.
 */
import type { Expr, Module, Rule, Term } from './ast.js';
import type { BuiltinDef } from './builtins/types.js';
import { type Location, RegoError } from './errors.js';
import {
  baseChild,
  type Clause,
  type CompiledRule,
  type Cont,
  type CTerm,
  type Ctx,
  callBuiltin,
  callUserFunction,
  collection,
  constTerm,
  evalError,
  evalGround,
  evalNode,
  exists,
  type FnTarget,
  type Frame,
  forEachEntry,
  type Ground,
  groundTerm,
  indexPath,
  indexValue,
  isPrefix,
  iterAll,
  iterMatch,
  iterOrdered,
  iterTerm,
  lookupData,
  type Match,
  type ModuleEnv,
  RuleNode,
  restoreCtx,
  type Seg,
  type Step,
  saveCtx,
  setPath,
  tick,
  walkData,
  walkValue,
} from './runtime.js';
import { compare, equal, fromJSON, keyOf, RObject, RSet, toRegoString, type Value } from './value.js';

export { type Ctx, evalNode, type Frame, RuleNode, type Step } from './runtime.js';

class NotReady {
  constructor(
    readonly name: string,
    readonly loc: Location,
  ) {}
}

// ---------------------------------------------------------------------------------------------
// Scopes

class Scope {
  readonly vars = new Map<string, number>();
  /** index of the expression that first `:=`-assigns a name (for closures placed before it) */
  readonly assignIdx = new Map<string, number>();
  /** original index of the expression being compiled */
  curExpr = Number.POSITIVE_INFINITY;
  /** like lookup, but a name assigned later in its body is not visible to closures before it */
  lookupVisible(name: string): boolean {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      if (s.vars.has(name)) return (s.assignIdx.get(name) ?? -1) <= s.curExpr;
    }
    return false;
  }
  constructor(
    readonly parent: Scope | undefined,
    readonly rc: RuleCtx,
  ) {}
  lookup(name: string): { slot: number; scope: Scope } | undefined {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      const slot = s.vars.get(name);
      if (slot !== undefined) return { slot, scope: s };
    }
    return undefined;
  }
  owns(slot: number): boolean {
    for (const v of this.vars.values()) if (v === slot) return true;
    return false;
  }
}

class RuleCtx {
  nslots = 0;
  /** data paths (prefixes) and function nodes this rule depends on, for recursion checks */
  deps = new Set<RuleNode>();
  depPrefixes: string[][] = [];
  dynPrefixes: string[][] = [];
  /** value of rego.metadata.chain() / rego.metadata.rule() inside this rule, made on first use */
  chain: Value | undefined = undefined;
  ruleAnnotations: Value | undefined = undefined;
  /** what the metadata is made from (none for queries) */
  metaSrc: { r: Rule; m: Module; node: RuleNode } | undefined = undefined;
  constructor(readonly env: ModuleEnv) {}
  slot(): number {
    return this.nslots++;
  }
}

function collectVars(t: Term, out: Set<string>): void {
  switch (t.t) {
    case 'var':
      out.add(t.name);
      return;
    case 'ref':
      collectVars(t.head, out);
      for (const p of t.path) collectVars(p, out);
      return;
    case 'array':
    case 'set':
      for (const x of t.items) collectVars(x, out);
      return;
    case 'object':
      for (const [k, v] of t.entries) {
        collectVars(k, out);
        collectVars(v, out);
      }
      return;
    case 'call':
      for (const a of t.args) collectVars(a, out);
      return;
    case 'template':
      for (const p of t.parts) if (typeof p !== 'string') collectVars(p, out);
      return;
    default:
      return;
  }
}

function collectExprVars(e: Expr, out: Set<string>): void {
  switch (e.k) {
    case 'term':
      collectVars(e.term, out);
      break;
    case 'unify':
    case 'assign':
      collectVars(e.lhs, out);
      collectVars(e.rhs, out);
      break;
    case 'some':
      for (const v of e.vars) collectVars(v, out);
      break;
    case 'somein':
      if (e.key) collectVars(e.key, out);
      collectVars(e.value, out);
      collectVars(e.domain, out);
      break;
    case 'every':
      collectVars(e.domain, out);
      break;
  }
  for (const w of e.with) collectVars(w.value, out);
}

function collectDeclared(e: Expr, out: Set<string>): void {
  if (e.k === 'some') for (const v of e.vars) collectVars(v, out);
  else if (e.k === 'assign') collectVars(e.lhs, out);
  else if (e.k === 'somein') {
    if (e.key) collectVars(e.key, out);
    collectVars(e.value, out);
  }
}

// ---------------------------------------------------------------------------------------------
// Compiler

export interface CompileOptions {
  builtins: Map<string, BuiltinDef>;
}

interface Resolved {
  root: 'data' | 'input';
  segs: Term[];
}

export class Compiler {
  readonly root = new RuleNode(['data'], undefined);
  readonly errors: RegoError[] = [];
  private envs: ModuleEnv[] = [];
  readonly builtins: Map<string, BuiltinDef>;

  constructor(opts: CompileOptions) {
    this.builtins = opts.builtins;
    for (const name of this.builtins.keys()) this.builtinRoots.add(name.split('.')[0] as string);
  }

  /** Register modules and compile every rule. */
  /** package- and document-scoped annotations, keyed by dotted path */
  private readonly pkgAnnotations = new Map<string, Value>();
  private readonly subpkgAnnotations = new Map<string, Value>();
  private readonly docAnnotations = new Map<string, Value>();

  private indexAnnotations(modules: Module[]): void {
    for (const m of modules) {
      if (m.annotations) {
        const scope = String(m.annotations.scope ?? 'package');
        const target = scope === 'subpackages' ? this.subpkgAnnotations : this.pkgAnnotations;
        target.set(m.pkg.join('.'), normalizeAnnotations(m.annotations, scope));
      }
      for (const r of m.rules) {
        if (r.annotations?.scope !== 'document') continue;
        const path = [...m.pkg, ...staticPrefix(r)];
        this.docAnnotations.set(path.join('.'), normalizeAnnotations(r.annotations, 'document'));
      }
    }
  }

  private attachMetadata(rc: RuleCtx, r: Rule, m: Module, node: RuleNode): void {
    rc.metaSrc = { r, m, node };
  }

  /** rego.metadata.chain() and rego.metadata.rule() of a rule (computed only when a rule calls them). */
  private ruleMetadata(rc: RuleCtx): { chain: Value; ann: Value } {
    if (rc.chain === undefined) {
      rc.chain = [];
      rc.ruleAnnotations = new RObject();
      if (rc.metaSrc) {
        const { r, m, node } = rc.metaSrc;
        this.buildMetadata(rc, r, m, node);
      }
    }
    return { chain: rc.chain, ann: rc.ruleAnnotations as Value };
  }

  private buildMetadata(rc: RuleCtx, r: Rule, m: Module, node: RuleNode): void {
    const rulePath = node.path.slice(1);
    const entry = (path: string[], ann: Value | undefined): Value => {
      const o = new RObject();
      o.set('path', path);
      if (ann !== undefined) o.set('annotations', ann);
      return o;
    };
    const own =
      r.annotations && (r.annotations.scope ?? 'rule') === 'rule'
        ? normalizeAnnotations(r.annotations, 'rule')
        : undefined;
    if (own) rc.ruleAnnotations = own;
    const chain: Value[] = [entry(rulePath, own)];
    const doc = this.docAnnotations.get(rulePath.join('.'));
    if (doc) chain.push(entry(rulePath, doc));
    const pkg = this.pkgAnnotations.get(m.pkg.join('.'));
    if (pkg) chain.push(entry(m.pkg, pkg));
    for (let i = m.pkg.length; i >= 1; i--) {
      const sub = this.subpkgAnnotations.get(m.pkg.slice(0, i).join('.'));
      if (sub) chain.push(entry(m.pkg.slice(0, i), sub));
    }
    rc.chain = chain;
  }

  compileModules(modules: Module[]): void {
    this.indexAnnotations(modules);
    const rulesByPkg = new Map<string, Set<string>>();
    for (const m of modules) {
      const key = m.pkg.join('.');
      let s = rulesByPkg.get(key);
      if (!s) {
        s = new Set();
        rulesByPkg.set(key, s);
      }
      for (const r of m.rules) {
        const first = r.ref[0];
        if (first && first.t === 'scalar') s.add(String(first.v));
      }
    }
    for (const m of modules) {
      const imports = new Map<string, Term>();
      for (const imp of m.imports) {
        const p = imp.path;
        const head = p.t === 'ref' ? p.head : p;
        const hname = head.t === 'var' ? head.name : '';
        if (hname === 'future' || hname === 'rego') continue;
        if (hname !== 'data' && hname !== 'input') {
          this.errors.push(
            new RegoError('rego_parse_error', 'invalid import path: must begin with input or data', imp.loc),
          );
          continue;
        }
        let alias = imp.alias;
        if (!alias) {
          if (p.t === 'ref') {
            const last = p.path[p.path.length - 1];
            alias = last && last.t === 'scalar' ? String(last.v) : undefined;
          } else alias = hname;
        }
        if (alias) imports.set(alias, p);
      }
      const env: ModuleEnv = {
        module: m,
        pkg: m.pkg,
        imports,
        ruleNames: rulesByPkg.get(m.pkg.join('.')) ?? new Set(),
      };
      this.envs.push(env);
      let pkgNode = this.root;
      for (const p of m.pkg) pkgNode = pkgNode.child(p);
      for (const r of m.rules) this.place(r, m, env, pkgNode);
    }
    this.checkConflicts(this.root);
    const mark = (n: RuleNode) => {
      n.isRule = n.pending.some((p) => !p.rule.args);
      for (const c of n.children.values()) mark(c);
    };
    mark(this.root);
    // compile all
    const all: RuleNode[] = [];
    const walk = (n: RuleNode) => {
      all.push(n);
      for (const c of n.children.values()) walk(c);
    };
    walk(this.root);
    for (const n of all) this.compileNode(n);
    this.checkRecursion(all);
    // only the recursion check needs the per-rule compile contexts: do not keep them alive
    this.ruleCtxs.clear();
  }

  private place(r: Rule, m: Module, env: ModuleEnv, pkgNode: RuleNode): void {
    let node = pkgNode;
    for (const t of r.ref) {
      if (t.t === 'scalar' && typeof t.v === 'string') node = node.child(t.v);
      else break;
    }
    if (r.args) {
      if (node.arity >= 0 && node.arity !== r.args.length) {
        this.errors.push(new RegoError('rego_type_error', `conflicting rules ${node.name} found`, r.loc));
        return;
      }
      node.arity = r.args.length;
    }
    node.pending.push({ rule: r, module: m, env });
  }

  private checkConflicts(n: RuleNode): void {
    const kinds = new Set<string>();
    let defaults = 0;
    for (const p of n.pending) {
      if (p.rule.isDefault) defaults++;
      kinds.add(p.rule.args ? 'func' : ruleKind(p.rule, n));
    }
    if (defaults > 1) {
      this.errors.push(
        new RegoError('rego_type_error', `multiple default rules ${n.name} found`, n.pending[1]?.rule.loc),
      );
    }
    const k2 = new Set(kinds);
    if (k2.size > 1 && !(k2.size === 2 && k2.has('complete') && k2.has('object') && false)) {
      this.errors.push(
        new RegoError('rego_type_error', `conflicting rules ${n.name} found`, n.pending[0]?.rule.loc),
      );
    }
    if (kinds.has('complete') && n.children.size > 0) {
      const hasRuleChild = [...n.children.values()].some((c) => hasAnyRules(c));
      if (hasRuleChild)
        this.errors.push(
          new RegoError(
            'rego_type_error',
            `rule ${n.name} conflicts with ${[...n.children.keys()].map((k) => `${n.name}.${k}`)[0]}`,
            n.pending[0]?.rule.loc,
          ),
        );
    }
    for (const c of n.children.values()) this.checkConflicts(c);
  }

  private compileNode(n: RuleNode): void {
    for (const p of n.pending) {
      try {
        const cr = this.compileRule(p.rule, p.module, p.env, n);
        if (!cr) continue;
        if (cr.kind === 'func') {
          if (p.rule.isDefault) n.defaultRule = cr;
          else n.funcs.push(cr);
        } else if (p.rule.isDefault) {
          n.defaultRule = cr;
          n.defaultValue = cr.clauses[0]?.value;
        } else n.rules.push(cr);
      } catch (e) {
        if (e instanceof RegoError) this.errors.push(e);
        else if (e instanceof NotReady)
          this.errors.push(new RegoError('rego_unsafe_var_error', `var ${e.name} is unsafe`, e.loc));
        else throw e;
      }
    }
    buildIndex(n);
  }

  private ruleCtxs = new Map<CompiledRule, RuleCtx>();

  private compileRule(r: Rule, m: Module, env: ModuleEnv, node: RuleNode): CompiledRule | undefined {
    const rc = new RuleCtx(env);
    this.attachMetadata(rc, r, m, node);
    const kind: CompiledRule['kind'] = r.args ? 'func' : ruleKind(r, node);
    const dynKeys = r.ref.slice(node.path.length - 1 - env.pkg.length);
    const clauses: Clause[] = [];
    let params: Match[] = [];
    // parameters that are not patterns (calls, refs, templates) become a var plus a body equality
    const extraBody: Expr[] = [];
    const args = r.args?.map((a, i) => {
      if (isPattern(a)) return a;
      const v: Term = { t: 'var', name: `__param${i}`, loc: a.loc };
      extraBody.push({ k: 'unify', lhs: v, rhs: a, negated: false, with: [], loc: a.loc });
      return v;
    });
    const mk = (body0: Expr[], value: Term | undefined, first: boolean): Clause => {
      const body = extraBody.length ? [...body0, ...extraBody] : body0;
      const headTerms: Term[] = [];
      if (first) {
        for (const t of dynKeys) headTerms.push(t);
        if (r.element) headTerms.push(r.element);
      }
      if (value) headTerms.push(value);
      const scope = new Scope(undefined, rc);
      const bound = new Set<number>();
      if (r.args) {
        const declared = new Set<string>();
        for (const a of args ?? []) collectVars(a, declared);
        for (const name of declared) if (name !== '_') scope.vars.set(name, rc.slot());
      }
      this.openBody(scope, body, headTerms);
      const ps: Match[] = [];
      for (const a of args ?? []) ps.push(this.compileMatch(a, scope, bound));
      if (first) params = ps;
      const bodyStep = this.compileBody(body, scope, bound, true);
      const keys = (first ? dynKeys : dynKeysFor(r, node, env)).map((t) => this.headGround(t, scope, bound));
      const element = r.element ? this.headGround(r.element, scope, bound) : undefined;
      const vterm = value ?? (kind === 'set' ? undefined : { t: 'scalar' as const, v: true, loc: r.loc });
      const vg = vterm ? this.headGround(vterm, scope, bound, kind === 'func') : undefined;
      return {
        body: bodyStep,
        value: vg,
        keys,
        element,
        params: ps,
        constant: !!vterm && vterm.t === 'scalar' && keys.length === 0,
      };
    };
    clauses.push(mk(r.body, r.value, true));
    for (const e of r.elses) clauses.push(mk(e.body, e.value ?? r.value, false));
    const cr: CompiledRule = { kind, nslots: 0, clauses, params, loc: r.loc, rule: r, module: m };
    cr.nslots = rc.nslots;
    cr.guard = findGuard(r, env);
    this.ruleCtxs.set(cr, rc);
    return cr;
  }

  private headGround(t: Term, scope: Scope, bound: Set<number>, isFunc = false): Ground {
    try {
      const ct = this.compileTerm(t, scope, bound);
      if (ct.g) return ct.g;
      const it = ct.it;
      const loc = t.loc;
      return (c, f) => {
        let out: Value | undefined;
        it(c, f, (v) => {
          if (out !== undefined && !equal(out, v))
            throw evalError(
              'eval_conflict_error',
              isFunc
                ? 'functions must not produce multiple outputs for same inputs'
                : 'complete rules must not produce multiple outputs',
              loc,
            );
          out = v;
        });
        return out;
      };
    } catch (e) {
      if (e instanceof NotReady)
        throw new RegoError('rego_unsafe_var_error', `var ${e.name} is unsafe`, e.loc);
      throw e;
    }
  }

  /** Decide which names in this body are locals of `scope`. */
  private openBody(scope: Scope, body: Expr[], extra: Term[]): void {
    const declared = new Set<string>();
    for (const e of body) collectDeclared(e, declared);
    body.forEach((e, i) => {
      if (e.k !== 'assign') return;
      const s = new Set<string>();
      collectVars(e.lhs, s);
      for (const n of s) if (!scope.assignIdx.has(n)) scope.assignIdx.set(n, i);
    });
    const rc = scope.rc;
    for (const n of declared) if (n !== '_' && !scope.vars.has(n)) scope.vars.set(n, rc.slot());
    const names = new Set<string>();
    for (const e of body) collectExprVars(e, names);
    for (const t of extra) collectVars(t, names);
    for (const n of names) {
      if (n === '_' || scope.vars.has(n)) continue;
      if (scope.parent?.lookupVisible(n)) continue;
      if (this.isGlobal(n, rc.env)) continue;
      scope.vars.set(n, rc.slot());
    }
  }

  private isGlobal(n: string, env: ModuleEnv): boolean {
    return (
      n === 'data' || n === 'input' || env.imports.has(n) || env.ruleNames.has(n) || this.builtinRoots.has(n)
    );
  }

  /** first segments of built-in names (count, object, time, ...): not implicit locals */
  private readonly builtinRoots = new Set<string>();

  /** Compile a body with safety reordering. */
  compileBody(body: Expr[], scope: Scope, bound: Set<number>, top: boolean): Step {
    const remaining = body.slice();
    const origIdx = body.map((_e, i) => i);
    const linkers: ((next: Step) => Step)[] = [];
    while (remaining.length > 0) {
      let chosen = -1;
      let firstErr: NotReady | undefined;
      let result: ((next: Step) => Step) | undefined;
      for (let i = 0; i < remaining.length; i++) {
        // compile against `bound` itself; an expression that is not ready yet takes its additions back
        const size0 = bound.size;
        scope.curExpr = origIdx[i] as number;
        try {
          result = this.compileExpr(remaining[i] as Expr, scope, bound);
          chosen = i;
          break;
        } catch (e) {
          if (e instanceof NotReady) {
            rollback(bound, size0);
            firstErr ??= e;
            continue;
          }
          throw e;
        }
      }
      if (chosen < 0 || !result) {
        const e = firstErr as NotReady;
        if (top) throw new RegoError('rego_unsafe_var_error', `var ${e.name} is unsafe`, e.loc);
        throw e;
      }
      remaining.splice(chosen, 1);
      origIdx.splice(chosen, 1);
      linkers.push(result);
    }
    scope.curExpr = Number.POSITIVE_INFINITY;
    let step: Step = DONE;
    for (let i = linkers.length - 1; i >= 0; i--) step = (linkers[i] as (n: Step) => Step)(step);
    return step;
  }

  /** Compile one expression; returns a linker that binds it to its continuation. */
  private compileExpr(e: Expr, scope: Scope, bound: Set<number>): (next: Step) => Step {
    if (e.with.length > 0) return this.compileWith(e, scope, bound);
    if (e.negated) {
      // `not <ground term>` (e.g. `not x in xs`): evaluate the term directly, no cut needed
      const g = e.k === 'term' ? this.plainGroundTerm(e.term, scope, new Set(bound)) : undefined;
      if (g)
        return (next) => (c, f, k) => {
          tick(c);
          const v = g(c, f);
          if (v === undefined || v === false) next(c, f, k);
        };
      const inner = new Set(bound);
      const step = this.compileExprCore(e, scope, inner)(DONE);
      // vars bound only inside the negation must already be bound (except wildcards/locals of closures)
      // (a loop, not a closure: closures here would keep `bound` alive with the compiled steps)
      const newly: number[] = [];
      for (const s of inner) if (!bound.has(s)) newly.push(s);
      for (const s of newly) {
        const name = nameOfSlot(scope, s);
        if (name && !name.startsWith('_')) throw new NotReady(name, e.loc);
      }
      return (next) => (c, f, k) => {
        tick(c);
        if (!exists(step, c, f, newly)) next(c, f, k);
      };
    }
    const core = this.compileExprCore(e, scope, bound, true);
    // the common expression forms count their step themselves (one closure less per expression)
    if (core === lastSelfTicking) return core;
    return (next) => {
      const s = core(next);
      return (c, f, k) => {
        tick(c);
        s(c, f, k);
      };
    };
  }

  private compileWith(e: Expr, scope: Scope, bound: Set<number>): (next: Step) => Step {
    const mods: {
      kind: 'input' | 'data' | 'fn';
      path: string[];
      value: CTerm;
      fnName?: string;
      fnTarget?: FnTarget;
    }[] = [];
    for (const w of e.with) {
      const tgt = w.target;
      const head = tgt.t === 'ref' ? tgt.head : tgt;
      const pathTerms = tgt.t === 'ref' ? tgt.path : [];
      const hname = head.t === 'var' ? head.name : '';
      const strPath = pathTerms.map((p) => (p.t === 'scalar' && typeof p.v === 'string' ? p.v : undefined));
      if (strPath.some((x) => x === undefined))
        throw new RegoError('rego_type_error', 'with keyword target must be a ref with string keys', w.loc);
      const path = strPath as string[];
      const valueFn = this.withValueFunction(w.value, scope);
      const value = valueFn ? { g: () => null, it: () => {} } : this.compileTerm(w.value, scope, bound);
      if (hname === 'input' && !scope.lookup('input')) {
        mods.push({ kind: 'input', path, value });
        continue;
      }
      // function / builtin target?
      const fullName = [hname, ...path].join('.');
      const fnNode = this.resolveFunctionNode(head, pathTerms, scope);
      if (fnNode || this.builtins.has(fullName)) {
        const name = fnNode ? fnNode.name : fullName;
        mods.push({ kind: 'fn', path: [], value, fnName: name, ...(valueFn ? { fnTarget: valueFn } : {}) });
        continue;
      }
      if (hname === 'data' && !scope.lookup('data')) {
        mods.push({ kind: 'data', path, value });
        continue;
      }
      throw new RegoError(
        'rego_type_error',
        `with keyword target must reference existing input, data, or a function`,
        w.loc,
      );
    }
    const inner = { ...e, with: [] } as Expr;
    const step = this.compileExpr(inner, scope, bound)(DONE);
    return (next) => (c, f, k) => {
      const vals: (Value | undefined)[] = mods.map((m) => (m.fnTarget ? null : evalGround(m.value, c, f)));
      if (vals.some((v) => v === undefined)) return;
      const saved = saveCtx(c);
      const applied = saveCtx(c);
      applied.memo = new Map();
      for (let i = 0; i < mods.length; i++) {
        const m = mods[i] as (typeof mods)[number];
        const v = vals[i] as Value;
        if (m.kind === 'input')
          applied.input = m.path.length ? setPath(applied.input ?? new RObject(), m.path, v) : v;
        else if (m.kind === 'data') {
          applied.data = setPath(applied.data, m.path, v);
          applied.overrides = [
            ...applied.overrides.filter((o) => !isPrefix(m.path, o.path)),
            { path: ['data', ...m.path], value: v },
          ];
        } else {
          const fo = new Map(applied.fnOverrides);
          const name = m.fnName as string;
          if (m.fnTarget) {
            const target = m.fnTarget(c);
            // inside the replacement, calls to the replaced function reach the original
            fo.set(name, {
              fn: (c2, args) => {
                const before = c2.fnOverrides;
                const without = new Map(before);
                without.delete(name);
                c2.fnOverrides = without;
                try {
                  return target(c2, args);
                } finally {
                  c2.fnOverrides = before;
                }
              },
            });
          } else fo.set(name, { value: v });
          applied.fnOverrides = fo;
        }
      }
      restoreCtx(c, applied);
      try {
        step(c, f, () => {
          const inner2 = saveCtx(c);
          restoreCtx(c, saved);
          try {
            next(c, f, k);
          } finally {
            restoreCtx(c, inner2);
          }
        });
      } finally {
        restoreCtx(c, saved);
      }
    };
  }

  /** `with f as g` where g names a function: returns a factory for the replacement. */
  private withValueFunction(t: Term, scope: Scope): FnTarget | undefined {
    const head = t.t === 'ref' ? t.head : t;
    const path = t.t === 'ref' ? t.path : [];
    if (head.t !== 'var' || scope.lookup(head.name)) return undefined;
    const node = this.resolveFunctionNode(head, path, scope);
    if (node) return (_c) => (c2, args) => callUserFunction(c2, node, args);
    const name = [head.name, ...path.map((p) => (p.t === 'scalar' ? String(p.v) : '?'))].join('.');
    const bi = this.builtins.get(name);
    if (bi) return (_c) => (c2, args) => callBuiltin(c2, bi, args, name);
    return undefined;
  }

  private resolveFunctionNode(head: Term, path: Term[], scope: Scope): RuleNode | undefined {
    if (head.t !== 'var' || scope.lookup(head.name)) return undefined;
    const res = this.resolveGlobal(head.name, path, scope.rc.env);
    if (res?.root !== 'data') return undefined;
    let node: RuleNode | undefined = this.root;
    for (const s of res.segs) {
      if (s.t !== 'scalar' || typeof s.v !== 'string') return undefined;
      node = node.children.get(s.v);
      if (!node) return undefined;
    }
    return node.isFunc ? node : undefined;
  }

  /** selfTick: the caller counts a step per evaluation; linkers that do it themselves are tagged. */
  private compileExprCore(e: Expr, scope: Scope, bound: Set<number>, selfTick = false): (next: Step) => Step {
    switch (e.k) {
      case 'term':
        return this.compileTermExpr(e.term, scope, bound, selfTick);
      case 'unify':
        return this.compileUnify(e.lhs, e.rhs, scope, bound, e.loc);
      case 'assign': {
        const declared = new Set<string>();
        collectVars(e.lhs, declared);
        for (const n of declared) {
          const l = scope.lookup(n);
          if (n !== '_' && l && bound.has(l.slot) && l.scope === scope)
            throw new RegoError('rego_compile_error', `var ${n} assigned above`, e.loc);
        }
        const rhs = this.compileTerm(e.rhs, scope, bound);
        const slot = rhs.g ? this.freshSlot(e.lhs, scope, bound) : undefined;
        if (slot !== undefined && slot >= 0) return bindGround(rhs.g as Ground, slot, selfTick);
        const m = this.compileMatch(e.lhs, scope, bound);
        return iterMatch(rhs, m);
      }
      case 'some':
        return (next) => next;
      case 'somein': {
        const dom = this.compileTerm(e.domain, scope, bound);
        if (!e.key && dom.g) {
          // `some x in xs` with a fresh variable x: bind the slot in a plain loop
          const slot = this.freshSlot(e.value, scope, bound);
          if (slot !== undefined) {
            const dg = dom.g;
            return ticking(selfTick, (next) => (c, f, k) => {
              if (selfTick) tick(c);
              const d = dg(c, f);
              if (Array.isArray(d)) {
                for (let i = 0; i < d.length; i++) {
                  if (slot >= 0) f[slot] = d[i];
                  next(c, f, k);
                }
              } else if (d instanceof RSet) {
                const xs = d.sorted();
                for (let i = 0; i < xs.length; i++) {
                  if (slot >= 0) f[slot] = xs[i];
                  next(c, f, k);
                }
              } else if (d instanceof RObject) {
                const es = d.sortedEntries();
                for (let i = 0; i < es.length; i++) {
                  if (slot >= 0) f[slot] = (es[i] as [Value, Value])[1];
                  next(c, f, k);
                }
              } else return;
              if (slot >= 0) f[slot] = undefined;
            });
          }
        }
        const km = e.key ? this.compileMatch(e.key, scope, bound) : undefined;
        const vm = this.compileMatch(e.value, scope, bound);
        return (next) => (c, f, k) =>
          dom.it(c, f, (d) =>
            forEachEntry(d, (key, val) => {
              if (km) km(c, f, key, () => vm(c, f, val, () => next(c, f, k)));
              else vm(c, f, val, () => next(c, f, k));
            }),
          );
      }
      case 'every': {
        const dom = this.compileTerm(e.domain, scope, bound);
        const inner = new Scope(scope, scope.rc);
        const decl = new Set<string>();
        if (e.key) collectVars(e.key, decl);
        collectVars(e.value, decl);
        for (const n of decl) if (n !== '_') inner.vars.set(n, scope.rc.slot());
        this.openBody(inner, e.body, []);
        const ib = new Set(bound);
        const km = e.key ? this.compileMatch(e.key, inner, ib) : undefined;
        const vm = this.compileMatch(e.value, inner, ib);
        const body = this.compileBody(e.body, inner, ib, false);
        const locals = [...inner.vars.values()];
        return (next) => (c, f, k) =>
          dom.it(c, f, (d) => {
            if (!(Array.isArray(d) || d instanceof RObject || d instanceof RSet)) return;
            let ok = true;
            forEachEntry(d, (key, val) => {
              if (!ok) return;
              let found = false;
              const run = () => {
                found = exists(body, c, f, locals);
              };
              if (km) km(c, f, key, () => vm(c, f, val, run));
              else vm(c, f, val, run);
              if (!found) ok = false;
            });
            if (ok) next(c, f, k);
          });
      }
    }
  }

  /**
   * The ground evaluator of a term used as an expression, when it binds no new variables and is not
   * a call in output-argument form; otherwise undefined (the caller compiles it the general way).
   */
  private plainGroundTerm(t: Term, scope: Scope, bound: Set<number>): Ground | undefined {
    if (t.t === 'call') {
      const name = this.fnName(t.fn);
      const arity = name ? this.arityOf(t.fn, scope) : undefined;
      if (arity !== undefined && arity >= 0 && t.args.length === arity + 1) return undefined;
    }
    const before = bound.size;
    let ct: CTerm;
    try {
      ct = this.compileTerm(t, scope, bound);
    } catch (e) {
      if (e instanceof NotReady) return undefined;
      throw e;
    }
    return bound.size === before ? ct.g : undefined;
  }

  private compileTermExpr(t: Term, scope: Scope, bound: Set<number>, selfTick = false): (next: Step) => Step {
    if (t.t === 'call') {
      const name = this.fnName(t.fn);
      const arity = name ? this.arityOf(t.fn, scope) : undefined;
      if (arity !== undefined && arity >= 0 && t.args.length === arity + 1) {
        // output argument form: f(a, b, out)
        const call: Term = { t: 'call', fn: t.fn, args: t.args.slice(0, arity), loc: t.loc };
        const ct = this.compileTerm(call, scope, bound);
        const m = this.compileMatch(t.args[arity] as Term, scope, bound);
        return iterMatch(ct, m);
      }
    }
    const ct = this.compileTerm(t, scope, bound);
    const g = ct.g;
    if (g && selfTick)
      return ticking(true, (next) => (c, f, k) => {
        tick(c);
        const v = g(c, f);
        if (v !== undefined && v !== false) next(c, f, k);
      });
    if (g)
      return (next) => (c, f, k) => {
        const v = g(c, f);
        if (v !== undefined && v !== false) next(c, f, k);
      };
    const it = ct.it;
    return (next) => (c, f, k) =>
      it(c, f, (v) => {
        if (v !== false) next(c, f, k);
      });
  }

  /** The term compiled (its bindings added to bound), or undefined (bound unchanged) if it is not ready. */
  private tryTerm(t: Term, scope: Scope, bound: Set<number>): CTerm | undefined {
    const size0 = bound.size;
    try {
      return this.compileTerm(t, scope, bound);
    } catch (e) {
      if (e instanceof NotReady && !this.isOuterUnbound(e, scope)) {
        rollback(bound, size0);
        return undefined;
      }
      throw e;
    }
  }

  private compileUnify(
    lhs: Term,
    rhs: Term,
    scope: Scope,
    bound: Set<number>,
    loc: Location,
  ): (next: Step) => Step {
    const lvar = lhs.t === 'var' && this.isUnboundLocal(lhs.name, scope, bound);
    const rvar = rhs.t === 'var' && this.isUnboundLocal(rhs.name, scope, bound);
    if (!lvar) {
      const l = this.tryTerm(lhs, scope, bound);
      if (l) {
        const m = this.compileMatch(rhs, scope, bound);
        return iterMatch(l, m);
      }
    }
    if (!rvar) {
      const r = this.tryTerm(rhs, scope, bound);
      if (r) {
        const m = this.compileMatch(lhs, scope, bound);
        return iterMatch(r, m);
      }
    }
    if (lhs.t === 'array' && rhs.t === 'array' && lhs.items.length === rhs.items.length) {
      const parts: ((n: Step) => Step)[] = [];
      const rem = lhs.items.map((x, i) => [x, rhs.items[i] as Term] as const);
      // order element unifications so each has one evaluable side
      while (rem.length) {
        let done = false;
        for (let i = 0; i < rem.length; i++) {
          const b2 = new Set(bound);
          try {
            const [a, b] = rem[i] as readonly [Term, Term];
            parts.push(this.compileUnify(a, b, scope, b2, loc));
            for (const s of b2) bound.add(s);
            rem.splice(i, 1);
            done = true;
            break;
          } catch (e) {
            if (!(e instanceof NotReady)) throw e;
          }
        }
        if (!done) {
          const [a] = rem[0] as readonly [Term, Term];
          throw new NotReady(firstVarName(a) ?? '?', a.loc);
        }
      }
      return (next) => {
        let s = next;
        for (let i = parts.length - 1; i >= 0; i--) s = (parts[i] as (n: Step) => Step)(s);
        return s;
      };
    }
    if (lhs.t === 'object' && rhs.t === 'object' && lhs.entries.length === rhs.entries.length) {
      const lk = lhs.entries.map(([k]) => (k.t === 'scalar' ? keyOf(k.v) : undefined));
      const rmap = new Map<string, Term>();
      for (const [k, v] of rhs.entries) if (k.t === 'scalar') rmap.set(keyOf(k.v), v);
      if (lk.every((k) => k !== undefined && rmap.has(k))) {
        const l2: Term = { t: 'array', items: lhs.entries.map(([, v]) => v), loc: lhs.loc };
        const r2: Term = { t: 'array', items: lk.map((k) => rmap.get(k as string) as Term), loc: rhs.loc };
        return this.compileUnify(l2, r2, scope, bound, loc);
      }
      return (_next) => (_c, _f, _k) => {};
    }
    const name =
      (lvar ? (lhs as { name: string }).name : undefined) ??
      firstUnbound(lhs, scope, bound) ??
      firstUnbound(rhs, scope, bound) ??
      '?';
    throw new NotReady(name, lhs.loc);
  }

  private isOuterUnbound(e: NotReady, scope: Scope): boolean {
    const l = scope.lookup(e.name);
    return !!l && l.scope !== scope;
  }

  private isUnboundLocal(name: string, scope: Scope, bound: Set<number>): boolean {
    if (name === '_') return true;
    const l = scope.lookup(name);
    return !!l && !bound.has(l.slot);
  }

  /**
   * When matching `t` only binds a fresh variable of this scope (what compileMatch would do by
   * assigning its slot), marks it bound and returns the slot (-1 for `_`); otherwise undefined.
   */
  private freshSlot(t: Term, scope: Scope, bound: Set<number>): number | undefined {
    if (t.t !== 'var') return undefined;
    if (t.name === '_') return -1;
    const l = scope.lookup(t.name);
    if (!l || bound.has(l.slot) || l.scope !== scope) return undefined;
    bound.add(l.slot);
    return l.slot;
  }

  private compileTerms(ts: Term[], scope: Scope, bound: Set<number>): CTerm[] {
    const out: CTerm[] = [];
    for (const t of ts) out.push(this.compileTerm(t, scope, bound));
    return out;
  }

  private compileMatches(ts: Term[], scope: Scope, bound: Set<number>): Match[] {
    const out: Match[] = [];
    for (const t of ts) out.push(this.compileMatch(t, scope, bound));
    return out;
  }

  /** Pattern matcher: binds unbound vars, compares everything else. */
  compileMatch(t: Term, scope: Scope, bound: Set<number>): Match {
    switch (t.t) {
      case 'var': {
        if (t.name === '_') return (_c, _f, _v, k) => k();
        const l = scope.lookup(t.name);
        if (l) {
          const slot = l.slot;
          if (bound.has(slot))
            return (_c, f, v, k) => {
              if (equal(f[slot] as Value, v)) k();
            };
          if (l.scope !== scope) throw new NotReady(t.name, t.loc);
          bound.add(slot);
          return (_c, f, v, k) => {
            f[slot] = v;
            k();
            f[slot] = undefined;
          };
        }
        break;
      }
      case 'array': {
        const ms = this.compileMatches(t.items, scope, bound);
        const n = ms.length;
        const go = (c: Ctx, f: Frame, v: Value[], i: number, k: Cont): void => {
          if (i === n) k();
          else (ms[i] as Match)(c, f, v[i] as Value, () => go(c, f, v, i + 1, k));
        };
        return (c, f, v, k) => {
          if (Array.isArray(v) && v.length === n) go(c, f, v, 0, k);
        };
      }
      case 'object': {
        const ks = this.compileTerms(
          t.entries.map((e) => e[0]),
          scope,
          bound,
        );
        if (ks.some((k) => !k.g)) throw new NotReady(firstVarName(t) ?? '?', t.loc);
        const ms = this.compileMatches(
          t.entries.map((e) => e[1]),
          scope,
          bound,
        );
        const n = ms.length;
        const go = (c: Ctx, f: Frame, v: RObject, i: number, k: Cont): void => {
          if (i === n) {
            k();
            return;
          }
          const key = (ks[i] as CTerm).g?.(c, f);
          if (key === undefined) return;
          const x = v.get(key);
          if (x === undefined) return;
          (ms[i] as Match)(c, f, x, () => go(c, f, v, i + 1, k));
        };
        return (c, f, v, k) => {
          if (v instanceof RObject && v.size === n) go(c, f, v, 0, k);
        };
      }
      default:
        break;
    }
    const ct = this.compileTerm(t, scope, bound);
    const g = ct.g;
    if (g)
      return (c, f, v, k) => {
        const x = g(c, f);
        if (x !== undefined && equal(x, v)) k();
      };
    return (c, f, v, k) =>
      ct.it(c, f, (x) => {
        if (equal(x, v)) k();
      });
  }

  private fnName(fn: Term): string | undefined {
    if (fn.t === 'var') return fn.name;
    if (fn.t === 'ref' && fn.head.t === 'var') {
      const parts = [fn.head.name];
      for (const p of fn.path) {
        if (p.t !== 'scalar' || typeof p.v !== 'string') return undefined;
        parts.push(p.v);
      }
      return parts.join('.');
    }
    return undefined;
  }

  private arityOf(fn: Term, scope: Scope): number | undefined {
    const head = fn.t === 'ref' ? fn.head : fn;
    const node = this.resolveFunctionNode(head, fn.t === 'ref' ? fn.path : [], scope);
    if (node) return node.arity;
    const name = this.fnName(fn);
    const bi = name ? this.builtins.get(name) : undefined;
    return bi?.arity;
  }

  private resolveGlobal(name: string, path: Term[], env: ModuleEnv): Resolved | undefined {
    if (name === 'data') return { root: 'data', segs: path };
    if (name === 'input') return { root: 'input', segs: path };
    const imp = env.imports.get(name);
    if (imp) {
      const head = imp.t === 'ref' ? imp.head : imp;
      const ip = imp.t === 'ref' ? imp.path : [];
      return { root: (head as { name: string }).name === 'input' ? 'input' : 'data', segs: [...ip, ...path] };
    }
    if (env.ruleNames.has(name)) {
      const loc = path[0]?.loc ?? { file: '', line: 0, col: 0 };
      return {
        root: 'data',
        segs: [
          ...env.pkg.map((p) => ({ t: 'scalar' as const, v: p, loc })),
          { t: 'scalar', v: name, loc },
          ...path,
        ],
      };
    }
    return undefined;
  }

  /** Compile a term for evaluation. Throws NotReady when an input var is unbound. */
  compileTerm(t: Term, scope: Scope, bound: Set<number>): CTerm {
    switch (t.t) {
      case 'scalar':
        return constTerm(t.v);
      case 'var': {
        if (t.name === '_') throw new NotReady('_', t.loc);
        const l = scope.lookup(t.name);
        if (l) {
          if (!bound.has(l.slot)) throw new NotReady(t.name, t.loc);
          return slotTerm(l.slot);
        }
        return this.compileRef({ t: 'ref', head: t, path: [], loc: t.loc }, scope, bound);
      }
      case 'ref':
        return this.compileRef(t, scope, bound);
      case 'array':
        return collection(this.compileTerms(t.items, scope, bound), arrayOf);
      case 'set':
        return collection(this.compileTerms(t.items, scope, bound), setOf);
      case 'object': {
        const items: CTerm[] = [];
        for (const [k, v] of t.entries) {
          items.push(this.compileTerm(k, scope, bound));
          items.push(this.compileTerm(v, scope, bound));
        }
        return collection(items, objectBuilder(items));
      }
      case 'arraycomp':
      case 'setcomp':
      case 'objectcomp': {
        const inner = new Scope(scope, scope.rc);
        const headTerms = t.t === 'objectcomp' ? [t.key, t.value] : [t.head];
        this.openBody(inner, t.body, headTerms);
        const ib = new Set(bound);
        const body = this.compileBody(t.body, inner, ib, false);
        const heads: CTerm[] = [];
        for (const h of headTerms) {
          try {
            heads.push(this.compileTerm(h, inner, ib));
          } catch (e) {
            if (e instanceof NotReady && !this.isOuterUnbound(e, inner))
              throw new RegoError('rego_unsafe_var_error', `var ${e.name} is unsafe`, e.loc);
            throw e;
          }
        }
        const h0 = heads[0] as CTerm;
        if (t.t === 'arraycomp') return arrayComprehension(body, h0);
        if (t.t === 'setcomp') return setComprehension(body, h0);
        return objectComprehension(body, h0, heads[1], t.loc);
      }
      case 'call':
        return this.compileCall(t, scope, bound);
      case 'template': {
        const parts: (string | CTerm)[] = [];
        for (const p of t.parts) parts.push(typeof p === 'string' ? p : this.compileTerm(p, scope, bound));
        return groundTerm((c, f) => {
          let s = '';
          for (const p of parts) {
            if (typeof p === 'string') s += p;
            else {
              let v: Value | undefined;
              let n = 0;
              if (p.g) v = p.g(c, f);
              else
                p.it(c, f, (x) => {
                  v = x;
                  n++;
                });
              if (n > 1)
                throw evalError(
                  'eval_conflict_error',
                  'template expression produced multiple outputs',
                  t.loc,
                );
              s += v === undefined ? '<undefined>' : typeof v === 'string' ? v : toRegoString(v);
            }
          }
          return s;
        });
      }
    }
  }

  private compileRef(t: Extract<Term, { t: 'ref' }>, scope: Scope, bound: Set<number>): CTerm {
    const head = t.head;
    let base: CTerm | undefined;
    let segsT: Term[] = t.path;
    let dataRoot = false;
    if (head.t === 'var') {
      const l = head.name === '_' ? undefined : scope.lookup(head.name);
      if (l) {
        if (!bound.has(l.slot)) throw new NotReady(head.name, head.loc);
        base = slotTerm(l.slot);
      } else {
        const res = this.resolveGlobal(head.name, t.path, scope.rc.env);
        if (!res) {
          if (head.name === '_') throw new NotReady('_', head.loc);
          throw new NotReady(head.name, head.loc);
        }
        segsT = res.segs;
        if (res.root === 'input') base = INPUT_TERM;
        else dataRoot = true;
      }
    } else base = this.compileTerm(head, scope, bound);
    const segs: Seg[] = [];
    for (const s of segsT) segs.push(this.compileSeg(s, scope, bound));
    if (dataRoot) {
      this.recordDep(scope.rc, segsT);
      const root = this.root;
      if (segs.every((s) => s.g)) {
        const gs = segs.map((s) => s.g as Ground);
        const n = gs.length;
        const keys: Value[] = new Array(n);
        const allConst = segsT.every((s) => s.t === 'scalar');
        const constKeys = allConst ? segsT.map((s) => (s as { v: Value }).v) : undefined;
        const plan = dataPlan(root, segsT);
        if (plan?.rule) {
          // the ref reaches a rule through constant keys: evaluate it, index the rest
          const { node, from } = plan;
          if (constKeys)
            return groundTerm((c) => {
              if (c.overrides.length > 0) return lookupData(c, root, constKeys);
              const v = evalNode(c, node);
              return v === undefined || from === n ? v : indexPath(v, constKeys, from);
            });
        } else if (plan) {
          // the ref reaches base data only: walk it without consulting the rule tree
          const { from } = plan;
          const lead = segsT.slice(0, from).map((s) => (s as { v: Value }).v);
          if (from < n && lead.every((k) => typeof k === 'string'))
            return baseDataTerm(
              root,
              lead.map((k) => intern(keyOf(k))),
              lead,
              gs.slice(from),
            );
          return groundTerm((c, f) => {
            const ks: Value[] = new Array(n);
            for (let i = 0; i < n; i++) {
              const k = (gs[i] as Ground)(c, f);
              if (k === undefined) return undefined;
              ks[i] = k;
            }
            if (c.overrides.length > 0) return lookupData(c, root, ks);
            let b: Value | undefined = c.data;
            for (let i = 0; i < from && b !== undefined; i++) b = baseChild(b, ks[i] as Value);
            return b === undefined ? undefined : indexPath(b, ks, from);
          });
        }
        if (constKeys) return groundTerm((c) => lookupData(c, root, constKeys));
        return groundTerm((c, f) => {
          const ks: Value[] = new Array(n);
          for (let i = 0; i < n; i++) {
            const k = (gs[i] as Ground)(c, f);
            if (k === undefined) return undefined;
            ks[i] = k;
          }
          void keys;
          return lookupData(c, root, ks);
        });
      }
      return iterTerm((c, f, k) => walkData(c, f, root, c.data, segs, 0, k));
    }
    const b = base as CTerm;
    if (segs.length === 0) return b;
    if (b.g && segsT.every((s) => s.t === 'scalar' && typeof s.v === 'string')) {
      // constant string keys (input.a.b, x.y): look the object keys up directly
      const bg = b.g;
      const ks = segsT.map((s) => (s as { v: string }).v);
      const mks = ks.map((k) => intern(keyOf(k)));
      if (ks.length === 1) {
        const k0 = ks[0] as string;
        const m0 = mks[0] as string;
        const fs = b.fs;
        if (b === INPUT_TERM)
          // a field of the input (input.resource): read it directly
          return groundTerm((c) => {
            const v = c.input;
            if (v instanceof RObject) {
              const e = v.m.get(m0);
              return e === undefined ? undefined : e[1];
            }
            return v === undefined ? undefined : indexValue(v, k0);
          });
        if (fs !== undefined)
          // a field of a local variable (g.resource): read the frame directly
          return groundTerm((_c, f) => {
            const v = f[fs];
            if (v instanceof RObject) {
              const e = v.m.get(m0);
              return e === undefined ? undefined : e[1];
            }
            return v === undefined ? undefined : indexValue(v, k0);
          });
        return groundTerm((c, f) => {
          const v = bg(c, f);
          if (v instanceof RObject) {
            const e = v.m.get(m0);
            return e === undefined ? undefined : e[1];
          }
          return v === undefined ? undefined : indexValue(v, k0);
        });
      }
      const n = ks.length;
      return groundTerm((c, f) => {
        let v = bg(c, f);
        for (let i = 0; i < n && v !== undefined; i++) {
          if (v instanceof RObject) {
            const e = v.m.get(mks[i] as string);
            v = e === undefined ? undefined : e[1];
          } else v = indexValue(v, ks[i] as string);
        }
        return v;
      });
    }
    if (b.g && segs.every((s) => s.g)) {
      const bg = b.g;
      const gs = segs.map((s) => s.g as Ground);
      const n = gs.length;
      return groundTerm((c, f) => {
        let v = bg(c, f);
        for (let i = 0; i < n && v !== undefined; i++) {
          const k = (gs[i] as Ground)(c, f);
          if (k === undefined) return undefined;
          v = indexValue(v, k);
        }
        return v;
      });
    }
    return iterTerm((c, f, k) => b.it(c, f, (v) => walkValue(c, f, v, segs, 0, k)));
  }

  private compileSeg(s: Term, scope: Scope, bound: Set<number>): Seg {
    if (s.t === 'var') {
      if (s.name === '_') return { g: undefined, slot: -1, m: undefined };
      const l = scope.lookup(s.name);
      if (l && !bound.has(l.slot)) {
        if (l.scope !== scope) throw new NotReady(s.name, s.loc);
        bound.add(l.slot);
        return { g: undefined, slot: l.slot, m: undefined };
      }
    }
    const size0 = bound.size;
    try {
      const ct = this.compileTerm(s, scope, bound);
      if (ct.g) return { g: ct.g, slot: -1, m: undefined };
    } catch (e) {
      if (!(e instanceof NotReady) || this.isOuterUnbound(e, scope)) throw e;
    }
    rollback(bound, size0);
    return { g: undefined, slot: -1, m: this.compileMatch(s, scope, bound) };
  }

  private recordDep(rc: RuleCtx, segs: Term[]): void {
    const prefix: string[] = [];
    for (const s of segs) {
      if (s.t === 'scalar' && typeof s.v === 'string') prefix.push(s.v);
      else if (s.t === 'scalar')
        return; // non-string keys never reach a rule
      else {
        // dynamic key: depend on the rule the static prefix reaches, if any; evaluation catches the rest
        rc.dynPrefixes.push(prefix);
        return;
      }
    }
    rc.depPrefixes.push(prefix);
  }

  private compileCall(t: Extract<Term, { t: 'call' }>, scope: Scope, bound: Set<number>): CTerm {
    const name = this.fnName(t.fn);
    if (!name) throw new RegoError('rego_type_error', 'invalid function call', t.loc);
    {
      const h = t.fn.t === 'ref' ? t.fn.head : t.fn;
      if (
        !this.resolveFunctionNode(h, t.fn.t === 'ref' ? t.fn.path : [], scope) &&
        !this.builtins.has(name) &&
        name !== 'print'
      )
        throw new RegoError('rego_type_error', `undefined function ${name}`, t.loc);
    }
    // compile arguments in an order that binds iteration vars first (e.g. `x == xs[x]`)
    const args: CTerm[] = new Array(t.args.length);
    const order: number[] = [];
    const rem = t.args.map((_a, i) => i);
    // fast path: left to right
    {
      const size0 = bound.size;
      try {
        for (let i = 0; i < t.args.length; i++) args[i] = this.compileTerm(t.args[i] as Term, scope, bound);
        for (const i of rem) order.push(i);
        rem.length = 0;
      } catch (e) {
        if (!(e instanceof NotReady)) throw e;
        rollback(bound, size0);
      }
    }
    while (rem.length) {
      let picked = -1;
      let firstErr: NotReady | undefined;
      for (let j = 0; j < rem.length; j++) {
        const b2 = new Set(bound);
        try {
          args[rem[j] as number] = this.compileTerm(t.args[rem[j] as number] as Term, scope, b2);
          for (const x of b2) bound.add(x);
          picked = j;
          break;
        } catch (e) {
          if (!(e instanceof NotReady)) throw e;
          firstErr ??= e;
        }
      }
      if (picked < 0) throw firstErr as NotReady;
      order.push(rem[picked] as number);
      rem.splice(picked, 1);
    }
    const head = t.fn.t === 'ref' ? t.fn.head : t.fn;
    const node = this.resolveFunctionNode(head, t.fn.t === 'ref' ? t.fn.path : [], scope);
    let impl: (c: Ctx, vs: Value[]) => Value | undefined;
    let fullName: string;
    if (node) {
      if (t.args.length !== node.arity)
        throw new RegoError(
          'rego_type_error',
          `function ${node.name} has arity ${node.arity}, got ${t.args.length} arguments`,
          t.loc,
        );
      scope.rc.deps.add(node);
      fullName = node.name;
      impl = userImpl(node);
    } else {
      if (name === 'rego.metadata.chain' && t.args.length === 0) {
        const chain = this.ruleMetadata(scope.rc).chain;
        return groundTerm(() => chain);
      }
      if (name === 'rego.metadata.rule' && t.args.length === 0) {
        const ann = this.ruleMetadata(scope.rc).ann;
        return groundTerm(() => ann);
      }
      if (name === 'print') {
        return groundTerm((c, f) => {
          const parts = args.map((a) => {
            const v = evalGround(a, c, f);
            return v === undefined ? '<undefined>' : typeof v === 'string' ? v : toRegoString(v);
          });
          c.print(parts.join(' '));
          return true;
        });
      }
      const bi = this.builtins.get(name);
      if (!bi) {
        // call through a data ref to something that is not a known function
        throw new RegoError('rego_type_error', `undefined function ${name}`, t.loc);
      }
      if (bi.arity >= 0 && t.args.length !== bi.arity)
        throw new RegoError(
          'rego_type_error',
          `function ${name} has arity ${bi.arity}, got ${t.args.length} arguments`,
          t.loc,
        );
      fullName = name;
      impl = builtinImpl(bi, name, t.loc);
      if (bi.relation) {
        return iterTerm((c, f, k) =>
          iterAll(args, 0, [], c, f, (vs) => {
            const r = impl(c, vs.slice());
            if (Array.isArray(r)) for (const x of r) k(x);
          }),
        );
      }
    }
    // built-ins with an allocation-free path take it unless `with` replaced a function
    return callTerm(args, order, node ? undefined : this.builtins.get(name), makeCall(fullName, impl));
  }

  // -----------------------------------------------------------------------------------------
  // recursion

  private checkRecursion(all: RuleNode[]): void {
    const depsOf = new Map<RuleNode, Set<RuleNode>>();
    for (const n of all) {
      const s = new Set<RuleNode>();
      for (const cr of [...n.rules, ...n.funcs, ...(n.defaultRule ? [n.defaultRule] : [])]) {
        const rc = this.ruleCtxs.get(cr);
        if (!rc) continue;
        for (const d of rc.deps) s.add(d);
        for (const p of rc.depPrefixes) {
          let node: RuleNode | undefined = this.root;
          for (const k of p) {
            if (!node || node.isRule) break;
            node = node.children.get(k);
          }
          if (!node) continue;
          addRuleNodes(node, s);
        }
        for (const p of rc.dynPrefixes) {
          let node: RuleNode | undefined = this.root;
          for (const k of p) {
            if (!node || node.isRule) break;
            node = node.children.get(k);
          }
          if (node?.isRule) s.add(node);
        }
      }
      depsOf.set(n, s);
    }
    const state = new Map<RuleNode, number>();
    const stack: RuleNode[] = [];
    const reported = new Set<RuleNode>();
    const visit = (n: RuleNode) => {
      state.set(n, 1);
      stack.push(n);
      for (const d of depsOf.get(n) ?? []) {
        const st = state.get(d);
        if (st === 1) {
          if (!reported.has(d)) {
            reported.add(d);
            const cyc = stack.slice(stack.indexOf(d)).map((x) => x.name);
            const loc = (d.rules[0] ?? d.funcs[0] ?? d.defaultRule)?.loc;
            this.errors.push(
              new RegoError(
                'rego_recursion_error',
                `rule ${d.name} is recursive: ${[...cyc, d.name].join(' -> ')}`,
                loc,
              ),
            );
          }
        } else if (st === undefined) visit(d);
      }
      stack.pop();
      state.set(n, 2);
    };
    for (const n of all) if (!state.has(n)) visit(n);
  }

  /** Compile a query against the compiled modules. */
  compileQuery(
    body: Expr[],
    env: ModuleEnv | undefined,
  ): { step: Step; nslots: number; vars: Map<string, number> } {
    const rc = new RuleCtx(
      env ?? { module: undefined as unknown as Module, pkg: [], imports: new Map(), ruleNames: new Set() },
    );
    const scope = new Scope(undefined, rc);
    this.openBody(scope, body, []);
    try {
      const step = this.compileBody(body, scope, new Set(), true);
      return { step, nslots: rc.nslots, vars: scope.vars };
    } catch (e) {
      if (e instanceof NotReady)
        throw new RegoError('rego_unsafe_var_error', `var ${e.name} is unsafe`, e.loc);
      throw e;
    }
  }
}

/**
 * Where a data ref with these segments lands in the rule tree, decided at compile time from its
 * constant leading keys: `{ rule: true, node, from }` when it reaches rule `node` after `from` keys,
 * `{ rule: false, from }` when it leaves the tree for base data after `from` keys (walk the first
 * `from` keys with baseChild, index the rest), undefined when that depends on a runtime key or the
 * ref ends on a namespace (the general lookup handles those).
 */
function dataPlan(
  root: RuleNode,
  segs: Term[],
): { rule: true; node: RuleNode; from: number } | { rule: false; from: number } | undefined {
  let node = root;
  for (let i = 0; i < segs.length; i++) {
    if (node.isRule) return { rule: true, node, from: i };
    const s = segs[i] as Term;
    if (s.t !== 'scalar') return undefined;
    const child = typeof s.v === 'string' ? node.children.get(s.v) : undefined;
    if (!child || child.isFunc) return { rule: false, from: i + 1 };
    node = child;
  }
  if (node.isRule) return { rule: true, node, from: segs.length };
  return undefined;
}

// Runtime closures are made by these module-level helpers rather than inline in the compiler's
// methods: a closure made inside a method keeps that method's whole context alive (its scope and
// bound-variable sets), which made compiled policies large and slow to build.

/**
 * `data.a.b[k]…` that leaves the rule tree for base data after its constant string keys `lead`
 * (map keys mks): look those up directly, then index with the runtime keys `rest`.
 */
function baseDataTerm(root: RuleNode, mks: string[], lead: Value[], rest: Ground[]): CTerm {
  const nl = mks.length;
  const nr = rest.length;
  return groundTerm((c, f) => {
    const ks: Value[] = new Array(nr);
    for (let i = 0; i < nr; i++) {
      const k = (rest[i] as Ground)(c, f);
      if (k === undefined) return undefined;
      ks[i] = k;
    }
    if (c.overrides.length > 0) return lookupData(c, root, [...lead, ...ks]);
    let b: Value | undefined = c.data;
    for (let i = 0; i < nl; i++) {
      if (!(b instanceof RObject)) return undefined;
      const e = b.m.get(mks[i] as string);
      if (e === undefined) return undefined;
      b = e[1];
    }
    return indexPath(b as Value, ks, 0);
  });
}

type CallImpl = (c: Ctx, vs: Value[]) => Value | undefined;

// The closures of a call are made by these helpers so they keep only what they use alive (not the
// compiler's scope, bound set and terms), and stay unnamed (tsx keeps names: a named closure costs
// a property definition each time one is made).

function userImpl(node: RuleNode): CallImpl {
  return (c, vs) => callUserFunction(c, node, vs);
}

function builtinImpl(bi: BuiltinDef, name: string, loc: Location): CallImpl {
  return (c, vs) => callBuiltin(c, bi, vs, name, loc);
}

/** A call honouring `with` replacements of the function (by its full name). */
function makeCall(fullName: string, impl: CallImpl): CallImpl {
  return (c, vs) => {
    if (c.fnOverrides.size > 0) {
      const o = c.fnOverrides.get(fullName);
      if (o) return 'value' in o ? o.value : o.fn(c, vs);
    }
    return impl(c, vs);
  };
}

/** The term of a call with compiled arguments (evaluated in `order` when some iterate). */
function callTerm(args: CTerm[], order: number[], bi: BuiltinDef | undefined, call: CallImpl): CTerm {
  const n = args.length;
  if (args.every((a) => a.g)) {
    const gs = args.map((a) => a.g as Ground);
    if (n === 1 && bi?.fast1) {
      const fast = bi.fast1;
      const g0 = gs[0] as Ground;
      return groundTerm((c, f) => {
        const a = g0(c, f);
        if (a === undefined) return undefined;
        if (c.fnOverrides.size === 0) {
          const r = fast(a);
          if (r !== undefined) return r;
        }
        return call(c, [a]);
      });
    }
    if (n === 2 && bi?.fast2) {
      const fast = bi.fast2;
      const g0 = gs[0] as Ground;
      const g1 = gs[1] as Ground;
      return groundTerm((c, f) => {
        const a = g0(c, f);
        if (a === undefined) return undefined;
        const b = g1(c, f);
        if (b === undefined) return undefined;
        if (c.fnOverrides.size === 0) {
          const r = fast(a, b);
          if (r !== undefined) return r;
        }
        return call(c, [a, b]);
      });
    }
    if (n === 3 && bi?.fast3) {
      const fast = bi.fast3;
      const g0 = gs[0] as Ground;
      const g1 = gs[1] as Ground;
      const g2 = gs[2] as Ground;
      return groundTerm((c, f) => {
        const a = g0(c, f);
        if (a === undefined) return undefined;
        const b = g1(c, f);
        if (b === undefined) return undefined;
        const d = g2(c, f);
        if (d === undefined) return undefined;
        if (c.fnOverrides.size === 0) {
          const r = fast(a, b, d);
          if (r !== undefined) return r;
        }
        return call(c, [a, b, d]);
      });
    }
    if (n === 1) {
      const g0 = gs[0] as Ground;
      return groundTerm((c, f) => {
        const a = g0(c, f);
        return a === undefined ? undefined : call(c, [a]);
      });
    }
    if (n === 2) {
      const g0 = gs[0] as Ground;
      const g1 = gs[1] as Ground;
      return groundTerm((c, f) => {
        const a = g0(c, f);
        if (a === undefined) return undefined;
        const b = g1(c, f);
        return b === undefined ? undefined : call(c, [a, b]);
      });
    }
    return groundTerm((c, f) => {
      const vs: Value[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = (gs[i] as Ground)(c, f);
        if (v === undefined) return undefined;
        vs[i] = v;
      }
      return call(c, vs);
    });
  }
  return iterTerm((c, f, k) =>
    iterOrdered(args, order, 0, new Array(n), c, f, (vs) => {
      const r = call(c, vs.slice());
      if (r !== undefined) k(r);
    }),
  );
}

/** Take back the slots added to bound since it had size0 of them (a Set iterates in insertion order). */
function rollback(bound: Set<number>, size0: number): void {
  if (bound.size === size0) return;
  const added: number[] = [];
  let i = 0;
  for (const s of bound) if (i++ >= size0) added.push(s);
  for (const s of added) bound.delete(s);
}

/** Add the rules and functions at and under node to s. */
function addRuleNodes(x: RuleNode, s: Set<RuleNode>): void {
  if (x.isRule || x.isFunc) s.add(x);
  for (const ch of x.children.values()) addRuleNodes(ch, s);
}

/** The step that just continues (the end of every body). */
const DONE: Step = (_c, _f, k) => k();

/** The term `input` (one shared term: it reads only the context). */
const INPUT_TERM: CTerm = groundTerm((c) => c.input);

/** The same string, internalized (so map lookups with it compare by identity against data keys). */
function intern(s: string): string {
  return Object.keys({ [s]: 0 })[0] ?? s;
}

function slotTerm(slot: number): CTerm {
  const t = groundTerm((_c, f) => f[slot]);
  t.fs = slot;
  return t;
}

function arrayOf(vs: Value[]): Value {
  return vs;
}

function setOf(vs: Value[]): Value {
  return RSet.of(vs);
}

/**
 * The builder of an object literal: with distinct constant string keys (the usual case) the key
 * order is sorted once here, so built objects need no sorting when compared or converted to JSON.
 */
function objectBuilder(items: CTerm[]): (vs: Value[]) => Value {
  const n = items.length / 2;
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = items[2 * i]?.k;
    if (typeof k !== 'string' || keys.includes(k)) return objectOf;
    keys.push(k);
  }
  const order = keys.map((_, i) => i).sort((a, b) => compare(keys[a] as string, keys[b] as string));
  const sortedKeys = order.map((i) => keys[i] as string);
  const mkeys = sortedKeys.map((k) => keyOf(k));
  const valueAt = order.map((i) => 2 * i + 1);
  return (vs) => {
    const vals: Value[] = new Array(n);
    for (let i = 0; i < n; i++) vals[i] = vs[valueAt[i] as number] as Value;
    return RObject.sortedStrings(sortedKeys, mkeys, vals);
  };
}

function objectOf(vs: Value[]): Value {
  const o = new RObject();
  for (let i = 0; i < vs.length; i += 2) o.set(vs[i] as Value, vs[i + 1] as Value);
  return o;
}

function arrayComprehension(body: Step, h0: CTerm): CTerm {
  const hg = h0.g;
  if (hg)
    return groundTerm((c, f) => {
      const out: Value[] = [];
      body(c, f, () => {
        const v = hg(c, f);
        if (v !== undefined) out.push(v);
      });
      return out;
    });
  return groundTerm((c, f) => {
    const out: Value[] = [];
    body(c, f, () => h0.it(c, f, (v) => out.push(v)));
    return out;
  });
}

function setComprehension(body: Step, h0: CTerm): CTerm {
  const hg = h0.g;
  if (hg)
    return groundTerm((c, f) => {
      const out = new RSet();
      body(c, f, () => {
        const v = hg(c, f);
        if (v !== undefined) out.add(v);
      });
      return out;
    });
  return groundTerm((c, f) => {
    const out = new RSet();
    body(c, f, () => h0.it(c, f, (v) => out.add(v)));
    return out;
  });
}

function objectComprehension(body: Step, h0: CTerm, h1: CTerm | undefined, loc: Location): CTerm {
  return groundTerm((c, f) => {
    const out = new RObject();
    body(c, f, () =>
      h0.it(c, f, (kv) =>
        h1?.it(c, f, (vv) => {
          const prev = out.get(kv);
          if (prev !== undefined && !equal(prev, vv))
            throw evalError('eval_conflict_error', 'object keys must be unique', loc);
          out.set(kv, vv);
        }),
      ),
    );
    return out;
  });
}

/**
 * The last linker made whose steps count their own evaluation step: compileExpr, which asks for one
 * and checks right after, then does not wrap it in a counting step.
 */
let lastSelfTicking: ((next: Step) => Step) | undefined;

function ticking(ticks: boolean, link: (next: Step) => Step): (next: Step) => Step {
  if (ticks) lastSelfTicking = link;
  return link;
}

/** `x := <ground term>` for a fresh x: set the slot, continue, clear it. */
function bindGround(g: Ground, slot: number, selfTick: boolean): (next: Step) => Step {
  return ticking(selfTick, (next) => (c, f, k) => {
    if (selfTick) tick(c);
    const v = g(c, f);
    if (v === undefined) return;
    f[slot] = v;
    next(c, f, k);
    f[slot] = undefined;
  });
}

function isPattern(t: Term): boolean {
  if (t.t === 'var' || t.t === 'scalar') return true;
  if (t.t === 'array') return t.items.every(isPattern);
  if (t.t === 'object') return t.entries.every(([k, v]) => k.t === 'scalar' && isPattern(v));
  return false;
}

function ruleKind(r: Rule, node: RuleNode): CompiledRule['kind'] {
  if (r.args) return 'func';
  const groundLen = node.path.length;
  void groundLen;
  const dyn = r.ref.some((t) => !(t.t === 'scalar' && typeof t.v === 'string'));
  if (r.element) return dyn ? 'object' : 'set';
  return dyn ? 'object' : 'complete';
}

function dynKeysFor(r: Rule, node: RuleNode, env: ModuleEnv): Term[] {
  return r.ref.slice(node.path.length - 1 - env.pkg.length);
}

function hasAnyRules(n: RuleNode): boolean {
  if (n.pending.length > 0) return true;
  for (const c of n.children.values()) if (hasAnyRules(c)) return true;
  return false;
}

function nameOfSlot(scope: Scope, slot: number): string | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent)
    for (const [n, v] of s.vars) if (v === slot) return n;
  return undefined;
}

function firstVarName(t: Term): string | undefined {
  const s = new Set<string>();
  collectVars(t, s);
  return [...s][0];
}

function firstUnbound(t: Term, scope: Scope, bound: Set<number>): string | undefined {
  const s = new Set<string>();
  collectVars(t, s);
  for (const n of s) {
    const l = scope.lookup(n);
    if (l && !bound.has(l.slot)) return n;
  }
  return undefined;
}

/** Simple equality guards `input.a.b == "const"` used to index rules. */
function findGuard(r: Rule, env: ModuleEnv): { path: string[]; key: string } | undefined {
  if (r.elses.length > 0) return undefined;
  for (const e of r.body) {
    if (e.negated || e.with.length) continue;
    let a: Term | undefined;
    let b: Term | undefined;
    if (e.k === 'unify') {
      a = e.lhs;
      b = e.rhs;
    } else if (e.k === 'term' && e.term.t === 'call' && e.term.fn.t === 'var' && e.term.fn.name === 'equal') {
      a = e.term.args[0];
      b = e.term.args[1];
    }
    if (!a || !b) continue;
    if (a.t === 'scalar') [a, b] = [b, a];
    if (
      b.t !== 'scalar' ||
      a.t !== 'ref' ||
      a.head.t !== 'var' ||
      a.head.name !== 'input' ||
      env.imports.has('input')
    )
      continue;
    const path: string[] = [];
    let ok = true;
    for (const p of a.path) {
      if (p.t === 'scalar' && typeof p.v === 'string') path.push(p.v);
      else ok = false;
    }
    if (ok) return { path, key: keyOf(b.v) };
  }
  return undefined;
}

function buildIndex(n: RuleNode): void {
  if (n.rules.length < 4) return;
  const counts = new Map<string, number>();
  for (const r of n.rules)
    if (r.guard) counts.set(r.guard.path.join('\u0000'), (counts.get(r.guard.path.join('\u0000')) ?? 0) + 1);
  let best: string | undefined;
  let bestN = 0;
  for (const [k, v] of counts)
    if (v > bestN) {
      best = k;
      bestN = v;
    }
  if (best === undefined || bestN < 3) return;
  const byKey = new Map<string, CompiledRule[]>();
  const rest: CompiledRule[] = [];
  for (const r of n.rules) {
    if (r.guard && r.guard.path.join('\u0000') === best) {
      let l = byKey.get(r.guard.key);
      if (!l) {
        l = [];
        byKey.set(r.guard.key, l);
      }
      l.push(r);
    } else rest.push(r);
  }
  n.index = { path: best === '' ? [] : best.split('\u0000'), byKey, rest };
}

function staticPrefix(r: Rule): string[] {
  const out: string[] = [];
  for (const t of r.ref) {
    if (t.t === 'scalar' && typeof t.v === 'string') out.push(t.v);
    else break;
  }
  return out;
}

/** OPA's annotation shape: scope set, authors as {name, email} objects. */
function normalizeAnnotations(a: Record<string, unknown>, scope: string): Value {
  const out: Record<string, unknown> = { ...a, scope };
  if (Array.isArray(a.authors) || typeof a.authors === 'string') {
    const list = Array.isArray(a.authors) ? a.authors : [a.authors];
    out.authors = list.map((x) => {
      if (typeof x !== 'string') return x;
      const m = /^(.*?)\s*<([^>]+)>\s*$/.exec(x);
      return m ? { name: m[1], email: m[2] } : { name: x.trim() };
    });
  }
  return fromJSON(out);
}
