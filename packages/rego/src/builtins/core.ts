import {
  compare,
  compareFast,
  compareNum,
  equal,
  isInteger,
  isNumber,
  normInt,
  RObject,
  RSet,
  toBig,
  typeName,
  type Value,
} from '../value.js';
import { arr, type BuiltinDef, BuiltinError, coll, fnum, num, obj, set, str, typeErr } from './types.js';

type N = number | bigint;

/** Integer-exact arithmetic: bigint when either side is beyond 2^53, floats otherwise. */
export function arith(op: '+' | '-' | '*', a: N, b: N): N {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = op === '+' ? a + b : op === '-' ? a - b : a * b;
    if (Number.isInteger(a) && Number.isInteger(b) && !Number.isSafeInteger(r) && Number.isFinite(r)) {
      const ba = BigInt(a);
      const bb = BigInt(b);
      return normInt(op === '+' ? ba + bb : op === '-' ? ba - bb : ba * bb);
    }
    return Number.isInteger(a) && Number.isInteger(b) ? r : decimalRound(r);
  }
  if (isInteger(a) && isInteger(b)) {
    const ba = toBig(a);
    const bb = toBig(b);
    return normInt(op === '+' ? ba + bb : op === '-' ? ba - bb : ba * bb);
  }
  const x = Number(a);
  const y = Number(b);
  return decimalRound(op === '+' ? x + y : op === '-' ? x - y : x * y);
}

/**
 * OPA computes with arbitrary-precision decimals, so 0.1 + 0.2 == 0.3. We keep doubles but round
 * float results to 15 significant digits, which removes binary representation noise.
 */
function decimalRound(r: number): number {
  if (!Number.isFinite(r) || Number.isInteger(r)) return r;
  return Number(r.toPrecision(15));
}

function div(a: N, b: N): N {
  if (Number(b) === 0) throw new BuiltinError('div: divide by zero');
  if (isInteger(a) && isInteger(b)) {
    const ba = toBig(a);
    const bb = toBig(b);
    if (ba % bb === 0n) return normInt(ba / bb);
  }
  return Number(a) / Number(b);
}

function rem(a: N, b: N): N {
  if (!isInteger(a) || !isInteger(b)) throw new BuiltinError('rem: modulo on floating-point number');
  if (Number(b) === 0) throw new BuiltinError('rem: modulo by zero');
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a % b;
    return r === 0 ? 0 : r;
  }
  return normInt(toBig(a) % toBig(b));
}

function numOrSetOp(
  name: string,
  args: Value[],
  numOp: (a: N, b: N) => N,
  setOp?: (a: RSet, b: RSet) => RSet,
): Value {
  const a = args[0] as Value;
  const b = args[1] as Value;
  if (isNumber(a) && isNumber(b)) return numOp(a, b);
  if (setOp && a instanceof RSet && b instanceof RSet) return setOp(a, b);
  if (setOp) {
    if (!isNumber(a) && !(a instanceof RSet)) throw typeErr(name, 1, 'one of {number, set}', a);
    if (!isNumber(b) && !(b instanceof RSet)) throw typeErr(name, 2, 'one of {number, set}', b);
    throw typeErr(name, 2, isNumber(a) ? 'number' : 'set', b);
  }
  if (!isNumber(a)) throw typeErr(name, 1, 'number', a);
  throw typeErr(name, 2, 'number', b);
}

function setDiff(a: RSet, b: RSet): RSet {
  const out = new RSet();
  for (const [k, v] of a.m) if (!b.m.has(k)) out.m.set(k, v);
  return out;
}
export function setUnion(a: RSet, b: RSet): RSet {
  const out = a.clone();
  for (const [k, v] of b.m) out.m.set(k, v);
  return out;
}
function setInter(a: RSet, b: RSet): RSet {
  const out = new RSet();
  for (const [k, v] of a.m) if (b.m.has(k)) out.m.set(k, v);
  return out;
}

function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

function numUnary(name: string, f: (x: number) => number): BuiltinDef {
  return {
    name,
    arity: 1,
    fn: (a) => {
      const v = num(name, a, 0);
      if (typeof v === 'bigint') return v;
      return f(v);
    },
  };
}

