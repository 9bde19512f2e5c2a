import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compile, RegoError } from './index.js';

function errorsOf(src: string) {
  const r = compile({ 'p.rego': src });
  if (r.ok) throw new Error('expected compile errors');
  return r.errors;
}

function policy(src: string) {
  const r = compile({ 'p.rego': src });
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join('\n'));
  return r.policy;
}

describe('parser errors', () => {
  it('reports file:line:col for an unterminated array', () => {
    const [e] = errorsOf('package x\np := [1,\n');
    expect(e?.code).toBe('rego_parse_error');
    expect(e?.location).toEqual({ file: 'p.rego', line: 3, col: 1 });
  });
  it('requires `if` before a rule body (v1 syntax)', () => {
    const [e] = errorsOf('package x\np { true }');
    expect(e?.message).toMatch(/`if` keyword is required/);
    expect(e?.location).toEqual({ file: 'p.rego', line: 2, col: 3 });
  });
  it('rejects a missing package', () => {
    expect(errorsOf('p := 1')[0]?.code).toBe('rego_parse_error');
  });
  it('locates a bad string escape', () => {
    const [e] = errorsOf('package x\n\np := "a\\qb"');
    expect(e?.format()).toMatch(/^p\.rego:3:6: rego_parse_error/);
  });
});

describe('compile errors', () => {
  it('unsafe variable', () => {
    const [e] = errorsOf('package x\np if { y > 1 }');
    expect(e?.code).toBe('rego_unsafe_var_error');
    expect(e?.message).toBe('var y is unsafe');
    expect(e?.location?.line).toBe(2);
  });
  it('recursion', () => {
    expect(errorsOf('package x\np if q\nq if p')[0]?.code).toBe('rego_recursion_error');
    expect(errorsOf('package x\nf(x) := f(x)')[0]?.code).toBe('rego_recursion_error');
  });
  it('arity and unknown functions', () => {
    expect(errorsOf('package x\np if count(1, 2, 3, 4)')[0]?.message).toMatch(/arity/);
    expect(errorsOf('package x\np if foo.bar(1)')[0]?.message).toBe('undefined function foo.bar');
  });
  it('conflicting rule kinds and duplicate defaults', () => {
    expect(errorsOf('package x\np := 1\np contains 2')[0]?.code).toBe('rego_type_error');
    expect(errorsOf('package x\ndefault p := 1\ndefault p := 2')[0]?.message).toMatch(/multiple default/);
  });
  it('re-assignment', () => {
    expect(errorsOf('package x\np if { x := 1; x := 2 }')[0]?.code).toBe('rego_compile_error');
  });
});

describe('evaluation', () => {
  const p = policy(`package authz
import rego.v1

default allow := false

allow if {
  input.method == "GET"
  some role in data.roles[input.user]
  role == "reader"
}

paths contains p if some p in ["/a", "/b"]
limits[k] := v if some k, v in {"a": 1, "b": 2}
big := 123456789012345678901234567890 + 1
f(x) := y if { y := x * 2 } else := 0
reordered if { x > 1; x := 5 }
doubled := [y | some x in [1, 2]; y := f(x)]
`);
  const data = { roles: { alice: ['reader'], bob: ['writer'] } };

  it('default and complete rules', () => {
    expect(p.decide('data.authz.allow', { input: { method: 'GET', user: 'alice' }, data })).toBe(true);
    expect(p.decide('data.authz.allow', { input: { method: 'GET', user: 'bob' }, data })).toBe(false);
  });
  it('partial sets and objects', () => {
    expect(p.decide('data.authz.paths')).toEqual(['/a', '/b']);
    expect(p.decide('data.authz.limits')).toEqual({ a: 1, b: 2 });
  });
  it('keeps big integers exact', () => {
    expect(p.decide('data.authz.big')).toBe(123456789012345678901234567891n);
  });
  it('functions, comprehensions and safety reordering', () => {
    expect(p.decide('data.authz.doubled')).toEqual([2, 4]);
    expect(p.decide('data.authz.reordered')).toBe(true);
  });
  it('queries return bindings or undefined', () => {
    expect(p.evaluate('x := data.authz.limits[k]')).toEqual([
      { k: 'a', x: 1 },
      { k: 'b', x: 2 },
    ]);
    expect(p.evaluate('data.authz.limits.zzz = x')).toBeUndefined();
  });
  it('with replaces input, data and functions', () => {
    expect(
      p.evaluate(
        'x := data.authz.allow with input as {"method": "GET", "user": "bob"} with data.roles.bob as ["reader"]',
      ),
    ).toEqual([{ x: true }]);
    expect(p.evaluate('x := count([1, 2]) with count as 7')).toEqual([{ x: 7 }]);
  });
  it('conflicts raise eval_conflict_error', () => {
    const q = policy('package c\np := x if some x in [1, 2]');
    expect(() => q.evaluate('data.c.p = x')).toThrow(/complete rules must not produce multiple outputs/);
  });
  it('built-in errors are undefined unless strict', () => {
    const q = policy('package s\np := 1 / 0\nq := sprintf("%d-%s", [5, "a"])');
    expect(q.decide('data.s.p')).toBeUndefined();
    expect(() => q.decide('data.s.p', { strict: true })).toThrow(/divide by zero/);
    expect(q.decide('data.s.q')).toBe('5-a');
  });
  it('test() runs test_ rules', () => {
    const q = policy('package t\ntest_ok if 1 == 1\ntest_bad if 1 == 2');
    expect(q.test().map((t) => [t.name, t.passed])).toEqual([
      ['test_ok', true],
      ['test_bad', false],
    ]);
  });
});

