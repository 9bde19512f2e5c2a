import { parse as yamlParse } from 'yaml';
import type { Expr, ExprBody, Import, Module, Rule, Term, With } from './ast.js';
import { type Location, RegoError } from './errors.js';
import { normInt, RSet, type Value } from './value.js';

type TokKind = 'ident' | 'string' | 'number' | 'tmpl' | 'op' | 'eof';

interface Token {
  k: TokKind;
  v: string;
  /** decoded string value, or template parts */
  s?: string;
  tparts?: (string | { src: string; line: number; col: number })[];
  line: number;
  col: number;
  /** a newline precedes this token */
  nl: boolean;
  /** whitespace precedes this token */
  ws: boolean;
  /** its location, made on first use */
  loc?: Location;
}

const KEYWORDS = new Set([
  'package',
  'import',
  'as',
  'default',
  'else',
  'if',
  'contains',
  'some',
  'in',
  'every',
  'not',
  'with',
  'true',
  'false',
  'null',
]);

const OPS3 = new Set([':=']);
const OPS2 = new Set(['==', '!=', '<=', '>=', ':=']);
const OPS1 = new Set([
  '=',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
  '&',
  '|',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  ';',
  '.',
  ':',
]);

/** [A-Za-z_] */
function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}

/** [0-9] (false for NaN, past the end) */
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** [A-Za-z0-9_] */
function isIdentChar(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57);
}

function perr(msg: string, loc: Location): RegoError {
  return new RegoError('rego_parse_error', msg, loc);
}

