import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerPolicyCommands } from './cli.js';
import { formatReport, runConformance } from './conformance.js';

const SUITE = `cases:
  - note: demo/pass
    query: data.t.p = x
    modules:
      - |
        package t
        p := count(input.xs)
    input: { xs: [1, 2, 3] }
    want_result:
      - x: 3
  - note: demo/big
    query: x = 12345678901234567890
    want_result:
      - x: 12345678901234567890
  - note: demo/error
    query: data.t.p = x
    modules:
      - |
        package t
        p := 1 / 0
    strict_error: true
    want_error_code: eval_builtin_error
    want_error: divide by zero
  - note: demo/fail
    query: data.t.p = x
    modules: ["package t\\np := 1"]
    want_result:
      - x: 2
  - note: demo/skip
    query: data.t.p = x
    modules: ["package t\\np := net.lookup_ip_addr(input)"]
    want_result: []
`;

function suiteDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rego-conf-'));
  writeFileSync(join(dir, 'demo.yaml'), SUITE);
  return dir;
}

describe('conformance runner', () => {
  it('counts pass, fail and skip per category', () => {
    const r = runConformance(suiteDir());
    expect([r.passed, r.failed, r.skipped]).toEqual([3, 1, 1]);
    expect(formatReport(r).split('\n').at(-1)).toBe('3 passed, 1 failed, 1 skipped');
  });
});

describe('policy commands', () => {
  afterEach(() => {
    process.exitCode = undefined;
    vi.restoreAllMocks();
  });
  const run = async (...args: string[]) => {
    const program = new Command().exitOverride();
    registerPolicyCommands(program);
    await program.parseAsync(['node', 'caracal', ...args]);
  };

  it('conformance --ratchet exits 1 below the ratchet', async () => {
    const dir = suiteDir();
    const ratchet = join(dir, 'ratchet.json');
    writeFileSync(ratchet, JSON.stringify({ passed: 4 }));
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    vi.spyOn(console, 'error').mockImplementation(() => {});
    await run('policy', 'conformance', dir, '--ratchet', ratchet);
    expect(process.exitCode).toBe(1);
    expect(log.mock.calls.at(-1)?.[0]).toMatch(/3 passed, 1 failed, 1 skipped$/);
  });

  it('check prints OPA-style errors and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rego-check-'));
    writeFileSync(join(dir, 'bad.rego'), 'package x\np if { y > 1 }\n');
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    await run('policy', 'check', join(dir, 'bad.rego'));
    expect(process.exitCode).toBe(1);
    expect(err.mock.calls[0]?.[0]).toMatch(/bad\.rego:2:8: rego_unsafe_var_error: var y is unsafe/);
  });

  it('eval and test', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rego-eval-'));
    writeFileSync(
      join(dir, 'p.rego'),
      'package x\nallow if input.ok\ntest_allow if allow with input as {"ok": true}\n',
    );
    writeFileSync(join(dir, 'in.json'), '{"ok": true}');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    await run('policy', 'eval', '-d', join(dir, 'p.rego'), 'x := data.x.allow', '-i', join(dir, 'in.json'));
    expect(JSON.parse(log.mock.calls[0]?.[0] as string)).toEqual({ result: [{ x: true }] });
    await run('policy', 'test', dir);
    expect(log.mock.calls.at(-1)?.[0]).toBe('1 passed, 0 failed');
  });
});
