import { parse as yamlParse, stringify as yamlStringify } from 'yaml';
import { parseNumber } from '../parser.js';
import { equal, fromJSON, isNumber, RObject, RSet, stringify, toJSON, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, obj, str, typeErr } from './types.js';

function b64decode(name: string, s: string, url: boolean): string {
  const re = url ? /^[A-Za-z0-9_-]*={0,2}$/ : /^[A-Za-z0-9+/]*={0,2}$/;
  const clean = s;
  if (!re.test(clean) || (!url && clean.length % 4 === 1))
    throw new BuiltinError(
      `${name}: illegal base64 data at input byte ${Math.max(0, clean.search(/[^A-Za-z0-9+/=_-]/))}`,
    );
  if (!url && clean.length % 4 !== 0)
    throw new BuiltinError(`${name}: illegal base64 data at input byte ${clean.length - (clean.length % 4)}`);
  return Buffer.from(clean, url ? 'base64url' : 'base64').toString('utf8');
}

/** Parse JSON text into a Rego value keeping big integers exact. */
export function parseJSON(text: string): Value {
  // JSON.parse loses precision on big ints; re-parse numbers from source
  const src = text;
  let i = 0;
  const ws = () => {
    while (i < src.length && /\s/.test(src[i] as string)) i++;
  };
  const fail = (): never => {
    throw new Error(`invalid character at offset ${i}`);
  };
  const val = (): Value => {
    ws();
    const c = src[i];
    if (c === '{') {
      i++;
      const o = new RObject();
      ws();
      if (src[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (src[i] !== '"') fail();
        const k = strv();
        ws();
        if (src[i] !== ':') fail();
        i++;
        o.set(k, val());
        ws();
        if (src[i] === ',') {
          i++;
          continue;
        }
        if (src[i] === '}') {
          i++;
          return o;
        }
        fail();
      }
    }
    if (c === '[') {
      i++;
      const a: Value[] = [];
      ws();
      if (src[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(val());
        ws();
        if (src[i] === ',') {
          i++;
          continue;
        }
        if (src[i] === ']') {
          i++;
          return a;
        }
        fail();
      }
    }
    if (c === '"') return strv();
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(src.slice(i, i + 1000));
    if (m) {
      i += m[0].length;
      return parseNumber(m[0]);
    }
    for (const [lit, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (src.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    return fail();
  };
  const strv = (): string => {
    const start = i;
    i++;
    while (i < src.length && src[i] !== '"') {
      if (src[i] === '\\') i++;
      i++;
    }
    if (i >= src.length) fail();
    i++;
    return JSON.parse(src.slice(start, i)) as string;
  };
  const v = val();
  ws();
  if (i < src.length) fail();
  return v;
}

function jsonPath(name: string, p: Value): Value[] {
  if (typeof p === 'string')
    return p
      .replace(/^\//, '')
      .split('/')
      .filter((x, i, all) => x !== '' || all.length > 1 || i > 0)
      .map((x) => x.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (Array.isArray(p)) return p;
  throw new BuiltinError(`${name}: invalid path`);
}

function pathsOf(name: string, v: Value, opIndex: number): Value[][] {
  let items: Value[];
  if (Array.isArray(v)) items = v;
  else if (v instanceof RSet) items = v.sorted();
  else throw typeErr(name, opIndex, 'one of {set, array}', v);
  return items.map((p) => {
    if (typeof p !== 'string' && !Array.isArray(p))
      throw typeErr(
        name,
        opIndex,
        'one of {set, array} containing string paths or array of path segments',
        p,
      );
    return jsonPath(name, p);
  });
}

interface PathTree {
  end: boolean;
  kids: Map<string, { key: Value; t: PathTree }>;
}

function buildTree(paths: Value[][]): PathTree {
  const root: PathTree = { end: false, kids: new Map() };
  for (const p of paths) {
    let t = root;
    for (const seg of p) {
      const k = stringify(seg);
      let n = t.kids.get(k);
      if (!n) {
        n = { key: seg, t: { end: false, kids: new Map() } };
        t.kids.set(k, n);
      }
      t = n.t;
    }
    t.end = true;
  }
  return root;
}

function childKey(v: Value, key: Value): Value | undefined {
  if (Array.isArray(v)) {
    const n = typeof key === 'string' ? Number(key) : key;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < v.length) return n;
    return undefined;
  }
  if (v instanceof RObject) return v.has(key) ? key : undefined;
  if (v instanceof RSet) return v.has(key) ? key : undefined;
  return undefined;
}

function filterTree(v: Value, t: PathTree): Value {
  if (t.end) return v;
  if (v instanceof RObject) {
    const o = new RObject();
    for (const { key, t: sub } of t.kids.values()) {
      const x = v.get(key);
      if (x !== undefined) o.set(key, filterTree(x, sub));
    }
    return o;
  }
  if (Array.isArray(v)) {
    const out: Value[] = [];
    const idx = [...t.kids.values()]
      .map(({ key, t: sub }) => ({ i: childKey(v, key), sub }))
      .filter((x) => x.i !== undefined)
      .sort((a, b) => (a.i as number) - (b.i as number));
    for (const { i, sub } of idx) out.push(filterTree(v[i as number] as Value, sub));
    return out;
  }
  if (v instanceof RSet) {
    const s = new RSet();
    for (const { key, t: sub } of t.kids.values()) if (v.has(key)) s.add(filterTree(key, sub));
    return s;
  }
  return v;
}

function removeTree(v: Value, t: PathTree): Value | undefined {
  if (t.end) return undefined;
  if (v instanceof RObject) {
    const o = new RObject();
    for (const [k, x] of v.sortedEntries()) {
      const sub = t.kids.get(stringify(k)) ?? (typeof k === 'string' ? undefined : undefined);
      if (!sub) o.set(k, x);
      else {
        const r = removeTree(x, sub.t);
        if (r !== undefined) o.set(k, r);
      }
    }
    return o;
  }
  if (Array.isArray(v)) {
    const out: Value[] = [];
    v.forEach((x, i) => {
      const sub = t.kids.get(stringify(i)) ?? t.kids.get(stringify(String(i)));
      if (!sub) out.push(x);
      else {
        const r = removeTree(x, sub.t);
        if (r !== undefined) out.push(r);
      }
    });
    return out;
  }
  if (v instanceof RSet) {
    const s = new RSet();
    for (const x of v.sorted()) {
      const sub = t.kids.get(stringify(x));
      if (!sub) s.add(x);
      else {
        const r = removeTree(x, sub.t);
        if (r !== undefined) s.add(r);
      }
    }
    return s;
  }
  return v;
}

// ---------- JSON patch (RFC 6902) ----------
function ptr(p: Value): Value[] | undefined {
  if (Array.isArray(p)) return p;
  if (typeof p !== 'string') return undefined;
  if (p === '') return [];
  return (p.startsWith('/') ? p.slice(1) : p)
    .split('/')
    .map((x) => x.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function getAt(doc: Value, path: Value[]): Value | undefined {
  let cur: Value | undefined = doc;
  for (const seg of path) {
    if (cur === undefined) return undefined;
    if (Array.isArray(cur)) {
      const n =
        typeof seg === 'string' ? (/^(0|[1-9]\d*)$/.test(seg) ? Number(seg) : Number.NaN) : Number(seg);
      cur = Number.isInteger(n) ? cur[n] : undefined;
    } else if (cur instanceof RObject) cur = cur.get(seg);
    else if (cur instanceof RSet) cur = cur.has(seg) ? seg : undefined;
    else return undefined;
  }
  return cur;
}

function mutate(
  doc: Value,
  path: Value[],
  f: (parent: Value, key: Value) => Value | undefined,
): Value | undefined {
  if (path.length === 0) return undefined;
  const [k, ...rest] = path as [Value, ...Value[]];
  if (rest.length === 0) return f(doc, k);
  if (Array.isArray(doc)) {
    const n = typeof k === 'string' ? Number(k) : Number(k);
    if (!Number.isInteger(n) || n < 0 || n >= doc.length) return undefined;
    const child = mutate(doc[n] as Value, rest, f);
    if (child === undefined) return undefined;
    const out = doc.slice();
    out[n] = child;
    return out;
  }
  if (doc instanceof RObject) {
    const x = doc.get(k);
    if (x === undefined) return undefined;
    const child = mutate(x, rest, f);
    if (child === undefined) return undefined;
    const o = doc.clone();
    o.set(k, child);
    return o;
  }
  if (doc instanceof RSet) {
    if (!doc.has(k)) return undefined;
    const child = mutate(k, rest, f);
    if (child === undefined) return undefined;
    const s = new RSet();
    for (const x of doc.sorted()) s.add(equal(x, k) ? child : x);
    return s;
  }
  return undefined;
}

function addAt(doc: Value, path: Value[], v: Value): Value | undefined {
  if (path.length === 0) return v;
  return mutate(doc, path, (parent, key) => {
    if (Array.isArray(parent)) {
      const n =
        key === '-'
          ? parent.length
          : typeof key === 'string'
            ? /^(0|[1-9]\d*)$/.test(key)
              ? Number(key)
              : Number.NaN
            : Number(key);
      if (!Number.isInteger(n) || n < 0 || n > parent.length) return undefined;
      const out = parent.slice();
      out.splice(n, 0, v);
      return out;
    }
    if (parent instanceof RObject) {
      const o = parent.clone();
      o.set(key, v);
      return o;
    }
    if (parent instanceof RSet) {
      // a set member's key is the member itself
      if (key !== '-' && !equal(key, v)) return undefined;
      const s = parent.clone();
      s.add(v);
      return s;
    }
    return undefined;
  });
}

function removeAt(doc: Value, path: Value[]): Value | undefined {
  return mutate(doc, path, (parent, key) => {
    if (Array.isArray(parent)) {
      const n =
        typeof key === 'string' ? (/^(0|[1-9]\d*)$/.test(key) ? Number(key) : Number.NaN) : Number(key);
      if (!Number.isInteger(n) || n < 0 || n >= parent.length) return undefined;
      const out = parent.slice();
      out.splice(n, 1);
      return out;
    }
    if (parent instanceof RObject) {
      if (!parent.has(key)) return undefined;
      const o = parent.clone();
      o.delete(key);
      return o;
    }
    if (parent instanceof RSet) {
      if (!parent.has(key)) return undefined;
      const s = new RSet();
      for (const x of parent.sorted()) if (!equal(x, key)) s.add(x);
      return s;
    }
    return undefined;
  });
}

function jsonPatch(args: Value[]): Value | undefined {
  let doc = args[0] as Value;
  const ops = args[1] as Value;
  if (!Array.isArray(ops)) throw typeErr('json.patch', 2, 'array', ops);
  for (const op of ops) {
    if (!(op instanceof RObject)) return undefined;
    const kind = op.get('op');
    const path = ptr(op.get('path') ?? null);
    if (path === undefined) return undefined;
    let next: Value | undefined;
    switch (kind) {
      case 'add': {
        const v = op.get('value');
        if (v === undefined) return undefined;
        next = addAt(doc, path, v);
        break;
      }
      case 'remove':
        next = removeAt(doc, path);
        break;
      case 'replace': {
        const v = op.get('value');
        if (v === undefined || getAt(doc, path) === undefined) return undefined;
        const r = removeAt(doc, path);
        next = path.length === 0 ? v : r === undefined ? undefined : addAt(r, path, v);
        break;
      }
      case 'move': {
        const from = ptr(op.get('from') ?? null);
        if (!from) return undefined;
        const v = getAt(doc, from);
        if (v === undefined) return undefined;
        const r = removeAt(doc, from);
        next = r === undefined ? undefined : addAt(r, path, v);
        break;
      }
      case 'copy': {
        const from = ptr(op.get('from') ?? null);
        if (!from) return undefined;
        const v = getAt(doc, from);
        if (v === undefined) return undefined;
        next = addAt(doc, path, v);
        break;
      }
      case 'test': {
        const v = getAt(doc, path);
        const want = op.get('value');
        if (v === undefined || want === undefined || !equal(v, want)) return undefined;
        next = doc;
        break;
      }
      default:
        return undefined;
    }
    if (next === undefined) return undefined;
    doc = next;
  }
  return doc;
}

function marshalIndented(v: Value, prefix: string, indent: string): string {
  const j = toJSONText(v);
  const pretty = JSON.stringify(JSON.parse(j.text), null, indent);
  let out = pretty;
  for (const [ph, num] of j.nums) out = out.split(JSON.stringify(ph)).join(num);
  return out
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

/** JSON text with exact number formatting (big integers kept). */
function toJSONText(v: Value): { text: string; nums: Map<string, string> } {
  const nums = new Map<string, string>();
  const conv = (x: Value): unknown => {
    if (isNumber(x)) {
      const ph = `\u0000num${nums.size}`;
      nums.set(ph, stringify(x));
      return ph;
    }
    if (Array.isArray(x)) return x.map(conv);
    if (x instanceof RSet) return x.sorted().map(conv);
    if (x instanceof RObject) {
      const o: Record<string, unknown> = {};
      for (const [k, y] of x.sortedEntries()) o[typeof k === 'string' ? k : stringify(k)] = conv(y);
      return o;
    }
    return x;
  };
  return { text: JSON.stringify(conv(v)), nums };
}

function yamlToValue(x: unknown): Value {
  return fromJSON(x);
}

function urlEncode(s: string): string {
  return encodeURIComponent(s)
    .replace(/%20/g, '+')
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/~/g, '~');
}

function urlDecode(name: string, s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    throw new BuiltinError(`${name}: invalid URL escape`);
  }
}

export const encodingBuiltins: BuiltinDef[] = [
  {
    name: 'base64.encode',
    arity: 1,
    fn: (a) => Buffer.from(str('base64.encode', a, 0), 'utf8').toString('base64'),
  },
  {
    name: 'base64.decode',
    arity: 1,
    fn: (a) => b64decode('base64.decode', str('base64.decode', a, 0), false),
  },
  {
    name: 'base64.is_valid',
    arity: 1,
    fn: (a) => {
      try {
        b64decode('base64.is_valid', str('base64.is_valid', a, 0), false);
        return true;
      } catch {
        return false;
      }
    },
  },
  {
    name: 'base64url.encode',
    arity: 1,
    fn: (a) =>
      Buffer.from(str('base64url.encode', a, 0), 'utf8')
        .toString('base64url')
        .padEnd(
          Math.ceil(Buffer.from(str('base64url.encode', a, 0)).toString('base64url').length / 4) * 4,
          '=',
        ),
  },
  {
    name: 'base64url.encode_no_pad',
    arity: 1,
    fn: (a) => Buffer.from(str('base64url.encode_no_pad', a, 0), 'utf8').toString('base64url'),
  },
  {
    name: 'base64url.decode',
    arity: 1,
    fn: (a) => {
      const s = str('base64url.decode', a, 0);
      if (!/^[A-Za-z0-9_-]*={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1)
        throw new BuiltinError('base64url.decode: illegal base64 data at input byte 0');
      return Buffer.from(s.replace(/=+$/, ''), 'base64url').toString('utf8');
    },
  },
  { name: 'hex.encode', arity: 1, fn: (a) => Buffer.from(str('hex.encode', a, 0), 'utf8').toString('hex') },
  {
    name: 'hex.decode',
    arity: 1,
    fn: (a) => {
      const s = str('hex.decode', a, 0);
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new BuiltinError(`hex.decode: encoding/hex: invalid byte`);
      return Buffer.from(s, 'hex').toString('utf8');
    },
  },
  { name: 'json.marshal', arity: 1, fn: (a) => stringify(a[0] as Value) },
  {
    name: 'json.marshal_with_options',
    arity: 2,
    fn: (a) => {
      const o = obj('json.marshal_with_options', a, 1);
      let prefix = '';
      let indent = '\t';
      let pretty: boolean | undefined;
      for (const [k, v] of o.sortedEntries()) {
        if (k === 'prefix') {
          if (typeof v !== 'string')
            throw new BuiltinError('json.marshal_with_options: prefix must be a string');
          prefix = v;
        } else if (k === 'indent') {
          if (typeof v !== 'string')
            throw new BuiltinError('json.marshal_with_options: indent must be a string');
          indent = v;
        } else if (k === 'pretty') {
          if (typeof v !== 'boolean')
            throw new BuiltinError('json.marshal_with_options: pretty must be a boolean');
          pretty = v;
        } else
          throw new BuiltinError(
            `json.marshal_with_options: object contained unknown key ${stringify(k)}`,
            'eval_type_error',
          );
      }
      if (pretty === undefined) pretty = o.size > 0;
      if (!pretty) return stringify(a[0] as Value);
      return marshalIndented(a[0] as Value, prefix, indent);
    },
  },
  {
    name: 'json.unmarshal',
    arity: 1,
    fn: (a) => {
      const text = str('json.unmarshal', a, 0);
      try {
        return parseJSON(text);
      } catch (e) {
        throw new BuiltinError(`json.unmarshal: ${(e as Error).message}`);
      }
    },
  },
  {
    name: 'json.is_valid',
    arity: 1,
    fn: (a) => {
      if (typeof a[0] !== 'string') return false;
      try {
        parseJSON(a[0]);
        return true;
      } catch {
        return false;
      }
    },
  },
  {
    name: 'json.filter',
    arity: 2,
    fn: (a) => {
      const o = a[0] as Value;
      if (!(o instanceof RObject)) throw typeErr('json.filter', 1, 'object', o);
      return filterTree(o, buildTree(pathsOf('json.filter', a[1] as Value, 2)));
    },
  },
  {
    name: 'json.remove',
    arity: 2,
    fn: (a) => {
      const o = a[0] as Value;
      if (!(o instanceof RObject)) throw typeErr('json.remove', 1, 'object', o);
      return removeTree(o, buildTree(pathsOf('json.remove', a[1] as Value, 2))) ?? new RObject();
    },
  },
  { name: 'json.patch', arity: 2, fn: jsonPatch },
  {
    name: 'yaml.marshal',
    arity: 1,
    fn: (a) => yamlStringify(toJSON(a[0] as Value), { lineWidth: 0 }),
  },
  {
    name: 'yaml.unmarshal',
    arity: 1,
    fn: (a) => {
      try {
        return yamlToValue(yamlParse(str('yaml.unmarshal', a, 0), { intAsBigInt: true }));
      } catch (e) {
        throw new BuiltinError(
          `yaml.unmarshal: yaml: line 1: did not find expected node content (${(e as Error).message.split('\n')[0]})`,
        );
      }
    },
  },
  {
    name: 'yaml.is_valid',
    arity: 1,
    fn: (a) => {
      if (typeof a[0] !== 'string') return false;
      try {
        yamlParse(a[0]);
        return true;
      } catch {
        return false;
      }
    },
  },
  { name: 'urlquery.encode', arity: 1, fn: (a) => urlEncode(str('urlquery.encode', a, 0)) },
  {
    name: 'urlquery.decode',
    arity: 1,
    fn: (a) => urlDecode('urlquery.decode', str('urlquery.decode', a, 0)),
  },
  {
    name: 'urlquery.encode_object',
    arity: 1,
    fn: (a) => {
      const o = obj('urlquery.encode_object', a, 0);
      const parts: string[] = [];
      for (const [k, v] of o.sortedEntries()) {
        if (typeof k !== 'string')
          throw typeErr(
            'urlquery.encode_object',
            1,
            'object[string: string | array[string] | set[string]]',
            o,
          );
        const vs =
          typeof v === 'string' ? [v] : Array.isArray(v) ? v : v instanceof RSet ? v.sorted() : undefined;
        if (!vs)
          throw typeErr(
            'urlquery.encode_object',
            1,
            'object[string: string | array[string] | set[string]]',
            o,
          );
        for (const x of vs) {
          if (typeof x !== 'string')
            throw typeErr(
              'urlquery.encode_object',
              1,
              'object[string: string | array[string] | set[string]]',
              o,
            );
          parts.push(`${urlEncode(k)}=${urlEncode(x)}`);
        }
      }
      return parts.join('&');
    },
  },
  {
    name: 'urlquery.decode_object',
    arity: 1,
    fn: (a) => {
      const s = str('urlquery.decode_object', a, 0);
      const o = new RObject();
      if (s === '') return o;
      for (const part of s.split(/[&]/)) {
        if (part === '') continue;
        const i = part.indexOf('=');
        const k = urlDecode('urlquery.decode_object', i < 0 ? part : part.slice(0, i));
        const v = urlDecode('urlquery.decode_object', i < 0 ? '' : part.slice(i + 1));
        const prev = o.get(k);
        o.set(k, Array.isArray(prev) ? [...prev, v] : [v]);
      }
      return o;
    },
  },
];