/** Tokenise Rego source. Throws RegoError(rego_parse_error) with a location. */
export function lex(
  src: string,
  file: string,
  line0 = 1,
  col0 = 1,
  comments?: { line: number; text: string }[],
): Token[] {
  const toks: Token[] = [];
  let i = 0;
  let line = line0;
  let col = col0;
  let nl = false;
  let ws = false;
  const n = src.length;
  // start of the current token (one closure for the whole source, not one per token)
  let sl = line;
  let sc = col;
  // every token has every field (one object shape, no later property additions)
  const push = (k: TokKind, v: string, s?: string, tparts?: Token['tparts']) => {
    const t: Token = { k, v, s, tparts, line: sl, col: sc, nl, ws, loc: undefined };
    toks.push(t);
    nl = false;
    ws = false;
  };
  const adv = (c: string) => {
    if (c === '\n') {
      line++;
      col = 1;
    } else col++;
  };
  while (i < n) {
    const c = src[i] as string;
    if (c === '\n') {
      nl = true;
      ws = true;
      line++;
      col = 1;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      ws = true;
      col++;
      i++;
      continue;
    }
    if (c === '#') {
      const start = i;
      const cl = line;
      while (i < n && src[i] !== '\n') {
        i++;
        col++;
      }
      comments?.push({ line: cl, text: src.slice(start + 1, i) });
      continue;
    }
    sl = line;
    sc = col;
    if (isIdentStart(src.charCodeAt(i))) {
      let j = i + 1;
      while (j < n && isIdentChar(src.charCodeAt(j))) j++;
      const v = src.slice(i, j);
      col += j - i;
      i = j;
      push('ident', v);
      continue;
    }
    if (isDigit(src.charCodeAt(i)) || (c === '.' && isDigit(src.charCodeAt(i + 1)))) {
      const m = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(src.slice(i, i + 400));
      const v = m ? m[0] : c;
      col += v.length;
      i += v.length;
      if (/[A-Za-z_]/.test(src[i] ?? '')) throw perr('invalid number literal', { file, line: sl, col: sc });
      push('number', v);
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < n && src[j] !== '"') {
        if (src[j] === '\\') j++;
        if (src[j] === '\n') throw perr('non-terminated string', { file, line: sl, col: sc });
        j++;
      }
      if (j >= n) throw perr('non-terminated string', { file, line: sl, col: sc });
      const raw = src.slice(i, j + 1);
      let s: string;
      try {
        s = JSON.parse(raw) as string;
      } catch {
        throw perr('illegal escape sequence in string', { file, line: sl, col: sc });
      }
      col += j + 1 - i;
      i = j + 1;
      push('string', raw, s);
      continue;
    }
    if (c === '`') {
      let j = i + 1;
      while (j < n && src[j] !== '`') j++;
      if (j >= n) throw perr('non-terminated raw string', { file, line: sl, col: sc });
      const s = src.slice(i + 1, j);
      for (let q = i; q <= j; q++) adv(src[q] as string);
      i = j + 1;
      push('string', s, s);
      continue;
    }
    if (c === '$' && (src[i + 1] === '"' || src[i + 1] === '`')) {
      const quote = src[i + 1] as string;
      const raw = quote === '`';
      const tparts: (string | { src: string; line: number; col: number })[] = [];
      let buf = '';
      let j = i + 2;
      adv('$');
      adv(quote);
      for (;;) {
        if (j >= n) throw perr('non-terminated template string', { file, line: sl, col: sc });
        const d = src[j] as string;
        if (d === quote) {
          adv(d);
          j++;
          break;
        }
        if (!raw && d === '\n') throw perr('non-terminated template string', { file, line: sl, col: sc });
        if (d === '\\' && raw && src[j + 1] === '{') {
          buf += '{';
          adv(d);
          adv('{');
          j += 2;
          continue;
        }
        if (d === '\\' && !raw) {
          const e = src[j + 1] ?? '';
          if (e === '{') {
            buf += '{';
            adv(d);
            adv(e);
            j += 2;
            continue;
          }
          let esc = `\\${e}`;
          if (e === 'u') esc = src.slice(j, j + 6);
          try {
            buf += JSON.parse(`"${esc}"`) as string;
          } catch {
            throw perr('illegal escape sequence in template string', { file, line, col });
          }
          for (const q of esc) adv(q);
          j += esc.length;
          continue;
        }
        if (d === '{') {
          if (buf) tparts.push(buf);
          buf = '';
          let depth = 1;
          let k = j + 1;
          let inStr: string | null = null;
          while (k < n && depth > 0) {
            const e = src[k] as string;
            if (inStr) {
              if (e === '\\' && inStr === '"') k++;
              else if (e === inStr) inStr = null;
            } else if (e === '"' || e === '`') inStr = e;
            else if (e === '{') depth++;
            else if (e === '}') depth--;
            if (depth > 0) k++;
          }
          if (depth > 0) throw perr('non-terminated template expression', { file, line, col });
          adv('{');
          const eline = line;
          const ecol = col;
          const exprSrc = src.slice(j + 1, k);
          for (const q of exprSrc) adv(q);
          adv('}');
          tparts.push({ src: exprSrc, line: eline, col: ecol });
          j = k + 1;
          continue;
        }
        buf += d;
        adv(d);
        j++;
      }
      if (buf) tparts.push(buf);
      i = j;
      push('tmpl', '$template', undefined, tparts);
      continue;
    }
    // every two-character operator ends in `=`
    const two = src.charCodeAt(i + 1) === 61 ? src.slice(i, i + 2) : '';
    if (two !== '' && (OPS2.has(two) || OPS3.has(two))) {
      col += 2;
      i += 2;
      push('op', two);
      continue;
    }
    if (OPS1.has(c)) {
      col++;
      i++;
      push('op', c);
      continue;
    }
    throw perr(`unexpected character ${JSON.stringify(c)}`, { file, line: sl, col: sc });
  }
  toks.push({
    k: 'eof',
    v: '',
    s: undefined,
    tparts: undefined,
    line,
    col,
    nl: true,
    ws: true,
    loc: undefined,
  });
  return toks;
}

const REL_OPS: Record<string, string> = {
  '==': 'equal',
  '!=': 'neq',
  '<': 'lt',
  '<=': 'lte',
  '>': 'gt',
  '>=': 'gte',
};
const ARITH_OPS: Record<string, string> = { '+': 'plus', '-': 'minus' };
const FACTOR_OPS: Record<string, string> = { '*': 'mul', '/': 'div', '%': 'rem' };