describe('more semantics', () => {
  it('ref heads, every, else and function mocks', () => {
    const q = policy(`package m
import rego.v1
routes.api[method] := true if some method in ["GET", "POST"]
routes.admin.GET := true
ok if every x in [1, 2, 3] { x > 0 }
grade(s) := "A" if s >= 90
else := "B" if s >= 80
else := "C"
double(x) := x * 2
mocked := x if x := double(2) with double as triple
triple(x) := x * 3
`);
    expect(q.decide('data.m.routes')).toEqual({ admin: { GET: true }, api: { GET: true, POST: true } });
    expect(q.decide('data.m.ok')).toBe(true);
    expect(q.evaluate('x := [data.m.grade(95), data.m.grade(85), data.m.grade(10)]')).toEqual([
      { x: ['A', 'B', 'C'] },
    ]);
    expect(q.decide('data.m.mocked')).toBe(6);
  });
  it('indexed rules agree with a direct computation', () => {
    let src = 'package idx\nimport rego.v1\ndefault allow := false\n';
    for (let i = 0; i < 12; i++) src += `allow if { input.action == "a${i}"; input.level > ${i} }\n`;
    src += 'allow if input.action == "any"\n';
    const q = policy(src);
    const actions = Array.from({ length: 14 }, (_, i) => (i === 13 ? 'any' : `a${i}`));
    fc.assert(
      fc.property(fc.constantFrom(...actions), fc.integer({ min: -2, max: 15 }), (action, level) => {
        const n = Number(action.slice(1));
        const want = action === 'any' || (n < 12 && level > n);
        expect(q.decide('data.idx.allow', { input: { action, level } })).toBe(want);
      }),
      { numRuns: 200 },
    );
  });
  it('eval errors carry the call location in strict mode', () => {
    const q = policy('package e\n\np := to_number("x")');
    let err: unknown;
    try {
      q.decide('data.e.p', { strict: true });
    } catch (e) {
      err = e;
    }
    expect((err as RegoError).location).toEqual({ file: 'p.rego', line: 3, col: 6 });
  });
});

describe('budgets', () => {
  it('a huge numbers.range ends with a budget error', () => {
    const q = policy('package b\np := count(numbers.range(1, 1000000000))');
    expect(() => q.decide('data.b.p', { maxSteps: 100_000 })).toThrow(RegoError);
  });
  it('deep nesting through comprehensions ends with a budget error', () => {
    const q = policy(
      'package b\nxs := numbers.range(1, 200)\np := count([1 | some a in xs; some b in xs; some c in xs; count([x | some x in xs]) > 0])',
    );
    const run = () => q.decide('data.b.p', { maxSteps: 200_000, timeoutMs: 2_000 });
    expect(run).toThrow(/budget/);
  });
});

describe('property: parser and compiler only fail with located Rego errors', () => {
  const base = `package fuzz
import rego.v1
default allow := false
allow if { input.user == "a"; some x in [1, 2, 3]; x > 1 }
s contains v if { v := input.items[_] }
o[k] := v if { some k, v in {"a": 1} }
f(x) := x + 1
c := [y | some y in numbers.range(1, 3)]
`;
  const check = (src: string) => {
    const r = compile({ 'f.rego': src });
    if (!r.ok) {
      for (const e of r.errors) {
        expect(e).toBeInstanceOf(RegoError);
        expect(e.code).toMatch(/^rego_/);
        expect(e.location?.line).toBeGreaterThan(0);
      }
    }
  };
  it('random source', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => check(`package x\n${s}`)),
      { numRuns: 300 },
    );
  });
  it('mutated source', () => {
    fc.assert(
      fc.property(fc.nat(base.length), fc.nat(base.length), fc.string({ maxLength: 8 }), (i, j, ins) => {
        const [a, b] = i < j ? [i, j] : [j, i];
        check(base.slice(0, a) + ins + base.slice(b));
      }),
      { numRuns: 500 },
    );
  });
});
