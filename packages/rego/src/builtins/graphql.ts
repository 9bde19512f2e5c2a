/**
 * graphql.* built-ins: a GraphQL lexer/parser producing the same AST shape OPA returns (gqlparser's
 * structs as JSON, empty lists omitted), plus a light validator (known types, interfaces, input/output
 * positions, fields and arguments of queries). Validation covers fewer rules than gqlparser.
 */
import { RObject, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, typeErr } from './types.js';

type Kind = 'Name' | 'Int' | 'Float' | 'String' | 'BlockString' | 'Punct' | 'EOF' | 'Invalid';

interface Tok {
  kind: Kind;
  value: string;
  line: number;
  col: number;
}

class GqlError extends Error {
  constructor(
    msg: string,
    readonly line: number,
    readonly col: number,
  ) {
    super(msg);
  }
}

function describe(t: Tok): string {
  switch (t.kind) {
    case 'EOF':
      return '<EOF>';
    case 'Invalid':
      return '<Invalid>';
    case 'Punct':
      return t.value;
    default:
      return `${t.kind} ${JSON.stringify(t.value)}`;
  }
}

function blockString(raw: string): string {
  const lines = raw.replace(/\r\n?/g, '\n').split('\n');
  let common: number | undefined;
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i] as string;
    const ind = l.length - l.replace(/^[ \t]+/, '').length;
    if (ind < l.length && (common === undefined || ind < common)) common = ind;
  }
  if (common) for (let i = 1; i < lines.length; i++) lines[i] = (lines[i] as string).slice(common);
  while (lines.length && /^[ \t]*$/.test(lines[0] as string)) lines.shift();
  while (lines.length && /^[ \t]*$/.test(lines[lines.length - 1] as string)) lines.pop();
  return lines.join('\n');
}

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i] as string;
    if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i++;
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === ',' || c === '\ufeff') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && src[i] !== '\n' && src[i] !== '\r') i++;
      continue;
    }
    const col = i - lineStart + 1;
    const tok = (kind: Kind, value: string) => toks.push({ kind, value, line, col });
    if (/[_A-Za-z]/.test(c)) {
      let j = i + 1;
      while (j < n && /[_0-9A-Za-z]/.test(src[j] as string)) j++;
      tok('Name', src.slice(i, j));
      i = j;
      continue;
    }
    if (/[-0-9]/.test(c)) {
      const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(src.slice(i));
      if (!m) {
        tok('Invalid', c);
        return toks;
      }
      tok(m[2] || m[3] ? 'Float' : 'Int', m[0]);
      i += m[0].length;
      continue;
    }
    if (src.startsWith('"""', i)) {
      let j = i + 3;
      let raw = '';
      const startLine = line;
      for (;;) {
        if (j >= n) {
          toks.push({ kind: 'Invalid', value: '', line, col: j - lineStart + 1 });
          return toks;
        }
        if (src.startsWith('\\"""', j)) {
          raw += '"""';
          j += 4;
          continue;
        }
        if (src.startsWith('"""', j)) break;
        const d = src[j] as string;
        if (d === '\n' || d === '\r') {
          if (d === '\r' && src[j + 1] === '\n') {
            j++;
          }
          line++;
          lineStart = j + 1;
          raw += '\n';
          j++;
          continue;
        }
        raw += d;
        j++;
      }
      toks.push({ kind: 'BlockString', value: blockString(raw), line: startLine, col });
      i = j + 3;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= n || src[j] === '\n' || src[j] === '\r') {
          toks.push({ kind: 'Invalid', value: '', line, col: j - lineStart + 1 });
          return toks;
        }
        const d = src[j] as string;
        if (d === '"') break;
        if (d === '\\') {
          const e = src[j + 1] ?? '';
          const map: Record<string, string> = {
            '"': '"',
            '\\': '\\',
            '/': '/',
            b: '\b',
            f: '\f',
            n: '\n',
            r: '\r',
            t: '\t',
          };
          if (e === 'u') {
            s += String.fromCharCode(Number.parseInt(src.slice(j + 2, j + 6), 16));
            j += 6;
            continue;
          }
          if (map[e] === undefined) {
            toks.push({ kind: 'Invalid', value: '', line, col: j - lineStart + 1 });
            return toks;
          }
          s += map[e];
          j += 2;
          continue;
        }
        s += d;
        j++;
      }
      toks.push({ kind: 'String', value: s, line, col: col + 1 });
      i = j + 1;
      continue;
    }
    if (src.startsWith('...', i)) {
      tok('Punct', '...');
      i += 3;
      continue;
    }
    if ('!$&()/:=@[]{}|'.includes(c)) {
      tok('Punct', c);
      i++;
      continue;
    }
    tok('Invalid', c);
    return toks;
  }
  toks.push({ kind: 'EOF', value: '', line, col: n - lineStart + 1 });
  return toks;
}

