/**
 * Rego values. Scalars are plain JS values; integers beyond 2^53 are bigint so they stay exact.
 * Arrays are JS arrays; objects and sets are keyed by a canonical string so any value can be a key.
 */
export type Value = null | boolean | number | bigint | string | Value[] | RObject | RSet;

/** Canonical key of a value: equal Rego values share a key. */
export function keyOf(v: Value): string {
  switch (typeof v) {
    case 'string':
      return v.length > 0 && v.charCodeAt(0) < 2 ? `\u0001${v}` : v;
    case 'number':
      return `\u0000n${numKey(v)}`;
    case 'bigint':
      return `\u0000n${v.toString()}`;
    case 'boolean':
      return v ? '\u0000t' : '\u0000f';
    default:
      if (v === null) return '\u0000z';
      return `\u0000c${canonical(v)}`;
  }
}

function numKey(n: number): string {
  if (Number.isInteger(n) && !Number.isSafeInteger(n) && Number.isFinite(n)) return BigInt(n).toString();
  return String(n);
}

/** Deterministic text for composite keys (sorted sets and objects). */
function canonical(v: Value): string {
  if (Array.isArray(v)) return `[${v.map(keyOfNested).join(',')}]`;
  if (v instanceof RObject) {
    // cached: objects from data are keyed again and again (sets of grants, documents as keys)
    if (v.ck === undefined)
      v.ck = `{${v
        .sortedEntries()
        .map(([k, x]) => `${keyOfNested(k)}:${keyOfNested(x)}`)
        .join(',')}}`;
    return v.ck;
  }
  if (v instanceof RSet) {
    if (v.ck === undefined) v.ck = `<${v.sorted().map(keyOfNested).join(',')}>`;
    return v.ck;
  }
  return keyOf(v);
}

function keyOfNested(v: Value): string {
  return typeof v === 'string' ? JSON.stringify(v) : keyOf(v);
}

export class RObject {
  readonly m: Map<string, [Value, Value]>;
  private sortedCache: [Value, Value][] | undefined;
  /** canonical key text, computed on first use (see keyOf); reset by set/delete */
  ck: string | undefined;
  constructor(m?: Map<string, [Value, Value]>) {
    this.m = m ?? new Map();
  }
  static fromEntries(entries: Iterable<[Value, Value]>): RObject {
    const o = new RObject();
    for (const [k, v] of entries) o.set(k, v);
    return o;
  }
  /** An object of distinct string keys already in sorted order (mkeys: their map keys). */
  static sortedStrings(keys: string[], mkeys: string[], vals: Value[]): RObject {
    const m = new Map<string, [Value, Value]>();
    const entries: [Value, Value][] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const e: [Value, Value] = [keys[i] as string, vals[i] as Value];
      entries[i] = e;
      m.set(mkeys[i] as string, e);
    }
    const o = new RObject(m);
    o.sortedCache = entries;
    return o;
  }
  get size(): number {
    return this.m.size;
  }
  get(k: Value): Value | undefined {
    const e = this.m.get(keyOf(k));
    return e === undefined ? undefined : e[1];
  }
  getStr(k: string): Value | undefined {
    const e = this.m.get(k.length > 0 && k.charCodeAt(0) < 2 ? `\u0001${k}` : k);
    return e === undefined ? undefined : e[1];
  }
  has(k: Value): boolean {
    return this.m.has(keyOf(k));
  }
  set(k: Value, v: Value): void {
    this.sortedCache = undefined;
    this.ck = undefined;
    this.m.set(keyOf(k), [k, v]);
  }
  delete(k: Value): void {
    this.sortedCache = undefined;
    this.ck = undefined;
    this.m.delete(keyOf(k));
  }
  keys(): Value[] {
    return this.sortedEntries().map((e) => e[0]);
  }
  sortedEntries(): [Value, Value][] {
    if (this.sortedCache === undefined) {
      this.sortedCache = [...this.m.values()].sort(compareEntries);
    }
    return this.sortedCache;
  }
  clone(): RObject {
    return new RObject(new Map(this.m));
  }
}

