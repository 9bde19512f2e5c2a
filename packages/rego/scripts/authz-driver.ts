// Latency/profiling driver for the STS authz contract (the `policy` bench without Cedar):
//   node --import tsx packages/rego/scripts/authz-driver.ts [seconds] [--compile | --compile-only]
//   node --cpu-prof --import tsx packages/rego/scripts/authz-driver.ts 4
// QUERY=data.caracal.authz.<rule> times one rule of the contract instead of the whole result.
import { isDeepStrictEqual } from 'node:util';
import { AUTHZ_FILE, AUTHZ_QUERY, AUTHZ_SOURCE } from '../../../services/sts/src/authz/contract.js';
import { decideReference } from '../../../services/sts/src/authz/reference.js';
import { sampleInputs, sampleZone } from '../../../services/sts/src/authz/sample-zone.js';
import { compile } from '../src/index.js';

const seconds = process.argv.includes('--compile-only') ? 0 : Number(process.argv[2] ?? 3);
const data = sampleZone(7, 20, 10);
const inputs = sampleInputs(data, 8, 512);
const r = compile({ [AUTHZ_FILE]: AUTHZ_SOURCE });
if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join('\n'));
const policy = r.policy;
for (const input of inputs) {
  const a = policy.decide(AUTHZ_QUERY, { input, data });
  const b = decideReference(input, data);
  if (!isDeepStrictEqual(a, b)) throw new Error(`disagree on ${JSON.stringify(input)}`);
}
const query = process.env.QUERY ?? AUTHZ_QUERY;
for (let i = 0; i < (seconds ? 20_000 : 0); i++)
  policy.decide(query, { input: inputs[i % inputs.length], data });
let n = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  for (let i = 0; i < 1000; i++) policy.decide(query, { input: inputs[(n + i) % inputs.length], data });
  n += 1000;
}
if (n) {
  const us = ((performance.now() - t0) * 1000) / n;
  const cpu = process.cpuUsage(cpu0);
  console.log(`${query}: ${us.toFixed(2)} µs wall, ${((cpu.user + cpu.system) / n).toFixed(2)} µs cpu`);
}

if (process.argv.includes('--compile') || process.argv.includes('--compile-only')) {
  for (let rep = 0; rep < 5; rep++) {
    const t = performance.now();
    const mods: Record<string, string> = {};
    for (let m = 0; m < 10; m++) {
      const rules = Array.from(
        { length: 100 },
        (_, i) =>
          `allow_${i} if {\n\tinput.app_id == "app${i}"\n\tsome g in data.grants[input.app_id]\n\tglob.match(g.resource, ["/"], input.resource)\n}`,
      );
      mods[`m${m}.rego`] = `package bundle.m${m}\n\nimport rego.v1\n\n${rules.join('\n\n')}\n`;
    }
    const big = compile(mods);
    if (!big.ok) throw new Error('compile failed');
    console.log(`compile 1,000-rule bundle: ${(performance.now() - t).toFixed(0)} ms`);
  }
}