type Obj = Record<string, unknown>;

const DIRECTIVE_LOCATIONS = new Set([
  'QUERY',
  'MUTATION',
  'SUBSCRIPTION',
  'FIELD',
  'FRAGMENT_DEFINITION',
  'FRAGMENT_SPREAD',
  'INLINE_FRAGMENT',
  'VARIABLE_DEFINITION',
  'SCHEMA',
  'SCALAR',
  'OBJECT',
  'FIELD_DEFINITION',
  'ARGUMENT_DEFINITION',
  'INTERFACE',
  'UNION',
  'ENUM',
  'ENUM_VALUE',
  'INPUT_OBJECT',
  'INPUT_FIELD_DEFINITION',
]);

class GqlParser {
  private toks: Tok[];
  private p = 0;
  constructor(src: string) {
    this.toks = lex(src);
  }
  private atEOF(): boolean {
    return this.peek.kind === 'EOF';
  }
  private get peek(): Tok {
    return this.toks[Math.min(this.p, this.toks.length - 1)] as Tok;
  }
  private next(): Tok {
    const t = this.peek;
    if (t.kind === 'Invalid') throw new GqlError(`Unexpected ${describe(t)}`, t.line, t.col);
    this.p++;
    return t;
  }
  private unexpected(t: Tok = this.peek): never {
    throw new GqlError(`Unexpected ${describe(t)}`, t.line, t.col);
  }
  private isPunct(v: string): boolean {
    return this.peek.kind === 'Punct' && this.peek.value === v;
  }
  private expectPunct(v: string): Tok {
    if (this.peek.kind === 'Invalid') this.unexpected();
    if (!this.isPunct(v))
      throw new GqlError(`Expected ${v}, found ${describe(this.peek)}`, this.peek.line, this.peek.col);
    return this.next();
  }
  private skipPunct(v: string): boolean {
    if (this.isPunct(v)) {
      this.next();
      return true;
    }
    return false;
  }
  private name(): string {
    if (this.peek.kind === 'Invalid') this.unexpected();
    if (this.peek.kind !== 'Name')
      throw new GqlError(`Expected Name, found ${describe(this.peek)}`, this.peek.line, this.peek.col);
    return this.next().value;
  }
  private keyword(v: string): void {
    if (this.peek.kind === 'Name' && this.peek.value === v) {
      this.next();
      return;
    }
    throw new GqlError(
      `Expected ${JSON.stringify(v)}, found ${describe(this.peek)}`,
      this.peek.line,
      this.peek.col,
    );
  }
  /** gqlparser's `some`: optional block that must not be empty */
  private some<T>(start: string, end: string, f: () => T): T[] {
    const out: T[] = [];
    if (!this.isPunct(start)) return out;
    this.next();
    while (!this.isPunct(end)) {
      if (this.peek.kind === 'EOF' || this.peek.kind === 'Invalid') {
        if (out.length === 0) break;
        this.unexpected();
      }
      out.push(f());
    }
    if (out.length === 0)
      throw new GqlError(
        `expected at least one definition, found ${describe(this.peek)}`,
        this.peek.line,
        this.peek.col,
      );
    this.next();
    return out;
  }
  /** `many`: required block, at least one item */
  private many<T>(start: string, end: string, f: () => T): T[] {
    this.expectPunct(start);
    const out: T[] = [];
    do {
      out.push(f());
    } while (!this.skipPunct(end));
    return out;
  }
  private description(): string {
    if (this.peek.kind === 'String' || this.peek.kind === 'BlockString') return this.next().value;
    return '';
  }

