import {
  isInteger,
  isNumber,
  RObject,
  RSet,
  stringify,
  toBig,
  toRegoString,
  typeName,
  type Value,
} from '../value.js';
import { arr, type BuiltinDef, BuiltinError, coll, int, num, obj, str, typeErr } from './types.js';

function strOrColl(name: string, args: Value[], i: number): string[] {
  const v = args[i] as Value;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) || v instanceof RSet) {
    const xs = Array.isArray(v) ? v : v.sorted();
    return xs.map((x) => {
      if (typeof x !== 'string')
        throw new BuiltinError(
          `${name}: operand ${i + 1} must be ${Array.isArray(v) ? 'array' : 'set'} of strings but got ${Array.isArray(v) ? 'array' : 'set'} containing ${typeName(x)}`,
          'eval_type_error',
        );
      return x;
    });
  }
  throw typeErr(name, i + 1, 'one of {string, set, array}', v);
}

function cutset(s: string, chars: string, left: boolean, right: boolean): string {
  const set = new Set([...chars]);
  const cs = [...s];
  let i = 0;
  let j = cs.length;
  if (left) while (i < j && set.has(cs[i] as string)) i++;
  if (right) while (j > i && set.has(cs[j - 1] as string)) j--;
  return cs.slice(i, j).join('');
}

/** Go's fmt verbs for sprintf: %v %s %d %f %e %g %x %X %o %b %t %q %c %%, width, precision, flags. */
export function goSprintf(format: string, args: Value[]): string {
  let out = '';
  let ai = 0;
  const re = /%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])/g;
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    out += format.slice(last, m.index);
    last = re.lastIndex;
    const [, flags = '', widthS, precS, verb] = m;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (ai >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const a = args[ai++] as Value;
    const width = widthS ? Number(widthS) : undefined;
    const prec = precS !== undefined ? Number(precS) : m[0].includes('.') ? 0 : undefined;
    let s: string;
    switch (verb) {
      case 'v':
      case 's':
        s = typeof a === 'string' ? a : fmtV(a);
        if (prec !== undefined && verb === 's') s = [...s].slice(0, prec).join('');
        break;
      case 'd':
        if (isNumber(a) && isInteger(a)) s = toBig(a).toString();
        else s = `%!d(${fmtBad(a)})`;
        if (flags.includes('+') && isNumber(a) && Number(a) >= 0) s = `+${s}`;
        break;
      case 'f':
      case 'F':
        if (isNumber(a)) s = Number(a).toFixed(prec ?? 6);
        else s = `%!f(${fmtBad(a)})`;
        if (flags.includes('+') && isNumber(a) && Number(a) >= 0) s = `+${s}`;
        break;
      case 'e':
      case 'E': {
        if (isNumber(a)) {
          s = Number(a).toExponential(prec ?? 6);
          s = s.replace(/e([+-])(\d)$/, 'e$10$2');
          if (verb === 'E') s = s.toUpperCase();
        } else s = `%!e(${fmtBad(a)})`;
        break;
      }
      case 'g':
      case 'G':
        s = isNumber(a) ? fmtG(Number(a), prec) : `%!g(${fmtBad(a)})`;
        break;
      case 'x':
      case 'X': {
        if (isNumber(a) && isInteger(a)) s = toBig(a).toString(16);
        else if (typeof a === 'string') s = Buffer.from(a, 'utf8').toString('hex');
        else if (isNumber(a)) s = floatHex(Number(a));
        else s = `%!${verb}(${fmtBad(a)})`;
        if (verb === 'X') s = s.toUpperCase();
        if (flags.includes('#') && isNumber(a)) s = (verb === 'X' ? '0X' : '0x') + s;
        break;
      }
      case 'o':
        s = isNumber(a) && isInteger(a) ? toBig(a).toString(8) : `%!o(${fmtBad(a)})`;
        break;
      case 'b':
        s = isNumber(a) && isInteger(a) ? toBig(a).toString(2) : `%!b(${fmtBad(a)})`;
        break;
      case 't':
        s = typeof a === 'boolean' ? String(a) : `%!t(${fmtBad(a)})`;
        break;
      case 'q':
        s = typeof a === 'string' ? JSON.stringify(a) : `%!q(${fmtBad(a)})`;
        break;
      case 'c':
        s = isNumber(a) ? String.fromCodePoint(Number(a)) : `%!c(${fmtBad(a)})`;
        break;
      default:
        s = `%!${verb}(${fmtBad(a)})`;
    }
    if (width !== undefined && [...s].length < width) {
      const pad = width - [...s].length;
      if (flags.includes('-')) s += ' '.repeat(pad);
      else if (flags.includes('0') && /[dfeEgGxXob]/.test(verb as string)) {
        const neg = s.startsWith('-') || s.startsWith('+');
        s = neg ? s[0] + '0'.repeat(pad) + s.slice(1) : '0'.repeat(pad) + s;
      } else s = ' '.repeat(pad) + s;
    }
    out += s;
  }
  out += format.slice(last);
  if (ai < args.length)
    out += `%!(EXTRA ${args
      .slice(ai)
      .map((a) => `${goType(a)}=${fmtV(a)}`)
      .join(', ')})`;
  return out;
}

