// Quick latency check: npx tsx packages/rego/scripts/bench.ts
import { compile } from '../src/index.js';

const zone = `package zone
import rego.v1

default allow := false

allow if {
  input.method == "GET"
  input.path[0] == "public"
}

allow if {
  some role in input.subject.roles
  role == "admin"
}

allow if {
  input.subject.id == data.owners[input.path[1]]
  input.method in {"GET", "PUT"}
}

deny contains msg if {
  input.amount > data.limits[input.subject.tier]
  msg := sprintf("amount %v over limit", [input.amount])
}

decision := {"allow": allow, "deny": deny}
`;
const r = compile({ 'zone.rego': zone });
if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join('\n'));
const data = { owners: { doc1: 'alice' }, limits: { basic: 100, pro: 10000 } };
const input = {
  method: 'PUT',
  path: ['docs', 'doc1'],
  subject: { id: 'alice', roles: ['user'], tier: 'basic' },
  amount: 250,
};
const opts = { input, data };
console.log(JSON.stringify(r.policy.decide('data.zone.decision', opts)));
for (let i = 0; i < 20_000; i++) r.policy.decide('data.zone.decision', opts);
const n = 200_000;
let t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) r.policy.decide('data.zone.decision', opts);
let dt = Number(process.hrtime.bigint() - t0) / n / 1000;
console.log(`decision (data.zone.decision, warm, same input object): ${dt.toFixed(2)} µs`);
const inputs = Array.from({ length: 1000 }, (_, i) => ({ ...input, amount: i }));
t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) r.policy.decide('data.zone.decision', { input: inputs[i % 1000], data });
dt = Number(process.hrtime.bigint() - t0) / n / 1000;
console.log(`decision (fresh input objects, includes JSON→Rego conversion): ${dt.toFixed(2)} µs`);

// 1,000-rule bundle: 10 packages x 100 rules
const mods: Record<string, string> = {};
for (let p = 0; p < 10; p++) {
  let src = `package bundle.p${p}\nimport rego.v1\n\ndefault allow := false\n`;
  for (let i = 0; i < 100; i++)
    src += `\nallow if {\n  input.action == "a${i}"\n  some r in input.roles\n  r == "role${i}"\n  count(input.tags) < ${i + 5}\n}\n`;
  mods[`p${p}.rego`] = src;
}
for (let i = 0; i < 3; i++) compile(mods);
const times: number[] = [];
let big = compile(mods);
for (let i = 0; i < 7; i++) {
  t0 = process.hrtime.bigint();
  big = compile(mods);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
console.log(
  `compile 1,000 rules: median ${times[3]?.toFixed(1)} ms, min ${times[0]?.toFixed(1)} ms (7 runs)`,
);
if (big.ok) {
  const bi = { action: 'a57', roles: ['role57'], tags: [] };
  for (let i = 0; i < 5000; i++) big.policy.decide('data.bundle.p3.allow', { input: bi });
  t0 = process.hrtime.bigint();
  for (let i = 0; i < 50_000; i++) big.policy.decide('data.bundle.p3.allow', { input: bi });
  console.log(
    `decision over 100 indexed rules: ${(Number(process.hrtime.bigint() - t0) / 50_000 / 1000).toFixed(2)} µs`,
  );
}