/** `cur` extended by the pending ref segments in `path` (which is emptied). */
function withPath(cur: Term, path: Term[]): Term {
  if (path.length === 0) return cur;
  const out: Term =
    cur.t === 'ref'
      ? { t: 'ref', head: cur.head, path: [...cur.path, ...path], loc: cur.loc }
      : { t: 'ref', head: cur, path: [...path], loc: cur.loc };
  path.length = 0;
  return out;
}

function callTerm(name: string, args: Term[], loc: Location): Term {
  return { t: 'call', fn: { t: 'var', name, loc }, args, loc };
}

/** Parses one Rego module (v1 syntax). */
export class Parser {
  private toks: Token[];
  private readonly comments: { line: number; text: string }[] = [];
  private p = 0;
  private file: string;
  /** newline does not end an expression (inside (), [] and collection literals) */
  private nlOk = false;
  /** `|` ends the term (collection element / comprehension head) */
  private noOr = false;

  constructor(src: string, file: string, line0 = 1, col0 = 1) {
    this.file = file;
    this.toks = lex(src, file, line0, col0, this.comments);
  }

  private get tok(): Token {
    return this.toks[this.p] as Token;
  }
  /** current token kind (a method so TypeScript does not narrow across next()) */
  private kind(): TokKind {
    return (this.toks[this.p] as Token).k;
  }
  private peek(o = 1): Token {
    return (this.toks[this.p + o] ?? this.toks[this.toks.length - 1]) as Token;
  }
  private loc(t: Token = this.tok): Location {
    // one (never mutated) Location per token, shared by the terms that start at it
    if (t.loc === undefined) t.loc = { file: this.file, line: t.line, col: t.col };
    return t.loc;
  }
  private next(): Token {
    const t = this.tok;
    if (this.p < this.toks.length - 1) this.p++;
    return t;
  }
  private isOp(v: string, t: Token = this.tok): boolean {
    return t.k === 'op' && t.v === v;
  }
  private isKw(v: string, t: Token = this.tok): boolean {
    return t.k === 'ident' && t.v === v;
  }
  private describe(t: Token): string {
    if (t.k === 'eof') return 'eof token';
    if (t.k === 'ident') return KEYWORDS.has(t.v) ? `${t.v} keyword` : `ident token`;
    if (t.k === 'string') return 'string token';
    if (t.k === 'number') return 'number token';
    return `${t.v} token`;
  }
  private fail(expected: string, t: Token = this.tok): never {
    throw perr(`unexpected ${this.describe(t)}: expected ${expected}`, this.loc(t));
  }
  private expectOp(v: string): Token {
    if (!this.isOp(v)) this.fail(v);
    return this.next();
  }
  /** keyword used as an identifier when immediately followed by `.` (e.g. `foo.if.bar`, `if.foo := 1`) */
  private kwAsIdent(): boolean {
    const t = this.tok;
    const nx = this.toks[this.p + 1];
    if (nx === undefined || nx.k !== 'op' || nx.ws) return false;
    return nx.v === '.' || (nx.v === '(' && t.v === 'contains');
  }

  parseModule(): Module {
    if (!this.isKw('package')) this.fail('package');
    const pkgTok = this.next();
    const pkg = this.parseDottedPath();
    const imports: Import[] = [];
    const rules: Rule[] = [];
    while (this.isKw('import') && !this.kwAsIdent()) {
      const it = this.next();
      const path = this.parsePostfixRef();
      let alias: string | undefined;
      if (this.isKw('as')) {
        this.next();
        if (this.tok.k !== 'ident') this.fail('ident');
        alias = this.next().v;
      }
      imports.push({ path, alias, loc: this.loc(it) });
    }
    while (this.tok.k !== 'eof') {
      if (this.isKw('import') && !this.kwAsIdent()) throw perr('import must come before rules', this.loc());
      if (this.isKw('package') && !this.kwAsIdent())
        throw perr('unexpected package keyword: expected rule', this.loc());
      rules.push(this.parseRule());
    }
    const mod: Module = { file: this.file, pkg, pkgLoc: this.loc(pkgTok), imports, rules };
    this.attachMetadata(mod);
    return mod;
  }

