/**
 * Regular expressions and globs. OPA uses Go's RE2; we translate to JS RegExp with the `u` flag.
 * Differences from RE2: no \z, \A or (?P<name>) handled natively (we rewrite the common ones),
 * JS supports lookaround and backreferences (RE2 rejects them: we reject them too), and
 * inline flags other than a leading (?i)/(?s)/(?m) are not supported.
 */
import { RSet, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, int, str, typeErr } from './types.js';

const cache = new Map<string, RegExp>();

export function compileRe(src: string, global = false): RegExp {
  const key = `${global ? 'g' : ''}/${src}`;
  let re = cache.get(key);
  if (re) return re;
  let flags = global ? 'gu' : 'u';
  let s = src;
  const lead = /^\(\?([imsU]+)\)/.exec(s);
  if (lead) {
    for (const f of lead[1] as string) if (f !== 'U' && !flags.includes(f)) flags += f;
    s = s.slice(lead[0].length);
  }
  if (/\(\?[=!<][^P]/.test(s) || /\\[1-9]/.test(s))
    throw new Error(`error parsing regexp: invalid or unsupported Perl syntax`);
  s = s
    .replace(/\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/g, '(?<$1>')
    .replace(/\\z/g, '$(?![\\s\\S])')
    .replace(/\\A/g, '^(?<![\\s\\S])');
  s = s
    .replace(/\[\[:(\w+):\]\]/g, (_m, cls: string) => `[${posix(cls)}]`)
    .replace(/\[:(\w+):\]/g, (_m, cls: string) => posix(cls));
  try {
    re = new RegExp(s, flags);
  } catch (e) {
    throw new Error(`error parsing regexp: ${(e as Error).message}`);
  }
  if (cache.size > 500) cache.clear();
  cache.set(key, re);
  return re;
}

function posix(cls: string): string {
  const m: Record<string, string> = {
    alpha: 'A-Za-z',
    digit: '0-9',
    alnum: 'A-Za-z0-9',
    upper: 'A-Z',
    lower: 'a-z',
    space: '\\s',
    punct: '!-\\/:-@\\[-`{-~',
    xdigit: '0-9A-Fa-f',
    word: '\\w',
  };
  return m[cls] ?? cls;
}

function re(name: string, pattern: string, global = false): RegExp {
  try {
    return compileRe(pattern, global);
  } catch (e) {
    throw new BuiltinError(`${name}: ${(e as Error).message}`);
  }
}

/** Translate a gobwas-style glob to a RegExp. */
export function globToRegExp(pattern: string, delims: string[]): RegExp {
  const d = delims.map((c) => c.replace(/[\\\]^-]/g, '\\$&')).join('');
  const notDelim = d ? `[^${d}]` : '[\\s\\S]';
  let out = '';
  let i = 0;
  let depth = 0;
  const chars = [...pattern];
  while (i < chars.length) {
    const c = chars[i] as string;
    if (c === '\\') {
      const n = chars[i + 1];
      if (n === undefined) throw new Error('unexpected end of input');
      out += n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i += 2;
      continue;
    }
    if (c === '*') {
      if (chars[i + 1] === '*') {
        out += '[\\s\\S]*';
        i += 2;
      } else {
        out += `${notDelim}*`;
        i++;
      }
      continue;
    }
    if (c === '?') {
      out += notDelim;
      i++;
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      let neg = false;
      if (chars[j] === '!') {
        neg = true;
        j++;
      }
      let cls = '';
      while (j < chars.length && chars[j] !== ']') {
        const x = chars[j] as string;
        if (x === '\\') {
          cls += `\\${chars[j + 1] ?? ''}`;
          j += 2;
          continue;
        }
        cls += x === '^' ? '\\^' : x;
        j++;
      }
      if (j >= chars.length) throw new Error('unexpected end of input');
      out += `[${neg ? '^' : ''}${cls}]`;
      i = j + 1;
      continue;
    }
    if (c === '{') {
      depth++;
      out += '(?:';
      i++;
      continue;
    }
    if (c === '}' && depth > 0) {
      depth--;
      out += ')';
      i++;
      continue;
    }
    if (c === ',' && depth > 0) {
      out += '|';
      i++;
      continue;
    }
    out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    i++;
  }
  if (depth > 0) throw new Error('unexpected end of input');
  return new RegExp(`^${out}$`, 'u');
}