/** `x in c` */
function member2(x: Value, c: Value): boolean {
  if (Array.isArray(c)) {
    for (let i = 0; i < c.length; i++) if (equal(c[i] as Value, x)) return true;
    return false;
  }
  if (c instanceof RSet) return c.has(x);
  if (c instanceof RObject) {
    for (const [, [, v]] of c.m) if (equal(v, x)) return true;
    return false;
  }
  return false;
}

function count(args: Value[]): Value {
  const v = args[0] as Value;
  if (typeof v === 'string') return [...v].length;
  if (Array.isArray(v)) return v.length;
  if (v instanceof RObject || v instanceof RSet) return v.size;
  throw typeErr('count', 1, 'one of {array, object, set, string}', v);
}

function sumProd(name: string, args: Value[], mul: boolean): Value {
  const items = coll(name, args, 0);
  let acc: N = mul ? 1 : 0;
  for (const x of items) {
    if (!isNumber(x)) throw typeErr(name, 1, 'one of {array, set} of numbers', x);
    acc = arith(mul ? '*' : '+', acc, x);
  }
  return acc;
}

function maxMin(name: string, args: Value[], sign: number): Value | undefined {
  const items = coll(name, args, 0);
  if (items.length === 0) return undefined;
  let best = items[0] as Value;
  for (const x of items) if (compare(x, best) * sign > 0) best = x;
  return best;
}

function range(name: string, a: N, b: N, step: N, charge: (n: number) => void): Value[] {
  if (!isInteger(a))
    throw new BuiltinError(
      `${name}: operand 1 must be integer number but got floating-point number`,
      'eval_type_error',
    );
  if (!isInteger(b))
    throw new BuiltinError(
      `${name}: operand 2 must be integer number but got floating-point number`,
      'eval_type_error',
    );
  if (!isInteger(step))
    throw new BuiltinError(
      `${name}: operand 3 must be integer number but got floating-point number`,
      'eval_type_error',
    );
  const s = Math.abs(Number(step));
  if (s <= 0) throw new BuiltinError(`${name}: step must be a positive integer`);
  const x = Number(a);
  const y = Number(b);
  const n = Math.floor(Math.abs(y - x) / s) + 1;
  charge(n);
  const out: Value[] = new Array(n);
  const dir = y >= x ? 1 : -1;
  for (let i = 0; i < n; i++) out[i] = x + dir * i * s;
  return out;
}

function bitsOp(name: string, f: (a: bigint, b: bigint) => bigint): BuiltinDef {
  return {
    name,
    arity: 2,
    fn: (args) => {
      const a = num(name, args, 0);
      const b = num(name, args, 1);
      if (!isInteger(a))
        throw new BuiltinError(
          `${name}: operand 1 must be integer number but got floating-point number`,
          'eval_type_error',
        );
      if (!isInteger(b))
        throw new BuiltinError(
          `${name}: operand 2 must be integer number but got floating-point number`,
          'eval_type_error',
        );
      return normInt(f(toBig(a), toBig(b)));
    },
  };
}

function isType(name: string, pred: (v: Value) => boolean): BuiltinDef {
  return { name, arity: 1, fn: (a) => pred(a[0] as Value) };
}

function toNumber(args: Value[]): Value | undefined {
  const v = args[0] as Value;
  if (v === null) return 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (isNumber(v)) return v;
  if (typeof v === 'string') {
    const t = v;
    if (!/^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(t)) {
      if (/^[+-]?(inf|infinity|nan)$/i.test(t))
        throw new BuiltinError('to_number: invalid syntax', 'eval_type_error');
      throw new BuiltinError(`strconv.ParseFloat: parsing ${JSON.stringify(t)}: invalid syntax`);
    }
    if (/^[+-]?[0-9]+$/.test(t)) return normInt(BigInt(t));
    return Number(t);
  }
  throw typeErr('to_number', 1, 'one of {null, boolean, number, string}', v);
}