  /** `# METADATA` comment blocks directly above a package or rule become its annotations (YAML). */
  private attachMetadata(mod: Module): void {
    const blocks = new Map<number, string[]>(); // last comment line → YAML lines
    let cur: { lines: string[]; last: number } | undefined;
    for (const c of this.comments) {
      if (c.text.trim() === 'METADATA') {
        cur = { lines: [], last: c.line };
        blocks.set(c.line, cur.lines);
        continue;
      }
      if (cur && c.line === cur.last + 1) {
        blocks.delete(cur.last);
        cur.last = c.line;
        cur.lines.push(c.text.startsWith(' ') ? c.text.slice(1) : c.text);
        blocks.set(cur.last, cur.lines);
      } else cur = undefined;
    }
    const at = (line: number, loc: Location): Record<string, unknown> | undefined => {
      const lines = blocks.get(line - 1);
      if (!lines) return undefined;
      try {
        const v = yamlParse(lines.join('\n')) as unknown;
        if (v === null || v === undefined) return {};
        if (typeof v !== 'object' || Array.isArray(v)) throw new Error('expected an object');
        return v as Record<string, unknown>;
      } catch (e) {
        throw perr(`invalid METADATA block: ${(e as Error).message.split('\n')[0]}`, loc);
      }
    };
    const pa = at(mod.pkgLoc.line, mod.pkgLoc);
    if (pa) mod.annotations = pa;
    for (const r of mod.rules) {
      const ra = at(r.loc.line, r.loc);
      if (ra) r.annotations = ra;
    }
  }

  private parseDottedPath(): string[] {
    const out: string[] = [];
    if (this.tok.k !== 'ident') this.fail('ident');
    out.push(this.next().v);
    for (;;) {
      if (this.isOp('.') && !this.tok.ws) {
        this.next();
        if (this.tok.k !== 'ident') this.fail('ident');
        out.push(this.next().v);
      } else if (this.isOp('[') && !this.tok.ws) {
        this.next();
        if (this.kind() !== 'string') this.fail('string');
        out.push(this.next().s as string);
        this.expectOp(']');
      } else break;
    }
    return out;
  }

  /** a ref made only of a var head and dotted / bracketed parts */
  private parsePostfixRef(): Term {
    if (this.tok.k !== 'ident') this.fail('ident');
    const t = this.next();
    const head: Term = { t: 'var', name: t.v, loc: this.loc(t) };
    const path: Term[] = [];
    for (;;) {
      if (this.isOp('.') && !this.tok.ws) {
        this.next();
        if (this.tok.k !== 'ident') this.fail('ident');
        const it = this.next();
        path.push({ t: 'scalar', v: it.v, loc: this.loc(it) });
      } else if (this.isOp('[') && !this.tok.ws) {
        this.next();
        path.push(this.withNl(true, () => this.parseTermIn()));
        this.expectOp(']');
      } else break;
    }
    return path.length ? { t: 'ref', head, path, loc: head.loc } : head;
  }

  private withNl<T>(ok: boolean, f: () => T, noOr = false): T {
    const a = this.nlOk;
    const b = this.noOr;
    this.nlOk = ok;
    this.noOr = noOr;
    try {
      return f();
    } finally {
      this.nlOk = a;
      this.noOr = b;
    }
  }

