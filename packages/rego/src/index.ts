/**
 * @caracal/rego — a Rego (OPA 1.x, v1 syntax) engine: lexer, parser, compiler to closures,
 * top-down evaluator with backtracking, and one table of built-ins (./builtins/index.ts).
 *
 * Public API
 * - `compile(modules, options?) → { ok: true, policy } | { ok: false, errors }`
 *     modules: `Record<file, source>` or `{ file, source }[]`; options.builtins adds/replaces
 *     built-ins. Each error is a `RegoError { code, message, location: { file, line, col } }` with
 *     OPA's codes: rego_parse_error, rego_compile_error, rego_type_error (arity, unknown
 *     function, conflicting rules), rego_unsafe_var_error, rego_recursion_error.
 * - `policy.evaluate(query, opts) → Bindings[] | undefined`
 *     One object per solution (plain JSON: sets → sorted arrays, big integers → bigint);
 *     undefined when the query has no solution. opts: { input, data, strict, maxSteps
 *     (default 5e6), timeoutMs (default 5000), nowNs, print }. Throws RegoError:
 *     eval_conflict_error, eval_builtin_error / eval_type_error (only when strict, as OPA's
 *     strict-builtin-errors; otherwise the call is undefined), eval_cancel_error (budget).
 * - `policy.evaluateRaw(query, opts)` — same, keeping Rego values (RSet, RObject, bigint).
 * - `policy.decide(path, opts)` / `decideRaw` — value of one document, e.g.
 *     `decide("data.zone.allow", { input })`; the fast path for decisions. `data` is converted
 *     to Rego values once per object (cached by identity): pass the same object for every request
 *     and a new object, not a mutated one, when it changes. `input` is converted on every call.
 * - `policy.test(opts) → TestResult[]` — every `test_*` rule, as `opa test` does.
 * - `runConformance(dir)` / `formatReport(report)` — OPA YAML test-case runner.
 * - CLI glue lives in `./cli.ts` (`registerPolicyCommands(program)`), imported separately so the
 *   engine does not pull in commander.
 */
export type { Expr, Module, Rule, Term } from './ast.js';
export type { BuiltinContext, BuiltinDef, BuiltinFn } from './builtins/index.js';
export { BuiltinError, defaultBuiltins } from './builtins/index.js';
export { type CaseOutcome, type ConformanceReport, formatReport, runConformance } from './conformance.js';
export { type Location, RegoCompileErrors, RegoError } from './errors.js';
export { parseModule, parseQuery } from './parser.js';
export {
  type Bindings,
  CompiledPolicy,
  type CompileOptions,
  type CompileResult,
  compile,
  type EvaluateOptions,
  type ModuleSource,
  type TestResult,
} from './policy.js';
export { fromJSON, RObject, RSet, toJSON, type Value } from './value.js';
