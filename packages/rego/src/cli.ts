/** `caracal policy …` commands (commander 14). The lead wires registerPolicyCommands into the CLI. */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { formatReport, runConformance } from './conformance.js';
import { compile, type ModuleSource } from './policy.js';

function regoFiles(paths: string[]): ModuleSource[] {
  const out: ModuleSource[] = [];
  const visit = (p: string) => {
    if (statSync(p).isDirectory()) {
      for (const n of readdirSync(p).sort()) visit(join(p, n));
    } else if (p.endsWith('.rego')) out.push({ file: p, source: readFileSync(p, 'utf8') });
  };
  for (const p of paths) visit(p);
  return out;
}

function readJSON(p: string): unknown {
  return JSON.parse(readFileSync(p, 'utf8'));
}

const PLAIN_REF = /^(data|input)(\.[A-Za-z_][A-Za-z0-9_]*|\["[^"\]]*"\])*$/;

/** Add `policy check|eval|test|conformance` to a commander program. */
export function registerPolicyCommands(program: Command): Command {
  const policy = program.command('policy').description('Rego policies: check, evaluate, test, conformance');

  policy
    .command('check <files...>')
    .description('compile Rego files and report errors as OPA does')
    .action((files: string[]) => {
      const r = compile(regoFiles(files));
      if (r.ok) return;
      for (const e of r.errors) console.error(e.format());
      console.error(
        `${r.errors.length} error${r.errors.length === 1 ? '' : 's'} occurred during compilation`,
      );
      process.exitCode = 1;
    });

  policy
    .command('eval <query>')
    .description('evaluate a query against policies and data')
    .option(
      '-d, --data <path>',
      'Rego file/directory or JSON data file (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('-i, --input <file>', 'input JSON file')
    .option('--strict', 'raise built-in errors', false)
    .action((query: string, opts: { data: string[]; input?: string; strict: boolean }) => {
      const jsonFiles = opts.data.filter((p) => p.endsWith('.json'));
      const r = compile(regoFiles(opts.data.filter((p) => !p.endsWith('.json'))));
      if (!r.ok) {
        for (const e of r.errors) console.error(e.format());
        process.exitCode = 1;
        return;
      }
      let data: Record<string, unknown> = {};
      for (const f of jsonFiles) data = { ...data, ...(readJSON(f) as Record<string, unknown>) };
      const evalOpts = {
        data,
        input: opts.input ? readJSON(opts.input) : undefined,
        strict: opts.strict,
        print: (m: string) => console.error(m),
      };
      const bigSafe = (_k: string, v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
      try {
        // A plain reference prints its value (`undefined` when it has none); other queries print bindings.
        if (PLAIN_REF.test(query.trim())) {
          const value = r.policy.decide(query.trim(), evalOpts);
          console.log(value === undefined ? 'undefined' : JSON.stringify(value, bigSafe, 2));
          return;
        }
        const result = r.policy.evaluate(query, evalOpts);
        console.log(JSON.stringify({ result: result ?? [] }, bigSafe, 2));
      } catch (e) {
        console.error((e as { format?: () => string }).format?.() ?? String(e));
        process.exitCode = 1;
      }
    });

  policy
    .command('test <paths...>')
    .description('run test_* rules')
    .action((paths: string[]) => {
      const r = compile(regoFiles(paths));
      if (!r.ok) {
        for (const e of r.errors) console.error(e.format());
        process.exitCode = 1;
        return;
      }
      const results = r.policy.test();
      let failed = 0;
      for (const t of results) {
        if (!t.passed) failed++;
        console.log(
          `${t.passed ? 'PASS' : 'FAIL'}: data.${t.package}.${t.name} (${t.durationMs.toFixed(2)}ms)${t.error ? ` ${t.error.format()}` : ''}`,
        );
      }
      console.log(`${results.length - failed} passed, ${failed} failed`);
      if (failed) process.exitCode = 1;
    });

  policy
    .command('conformance <dir>')
    .description('run OPA YAML evaluation test cases')
    .option('--json', 'print the full report as JSON', false)
    .option('--ratchet <file>', "fail when fewer cases pass than the ratchet file's { passed }")
    .option('--write-ratchet <file>', 'write the pass count to a ratchet file')
    .action((dir: string, opts: { json: boolean; ratchet?: string; writeRatchet?: string }) => {
      const report = runConformance(dir);
      if (opts.json) console.log(JSON.stringify(report, null, 2));
      else {
        for (const c of report.cases) if (c.status === 'skip') console.log(`skip ${c.note}: ${c.reason}`);
        console.log(formatReport(report));
      }
      if (opts.writeRatchet)
        writeFileSync(opts.writeRatchet, `${JSON.stringify({ passed: report.passed }, null, 2)}\n`);
      if (opts.ratchet) {
        const want = (readJSON(opts.ratchet) as { passed: number }).passed;
        if (report.passed < want) {
          console.error(`ratchet: ${report.passed} passed < ${want} required`);
          process.exitCode = 1;
        }
      }
    });
  return policy;
}