  private parseRule(): Rule {
    const start = this.tok;
    let isDefault = false;
    if (this.isKw('default') && !this.kwAsIdent()) {
      this.next();
      isDefault = true;
    }
    if (this.tok.k !== 'ident' || (KEYWORDS.has(this.tok.v) && !this.kwAsIdent())) this.fail('ident');
    const nameTok = this.next();
    const ref: Term[] = [{ t: 'scalar', v: nameTok.v, loc: this.loc(nameTok) }];
    for (;;) {
      if (this.isOp('.') && !this.tok.ws) {
        this.next();
        if (this.tok.k !== 'ident') this.fail('ident');
        const it = this.next();
        ref.push({ t: 'scalar', v: it.v, loc: this.loc(it) });
      } else if (this.isOp('[') && !this.tok.ws) {
        this.next();
        ref.push(this.withNl(true, () => this.parseTermIn()));
        this.expectOp(']');
      } else break;
    }
    let args: Term[] | undefined;
    if (this.isOp('(') && !this.tok.ws) {
      this.next();
      args = this.withNl(true, () => {
        const a: Term[] = [];
        while (!this.isOp(')')) {
          a.push(this.parseTermIn());
          if (this.isOp(',')) this.next();
          else if (!this.isOp(')')) this.fail(')');
        }
        return a;
      });
      this.expectOp(')');
    }
    let element: Term | undefined;
    let value: Term | undefined;
    if (this.isKw('contains') && !this.kwAsIdent()) {
      this.next();
      element = this.parseTermIn();
    } else if (this.isOp(':=') || this.isOp('=')) {
      this.next();
      value = this.parseTermIn();
    }
    let body: Expr[] = [];
    let hasBody = false;
    if (this.isKw('if') && !this.kwAsIdent()) {
      this.next();
      body = this.parseRuleBody();
      hasBody = true;
    } else if (this.isOp('{') && !isDefault && !this.tok.nl) {
      throw perr('`if` keyword is required before rule body', this.loc());
    }
    if (isDefault && (hasBody || element)) throw perr('default rules must not have a body', this.loc(start));
    const elses: Rule['elses'] = [];
    while (this.isKw('else') && !this.kwAsIdent()) {
      const et = this.next();
      let ev: Term | undefined;
      if (this.isOp(':=') || this.isOp('=')) {
        this.next();
        ev = this.parseTermIn();
      }
      let eb: Expr[] = [];
      if (this.isKw('if')) {
        this.next();
        eb = this.parseRuleBody();
      } else if (this.isOp('{')) throw perr('`if` keyword is required before rule body', this.loc());
      elses.push({ value: ev, body: eb, loc: this.loc(et) });
    }
    if (!this.tok.nl && this.kind() !== 'eof' && !this.isOp(';'))
      this.fail('rule separator (newline)', this.tok);
    if (this.isOp(';')) this.next();
    return { isDefault, ref, args, element, value, body, elses, loc: this.loc(start) };
  }

  private parseRuleBody(): Expr[] {
    if (this.isOp('{')) return this.parseBraceBody();
    return [this.parseLiteral()];
  }

  private parseBraceBody(): Expr[] {
    this.expectOp('{');
    const body = this.withNl(false, () => this.parseLiterals('}'));
    this.expectOp('}');
    if (body.length === 0) throw perr('found empty body', this.loc());
    return body;
  }

  /** literals separated by `;` or newlines, until the closing token */
  private parseLiterals(close: string): Expr[] {
    const out: Expr[] = [];
    while (!this.isOp(close)) {
      if (this.tok.k === 'eof') this.fail(close);
      out.push(this.parseLiteral());
      if (this.isOp(';')) {
        this.next();
        continue;
      }
      if (this.isOp(close)) break;
      if (!this.tok.nl) this.fail(`${close} or newline`);
    }
    return out;
  }

  /** parse a standalone query (body) */
  parseQuery(): Expr[] {
    const out = this.withNl(false, () => {
      const r: Expr[] = [];
      while (this.tok.k !== 'eof') {
        r.push(this.parseLiteral());
        if (this.isOp(';')) this.next();
        else if (this.kind() !== 'eof' && !this.tok.nl) this.fail('; or newline');
      }
      return r;
    });
    if (out.length === 0) throw perr('empty query', this.loc());
    return out;
  }

  /** a template-string expression: a term, optionally with `with` modifiers */
  parseTemplateExpr(): Term {
    const start = this.tok;
    const lit = this.withNl(true, () => this.parseLiteral());
    if (this.kind() !== 'eof') this.fail('end of expression');
    if (lit.k === 'term' && lit.with.length === 0 && !lit.negated) return lit.term;
    if (lit.k !== 'term' || lit.negated) throw perr('template expression must be a term', this.loc(start));
    // `{t with ...}` becomes `[__tmpl | __tmpl := t with ...][0]`: undefined stays undefined
    const loc = lit.loc;
    const v: Term = { t: 'var', name: `__tmpl_${loc.line}_${loc.col}`, loc };
    const body: Expr[] = [{ k: 'assign', lhs: v, rhs: lit.term, negated: false, with: lit.with, loc }];
    return {
      t: 'ref',
      head: { t: 'arraycomp', head: v, body, loc },
      path: [{ t: 'scalar', v: 0, loc }],
      loc,
    };
  }

