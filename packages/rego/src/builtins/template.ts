/**
 * strings.render_template: a subset of Go's text/template — field paths (`.a.b`), variables,
 * `range` (with `$i, $v :=`), `if`/`else`, `with`, and `{{-`/`-}}` trimming. Missing keys render
 * as `<undefined>` as OPA does. Functions and pipelines with arguments are not supported.
 */
import { isNumber, RObject, RSet, stringify, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, obj, str } from './types.js';

type Node =
  | { k: 'text'; s: string }
  | { k: 'out'; expr: string }
  | { k: 'if'; expr: string; body: Node[]; else: Node[] }
  | { k: 'range'; expr: string; keyVar?: string; valVar?: string; body: Node[]; else: Node[] }
  | { k: 'with'; expr: string; body: Node[]; else: Node[] };

const NAME = 'strings.render_template';

function tokenize(src: string): ({ text: string } | { action: string })[] {
  const out: ({ text: string } | { action: string })[] = [];
  let i = 0;
  while (i < src.length) {
    const j = src.indexOf('{{', i);
    if (j < 0) {
      out.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, j);
    const k = src.indexOf('}}', j + 2);
    if (k < 0) throw new BuiltinError(`${NAME}: template: unclosed action`);
    let action = src.slice(j + 2, k);
    if (action.startsWith('- ')) {
      text = text.replace(/\s+$/, '');
      action = action.slice(2);
    }
    let end = k + 2;
    if (action.endsWith(' -')) {
      action = action.slice(0, -2);
      while (end < src.length && /\s/.test(src[end] as string)) end++;
    }
    if (text) out.push({ text });
    out.push({ action: action.trim() });
    i = end;
  }
  return out;
}

function parse(tokens: ({ text: string } | { action: string })[]): Node[] {
  let p = 0;
  const block = (stops: string[]): { nodes: Node[]; stop: string } => {
    const nodes: Node[] = [];
    while (p < tokens.length) {
      const t = tokens[p++] as { text: string } | { action: string };
      if ('text' in t) {
        nodes.push({ k: 'text', s: t.text });
        continue;
      }
      const a = t.action;
      const word = a.split(/\s+/)[0] as string;
      if (stops.includes(word)) return { nodes, stop: word };
      if (a.startsWith('/*')) continue;
      if (word === 'if' || word === 'with') {
        const expr = a.slice(word.length).trim();
        const then = block(['else', 'end']);
        const els = then.stop === 'else' ? block(['end']).nodes : [];
        nodes.push(
          word === 'if'
            ? { k: 'if', expr, body: then.nodes, else: els }
            : { k: 'with', expr, body: then.nodes, else: els },
        );
      } else if (word === 'range') {
        let expr = a.slice(5).trim();
        let keyVar: string | undefined;
        let valVar: string | undefined;
        const m = /^(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*(.*)$/.exec(expr);
        if (m) {
          if (m[2]) {
            keyVar = m[1];
            valVar = m[2];
          } else valVar = m[1];
          expr = m[3] as string;
        }
        const body = block(['else', 'end']);
        const els = body.stop === 'else' ? block(['end']).nodes : [];
        const n: Node = { k: 'range', expr, body: body.nodes, else: els };
        if (keyVar) n.keyVar = keyVar;
        if (valVar) n.valVar = valVar;
        nodes.push(n);
      } else nodes.push({ k: 'out', expr: a });
    }
    if (stops.length) throw new BuiltinError(`${NAME}: template: unexpected EOF`);
    return { nodes, stop: '' };
  };
  return block([]).nodes;
}

interface Scope {
  dot: Value | undefined;
  vars: Map<string, Value | undefined>;
}

function evalExpr(expr: string, s: Scope): Value | undefined {
  const e = expr.trim();
  if (e === '.') return s.dot;
  if (/^".*"$/.test(e)) return JSON.parse(e) as string;
  if (/^-?\d+(\.\d+)?$/.test(e)) return Number(e);
  if (e === 'true' || e === 'false') return e === 'true';
  const m = /^(\$\w*)?((?:\.[A-Za-z_]\w*)*)$/.exec(e);
  if (!m) throw new BuiltinError(`${NAME}: template: unsupported expression ${JSON.stringify(e)}`);
  let cur: Value | undefined = m[1] ? s.vars.get(m[1]) : s.dot;
  for (const f of (m[2] ?? '').split('.').filter(Boolean)) {
    if (!(cur instanceof RObject)) return undefined;
    cur = cur.get(f);
  }
  return cur;
}

function truthy(v: Value | undefined): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof RObject || v instanceof RSet) return v.size > 0;
  return true;
}

function show(v: Value | undefined): string {
  if (v === undefined) return '<undefined>';
  if (typeof v === 'string') return v;
  if (isNumber(v) || typeof v === 'boolean' || v === null) return stringify(v);
  return stringify(v);
}

function render(nodes: Node[], s: Scope): string {
  let out = '';
  for (const n of nodes) {
    switch (n.k) {
      case 'text':
        out += n.s;
        break;
      case 'out':
        out += show(evalExpr(n.expr, s));
        break;
      case 'if':
        out += render(truthy(evalExpr(n.expr, s)) ? n.body : n.else, s);
        break;
      case 'with': {
        const v = evalExpr(n.expr, s);
        out += truthy(v) ? render(n.body, { dot: v, vars: s.vars }) : render(n.else, s);
        break;
      }
      case 'range': {
        const v = evalExpr(n.expr, s);
        const entries: [Value, Value][] = Array.isArray(v)
          ? v.map((x, i) => [i, x] as [Value, Value])
          : v instanceof RObject
            ? v.sortedEntries()
            : v instanceof RSet
              ? v.sorted().map((x, i) => [i, x] as [Value, Value])
              : [];
        if (!entries.length) {
          out += render(n.else, s);
          break;
        }
        for (const [k, x] of entries) {
          const vars = new Map(s.vars);
          if (n.keyVar) vars.set(n.keyVar, k);
          if (n.valVar) vars.set(n.valVar, x);
          out += render(n.body, { dot: x, vars });
        }
        break;
      }
    }
  }
  return out;
}

export const templateBuiltins: BuiltinDef[] = [
  {
    name: NAME,
    arity: 2,
    fn: (a) => {
      const tpl = str(NAME, a, 0);
      const vars = obj(NAME, a, 1);
      return render(parse(tokenize(tpl)), { dot: vars, vars: new Map([['$', vars]]) });
    },
  },
];