export class RSet {
  readonly m: Map<string, Value>;
  private sortedCache: Value[] | undefined;
  /** canonical key text, computed on first use (see keyOf); reset by add */
  ck: string | undefined;
  constructor(m?: Map<string, Value>) {
    this.m = m ?? new Map();
  }
  static of(items: Iterable<Value>): RSet {
    const s = new RSet();
    for (const x of items) s.add(x);
    return s;
  }
  get size(): number {
    return this.m.size;
  }
  has(v: Value): boolean {
    return this.m.has(keyOf(v));
  }
  add(v: Value): void {
    this.sortedCache = undefined;
    this.ck = undefined;
    this.m.set(keyOf(v), v);
  }
  sorted(): Value[] {
    if (this.sortedCache === undefined) this.sortedCache = [...this.m.values()].sort(compareFast);
    return this.sortedCache;
  }
  clone(): RSet {
    return new RSet(new Map(this.m));
  }
}

/** compare, with the common case (two strings) first */
export function compareFast(a: Value, b: Value): number {
  if (typeof a === 'string' && typeof b === 'string') return a === b ? 0 : a < b ? -1 : 1;
  return compare(a, b);
}

function compareEntries(a: [Value, Value], b: [Value, Value]): number {
  return compareFast(a[0], b[0]);
}

export function isNumber(v: Value | undefined): v is number | bigint {
  return typeof v === 'number' || typeof v === 'bigint';
}

/** Normalise: bigint inside the safe range becomes number. */
export function normInt(b: bigint): number | bigint {
  if (b <= 9007199254740991n && b >= -9007199254740991n) return Number(b);
  return b;
}

export function isInteger(v: Value): boolean {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}

export function toBig(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

export function typeOrder(v: Value): number {
  switch (typeof v) {
    case 'boolean':
      return 1;
    case 'number':
    case 'bigint':
      return 2;
    case 'string':
      return 3;
    default:
      if (v === null) return 0;
      if (Array.isArray(v)) return 4;
      if (v instanceof RObject) return 5;
      return 6;
  }
}

export function compareNum(a: number | bigint, b: number | bigint): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  // mixed: compare exactly when the float is integral, else via float
  const fa = typeof a === 'number' ? a : b;
  if (typeof fa === 'number' && Number.isInteger(fa) && Number.isFinite(fa)) {
    const ba = toBig(a);
    const bb = toBig(b);
    return ba < bb ? -1 : ba > bb ? 1 : 0;
  }
  const x = Number(a);
  const y = Number(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Total order over Rego values, as OPA sorts them. */
export function compare(a: Value, b: Value): number {
  const ta = typeOrder(a);
  const tb = typeOrder(b);
  if (ta !== tb) return ta - tb;
  switch (ta) {
    case 0:
      return 0;
    case 1:
      return a === b ? 0 : a ? 1 : -1;
    case 2:
      return compareNum(a as number, b as number);
    case 3:
      return a === b ? 0 : (a as string) < (b as string) ? -1 : 1;
    case 4: {
      const x = a as Value[];
      const y = b as Value[];
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compare(x[i] as Value, y[i] as Value);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    }
    case 5: {
      const x = (a as RObject).sortedEntries();
      const y = (b as RObject).sortedEntries();
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const [xk, xv] = x[i] as [Value, Value];
        const [yk, yv] = y[i] as [Value, Value];
        const c = compare(xk, yk);
        if (c !== 0) return c;
        const d = compare(xv, yv);
        if (d !== 0) return d;
      }
      return x.length - y.length;
    }
    default: {
      const x = (a as RSet).sorted();
      const y = (b as RSet).sorted();
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compare(x[i] as Value, y[i] as Value);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    }
  }
}

export function equal(a: Value, b: Value): boolean {
  if (a === b) return true;
  const ta = typeof a;
  if (ta === 'string' || ta === 'boolean' || a === null || b === null) return false;
  if (ta === 'number' || ta === 'bigint') return isNumber(b) && compareNum(a as number, b) === 0;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i] as Value, b[i] as Value)) return false;
    return true;
  }
  if (a instanceof RObject) {
    if (!(b instanceof RObject) || a.size !== b.size) return false;
    for (const [k, [, v]] of a.m) {
      const e = b.m.get(k);
      if (e === undefined || !equal(v, e[1])) return false;
    }
    return true;
  }
  if (a instanceof RSet) {
    if (!(b instanceof RSet) || a.size !== b.size) return false;
    for (const k of a.m.keys()) if (!b.m.has(k)) return false;
    return true;
  }
  return false;
}

