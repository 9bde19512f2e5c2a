// `npm run bench [-- name...]`: runs each benchmark beside its baseline in the same process and prints ratios.
import { mkdirSync, writeFileSync } from 'node:fs';
import { type BenchSuite, formatSuite } from './harness.js';
import { suites } from './suites.js';

const wanted = process.argv.slice(2);
const selected: BenchSuite[] = wanted.length ? suites.filter((s) => wanted.includes(s.name)) : suites;
if (wanted.length && selected.length !== wanted.length) {
  process.stderr.write(`unknown benchmark; known: ${suites.map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}
mkdirSync('bench/results', { recursive: true });
for (const suite of selected) {
  const results = await suite.run();
  process.stdout.write(`\n${formatSuite(suite, results)}\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(`bench/results/${suite.name}-${stamp}.json`, `${JSON.stringify(results, null, 2)}\n`);
}
