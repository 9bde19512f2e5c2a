// Long fuzz run: npx tsx packages/rego/scripts/fuzz.ts [runs]
import fc from 'fast-check';
import { compile, RegoError } from '../src/index.js';

const base = `# METADATA
# title: t
package fuzz
import rego.v1
default allow := false
allow if { input.user == "a"; some x in [1, 2, 3]; x > 1 }
s contains v if { v := input.items[_] }
o[k] := v if { some k, v in {"a": 1} }
f(x) := x + 1
g(x) := y if { y := [z | some z in numbers.range(1, x)] } else := []
c := [y | some y in numbers.range(1, 3)]
t := $"v={c} {input.x}"
w if every k, v in {"a": 1} { k == "a"; v == 1 }
`;
const runs = Number(process.argv[2] ?? 5000);
let compiled = 0;
fc.assert(
  fc.property(fc.nat(base.length), fc.nat(base.length), fc.string({ maxLength: 12 }), (i, j, ins) => {
    const [a, b] = i < j ? [i, j] : [j, i];
    const src = base.slice(0, a) + ins + base.slice(b);
    const r = compile({ 'f.rego': src });
    if (r.ok) {
      compiled++;
      try {
        r.policy.decide('data.fuzz', {
          input: { user: 'a', items: [1, 'x'], x: 2 },
          maxSteps: 100_000,
          timeoutMs: 200,
        });
      } catch (e) {
        if (!(e instanceof RegoError)) throw e;
      }
      return;
    }
    for (const e of r.errors) if (!(e instanceof RegoError) || !e.location) throw new Error(`bad error ${e}`);
  }),
  { numRuns: runs },
);
console.log(`ok: ${runs} mutations, ${compiled} compiled and evaluated`);
