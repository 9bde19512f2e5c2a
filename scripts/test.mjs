// `npm test`: typecheck, lint, build, then every Vitest suite; ends with the plain line `N passed, N failed`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';

const stages = [
  ['typecheck', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']],
  ['lint', 'npx', ['biome', 'ci', '.']],
  ['build', 'node', ['scripts/build.mjs']],
];
let passed = 0;
let failed = 0;
for (const [name, cmd, args] of stages) {
  process.stdout.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status === 0) passed++;
  else {
    failed++;
    process.stdout.write(`${name} FAILED (exit ${r.status})\n`);
  }
}

process.stdout.write('\n== tests\n');
mkdirSync('.tmp', { recursive: true });
const report = '.tmp/vitest-report.json';
rmSync(report, { force: true });
const args = [
  'vitest',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
];
const r = spawnSync('npx', args, { stdio: 'inherit' });
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed += json.numPassedTests;
  // A file that failed without running its tests (import or hook error) counts once; failed tests count each.
  const brokenFiles = (json.testResults ?? []).filter(
    (f) => f.status === 'failed' && f.assertionResults.length === 0,
  );
  failed += json.numFailedTests + brokenFiles.length;
  if (json.numPendingTests || json.numTodoTests) {
    failed += json.numPendingTests + json.numTodoTests;
    process.stdout.write(
      `skipped or todo tests are not allowed: ${json.numPendingTests + json.numTodoTests}\n`,
    );
  }
} catch {
  failed++;
  process.stdout.write(`vitest wrote no report (exit ${r.status})\n`);
}
if (r.status !== 0 && failed === 0) failed++;
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