/** Cache key of a glob delimiter list: the delimiter itself when there is one (the usual case). */
function delimKey(dv: Value): string | undefined {
  if (dv === null) return '\u0000null';
  if (!Array.isArray(dv)) return undefined;
  for (const x of dv) if (typeof x !== 'string') return undefined;
  if (dv.length === 0) return '.';
  if (dv.length === 1 && (dv[0] as string).charCodeAt(0) !== 0) return dv[0] as string;
  // length-prefixed: unambiguous whatever characters the delimiters contain
  let k = '\u0000';
  for (const d of dv as string[]) k += `${d.length}:${d}`;
  return k;
}

/** glob.match for a pattern already compiled (no errors possible); undefined otherwise. */
function globMatchFast(p: Value, dv: Value, s: Value): Value | undefined {
  if (typeof p !== 'string' || typeof s !== 'string') return undefined;
  let dkey: Value | undefined;
  if (Array.isArray(dv) && dv.length === 1) {
    dkey = dv[0];
    if (typeof dkey !== 'string' || dkey.charCodeAt(0) === 0) return undefined;
  } else dkey = delimKey(dv);
  if (dkey === undefined) return undefined;
  // nearly every call site uses the same delimiters: remember the last table
  let byPattern: Map<string, GlobMatcher> | undefined;
  if (dkey === lastDelimKey) byPattern = lastByPattern;
  else {
    byPattern = globCache.get(dkey);
    if (byPattern === undefined) return undefined;
    lastDelimKey = dkey;
    lastByPattern = byPattern;
  }
  const m = byPattern?.get(p);
  return m === undefined ? undefined : m(s);
}

let lastDelimKey: string | undefined;
let lastByPattern: Map<string, GlobMatcher> | undefined;

function globMatch(args: Value[]): Value {
  const pattern = str('glob.match', args, 0);
  const dv = args[1] as Value;
  const dkey = delimKey(dv);
  if (dkey === undefined) {
    if (Array.isArray(dv)) throw typeErr('glob.match', 2, 'array of strings', dv);
    throw typeErr('glob.match', 2, 'array', dv);
  }
  const subject = str('glob.match', args, 2);
  let byPattern = globCache.get(dkey);
  if (byPattern === undefined) {
    if (globCache.size >= 64) {
      globCache.clear();
      lastDelimKey = undefined;
      lastByPattern = undefined;
    }
    byPattern = new Map();
    globCache.set(dkey, byPattern);
  }
  let m = byPattern.get(pattern);
  if (m === undefined) {
    const delims = dv === null ? [] : (dv as string[]).length === 0 ? ['.'] : (dv as string[]);
    try {
      m = globMatcher(pattern, delims);
    } catch (e) {
      throw new BuiltinError(`glob.match: ${(e as Error).message}`);
    }
    if (byPattern.size >= GLOB_CACHE_MAX) byPattern.clear();
    byPattern.set(pattern, m);
  }
  return m(subject);
}

type GlobMatcher = (s: string) => boolean;

/** Compiled globs by delimiter key, then pattern; shared across evaluations (patterns come from long-lived data). */
const globCache = new Map<string, Map<string, GlobMatcher>>();
const GLOB_CACHE_MAX = 4096;

/**
 * A matcher for one glob. Literal patterns and a single leading or trailing `*` (with one-character
 * delimiters) are matched without a RegExp; anything else goes through globToRegExp.
 */
export function globMatcher(pattern: string, delims: string[]): GlobMatcher {
  const simple =
    !/[\\?[\]{}]/.test(pattern) &&
    !pattern.includes('**') &&
    delims.every((d) => d.length === 1 && !isSurrogate(d.charCodeAt(0)));
  if (simple) {
    const star = pattern.indexOf('*');
    if (star < 0) return (s) => s === pattern;
    const noDelim =
      delims.length === 0
        ? () => true
        : delims.length === 1
          ? (s: string, from: number, to: number) => {
              const i = s.indexOf(delims[0] as string, from);
              return i < 0 || i >= to;
            }
          : (s: string, from: number, to: number) => {
              for (let i = from; i < to; i++) if (delims.includes(s[i] as string)) return false;
              return true;
            };
    if (star === pattern.length - 1) {
      const prefix = pattern.slice(0, -1);
      const n = prefix.length;
      if (delims.length === 1) {
        const d = delims[0] as string;
        return (s) => hasPrefix(s, prefix, n) && s.indexOf(d, n) < 0;
      }
      return (s) => hasPrefix(s, prefix, n) && noDelim(s, n, s.length);
    }
    if (star === 0 && pattern.indexOf('*', 1) < 0) {
      const suffix = pattern.slice(1);
      return (s) => s.endsWith(suffix) && noDelim(s, 0, s.length - suffix.length);
    }
  }
  const re = globToRegExp(pattern, delims);
  return (s) => re.test(s);
}