  parseSingleTerm(): Term {
    const t = this.withNl(true, () => this.parseTermIn());
    if (this.tok.k !== 'eof') this.fail('end of expression');
    return t;
  }

  private parseLiteral(): Expr {
    const start = this.tok;
    const loc = this.loc(start);
    let negated = false;
    let body: ExprBody;
    if (this.isKw('some') && !this.kwAsIdent()) {
      this.next();
      const terms: Term[] = [this.parseTermRel()];
      while (this.isOp(',')) {
        this.next();
        terms.push(this.parseTermRel());
      }
      if (this.isKw('in')) {
        this.next();
        if (terms.length > 2) throw perr('unexpected , token: expected in', loc);
        const domain = this.parseTermRel();
        body = {
          k: 'somein',
          key: terms.length === 2 ? terms[0] : undefined,
          value: terms[terms.length - 1] as Term,
          domain,
        };
      } else {
        for (const t of terms) if (t.t !== 'var') throw perr('expected var in some declaration', t.loc);
        body = { k: 'some', vars: terms };
      }
    } else if (this.isKw('every') && !this.kwAsIdent()) {
      this.next();
      const first = this.parseTermRel();
      let key: Term | undefined;
      let value = first;
      if (this.isOp(',')) {
        this.next();
        key = first;
        value = this.parseTermRel();
      }
      if (!this.isKw('in')) this.fail('in');
      this.next();
      const domain = this.parseTermRel();
      const eb = this.parseBraceBody();
      body = { k: 'every', key, value, domain, body: eb };
    } else {
      if (this.isKw('not') && !this.kwAsIdent()) {
        this.next();
        negated = true;
      }
      const lhs = this.parseTermIn(true);
      if (this.isOp(':=')) {
        this.next();
        body = { k: 'assign', lhs, rhs: this.parseTermIn() };
      } else if (this.isOp('=')) {
        this.next();
        body = { k: 'unify', lhs, rhs: this.parseTermIn() };
      } else body = { k: 'term', term: lhs };
    }
    const withs: With[] = [];
    while (this.isKw('with') && !this.kwAsIdent()) {
      const wt = this.next();
      const target = this.parsePostfixRef();
      if (!this.isKw('as')) this.fail('as');
      this.next();
      const value = this.parseTermIn();
      withs.push({ target, value, loc: this.loc(wt) });
    }
    return { ...body, negated, with: withs, loc } as Expr;
  }

  private canContinue(): boolean {
    return this.nlOk || !this.tok.nl;
  }

  private parseTermIn(allowComma = false): Term {
    let lhs = this.parseTermRel();
    if (allowComma && this.isOp(',')) {
      const save = this.p;
      this.next();
      try {
        const v = this.parseTermRel();
        if (this.isKw('in')) {
          this.next();
          const coll = this.parseTermRel();
          lhs = callTerm('internal.member_3', [lhs, v, coll], lhs.loc);
        } else this.p = save;
      } catch (e) {
        if (!(e instanceof RegoError)) throw e;
        this.p = save;
      }
    }
    while (this.isKw('in') && this.canContinue()) {
      this.next();
      const rhs = this.parseTermRel();
      lhs = callTerm('internal.member_2', [lhs, rhs], lhs.loc);
    }
    return lhs;
  }

  private parseTermRel(): Term {
    let lhs = this.parseTermOr();
    for (;;) {
      const t = this.tok;
      if (t.k === 'op' && REL_OPS[t.v] && this.canContinue()) {
        this.next();
        const rhs = this.parseTermOr();
        lhs = callTerm(REL_OPS[t.v] as string, [lhs, rhs], lhs.loc);
      } else return lhs;
    }
  }

  private parseTermOr(): Term {
    let lhs = this.parseTermAnd();
    while (this.isOp('|') && !this.noOr && this.canContinue()) {
      this.next();
      lhs = callTerm('or', [lhs, this.parseTermAnd()], lhs.loc);
    }
    return lhs;
  }