  // ---------- types and values ----------
  private type(): Obj {
    let t: Obj;
    if (this.skipPunct('[')) {
      const elem = this.type();
      this.expectPunct(']');
      t = { Elem: elem, NamedType: '', NonNull: false };
    } else t = { NamedType: this.name(), NonNull: false };
    if (this.skipPunct('!')) t.NonNull = true;
    return t;
  }
  private value(isConst: boolean): Obj {
    const t = this.peek;
    const v = (kind: number, raw: string, children?: Obj[]): Obj => {
      const o: Obj = { ExpectedTypeHasDefault: false, Kind: kind, Raw: raw };
      if (children?.length) o.Children = children;
      return o;
    };
    if (t.kind === 'Punct') {
      if (t.value === '[') {
        this.next();
        const items: Obj[] = [];
        while (!this.skipPunct(']')) {
          if (this.peek.kind === 'EOF') this.unexpected();
          items.push({ Name: '', Value: this.value(isConst) });
        }
        return v(8, '', items);
      }
      if (t.value === '{') {
        this.next();
        const items: Obj[] = [];
        while (!this.skipPunct('}')) {
          if (this.peek.kind === 'EOF') this.unexpected();
          const n = this.name();
          this.expectPunct(':');
          items.push({ Name: n, Value: this.value(isConst) });
        }
        return v(9, '', items);
      }
      if (t.value === '$') {
        if (isConst) this.unexpected();
        this.next();
        return v(0, this.name());
      }
      this.unexpected();
    }
    switch (t.kind) {
      case 'Int':
        this.next();
        return v(1, t.value);
      case 'Float':
        this.next();
        return v(2, t.value);
      case 'String':
        this.next();
        return v(3, t.value);
      case 'BlockString':
        this.next();
        return v(4, t.value);
      case 'Name':
        this.next();
        if (t.value === 'true' || t.value === 'false') return v(5, t.value);
        if (t.value === 'null') return v(6, t.value);
        return v(7, t.value);
      default:
        return this.unexpected();
    }
  }
  private directives(isConst: boolean): Obj[] {
    const out: Obj[] = [];
    while (this.isPunct('@')) {
      this.next();
      const d: Obj = { Location: '', Name: this.name() };
      const args = this.arguments(isConst);
      if (args.length) d.Arguments = args;
      out.push(d);
    }
    return out;
  }
  private arguments(isConst: boolean): Obj[] {
    if (!this.isPunct('(')) return [];
    return this.many('(', ')', () => {
      const n = this.name();
      this.expectPunct(':');
      return { Name: n, Value: this.value(isConst) };
    });
  }