export const coreBuiltins: BuiltinDef[] = [
  // comparison
  { name: 'equal', arity: 2, fn: (a) => equal(a[0] as Value, a[1] as Value), fast2: equal },
  { name: 'neq', arity: 2, fn: (a) => !equal(a[0] as Value, a[1] as Value), fast2: (x, y) => !equal(x, y) },
  {
    name: 'lt',
    arity: 2,
    fn: (a) => compare(a[0] as Value, a[1] as Value) < 0,
    fast2: (x, y) => compare(x, y) < 0,
  },
  {
    name: 'lte',
    arity: 2,
    fn: (a) => compare(a[0] as Value, a[1] as Value) <= 0,
    fast2: (x, y) => compare(x, y) <= 0,
  },
  {
    name: 'gt',
    arity: 2,
    fn: (a) => compare(a[0] as Value, a[1] as Value) > 0,
    fast2: (x, y) => compare(x, y) > 0,
  },
  {
    name: 'gte',
    arity: 2,
    fn: (a) => compare(a[0] as Value, a[1] as Value) >= 0,
    fast2: (x, y) => compare(x, y) >= 0,
  },
  // arithmetic
  { name: 'plus', arity: 2, fn: (a) => numOrSetOp('plus', a, (x, y) => arith('+', x, y)) },
  { name: 'minus', arity: 2, fn: (a) => numOrSetOp('minus', a, (x, y) => arith('-', x, y), setDiff) },
  { name: 'mul', arity: 2, fn: (a) => numOrSetOp('mul', a, (x, y) => arith('*', x, y)) },
  { name: 'div', arity: 2, fn: (a) => numOrSetOp('div', a, div) },
  { name: 'rem', arity: 2, fn: (a) => numOrSetOp('rem', a, rem) },
  numUnary('round', roundHalfAway),
  numUnary('ceil', Math.ceil),
  numUnary('floor', Math.floor),
  {
    name: 'abs',
    arity: 1,
    fn: (a) => {
      const v = num('abs', a, 0);
      return typeof v === 'bigint' ? (v < 0n ? -v : v) : Math.abs(v);
    },
  },
  {
    name: 'numbers.range',
    arity: 2,
    fn: (a, c) => range('numbers.range', num('numbers.range', a, 0), num('numbers.range', a, 1), 1, c.charge),
  },
  {
    name: 'numbers.range_step',
    arity: 3,
    fn: (a, c) => {
      const step = num('numbers.range_step', a, 2);
      if (Number(step) <= 0)
        throw new BuiltinError('numbers.range_step: step must be a positive number above zero');
      return range(
        'numbers.range_step',
        num('numbers.range_step', a, 0),
        num('numbers.range_step', a, 1),
        step,
        c.charge,
      );
    },
  },
  // bits
  bitsOp('bits.and', (a, b) => a & b),
  bitsOp('bits.or', (a, b) => a | b),
  bitsOp('bits.xor', (a, b) => a ^ b),
  bitsOp('bits.lsh', (a, b) => {
    if (b < 0n)
      throw new BuiltinError(
        'bits.lsh: operand 2 must be an unsigned integer number but got a negative integer',
        'eval_type_error',
      );
    return a << b;
  }),
  bitsOp('bits.rsh', (a, b) => {
    if (b < 0n)
      throw new BuiltinError(
        'bits.rsh: operand 2 must be an unsigned integer number but got a negative integer',
        'eval_type_error',
      );
    return a >> b;
  }),
  {
    name: 'bits.negate',
    arity: 1,
    fn: (a) => {
      const v = num('bits.negate', a, 0);
      if (!isInteger(v))
        throw new BuiltinError(
          'bits.negate: operand 1 must be integer number but got floating-point number',
          'eval_type_error',
        );
      return normInt(~toBig(v));
    },
  },
  // aggregates
  {
    name: 'count',
    arity: 1,
    fn: count,
    fast1: (v) =>
      Array.isArray(v) ? v.length : v instanceof RObject || v instanceof RSet ? v.size : undefined,
  },
  { name: 'sum', arity: 1, fn: (a) => sumProd('sum', a, false) },
  { name: 'product', arity: 1, fn: (a) => sumProd('product', a, true) },
  { name: 'max', arity: 1, fn: (a) => maxMin('max', a, 1) },
  { name: 'min', arity: 1, fn: (a) => maxMin('min', a, -1) },
  {
    name: 'sort',
    arity: 1,
    fn: (a) => {
      const v = a[0] as Value;
      if (Array.isArray(v)) return [...v].sort(compareFast);
      if (v instanceof RSet) return [...v.sorted()];
      throw typeErr('sort', 1, 'one of {array, set}', v);
    },
    fast1: (v) =>
      Array.isArray(v) ? [...v].sort(compareFast) : v instanceof RSet ? [...v.sorted()] : undefined,
  },
  // sets
  { name: 'and', arity: 2, fn: (a) => setInter(set('and', a, 0), set('and', a, 1)) },
  { name: 'or', arity: 2, fn: (a) => setUnion(set('or', a, 0), set('or', a, 1)) },
  {
    name: 'intersection',
    arity: 1,
    fn: (a) => {
      const s = set('intersection', a, 0);
      let acc: RSet | undefined;
      for (const x of s.sorted()) {
        if (!(x instanceof RSet)) throw typeErr('intersection', 1, 'set of sets', a[0] as Value);
        acc = acc ? setInter(acc, x) : x;
      }
      return acc ?? new RSet();
    },
  },
  {
    name: 'union',
    arity: 1,
    fn: (a) => {
      const s = set('union', a, 0);
      let acc = new RSet();
      for (const x of s.sorted()) {
        if (!(x instanceof RSet)) throw typeErr('union', 1, 'set of sets', a[0] as Value);
        acc = setUnion(acc, x);
      }
      return acc;
    },
  },
  // membership
  {
    name: 'internal.member_2',
    arity: 2,
    fn: (a) => member2(a[0] as Value, a[1] as Value),
    fast2: member2,
  },
  {
    name: 'internal.member_3',
    arity: 3,
    fn: (a) => {
      const k = a[0] as Value;
      const x = a[1] as Value;
      const c = a[2] as Value;
      if (Array.isArray(c))
        return (
          isNumber(k) &&
          Number.isInteger(Number(k)) &&
          c[Number(k)] !== undefined &&
          equal(c[Number(k)] as Value, x)
        );
      if (c instanceof RObject) {
        const v = c.get(k);
        return v !== undefined && equal(v, x);
      }
      if (c instanceof RSet) return equal(k, x) && c.has(x);
      return false;
    },
  },
  // types
  isType('is_number', isNumber),
  isType('is_string', (v) => typeof v === 'string'),
  isType('is_boolean', (v) => typeof v === 'boolean'),
  isType('is_array', (v) => Array.isArray(v)),
  isType('is_set', (v) => v instanceof RSet),
  isType('is_object', (v) => v instanceof RObject),
  isType('is_null', (v) => v === null),
  { name: 'type_name', arity: 1, fn: (a) => typeName(a[0] as Value) },
  { name: 'to_number', arity: 1, fn: toNumber },
  // arrays
  { name: 'array.concat', arity: 2, fn: (a) => [...arr('array.concat', a, 0), ...arr('array.concat', a, 1)] },
  {
    name: 'array.slice',
    arity: 3,
    fn: (a) => {
      const xs = arr('array.slice', a, 0);
      let i = Math.trunc(fnum('array.slice', a, 1));
      let j = Math.trunc(fnum('array.slice', a, 2));
      if (i < 0) i = 0;
      if (j > xs.length) j = xs.length;
      if (j < i) return [];
      return xs.slice(i, j);
    },
  },
  { name: 'array.reverse', arity: 1, fn: (a) => [...arr('array.reverse', a, 0)].reverse() },
  // objects
  {
    name: 'object.get',
    arity: 3,
    fn: (a) => {
      const o = obj('object.get', a, 0);
      const k = a[1] as Value;
      if (Array.isArray(k)) {
        let cur: Value | undefined = o;
        for (const p of k) {
          if (cur instanceof RObject) cur = cur.get(p);
          else if (Array.isArray(cur) && isNumber(p)) cur = cur[Number(p)];
          else if (cur instanceof RSet) cur = cur.has(p) ? p : undefined;
          else cur = undefined;
          if (cur === undefined) return a[2] as Value;
        }
        return cur as Value;
      }
      const v = o.get(k);
      return v === undefined ? (a[2] as Value) : v;
    },
    fast3: (o, k, d) => {
      if (!(o instanceof RObject) || Array.isArray(k)) return undefined;
      const v = typeof k === 'string' ? o.getStr(k) : o.get(k);
      return v === undefined ? d : v;
    },
  },
  {
    name: 'object.keys',
    arity: 1,
    fn: (a) => RSet.of(obj('object.keys', a, 0).keys()),
  },
  {
    name: 'object.remove',
    arity: 2,
    fn: (a) => {
      const o = obj('object.remove', a, 0);
      const ks = a[1] as Value;
      let keys: Value[];
      if (Array.isArray(ks)) keys = ks;
      else if (ks instanceof RSet) keys = ks.sorted();
      else if (ks instanceof RObject) keys = ks.keys();
      else throw typeErr('object.remove', 2, 'one of {object, set, array}', ks);
      const out = o.clone();
      for (const k of keys) out.delete(k);
      return out;
    },
  },
  {
    name: 'object.filter',
    arity: 2,
    fn: (a) => {
      const o = obj('object.filter', a, 0);
      const ks = a[1] as Value;
      let keys: Value[];
      if (Array.isArray(ks)) keys = ks;
      else if (ks instanceof RSet) keys = ks.sorted();
      else if (ks instanceof RObject) keys = ks.keys();
      else throw typeErr('object.filter', 2, 'one of {object, set, array}', ks);
      const out = new RObject();
      for (const k of keys) {
        const v = o.get(k);
        if (v !== undefined) out.set(k, v);
      }
      return out;
    },
  },
  {
    name: 'object.union',
    arity: 2,
    fn: (a) => mergeObjects(obj('object.union', a, 0), obj('object.union', a, 1)),
  },
  {
    name: 'object.union_n',
    arity: 1,
    fn: (a) => {
      const xs = arr('object.union_n', a, 0);
      let acc = new RObject();
      for (const x of xs) {
        if (!(x instanceof RObject)) throw typeErr('object.union_n', 1, 'array of objects', a[0] as Value);
        acc = mergeObjects(acc, x);
      }
      return acc;
    },
  },
  {
    name: 'object.subset',
    arity: 2,
    fn: (a) => {
      const sup = a[0] as Value;
      const sub = a[1] as Value;
      if (!(sup instanceof RObject || sup instanceof RSet || Array.isArray(sup)))
        throw typeErr('object.subset', 1, 'one of {object, set, array}', sup);
      if (!(sub instanceof RObject || sub instanceof RSet || Array.isArray(sub)))
        throw typeErr('object.subset', 2, 'one of {object, set, array}', sub);
      return isSubset(sup, sub);
    },
  },
];