  private parseTermAnd(): Term {
    let lhs = this.parseTermArith();
    while (this.isOp('&') && this.canContinue()) {
      this.next();
      lhs = callTerm('and', [lhs, this.parseTermArith()], lhs.loc);
    }
    return lhs;
  }

  private parseTermArith(): Term {
    let lhs = this.parseTermFactor();
    for (;;) {
      const t = this.tok;
      if (t.k === 'op' && ARITH_OPS[t.v] && this.canContinue()) {
        this.next();
        lhs = callTerm(ARITH_OPS[t.v] as string, [lhs, this.parseTermFactor()], lhs.loc);
      } else return lhs;
    }
  }

  private parseTermFactor(): Term {
    let lhs = this.parseUnary();
    for (;;) {
      const t = this.tok;
      if (t.k === 'op' && FACTOR_OPS[t.v] && this.canContinue()) {
        this.next();
        lhs = callTerm(FACTOR_OPS[t.v] as string, [lhs, this.parseUnary()], lhs.loc);
      } else return lhs;
    }
  }

  private parseUnary(): Term {
    if (this.isOp('-')) {
      const t = this.next();
      const nt = this.tok;
      if (nt.k === 'number' && !nt.ws) {
        this.next();
        return this.parsePostfix({ t: 'scalar', v: parseNumber(`-${nt.v}`), loc: this.loc(t) });
      }
      const x = this.parseUnary();
      return callTerm('minus', [{ t: 'scalar', v: 0, loc: this.loc(t) }, x], this.loc(t));
    }
    return this.parsePostfix(this.parsePrimary());
  }

  private parsePostfix(head: Term): Term {
    let cur = head;
    const path: Term[] = [];
    for (;;) {
      const t = this.tok;
      if (this.isOp('.') && !t.ws) {
        this.next();
        if (this.tok.k !== 'ident') this.fail('ident');
        const it = this.next();
        path.push({ t: 'scalar', v: it.v, loc: this.loc(it) });
      } else if (this.isOp('[') && !t.ws) {
        this.next();
        path.push(this.withNl(true, () => this.parseTermIn()));
        this.expectOp(']');
      } else if (this.isOp('(') && !t.ws && (cur.t === 'var' || cur.t === 'ref')) {
        cur = withPath(cur, path);
        if (cur.t === 'ref' && cur.path.some((x) => x.t !== 'scalar' || typeof x.v !== 'string'))
          throw perr('invalid function name', cur.loc);
        this.next();
        const args = this.withNl(true, () => {
          const a: Term[] = [];
          while (!this.isOp(')')) {
            a.push(this.parseTermIn());
            if (this.isOp(',')) this.next();
            else if (!this.isOp(')')) this.fail(')');
          }
          return a;
        });
        this.expectOp(')');
        cur = { t: 'call', fn: cur, args, loc: cur.loc };
      } else break;
    }
    return withPath(cur, path);
  }

  private parsePrimary(): Term {
    const t = this.tok;
    const loc = this.loc(t);
    switch (t.k) {
      case 'number':
        this.next();
        return { t: 'scalar', v: parseNumber(t.v), loc };
      case 'string':
        this.next();
        return { t: 'scalar', v: t.s as string, loc };
      case 'tmpl': {
        this.next();
        const parts: (string | Term)[] = [];
        for (const p of t.tparts ?? []) {
          if (typeof p === 'string') parts.push(p);
          else {
            if (p.src.trim() === '') throw perr('empty template expression', loc);
            parts.push(new Parser(p.src, this.file, p.line, p.col).parseTemplateExpr());
          }
        }
        return { t: 'template', parts, loc };
      }
      case 'ident': {
        if (KEYWORDS.has(t.v) && !this.kwAsIdent()) {
          if (t.v === 'true' || t.v === 'false') {
            this.next();
            return { t: 'scalar', v: t.v === 'true', loc };
          }
          if (t.v === 'null') {
            this.next();
            return { t: 'scalar', v: null, loc };
          }
          this.fail('term');
        }
        this.next();
        if (t.v === 'set' && this.isOp('(') && !this.tok.ws && this.isOp(')', this.peek())) {
          this.next();
          this.next();
          return { t: 'set', items: [], loc };
        }
        return { t: 'var', name: t.v, loc };
      }
      case 'op':
        if (t.v === '(') {
          this.next();
          const x = this.withNl(true, () => this.parseTermIn(true));
          this.expectOp(')');
          return x;
        }
        if (t.v === '[') return this.parseArray();
        if (t.v === '{') return this.parseBrace();
        return this.fail('term');
      default:
        return this.fail('term');
    }
  }