  // ---------- schema ----------
  parseSchema(): Obj {
    const doc: Record<string, Obj[]> = {
      Definitions: [],
      Directives: [],
      Extensions: [],
      Schema: [],
      SchemaExtension: [],
    };
    while (this.peek.kind !== 'EOF') {
      const descTok = this.peek;
      const desc = this.description();
      const t = this.peek;
      if (t.kind !== 'Name') this.unexpected();
      switch (t.value) {
        case 'schema':
          this.next();
          doc.Schema?.push(this.schemaDef(desc));
          break;
        case 'scalar':
        case 'type':
        case 'interface':
        case 'union':
        case 'enum':
        case 'input':
          doc.Definitions?.push(this.typeDef(desc, false));
          break;
        case 'directive':
          doc.Directives?.push(this.directiveDef(desc));
          break;
        case 'extend':
          if (desc !== '') this.unexpected(descTok);
          this.next();
          if (this.peek.kind === 'Name' && this.peek.value === 'schema') {
            this.next();
            doc.SchemaExtension?.push(this.schemaExt());
          } else doc.Extensions?.push(this.typeDef('', true));
          break;
        default:
          this.unexpected();
      }
    }
    const out: Obj = {};
    for (const [k, v] of Object.entries(doc)) if (v.length) out[k] = v;
    return out;
  }
  private operationTypes(): Obj[] {
    return this.many('{', '}', () => {
      const op = this.name();
      this.expectPunct(':');
      return { Operation: op, Type: this.name() };
    });
  }
  private schemaDef(desc: string): Obj {
    const o: Obj = { Description: desc };
    const d = this.directives(true);
    if (d.length) o.Directives = d;
    o.OperationTypes = this.operationTypes();
    return o;
  }
  private schemaExt(): Obj {
    const start = this.peek;
    const o: Obj = { Description: '' };
    const d = this.directives(true);
    if (d.length) o.Directives = d;
    const ops = this.isPunct('{') ? this.operationTypes() : [];
    if (ops.length) o.OperationTypes = ops;
    if (!d.length && !ops.length) this.unexpected(this.peek.kind === 'EOF' ? this.peek : start);
    return o;
  }
  private inputValueDef(): Obj {
    const o: Obj = { Description: this.description(), Name: this.name() };
    this.expectPunct(':');
    o.Type = this.type();
    if (this.skipPunct('=')) o.DefaultValue = this.value(true);
    const d = this.directives(true);
    if (d.length) o.Directives = d;
    return o;
  }
  private fieldDef(): Obj {
    const o: Obj = { Description: this.description(), Name: this.name() };
    const args = this.some('(', ')', () => this.inputValueDef());
    if (args.length) o.Arguments = args;
    this.expectPunct(':');
    o.Type = this.type();
    const d = this.directives(true);
    if (d.length) o.Directives = d;
    return o;
  }
  private implementsList(): string[] {
    if (!(this.peek.kind === 'Name' && this.peek.value === 'implements')) return [];
    this.next();
    this.skipPunct('&');
    const out = [this.name()];
    while (
      this.skipPunct('&') ||
      (this.peek.kind === 'Name' &&
        !['type', 'interface', 'union', 'enum', 'input', 'scalar', 'directive', 'extend', 'schema'].includes(
          this.peek.value,
        ) &&
        false)
    )
      out.push(this.name());
    return out;
  }
  private typeDef(desc: string, ext: boolean): Obj {
    const kw = this.next().value;
    const kinds: Record<string, string> = {
      scalar: 'SCALAR',
      type: 'OBJECT',
      interface: 'INTERFACE',
      union: 'UNION',
      enum: 'ENUM',
      input: 'INPUT_OBJECT',
    };
    const kind = kinds[kw];
    if (!kind) this.unexpected(this.toks[this.p - 1] as Tok);
    const o: Obj = { BuiltIn: false, Description: desc, Kind: kind, Name: this.name() };
    let any = false;
    if (kw === 'type' || kw === 'interface') {
      const impl = this.implementsList();
      if (impl.length) {
        o.Interfaces = impl;
        any = true;
      }
    }
    const d = this.directives(true);
    if (d.length) {
      o.Directives = d;
      any = true;
    }
    if (kw === 'type' || kw === 'interface') {
      const f = this.some('{', '}', () => this.fieldDef());
      if (f.length) {
        o.Fields = f;
        any = true;
      }
    } else if (kw === 'input') {
      const f = this.some('{', '}', () => this.inputValueDef());
      if (f.length) {
        o.Fields = f;
        any = true;
      }
    } else if (kw === 'enum') {
      const vals = this.some('{', '}', () => {
        const v: Obj = { Description: this.description(), Name: this.name() };
        const dd = this.directives(true);
        if (dd.length) v.Directives = dd;
        return v;
      });
      if (vals.length) {
        o.EnumValues = vals;
        any = true;
      }
    } else if (kw === 'union') {
      if (this.skipPunct('=')) {
        this.skipPunct('|');
        const types = [this.name()];
        while (this.skipPunct('|')) types.push(this.name());
        o.Types = types;
        any = true;
      }
    }
    if (ext && !any) this.unexpected();
    return o;
  }
  private directiveDef(desc: string): Obj {
    this.next();
    this.expectPunct('@');
    const o: Obj = { Description: desc, Name: this.name() };
    const args = this.some('(', ')', () => this.inputValueDef());
    if (args.length) o.Arguments = args;
    o.IsRepeatable = false;
    if (this.peek.kind === 'Name' && this.peek.value === 'repeatable') {
      this.next();
      o.IsRepeatable = true;
    }
    this.keyword('on');
    this.skipPunct('|');
    const locs: string[] = [];
    do {
      const t = this.peek;
      const n = this.name();
      if (!DIRECTIVE_LOCATIONS.has(n)) this.unexpected(t);
      locs.push(n);
    } while (this.skipPunct('|'));
    o.Locations = locs;
    return o;
  }