function isSubset(sup: Value, sub: Value): boolean {
  if (sup instanceof RObject && sub instanceof RObject) {
    for (const [k, v] of sub.sortedEntries()) {
      const sv = sup.get(k);
      if (sv === undefined) return false;
      if (sv instanceof RObject && v instanceof RObject) {
        if (!isSubset(sv, v)) return false;
      } else if (sv instanceof RSet && v instanceof RSet) {
        if (!isSubset(sv, v)) return false;
      } else if (Array.isArray(sv) && Array.isArray(v)) {
        if (!isSubset(sv, v)) return false;
      } else if (!equal(sv, v)) return false;
    }
    return true;
  }
  if (sup instanceof RSet && sub instanceof RSet) {
    for (const k of sub.m.keys()) if (!sup.m.has(k)) return false;
    return true;
  }
  if (Array.isArray(sup) && Array.isArray(sub)) {
    if (sub.length === 0) return true;
    outer: for (let i = 0; i + sub.length <= sup.length; i++) {
      for (let j = 0; j < sub.length; j++) if (!equal(sup[i + j] as Value, sub[j] as Value)) continue outer;
      return true;
    }
    return false;
  }
  if (sup instanceof RSet && Array.isArray(sub)) return sub.every((x) => sup.has(x));
  if (Array.isArray(sup) && sub instanceof RSet)
    return sub.sorted().every((x) => sup.some((y) => equal(x, y)));
  return false;
}

export function mergeObjects(a: RObject, b: RObject): RObject {
  const out = a.clone();
  for (const [k, v] of b.sortedEntries()) {
    const prev = out.get(k);
    if (prev instanceof RObject && v instanceof RObject) out.set(k, mergeObjects(prev, v));
    else out.set(k, v);
  }
  return out;
}

export { compareNum, str };