function goType(a: Value): string {
  if (typeof a === 'string') return 'string';
  if (isNumber(a)) return 'json.Number';
  if (typeof a === 'boolean') return 'bool';
  return 'ast.Value';
}

function fmtBad(a: Value): string {
  return `${goType(a)}=${fmtV(a)}`;
}

function floatHex(x: number): string {
  return x.toString(16);
}

function fmtG(x: number, prec: number | undefined): string {
  if (prec === undefined) {
    const exp = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
    if (exp < -4 || exp >= 21) return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
    return String(x);
  }
  const p = prec === 0 ? 1 : prec;
  const exp = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
  if (exp < -4 || exp >= p)
    return x
      .toExponential(p - 1)
      .replace(/\.?0+e/, 'e')
      .replace(/e([+-])(\d)$/, 'e$10$2');
  return String(Number(x.toPrecision(p)));
}

/** %v formatting of a Rego value, as OPA prints it. */
export function fmtV(a: Value): string {
  if (typeof a === 'string') return a;
  if (isNumber(a)) return numToString(a);
  if (a === null) return 'null';
  if (typeof a === 'boolean') return String(a);
  return toRegoString(a);
}

function numToString(n: number | bigint): string {
  if (typeof n === 'bigint') return n.toString();
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const s = String(n);
  return s.replace(/e\+?(-?)(\d+)$/, (_m, sign, d) => `e${sign || '+'}${d.padStart(2, '0')}`);
}

function formatInt(args: Value[]): Value {
  const n = num('format_int', args, 0);
  const base = num('format_int', args, 1);
  const b = Number(base);
  if (![2, 8, 10, 16].includes(b))
    throw new BuiltinError('format_int: operand 2 must be one of {2, 8, 10, 16}', 'eval_type_error');
  const x = typeof n === 'bigint' ? n : BigInt(Math.trunc(n));
  return x.toString(b);
}

function indexOfRunes(s: string, sub: string): number {
  const i = s.indexOf(sub);
  if (i < 0) return -1;
  return [...s.slice(0, i)].length;
}

function replaceN(args: Value[]): Value {
  const pat = args[0] as Value;
  if (!(pat instanceof RObject)) throw typeErr('strings.replace_n', 1, 'object', pat);
  const s = str('strings.replace_n', args, 1);
  const pairs: [string, string][] = [];
  for (const [k, v] of pat.sortedEntries()) {
    if (typeof k !== 'string')
      throw new BuiltinError(
        'strings.replace_n: operand 1 non-string key found in pattern object',
        'eval_type_error',
      );
    if (typeof v !== 'string')
      throw new BuiltinError(
        'strings.replace_n: operand 1 non-string value found in pattern object',
        'eval_type_error',
      );
    pairs.push([k, v]);
  }
  // Go's strings.NewReplacer: at each position, the first matching old string (in argument order) wins
  let out = '';
  let i = 0;
  outer: while (i < s.length) {
    for (const [o, n] of pairs) {
      if (o.length > 0 && s.startsWith(o, i)) {
        out += n;
        i += o.length;
        continue outer;
      }
    }
    out += s[i];
    i++;
  }
  return out;
}

