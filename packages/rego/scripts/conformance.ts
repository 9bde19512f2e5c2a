// Dev helper: npx tsx packages/rego/scripts/conformance.ts <dir> [filter] [--fails]
import { formatReport, runConformance } from '../src/conformance.js';

const args = process.argv.slice(2);
const dir = args[0] ?? '/work/shared/opa-tests/v1';
const filter = args[1] && !args[1].startsWith('--') ? args[1] : undefined;
const r = runConformance(dir, { filter });
if (args.includes('--fails'))
  for (const c of r.cases)
    if (c.status !== 'pass') console.log(`[${c.status}] ${c.note}: ${c.reason?.slice(0, 300)}`);
console.log(formatReport(r));
