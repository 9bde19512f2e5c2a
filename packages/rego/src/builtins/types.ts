import { RegoError } from '../errors.js';
import { isNumber, RObject, RSet, typeName, type Value } from '../value.js';

/** Per-evaluation facilities a built-in may use. */
export interface BuiltinContext {
  /** nanoseconds since epoch, fixed for the whole evaluation */
  nowNs: bigint;
  /** charge evaluation budget (throws when exhausted) */
  charge(n: number): void;
  print(msg: string): void;
  /** cache shared by built-ins for one evaluation */
  cache: Map<string, unknown>;
  seed: number;
}

export type BuiltinFn = (args: Value[], ctx: BuiltinContext) => Value | undefined;

export interface BuiltinDef {
  name: string;
  /** number of operands; -1 for variadic (print) */
  arity: number;
  fn: BuiltinFn;
  /** true: the result depends on more than the operands (not constant-folded) */
  nondeterministic?: boolean;
  /** the built-in is a relation: fn returns an array of alternative results (e.g. walk) */
  relation?: boolean;
  /**
   * Optional allocation-free paths for hot built-ins, by arity. Each must return exactly what fn
   * returns for the operands, or undefined to defer to fn (for errors, unusual operand types, cache
   * misses). They never see the evaluation context and must not throw.
   */
  fast1?: (a: Value) => Value | undefined;
  fast2?: (a: Value, b: Value) => Value | undefined;
  fast3?: (a: Value, b: Value, c: Value) => Value | undefined;
}

/** Raised by built-ins: eval_builtin_error unless code says otherwise. */
export class BuiltinError extends RegoError {
  constructor(message: string, code = 'eval_builtin_error') {
    super(code, message);
  }
}

export function typeErr(name: string, pos: number, want: string, got: Value): BuiltinError {
  return new BuiltinError(
    `${name}: operand ${pos} must be ${want} but got ${typeName(got)}`,
    'eval_type_error',
  );
}

export function str(name: string, args: Value[], i: number): string {
  const v = args[i] as Value;
  if (typeof v !== 'string') throw typeErr(name, i + 1, 'string', v);
  return v;
}
export function num(name: string, args: Value[], i: number): number | bigint {
  const v = args[i] as Value;
  if (!isNumber(v)) throw typeErr(name, i + 1, 'number', v);
  return v;
}
export function fnum(name: string, args: Value[], i: number): number {
  return Number(num(name, args, i));
}
export function int(name: string, args: Value[], i: number): number {
  const v = num(name, args, i);
  const n = Number(v);
  if (!Number.isInteger(n))
    throw new BuiltinError(
      `${name}: operand ${i + 1} must be integer number but got floating-point number`,
      'eval_type_error',
    );
  return n;
}
export function arr(name: string, args: Value[], i: number): Value[] {
  const v = args[i] as Value;
  if (!Array.isArray(v)) throw typeErr(name, i + 1, 'array', v);
  return v;
}
export function obj(name: string, args: Value[], i: number): RObject {
  const v = args[i] as Value;
  if (!(v instanceof RObject)) throw typeErr(name, i + 1, 'object', v);
  return v;
}
export function set(name: string, args: Value[], i: number): RSet {
  const v = args[i] as Value;
  if (!(v instanceof RSet)) throw typeErr(name, i + 1, 'set', v);
  return v;
}
export function bool(name: string, args: Value[], i: number): boolean {
  const v = args[i] as Value;
  if (typeof v !== 'boolean') throw typeErr(name, i + 1, 'boolean', v);
  return v;
}
/** elements of an array or set */
export function coll(name: string, args: Value[], i: number, want = 'one of {array, set}'): Value[] {
  const v = args[i] as Value;
  if (Array.isArray(v)) return v;
  if (v instanceof RSet) return v.sorted();
  throw typeErr(name, i + 1, want, v);
}