export const stringBuiltins: BuiltinDef[] = [
  {
    name: 'concat',
    arity: 2,
    fn: (a) => {
      const sep = str('concat', a, 0);
      const xs = coll('concat', a, 1, 'one of {array, set}');
      return xs
        .map((x) => {
          if (typeof x !== 'string')
            throw typeErr('concat', 2, 'one of {set, array} of strings', a[1] as Value);
          return x;
        })
        .join(sep);
    },
  },
  { name: 'contains', arity: 2, fn: (a) => str('contains', a, 0).includes(str('contains', a, 1)) },
  {
    name: 'startswith',
    arity: 2,
    fn: (a) => str('startswith', a, 0).startsWith(str('startswith', a, 1)),
    fast2: (s, p) => (typeof s === 'string' && typeof p === 'string' ? s.startsWith(p) : undefined),
  },
  { name: 'endswith', arity: 2, fn: (a) => str('endswith', a, 0).endsWith(str('endswith', a, 1)) },
  { name: 'lower', arity: 1, fn: (a) => str('lower', a, 0).toLowerCase() },
  { name: 'upper', arity: 1, fn: (a) => str('upper', a, 0).toUpperCase() },
  { name: 'format_int', arity: 2, fn: formatInt },
  { name: 'indexof', arity: 2, fn: (a) => indexOfRunes(str('indexof', a, 0), str('indexof', a, 1)) },
  {
    name: 'indexof_n',
    arity: 2,
    fn: (a) => {
      const s = str('indexof_n', a, 0);
      const sub = str('indexof_n', a, 1);
      const out: Value[] = [];
      const cs = [...s];
      const ss = [...sub];
      for (let i = 0; i + ss.length <= cs.length; i++) {
        let ok = true;
        for (let j = 0; j < ss.length; j++) if (cs[i + j] !== ss[j]) ok = false;
        if (ok) out.push(i);
      }
      return out;
    },
  },
  {
    name: 'replace',
    arity: 3,
    fn: (a) =>
      str('replace', a, 0)
        .split(str('replace', a, 1))
        .join(str('replace', a, 2)),
  },
  { name: 'strings.replace_n', arity: 2, fn: replaceN },
  {
    name: 'split',
    arity: 2,
    fn: (a) => {
      const s = str('split', a, 0);
      const d = str('split', a, 1);
      return d === '' ? [...s] : s.split(d);
    },
  },
  {
    name: 'strings.split_n',
    arity: 3,
    fn: (a) => {
      const s = str('strings.split_n', a, 0);
      const d = str('strings.split_n', a, 1);
      const n = int('strings.split_n', a, 2);
      const parts = d === '' ? [...s] : s.split(d);
      return n >= 0 ? parts.slice(0, n) : parts.slice(n);
    },
  },
  { name: 'sprintf', arity: 2, fn: (a) => goSprintf(str('sprintf', a, 0), arr('sprintf', a, 1)) },
  {
    name: 'substring',
    arity: 3,
    fn: (a) => {
      const s = [...str('substring', a, 0)];
      const start = int('substring', a, 1);
      const len = int('substring', a, 2);
      if (start < 0) throw new BuiltinError('substring: negative offset');
      if (start >= s.length) return '';
      if (len < 0) return s.slice(start).join('');
      return s.slice(start, start + len).join('');
    },
  },
  { name: 'trim', arity: 2, fn: (a) => cutset(str('trim', a, 0), str('trim', a, 1), true, true) },
  {
    name: 'trim_left',
    arity: 2,
    fn: (a) => cutset(str('trim_left', a, 0), str('trim_left', a, 1), true, false),
  },
  {
    name: 'trim_right',
    arity: 2,
    fn: (a) => cutset(str('trim_right', a, 0), str('trim_right', a, 1), false, true),
  },
  {
    name: 'trim_prefix',
    arity: 2,
    fn: (a) => {
      const s = str('trim_prefix', a, 0);
      const p = str('trim_prefix', a, 1);
      return s.startsWith(p) ? s.slice(p.length) : s;
    },
  },
  {
    name: 'trim_suffix',
    arity: 2,
    fn: (a) => {
      const s = str('trim_suffix', a, 0);
      const p = str('trim_suffix', a, 1);
      return p !== '' && s.endsWith(p) ? s.slice(0, s.length - p.length) : s;
    },
  },
  {
    name: 'trim_space',
    arity: 1,
    fn: (a) => str('trim_space', a, 0).replace(/^[\s\u0085]+|[\s\u0085]+$/g, ''),
  },
  { name: 'strings.reverse', arity: 1, fn: (a) => [...str('strings.reverse', a, 0)].reverse().join('') },
  {
    name: 'strings.count',
    arity: 2,
    fn: (a) => {
      const s = str('strings.count', a, 0);
      const sub = str('strings.count', a, 1);
      if (sub === '') return [...s].length + 1;
      return s.split(sub).length - 1;
    },
  },
  {
    name: 'strings.any_prefix_match',
    arity: 2,
    fn: (a) => {
      const ss = strOrColl('strings.any_prefix_match', a, 0);
      const ps = strOrColl('strings.any_prefix_match', a, 1);
      return ss.some((s) => ps.some((p) => s.startsWith(p)));
    },
  },
  {
    name: 'strings.any_suffix_match',
    arity: 2,
    fn: (a) => {
      const ss = strOrColl('strings.any_suffix_match', a, 0);
      const ps = strOrColl('strings.any_suffix_match', a, 1);
      return ss.some((s) => ps.some((p) => s.endsWith(p)));
    },
  },
];

export { obj, stringify };