/** s.startsWith(prefix) for prefix.length === n; a plain loop is several times faster in V8. */
function hasPrefix(s: string, prefix: string, n: number): boolean {
  if (s.length < n) return false;
  // backwards: patterns of one zone share long leading parts, so mismatches show up at the end
  for (let i = n - 1; i >= 0; i--) if (s.charCodeAt(i) !== prefix.charCodeAt(i)) return false;
  return true;
}

function isSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdfff;
}

function templateMatch(args: Value[]): Value {
  const tpl = str('regex.template_match', args, 0);
  const s = str('regex.template_match', args, 1);
  const open = str('regex.template_match', args, 2);
  const close = str('regex.template_match', args, 3);
  let out = '';
  let i = 0;
  while (i < tpl.length) {
    const j = tpl.indexOf(open, i);
    if (j < 0) {
      out += tpl.slice(i).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      break;
    }
    out += tpl.slice(i, j).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    const k = tpl.indexOf(close, j + open.length);
    if (k < 0) throw new BuiltinError('regex.template_match: unbalanced delimiters');
    out += `(?:${tpl.slice(j + open.length, k)})`;
    i = k + close.length;
  }
  return re('regex.template_match', `^${out}$`).test(s);
}

export const regexBuiltins: BuiltinDef[] = [
  { name: 'regex.globs_match', arity: 2, fn: (a, c) => globsMatchBuiltin.fn(a, c) },
  {
    name: 'regex.match',
    arity: 2,
    fn: (a) => re('regex.match', str('regex.match', a, 0)).test(str('regex.match', a, 1)),
  },
  {
    name: 'regex.is_valid',
    arity: 1,
    fn: (a) => {
      const p = a[0];
      if (typeof p !== 'string') return false;
      try {
        compileRe(p);
        return true;
      } catch {
        return false;
      }
    },
  },
  {
    name: 'regex.find_n',
    arity: 3,
    fn: (a) => {
      const r = re('regex.find_n', str('regex.find_n', a, 0), true);
      const s = str('regex.find_n', a, 1);
      const n = int('regex.find_n', a, 2);
      const out: Value[] = [];
      for (const m of s.matchAll(r)) {
        if (n >= 0 && out.length >= n) break;
        out.push(m[0]);
      }
      return out;
    },
  },
  {
    name: 'regex.find_all_string_submatch_n',
    arity: 3,
    fn: (a) => {
      const r = re('regex.find_all_string_submatch_n', str('regex.find_all_string_submatch_n', a, 0), true);
      const s = str('regex.find_all_string_submatch_n', a, 1);
      const n = int('regex.find_all_string_submatch_n', a, 2);
      const out: Value[] = [];
      for (const m of s.matchAll(r)) {
        if (n >= 0 && out.length >= n) break;
        out.push([...m].map((x) => x ?? ''));
      }
      return out;
    },
  },
  {
    name: 'regex.replace',
    arity: 3,
    fn: (a) => {
      const s = str('regex.replace', a, 0);
      const r = re('regex.replace', str('regex.replace', a, 1), true);
      const rep = str('regex.replace', a, 2)
        .replace(/\$\{(\w+)\}/g, '$<$1>')
        .replace(/\$(\d+)/g, '$$$1');
      return s.replace(r, rep);
    },
  },
  {
    name: 'regex.split',
    arity: 2,
    fn: (a) => str('regex.split', a, 1).split(re('regex.split', str('regex.split', a, 0), true)),
  },
  { name: 'regex.template_match', arity: 4, fn: templateMatch },
  { name: 'glob.match', arity: 3, fn: globMatch, fast3: globMatchFast },
  {
    name: 'glob.quote_meta',
    arity: 1,
    fn: (a) => str('glob.quote_meta', a, 0).replace(/[*?\\[\]{}]/g, '\\$&'),
  },
];

export { RSet };