  private parseArray(): Term {
    const loc = this.loc();
    this.next();
    return this.withNl(true, () => {
      if (this.isOp(']')) {
        this.next();
        return { t: 'array', items: [], loc } as Term;
      }
      const first = this.withNl(true, () => this.parseTermIn(), true);
      if (this.isOp('|')) {
        this.next();
        const body = this.withNl(false, () => this.parseLiterals(']'));
        this.expectOp(']');
        return { t: 'arraycomp', head: first, body, loc } as Term;
      }
      const items = [first];
      while (this.isOp(',')) {
        this.next();
        if (this.isOp(']')) break;
        items.push(this.parseTermIn());
      }
      this.expectOp(']');
      return { t: 'array', items, loc } as Term;
    });
  }

  private parseBrace(): Term {
    const loc = this.loc();
    this.next();
    return this.withNl(true, () => {
      if (this.isOp('}')) {
        this.next();
        return { t: 'object', entries: [], loc } as Term;
      }
      const first = this.withNl(true, () => this.parseTermIn(), true);
      if (this.isOp(':')) {
        this.next();
        const v = this.withNl(true, () => this.parseTermIn(), true);
        if (this.isOp('|')) {
          this.next();
          const body = this.withNl(false, () => this.parseLiterals('}'));
          this.expectOp('}');
          return { t: 'objectcomp', key: first, value: v, body, loc } as Term;
        }
        const entries: [Term, Term][] = [[first, v]];
        while (this.isOp(',')) {
          this.next();
          if (this.isOp('}')) break;
          const k = this.parseTermIn();
          this.expectOp(':');
          entries.push([k, this.parseTermIn()]);
        }
        this.expectOp('}');
        return { t: 'object', entries, loc } as Term;
      }
      if (this.isOp('|')) {
        this.next();
        const body = this.withNl(false, () => this.parseLiterals('}'));
        this.expectOp('}');
        return { t: 'setcomp', head: first, body, loc } as Term;
      }
      const items = [first];
      while (this.isOp(',')) {
        this.next();
        if (this.isOp('}')) break;
        items.push(this.parseTermIn());
      }
      this.expectOp('}');
      return { t: 'set', items, loc } as Term;
    });
  }
}

export function parseNumber(s: string): Value {
  if (/^-?[0-9]+$/.test(s)) {
    const n = Number(s);
    if (Number.isSafeInteger(n)) return n;
    return normInt(BigInt(s));
  }
  // literals like 1e30 or 10.00 that denote integers stay exact, as OPA's decimal numbers do
  const m = /^(-?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/.exec(s);
  if (m) {
    const digits = ((m[2] ?? '') + (m[3] ?? '')).replace(/^0+(?=\d)/, '');
    let exp = Number(m[4] ?? 0) - (m[3] ?? '').length;
    let d = digits.replace(/0+$/, '');
    exp += digits.length - d.length;
    if (d === '') d = '0';
    if (exp >= 0 && exp <= 400 && d.length + exp <= 420) {
      const b = BigInt(d) * 10n ** BigInt(exp);
      return normInt(m[1] === '-' ? -b : b);
    }
  }
  return Number(s);
}

/** Parse a module; throws RegoError on failure. */
export function parseModule(src: string, file = 'policy.rego'): Module {
  return new Parser(src, file).parseModule();
}

/** Parse a query (body); throws RegoError on failure. */
export function parseQuery(src: string, file = 'query'): Expr[] {
  return new Parser(src, file).parseQuery();
}

/** Parse a single term (e.g. an input_term). */
export function parseTerm(src: string, file = 'term'): Term {
  return new Parser(src, file).parseSingleTerm();
}

export const EMPTY_SET = new RSet();