  // ---------- queries ----------
  parseQuery(): Obj {
    const ops: Obj[] = [];
    const frags: Obj[] = [];
    if (this.atEOF()) this.unexpected();
    while (!this.atEOF()) {
      if (this.isPunct('{')) {
        ops.push({ Name: '', Operation: 'query', SelectionSet: this.selectionSet() });
        continue;
      }
      const t = this.peek;
      if (t.kind !== 'Name') this.unexpected();
      if (t.value === 'query' || t.value === 'mutation' || t.value === 'subscription')
        ops.push(this.operation());
      else if (t.value === 'fragment') frags.push(this.fragment());
      else this.unexpected();
    }
    const out: Obj = {};
    if (frags.length) out.Fragments = frags;
    if (ops.length) out.Operations = ops;
    return out;
  }
  private operation(): Obj {
    const o: Obj = { Operation: this.next().value, Name: '' };
    if (this.peek.kind === 'Name') o.Name = this.next().value;
    const vars = this.variableDefs();
    if (vars.length) o.VariableDefinitions = vars;
    const d = this.directives(false);
    if (d.length) o.Directives = d;
    o.SelectionSet = this.selectionSet();
    return o;
  }
  private variableDefs(): Obj[] {
    if (!this.isPunct('(')) return [];
    return this.many('(', ')', () => {
      this.expectPunct('$');
      const v: Obj = { Variable: this.name() };
      this.expectPunct(':');
      v.Type = this.type();
      if (this.skipPunct('=')) v.DefaultValue = this.value(true);
      const d = this.directives(true);
      if (d.length) v.Directives = d;
      v.Used = false;
      return v;
    });
  }
  private fragment(): Obj {
    this.next();
    const t = this.peek;
    const name = this.name();
    if (name === 'on') this.unexpected(t);
    const o: Obj = { Name: name };
    const vars = this.variableDefs();
    if (vars.length) o.VariableDefinition = vars;
    this.keyword('on');
    o.TypeCondition = this.name();
    const d = this.directives(false);
    if (d.length) o.Directives = d;
    o.SelectionSet = this.selectionSet();
    return o;
  }
  private selectionSet(): Obj[] {
    return this.many('{', '}', () => this.selection());
  }
  private selection(): Obj {
    if (this.isPunct('...')) {
      this.next();
      if (this.peek.kind === 'Name' && this.peek.value === 'on') {
        this.next();
        const o: Obj = { TypeCondition: this.name() };
        const d = this.directives(false);
        if (d.length) o.Directives = d;
        o.SelectionSet = this.selectionSet();
        return o;
      }
      if (this.peek.kind === 'Name') {
        const o: Obj = { Name: this.name() };
        const d = this.directives(false);
        if (d.length) o.Directives = d;
        return o;
      }
      const o: Obj = {};
      const d = this.directives(false);
      if (d.length) o.Directives = d;
      o.SelectionSet = this.selectionSet();
      return o;
    }
    let alias = this.name();
    let name = alias;
    if (this.skipPunct(':')) name = this.name();
    else alias = name;
    const o: Obj = { Alias: alias, Name: name };
    const args = this.arguments(false);
    if (args.length) o.Arguments = args;
    const d = this.directives(false);
    if (d.length) o.Directives = d;
    if (this.isPunct('{')) o.SelectionSet = this.selectionSet();
    return o;
  }
}

