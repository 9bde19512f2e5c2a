import { createHash } from 'node:crypto';
import { equal, isNumber, normInt, RObject, RSet, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, coll, int, obj, str, typeErr } from './types.js';

const HTTP_SEND_KEYS = [
  'method',
  'url',
  'body',
  'raw_body',
  'headers',
  'enable_redirect',
  'force_json_decode',
  'force_yaml_decode',
  'tls_use_system_certs',
  'tls_ca_cert',
  'tls_ca_cert_file',
  'tls_ca_cert_env_variable',
  'tls_client_cert',
  'tls_client_cert_file',
  'tls_client_cert_env_variable',
  'tls_client_key',
  'tls_client_key_file',
  'tls_client_key_env_variable',
  'tls_insecure_skip_verify',
  'tls_server_name',
  'timeout',
  'cache',
  'force_cache',
  'force_cache_duration_seconds',
  'raise_error',
  'caching_mode',
  'max_retry_attempts',
  'cache_ignored_headers',
];

// ---------- units ----------
const SI: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};
const BIN: Record<string, number> = {
  ki: 2 ** 10,
  mi: 2 ** 20,
  gi: 2 ** 30,
  ti: 2 ** 40,
  pi: 2 ** 50,
  ei: 2 ** 60,
};

function splitAmount(name: string, s: string, what: string): [string, string] {
  if (s.includes(' ')) throw new BuiltinError(`${name}: spaces not allowed in resource strings`);
  const m = /^([+-]?[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?)(.*)$/.exec(s);
  const numPart = m?.[1] ?? '';
  if (numPart === '' || numPart === '.') throw new BuiltinError(`${name}: no ${what} provided`);
  return [numPart, m?.[2] ?? ''];
}

function exactMul(numStr: string, mult: number): Value {
  // exact decimal arithmetic via scaled bigint
  if (numStr.startsWith('-') || numStr.startsWith('+')) {
    const r = exactMul(numStr.slice(1), mult);
    if (numStr[0] === '+') return r;
    return typeof r === 'bigint' ? -r : -(r as number);
  }
  if (numStr.startsWith('-') || numStr.startsWith('+')) {
    const r = exactMul(numStr.slice(1), mult);
    if (numStr[0] === '+') return r;
    return typeof r === 'bigint' ? -r : -(r as number);
  }
  const m = /^([0-9]*)\.?([0-9]*)(?:[eE]([+-]?[0-9]+))?$/.exec(numStr);
  if (!m) return Number(numStr) * mult;
  const intP = m[1] || '0';
  const frac = m[2] ?? '';
  let exp = Number(m[3] ?? 0) - frac.length;
  let digits = BigInt(intP + frac);
  let multB: bigint;
  if (mult >= 1) multB = BigInt(mult);
  else {
    multB = 1n;
    exp += Math.round(Math.log10(mult));
  }
  digits *= multB;
  if (exp >= 0) return normInt(digits * 10n ** BigInt(exp));
  const div = 10n ** BigInt(-exp);
  if (digits % div === 0n) return normInt(digits / div);
  return Number(digits) / Number(div);
}

function unitsParse(args: Value[]): Value {
  const raw = str('units.parse', args, 0);
  const s = raw.replace(/^"|"$/g, '');
  const [n, unit] = splitAmount('units.parse', s, 'amount');
  if (!/^[+-]?[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?$/.test(n))
    throw new BuiltinError('units.parse: could not parse amount to a number');
  const lu = unit.toLowerCase();
  if (BIN[lu] !== undefined) return exactMul(n, BIN[lu] as number);
  if (SI[unit] !== undefined) return exactMul(n, SI[unit] as number);
  if (unit.length === 1 && SI[unit.toUpperCase()] !== undefined && unit !== 'm')
    return exactMul(n, SI[unit.toUpperCase()] as number);
  throw new BuiltinError(`units.parse: could not parse amount to a number`);
}

function unitsParseBytes(args: Value[]): Value {
  const raw = str('units.parse_bytes', args, 0);
  const s = raw.replace(/^"|"$/g, '');
  const [n, unit0] = splitAmount('units.parse_bytes', s, 'byte amount');
  if (!/^[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?$/.test(n) || /^[.0-9]/.test(unit0))
    throw new BuiltinError('units.parse_bytes: could not parse byte amount to a number');
  const unit = unit0.toLowerCase();
  const table: Record<string, number> = {
    '': 1,
    b: 1,
    k: 1e3,
    kb: 1e3,
    m: 1e6,
    mb: 1e6,
    g: 1e9,
    gb: 1e9,
    t: 1e12,
    tb: 1e12,
    p: 1e15,
    pb: 1e15,
    e: 1e18,
    eb: 1e18,
    ki: 2 ** 10,
    kib: 2 ** 10,
    mi: 2 ** 20,
    mib: 2 ** 20,
    gi: 2 ** 30,
    gib: 2 ** 30,
    ti: 2 ** 40,
    tib: 2 ** 40,
    pi: 2 ** 50,
    pib: 2 ** 50,
    ei: 2 ** 60,
    eib: 2 ** 60,
  };
  const mult = table[unit];
  if (mult === undefined) throw new BuiltinError('units.parse_bytes: byte unit ' + unit0 + ' not recognized');
  const v = exactMul(n, mult);
  if (typeof v === 'number' && !Number.isInteger(v)) return Math.trunc(v);
  return v;
}

// ---------- semver ----------
const SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

function semverCmp(a: RegExpExecArray, b: RegExpExecArray): number {
  for (let i = 1; i <= 3; i++) {
    const x = BigInt(a[i] as string);
    const y = BigInt(b[i] as string);
    if (x !== y) return x < y ? -1 : 1;
  }
  const pa = a[4];
  const pb = b[4];
  if (pa === undefined && pb === undefined) return 0;
  if (pa === undefined) return 1;
  if (pb === undefined) return -1;
  const xs = pa.split('.');
  const ys = pb.split('.');
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    const x = xs[i];
    const y = ys[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
    } else if (xn) return -1;
    else if (yn) return 1;
    else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function semverParse(name: string, args: Value[], i: number): RegExpExecArray {
  const s = str(name, args, i);
  const m = SEMVER.exec(s.startsWith('v') ? '' : s);
  if (!m)
    throw new BuiltinError(`${name}: operand ${i + 1}: string ${JSON.stringify(s)} is not a valid SemVer`);
  return m;
}

// ---------- uuid ----------
function uuidParse(args: Value[]): Value | undefined {
  const s = str('uuid.parse', args, 0);
  let hex: string;
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s))
    hex = s.replace(/-/g, '');
  else if (/^urn:uuid:[0-9a-fA-F-]{36}$/i.test(s)) hex = s.slice(9).replace(/-/g, '');
  else if (/^\{[0-9a-fA-F-]{36}\}$/.test(s)) hex = s.slice(1, -1).replace(/-/g, '');
  else if (/^[0-9a-fA-F]{32}$/.test(s)) hex = s;
  else return undefined;
  hex = hex.toLowerCase();
  const b = Buffer.from(hex, 'hex');
  const version = (b[6] as number) >> 4;
  const v8 = b[8] as number;
  const variant =
    v8 >> 7 === 0
      ? 'Reserved, NCS backward compatibility'
      : v8 >> 6 === 2
        ? 'RFC4122'
        : v8 >> 5 === 6
          ? 'Reserved, Microsoft Corporation backward compatibility'
          : 'Reserved, reserved for future definition';
  const o = new RObject();
  o.set('version', version);
  o.set('variant', variant);
  if (version === 1 || version === 2) {
    const timeLow = BigInt(`0x${hex.slice(0, 8)}`);
    const timeMid = BigInt(`0x${hex.slice(8, 12)}`);
    const timeHi = BigInt(`0x${hex.slice(12, 16)}`) & 0x0fffn;
    const ts = (timeHi << 48n) | (timeMid << 32n) | timeLow;
    // 100ns intervals since 1582-10-15
    const ns = (ts - 122192928000000000n) * 100n;
    o.set('time', normInt(ns));
    o.set('clocksequence', ((((b[8] as number) & 0x3f) << 8) | (b[9] as number)) as number);
    o.set('nodeid', hex.slice(20).match(/../g)?.join('-') ?? '');
    const n0 = b[10] as number;
    o.set('macvariables', `${n0 & 2 ? 'local' : 'global'}:${n0 & 1 ? 'multicast' : 'unicast'}`);
    if (version === 2) {
      o.set(
        'domain',
        (b[9] as number) === 0
          ? 'Person'
          : (b[9] as number) === 1
            ? 'Group'
            : (b[9] as number) === 2
              ? 'Org'
              : `Domain${b[9]}`,
      );
      o.set('id', Number(timeLow));
    }
  }
  return o;
}

function uuidRfc4122(args: Value[], ctx: { cache: Map<string, unknown>; seed: number }): Value {
  const key = `uuid\u0000${str('uuid.rfc4122', args, 0)}`;
  const hit = ctx.cache.get(key) as string | undefined;
  if (hit) return hit;
  const h = createHash('sha256').update(`${ctx.seed}:${key}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x40;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  const u = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  ctx.cache.set(key, u);
  return u;
}

// ---------- graph ----------
function neighbours(g: RObject, n: Value): Value[] {
  const e = g.get(n);
  if (e === undefined || e === null) return [];
  if (Array.isArray(e)) return e;
  if (e instanceof RSet) return e.sorted();
  return [];
}

function reachable(args: Value[]): Value {
  const g = obj('graph.reachable', args, 0);
  const init = coll('graph.reachable', args, 1);
  const seen = new RSet();
  const stack = [...init];
  while (stack.length) {
    const n = stack.pop() as Value;
    if (seen.has(n)) continue;
    if (!g.has(n)) continue;
    seen.add(n);
    for (const m of neighbours(g, n)) stack.push(m);
  }
  return seen;
}

function reachablePaths(args: Value[]): Value {
  const g = obj('graph.reachable_paths', args, 0);
  const init = coll('graph.reachable_paths', args, 1);
  const out = new RSet();
  const go = (n: Value, path: Value[]) => {
    if (!g.has(n)) {
      if (path.length) out.add(path);
      return;
    }
    const p2 = [...path, n];
    const ns = neighbours(g, n).filter((m) => !p2.some((x) => equal(x, m)));
    if (ns.length === 0) {
      out.add(p2);
      return;
    }
    for (const m of ns) go(m, p2);
  };
  for (const n of init) go(n, []);
  return out;
}

// ---------- walk (relation) ----------
function walk(args: Value[]): Value {
  const out: Value[] = [];
  const go = (v: Value, path: Value[]) => {
    out.push([path, v]);
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) go(v[i] as Value, [...path, i]);
    else if (v instanceof RObject) for (const [k, x] of v.sortedEntries()) go(x, [...path, k]);
    else if (v instanceof RSet) for (const x of v.sorted()) go(x, [...path, x]);
  };
  go(args[0] as Value, []);
  return out;
}

// ---------- rand ----------
function randIntn(args: Value[], ctx: { cache: Map<string, unknown>; seed: number }): Value {
  const s = str('rand.intn', args, 0);
  const n = int('rand.intn', args, 1);
  if (n === 0) return 0;
  const key = `rand\u0000${s}\u0000${n}`;
  const hit = ctx.cache.get(key) as number | undefined;
  if (hit !== undefined) return hit;
  const h = createHash('sha256').update(`${ctx.seed}:${key}`).digest();
  const v = h.readUInt32BE(0) % Math.abs(n);
  ctx.cache.set(key, v);
  return v;
}

export const miscBuiltins: BuiltinDef[] = [
  { name: 'units.parse', arity: 1, fn: unitsParse },
  { name: 'units.parse_bytes', arity: 1, fn: unitsParseBytes },
  {
    name: 'semver.is_valid',
    arity: 1,
    fn: (a) => typeof a[0] === 'string' && SEMVER.test(a[0]) && !a[0].startsWith('v'),
  },
  {
    name: 'semver.compare',
    arity: 2,
    fn: (a) => semverCmp(semverParse('semver.compare', a, 0), semverParse('semver.compare', a, 1)),
  },
  { name: 'uuid.parse', arity: 1, fn: uuidParse },
  { name: 'uuid.rfc4122', arity: 1, fn: uuidRfc4122, nondeterministic: true },
  { name: 'graph.reachable', arity: 2, fn: reachable },
  { name: 'graph.reachable_paths', arity: 2, fn: reachablePaths },
  { name: 'walk', arity: 1, fn: walk, relation: true },
  // compiled to constants inside rules (see Compiler); outside a rule there is no metadata
  { name: 'rego.metadata.chain', arity: 0, fn: () => [] },
  { name: 'rego.metadata.rule', arity: 0, fn: () => new RObject() },
  {
    // Validated like OPA's, but never sends: policies stay side-effect free; mock it with `with`.
    name: 'http.send',
    arity: 1,
    nondeterministic: true,
    fn: (a) => {
      const req = obj('http.send', a, 0);
      const allowed = new Set(HTTP_SEND_KEYS);
      const bad = req.keys().filter((k) => typeof k !== 'string' || !allowed.has(k));
      if (bad.length)
        throw new BuiltinError(
          `http.send: invalid request parameters(s): {${bad.map((k) => JSON.stringify(k)).join(', ')}}`,
          'eval_type_error',
        );
      const missing = ['method', 'url'].filter((k) => !req.has(k));
      if (missing.length)
        throw new BuiltinError(
          `http.send: missing required request parameters(s): {${missing.map((k) => JSON.stringify(k)).join(', ')}}`,
          'eval_type_error',
        );
      throw new BuiltinError(
        'http.send: outbound HTTP is not supported by this engine (mock it with `with http.send as ...`)',
      );
    },
  },
  {
    name: 'trace',
    arity: 1,
    fn: (a, ctx) => {
      ctx.print(str('trace', a, 0));
      return true;
    },
  },
  { name: 'rand.intn', arity: 2, fn: randIntn, nondeterministic: true },
  {
    name: 'time.now_ns',
    arity: 0,
    fn: (_a, ctx) => normInt(ctx.nowNs),
    nondeterministic: true,
  },
];

export { isNumber, typeErr };