// ---------- regex.globs_match: do two simple patterns (., [..], literals, *, +, ?) share a match? ----------
type Ranges = [number, number][];
interface GlobToken {
  set: Ranges;
  quant: '' | '*' | '?';
}

const MAX_CP = 0x10ffff;

function complement(r: Ranges): Ranges {
  const out: Ranges = [];
  let lo = 0;
  for (const [a, b] of [...r].sort((x, y) => x[0] - y[0])) {
    if (a > lo) out.push([lo, a - 1]);
    lo = Math.max(lo, b + 1);
  }
  if (lo <= MAX_CP) out.push([lo, MAX_CP]);
  return out;
}

function intersects(a: Ranges, b: Ranges): boolean {
  return a.some(([x, y]) => b.some(([u, v]) => x <= v && u <= y));
}

function globTokens(name: string, p: string): GlobToken[] {
  const out: GlobToken[] = [];
  const cps = [...p];
  const bad = (pos: number, what: string): never => {
    throw new BuiltinError(`${name}: input:${p}, pos:${pos}, ${what}: the input provided is invalid`);
  };
  let i = 0;
  while (i < cps.length) {
    const c = cps[i] as string;
    let set: Ranges;
    if (c === '.') {
      set = complement([[10, 10]]);
      i++;
    } else if (c === '[') {
      let j = i + 1;
      const neg = cps[j] === '^';
      if (neg) j++;
      const rs: Ranges = [];
      while (j < cps.length && cps[j] !== ']') {
        let lo = cps[j] as string;
        if (lo === '\\') lo = cps[++j] ?? bad(j, 'escape at end');
        let hi = lo;
        if (cps[j + 1] === '-' && cps[j + 2] !== undefined && cps[j + 2] !== ']') {
          hi = cps[j + 2] as string;
          if (hi === '\\') {
            hi = cps[j + 3] ?? bad(j, 'escape at end');
            j++;
          }
          j += 2;
        }
        rs.push([lo.codePointAt(0) as number, hi.codePointAt(0) as number]);
        j++;
      }
      if (j >= cps.length) bad(i + 1, "set-open '[' with no closing ']'");
      set = neg ? complement(rs) : rs;
      i = j + 1;
    } else if (c === ']') {
      return bad(i + 1, "set-close ']' with no preceding '['");
    } else if (c === '*' || c === '+' || c === '?') {
      return bad(i + 1, `quantifier '${c}' with nothing to repeat`);
    } else {
      let lit = c;
      if (c === '\\') {
        lit = cps[i + 1] ?? bad(i + 1, 'escape at end');
        i++;
      }
      const cp = lit.codePointAt(0) as number;
      set = [[cp, cp]];
      i++;
    }
    const q = cps[i];
    if (q === '*' || q === '?') {
      out.push({ set, quant: q });
      i++;
    } else if (q === '+') {
      out.push({ set, quant: '' }, { set, quant: '*' });
      i++;
    } else out.push({ set, quant: '' });
  }
  return out;
}

function globsIntersect(a: GlobToken[], b: GlobToken[]): boolean {
  const seen = new Set<number>();
  const stack: [number, number][] = [[0, 0]];
  const push = (i: number, j: number) => {
    const key = i * (b.length + 1) + j;
    if (!seen.has(key)) {
      seen.add(key);
      stack.push([i, j]);
    }
  };
  seen.add(0);
  while (stack.length) {
    const [i, j] = stack.pop() as [number, number];
    if (i === a.length && j === b.length) return true;
    const ta = a[i];
    const tb = b[j];
    if (ta && ta.quant !== '') push(i + 1, j);
    if (tb && tb.quant !== '') push(i, j + 1);
    if (ta && tb && intersects(ta.set, tb.set)) {
      push(ta.quant === '*' ? i : i + 1, tb.quant === '*' ? j : j + 1);
      if (ta.quant === '*') push(i + 1, tb.quant === '*' ? j : j + 1);
      if (tb.quant === '*') push(ta.quant === '*' ? i : i + 1, j + 1);
    }
  }
  return false;
}

export const globsMatchBuiltin: BuiltinDef = {
  name: 'regex.globs_match',
  arity: 2,
  fn: (a) => {
    const x = globTokens('regex.globs_match', str('regex.globs_match', a, 0));
    const y = globTokens('regex.globs_match', str('regex.globs_match', a, 1));
    return globsIntersect(x, y);
  },
};