// ---------- conversion ----------
function toValue(x: unknown): Value {
  if (Array.isArray(x)) return x.map(toValue);
  if (x !== null && typeof x === 'object') {
    const o = new RObject();
    for (const [k, v] of Object.entries(x as Obj)) o.set(k, toValue(v));
    return o;
  }
  return x as Value;
}

function fromValue(v: Value): unknown {
  if (Array.isArray(v)) return v.map(fromValue);
  if (v instanceof RObject) {
    const o: Obj = {};
    for (const [k, x] of v.sortedEntries()) o[String(k)] = fromValue(x);
    return o;
  }
  return v;
}

function wrap<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof GqlError)
      throw new BuiltinError(`${name}: ${e.message} in GraphQL string at location ${e.line}:${e.col}`);
    throw e;
  }
}

function parseSchemaArg(name: string, v: Value, pos: number): Obj {
  if (typeof v === 'string') return wrap(name, () => new GqlParser(v).parseSchema());
  if (v instanceof RObject) return fromValue(v) as Obj;
  throw typeErr(name, pos, 'one of {string, object}', v);
}

function parseQueryArg(name: string, v: Value, pos: number): Obj {
  if (typeof v === 'string') return wrap(name, () => new GqlParser(v).parseQuery());
  if (v instanceof RObject) return fromValue(v) as Obj;
  throw typeErr(name, pos, 'one of {string, object}', v);
}

// ---------- validation ----------
const BUILTIN_SCALARS = ['String', 'Int', 'Float', 'Boolean', 'ID'];

interface TypeInfo {
  kind: string;
  fields: Map<string, Obj>;
  interfaces: string[];
  types: string[];
}

function namedOf(t: Obj | undefined): string {
  let x = t;
  while (x?.Elem) x = x.Elem as Obj;
  return String(x?.NamedType ?? '');
}

