import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compile } from '../index.js';

/** Evaluate one expression with the default built-ins. */
function ev(expr: string, opts: { strict?: boolean } = {}): unknown {
  const r = compile({ 't.rego': `package t\nv := ${expr}\n` });
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join('\n'));
  return r.policy.decide('data.t.v', { strict: opts.strict ?? true, nowNs: 1_700_000_000_000_000_000n });
}

describe('built-ins', () => {
  it('sprintf follows Go verbs', () => {
    expect(ev('sprintf("%s|%d|%.2f|%x|%v|%5s|%-3d|", ["a", 42, 3.14159, 255, [1, "b"], "r", 7])')).toBe(
      'a|42|3.14|ff|[1, "b"]|    r|7  |',
    );
  });
  it('numbers and aggregates keep precision', () => {
    expect(ev('9007199254740993 + 1')).toBe(9007199254740994n);
    expect(ev('sum([0.1, 0.2]) == 0.3')).toBe(true);
    expect(ev('numbers.range(1, 4)')).toEqual([1, 2, 3, 4]);
  });
  it('strings and regex', () => {
    expect(ev('trim_prefix("foobar", "foo")')).toBe('bar');
    expect(ev('strings.replace_n({"a": "1", "b": "2"}, "abc")')).toBe('12c');
    expect(ev('regex.find_n("[0-9]+", "a1b22c333", 2)')).toEqual(['1', '22']);
    expect(ev('glob.match("*.example.com", ["."], "api.example.com")')).toBe(true);
    expect(ev('glob.match("*.example.com", ["."], "a.b.example.com")')).toBe(false);
  });
  it('encoding', () => {
    expect(ev('base64.decode(base64.encode("héllo"))')).toBe('héllo');
    expect(ev('json.unmarshal("{\\"a\\": [1, 12345678901234567890]}")')).toEqual({
      a: [1, 12345678901234567890n],
    });
    expect(ev('json.patch({"a": 1}, [{"op": "add", "path": "/b", "value": 2}])')).toEqual({ a: 1, b: 2 });
    expect(ev('urlquery.encode_object({"a": "b c", "d": ["e", "f"]})')).toBe('a=b+c&d=e&d=f');
    expect(ev('yaml.unmarshal("a: [1, 2]")')).toEqual({ a: [1, 2] });
  });
  it('time with zones', () => {
    expect(ev('time.parse_rfc3339_ns("2024-02-29T12:00:00Z")')).toBe(1709208000000000000n);
    expect(ev('time.date([1709208000000000000, "Asia/Tokyo"])')).toEqual([2024, 2, 29]);
    expect(ev('time.clock([1709208000000000000, "America/New_York"])')).toEqual([7, 0, 0]);
    expect(ev('time.weekday(1709208000000000000)')).toBe('Thursday');
    expect(ev('time.now_ns()')).toBe(1700000000000000000n);
    expect(ev('time.parse_duration_ns("1h30m")')).toBe(5400000000000);
  });
  it('net, units, semver, uuid', () => {
    expect(ev('net.cidr_contains("10.0.0.0/8", "10.1.2.3")')).toBe(true);
    expect(ev('net.cidr_merge(["10.0.0.0/25", "10.0.0.128/25"])')).toEqual(['10.0.0.0/24']);
    expect(ev('units.parse_bytes("1.5KiB")')).toBe(1536);
    expect(ev('semver.compare("1.2.3", "1.10.0")')).toBe(-1);
    expect(ev('uuid.parse("c4e5a2bd-7c43-4a74-9b7e-1ec0c4a4a0f0").version')).toBe(4);
  });
  it('crypto and JWT', () => {
    expect(ev('crypto.sha256("abc")')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url');
    const payload = Buffer.from('{"sub":"alice"}').toString('base64url');
    const sig = createHmac('sha256', 'secret').update(`${header}.${payload}`).digest('base64url');
    const token = `${header}.${payload}.${sig}`;
    expect(ev(`io.jwt.verify_hs256("${token}", "secret")`)).toBe(true);
    expect(ev(`io.jwt.verify_hs256("${token}", "wrong")`)).toBe(false);
    expect(ev(`io.jwt.decode("${token}")[1]`)).toEqual({ sub: 'alice' });
    expect(ev(`io.jwt.decode_verify("${token}", {"secret": "secret"})[0]`)).toBe(true);
  });
  it('graphql', () => {
    const schema = 'type Query { hello(name: String!): String }';
    expect(ev(`graphql.schema_is_valid(${JSON.stringify(schema)})`)).toBe(true);
    expect(ev(`graphql.is_valid("{ hello(name: \\"x\\") }", ${JSON.stringify(schema)})`)).toBe(true);
    expect(ev(`graphql.is_valid("{ hello }", ${JSON.stringify(schema)})`)).toBe(false);
    expect(() => ev('graphql.parse_query("{ a(")')).toThrow(/in GraphQL string at location 1:5/);
  });
  it('templates, glob intersection, schema', () => {
    expect(
      ev(
        'strings.render_template("{{range $i, $n := .xs}}{{if $i}},{{end}}{{$n}}{{end}}", {"xs": ["a", "b"]})',
      ),
    ).toBe('a,b');
    expect(ev('regex.globs_match("a.*z", "ab[0-9]+z")')).toBe(true);
    expect(ev('regex.globs_match("[a-z]+", "[0-9]+")')).toBe(false);
    expect(ev('json.match_schema({"id": "x"}, {"properties": {"id": {"type": "integer"}}})[0]')).toBe(false);
  });
  it('rego.metadata.chain reads METADATA blocks', () => {
    const r = compile({
      'm.rego':
        '# METADATA\n# description: pkg\npackage m\n\n# METADATA\n# title: rule\n# authors:\n# - Ann <ann@example.com>\np := rego.metadata.chain()\n',
    });
    if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join('\n'));
    expect(r.policy.decide('data.m.p')).toEqual([
      {
        path: ['m', 'p'],
        annotations: { scope: 'rule', title: 'rule', authors: [{ name: 'Ann', email: 'ann@example.com' }] },
      },
      { path: ['m'], annotations: { scope: 'package', description: 'pkg' } },
    ]);
  });
  it('type errors are eval_type_error in strict mode, undefined otherwise', () => {
    expect(() => ev('count(1)')).toThrow(
      /operand 1 must be one of \{array, object, set, string\} but got number/,
    );
    expect(ev('count(1)', { strict: false })).toBeUndefined();
  });
});