export function typeName(v: Value): string {
  switch (typeOrder(v)) {
    case 0:
      return 'null';
    case 1:
      return 'boolean';
    case 2:
      return 'number';
    case 3:
      return 'string';
    case 4:
      return 'array';
    case 5:
      return 'object';
    default:
      return 'set';
  }
}

/** Convert plain JSON (possibly with bigint from a lossless parser) to a Rego value. */
export function fromJSON(x: unknown): Value {
  if (x === null || x === undefined) return null;
  switch (typeof x) {
    case 'string':
    case 'boolean':
      return x;
    case 'number':
      return x;
    case 'bigint':
      return normInt(x);
    default:
      if (Array.isArray(x)) return x.map(fromJSON);
      if (x instanceof RObject || x instanceof RSet) return x;
      if (x instanceof Map) {
        const o = new RObject();
        for (const [k, v] of x) o.set(fromJSON(k), fromJSON(v));
        return o;
      }
      {
        // a fresh object: build its map directly (string keys, as RObject.set would key them)
        const m = new Map<string, [Value, Value]>();
        const rec = x as Record<string, unknown>;
        for (const k of Object.keys(rec)) {
          const x = rec[k];
          // strings (most values) convert to themselves
          m.set(k.length > 0 && k.charCodeAt(0) < 2 ? `\u0001${k}` : k, [
            k,
            typeof x === 'string' ? x : fromJSON(x),
          ]);
        }
        return new RObject(m);
      }
  }
}

/** Convert a Rego value to plain JSON: sets become sorted arrays, non-string keys are serialised. */
export function toJSON(v: Value): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return v;
  if (Array.isArray(v)) return v.map(toJSON);
  if (v instanceof RSet) return v.sorted().map(toJSON);
  const out: Record<string, unknown> = {};
  for (const [k, x] of v.sortedEntries()) out[typeof k === 'string' ? k : stringify(k)] = toJSON(x);
  return out;
}

export function formatNumber(n: number | bigint): string {
  if (typeof n === 'bigint') return n.toString();
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return n.toFixed(0);
  const s = String(n);
  return s.replace(/e\+/, 'e+');
}

/** JSON text of a value (OPA-compatible for scalars, sets as arrays). */
export function stringify(v: Value): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
    case 'bigint':
      return formatNumber(v);
  }
  if (Array.isArray(v)) return `[${v.map(stringify).join(',')}]`;
  if (v instanceof RSet) return `[${v.sorted().map(stringify).join(',')}]`;
  return `{${v
    .sortedEntries()
    .map(
      ([k, x]) =>
        `${typeof k === 'string' ? JSON.stringify(k) : JSON.stringify(stringify(k))}:${stringify(x)}`,
    )
    .join(',')}}`;
}

/** Rego source form of a value (sets as {..}, empty set as set()). */
export function toRegoString(v: Value): string {
  if (v instanceof RSet) return v.size === 0 ? 'set()' : `{${v.sorted().map(toRegoString).join(', ')}}`;
  if (Array.isArray(v)) return `[${v.map(toRegoString).join(', ')}]`;
  if (v instanceof RObject)
    return `{${v
      .sortedEntries()
      .map(([k, x]) => `${toRegoString(k)}: ${toRegoString(x)}`)
      .join(', ')}}`;
  return stringify(v);
}

export function truthy(v: Value | undefined): boolean {
  return v !== undefined && v !== false;
}