function buildSchema(doc: Obj): Map<string, TypeInfo> | undefined {
  const types = new Map<string, TypeInfo>();
  for (const s of BUILTIN_SCALARS)
    types.set(s, { kind: 'SCALAR', fields: new Map(), interfaces: [], types: [] });
  const defs = (doc.Definitions as Obj[] | undefined) ?? [];
  for (const d of defs) {
    const n = String(d.Name);
    if (types.has(n) && !BUILTIN_SCALARS.includes(n)) return undefined;
    types.set(n, {
      kind: String(d.Kind),
      fields: new Map(((d.Fields as Obj[] | undefined) ?? []).map((f) => [String(f.Name), f])),
      interfaces: (d.Interfaces as string[] | undefined) ?? [],
      types: (d.Types as string[] | undefined) ?? [],
    });
  }
  for (const e of (doc.Extensions as Obj[] | undefined) ?? []) {
    const n = String(e.Name);
    let t = types.get(n);
    if (!t) {
      t = { kind: String(e.Kind), fields: new Map(), interfaces: [], types: [] };
      types.set(n, t);
    }
    for (const f of (e.Fields as Obj[] | undefined) ?? []) t.fields.set(String(f.Name), f);
    t.interfaces.push(...((e.Interfaces as string[] | undefined) ?? []));
    t.types.push(...((e.Types as string[] | undefined) ?? []));
  }
  const isInput = (n: string) => ['SCALAR', 'ENUM', 'INPUT_OBJECT'].includes(types.get(n)?.kind ?? '');
  const isOutput = (n: string) =>
    ['SCALAR', 'ENUM', 'OBJECT', 'INTERFACE', 'UNION'].includes(types.get(n)?.kind ?? '');
  for (const [, t] of types) {
    for (const [, f] of t.fields) {
      const tn = namedOf(f.Type as Obj);
      if (!types.has(tn)) return undefined;
      if (t.kind === 'INPUT_OBJECT' ? !isInput(tn) : !isOutput(tn)) return undefined;
      for (const a of (f.Arguments as Obj[] | undefined) ?? []) {
        const an = namedOf(a.Type as Obj);
        if (!types.has(an) || !isInput(an)) return undefined;
      }
    }
    for (const i of t.interfaces) if (types.get(i)?.kind !== 'INTERFACE') return undefined;
    // transitive interfaces must be declared
    for (const i of t.interfaces)
      for (const j of types.get(i)?.interfaces ?? []) if (!t.interfaces.includes(j)) return undefined;
    for (const m of t.types) if (types.get(m)?.kind !== 'OBJECT') return undefined;
  }
  for (const s of (doc.Schema as Obj[] | undefined) ?? [])
    for (const op of (s.OperationTypes as Obj[] | undefined) ?? [])
      if (types.get(String(op.Type))?.kind !== 'OBJECT') return undefined;
  if (
    ((doc.SchemaExtension as Obj[] | undefined) ?? []).length &&
    !((doc.Schema as Obj[] | undefined) ?? []).length
  )
    return undefined;
  // directive usages must name a known directive
  const known = new Set(['deprecated', 'specifiedBy', 'include', 'skip', 'oneOf', 'defer']);
  for (const d of (doc.Directives as Obj[] | undefined) ?? []) known.add(String(d.Name));
  const usesKnown = (x: unknown): boolean => {
    if (Array.isArray(x)) return x.every(usesKnown);
    if (x !== null && typeof x === 'object') {
      const o = x as Obj;
      for (const d of (o.Directives as Obj[] | undefined) ?? []) if (!known.has(String(d.Name))) return false;
      return Object.entries(o).every(([k, v]) => k === 'Directives' || usesKnown(v));
    }
    return true;
  };
  for (const k of ['Definitions', 'Extensions', 'Schema', 'SchemaExtension'])
    if (!usesKnown(doc[k])) return undefined;
  return types;
}

function rootType(doc: Obj, op: string): string {
  for (const s of [
    ...((doc.Schema as Obj[] | undefined) ?? []),
    ...((doc.SchemaExtension as Obj[] | undefined) ?? []),
  ])
    for (const o of (s.OperationTypes as Obj[] | undefined) ?? [])
      if (o.Operation === op) return String(o.Type);
  return op === 'query' ? 'Query' : op === 'mutation' ? 'Mutation' : 'Subscription';
}

function validateQuery(q: Obj, schemaDoc: Obj, types: Map<string, TypeInfo>): boolean {
  const frags = new Map<string, Obj>();
  for (const f of (q.Fragments as Obj[] | undefined) ?? []) frags.set(String(f.Name), f);
  const seen = new Set<string>();
  const sel = (set: Obj[] | undefined, typeName: string): boolean => {
    const t = types.get(typeName);
    if (!t) return false;
    for (const s of set ?? []) {
      if (
        s.Alias !== undefined ||
        (s.Name !== undefined &&
          s.SelectionSet !== undefined &&
          s.TypeCondition === undefined &&
          s.Alias !== undefined)
      ) {
        const name = String(s.Name);
        if (name === '__typename') continue;
        if (name.startsWith('__')) continue;
        const f = t.fields.get(name);
        if (!f) {
          if (t.kind === 'UNION') return false;
          return false;
        }
        const defs = (f.Arguments as Obj[] | undefined) ?? [];
        const argDefs = new Set(defs.map((a) => String(a.Name)));
        const given = new Set(((s.Arguments as Obj[] | undefined) ?? []).map((a) => String(a.Name)));
        for (const a of given) if (!argDefs.has(a)) return false;
        for (const a of defs)
          if ((a.Type as Obj).NonNull && a.DefaultValue === undefined && !given.has(String(a.Name)))
            return false;
        const ft = namedOf(f.Type as Obj);
        const fk = types.get(ft)?.kind;
        if (s.SelectionSet) {
          if (fk === 'SCALAR' || fk === 'ENUM') return false;
          if (!sel(s.SelectionSet as Obj[], ft)) return false;
        } else if (fk === 'OBJECT' || fk === 'INTERFACE' || fk === 'UNION') return false;
      } else if (s.TypeCondition !== undefined || (s.SelectionSet && s.Name === undefined)) {
        const tc = s.TypeCondition === undefined ? typeName : String(s.TypeCondition);
        if (!types.has(tc)) return false;
        if (!sel(s.SelectionSet as Obj[], tc)) return false;
      } else if (s.Name !== undefined) {
        const fr = frags.get(String(s.Name));
        if (!fr) return false;
        if (seen.has(String(s.Name))) continue;
        seen.add(String(s.Name));
        const tc = String(fr.TypeCondition);
        if (!types.has(tc)) return false;
        if (!sel(fr.SelectionSet as Obj[], tc)) return false;
      }
    }
    return true;
  };
  for (const op of (q.Operations as Obj[] | undefined) ?? []) {
    for (const v of (op.VariableDefinitions as Obj[] | undefined) ?? [])
      if (!types.has(namedOf(v.Type as Obj))) return false;
    if (!sel(op.SelectionSet as Obj[], rootType(schemaDoc, String(op.Operation)))) return false;
  }
  return true;
}

function check(name: string, q: Value, s: Value): { ok: boolean; q: Obj; s: Obj } {
  const sd = parseSchemaArg(name, s, 2);
  const qd = typeof q === 'string' && q.trim() === '' ? {} : parseQueryArg(name, q, 1);
  const types = buildSchema(sd);
  return { ok: !!types && validateQuery(qd, sd, types), q: qd, s: sd };
}

export const graphqlBuiltins: BuiltinDef[] = [
  {
    name: 'graphql.parse_schema',
    arity: 1,
    fn: (a) => toValue(parseSchemaArg('graphql.parse_schema', a[0] as Value, 1)),
  },
  {
    name: 'graphql.parse_query',
    arity: 1,
    fn: (a) => {
      const v = a[0] as Value;
      if (typeof v !== 'string') throw typeErr('graphql.parse_query', 1, 'string', v);
      return toValue(parseQueryArg('graphql.parse_query', v, 1));
    },
  },
  {
    name: 'graphql.schema_is_valid',
    arity: 1,
    fn: (a) => {
      try {
        return !!buildSchema(parseSchemaArg('graphql.schema_is_valid', a[0] as Value, 1));
      } catch (e) {
        if (e instanceof BuiltinError && e.code === 'eval_type_error') throw e;
        return false;
      }
    },
  },
  {
    name: 'graphql.is_valid',
    arity: 2,
    fn: (a) => {
      try {
        return check('graphql.is_valid', a[0] as Value, a[1] as Value).ok;
      } catch (e) {
        if (e instanceof BuiltinError && e.code === 'eval_type_error') throw e;
        return false;
      }
    },
  },
  {
    name: 'graphql.parse',
    arity: 2,
    fn: (a) => {
      const r = check('graphql.parse', a[0] as Value, a[1] as Value);
      if (!r.ok) throw new BuiltinError('graphql.parse: query is not valid against the schema');
      return [toValue(r.q), toValue(r.s)];
    },
  },
  {
    name: 'graphql.parse_and_verify',
    arity: 2,
    fn: (a) => {
      try {
        const r = check('graphql.parse_and_verify', a[0] as Value, a[1] as Value);
        if (!r.ok) return [false, new RObject(), new RObject()];
        return [true, toValue(r.q), toValue(r.s)];
      } catch (e) {
        if (e instanceof BuiltinError && e.code === 'eval_type_error') throw e;
        return [false, new RObject(), new RObject()];
      }
    },
  },
];
