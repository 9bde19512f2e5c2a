import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '@caracal/store';
import { afterAll, describe, expect, it } from 'vitest';
import { type Child, freeServicePorts, run } from './support.js';

const CLI = 'apps/cli/bin/caracal.mjs';
const SERVICES = ['api', 'console', 'sts', 'gateway', 'audit', 'coordinator'];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function status(env: Record<string, string>, data: string) {
  const child = run(process.execPath, [CLI, '--data', data, 'status', '--json'], env);
  const { code } = await child.exited;
  return { code, rows: JSON.parse(child.stdout()) as { service: string; ready: boolean; detail: string }[] };
}

describe('caracal up (embedded default)', () => {
  it('brings every service to ready, survives kill -9 and starts again on the same data', async () => {
    const data = mkdtempSync(join(tmpdir(), 'caracal-up-'));
    dirs.push(data);
    const env = { ...(await freeServicePorts()), CARACAL_LOG_LEVEL: 'warn' };

    let up: Child = run(process.execPath, [CLI, '--data', data, 'up'], env);
    const [, ms] = await up.waitFor(/All services ready (\d+) ms/, 60_000);
    expect(Number(ms)).toBeGreaterThan(0);
    expect(up.stdout()).toMatch(/Admin token: cat_\S+/);
    let s = await status(env, data);
    expect(s.code).toBe(0);
    expect(s.rows.map((r) => [r.service, r.ready])).toEqual(SERVICES.map((n) => [n, true]));

    up.proc.kill('SIGKILL');
    await up.exited;
    s = await status(env, data);
    expect(s.code).toBe(1);
    expect(s.rows.every((r) => !r.ready && r.detail === 'not running')).toBe(true);

    // Write a marker while no process holds the data dir, then restart on it.
    const db = await openDb({ dataDir: join(data, 'pgdata') });
    await db.query('CREATE TABLE IF NOT EXISTS test_marker (v text)');
    await db.query(`INSERT INTO test_marker VALUES ('kept')`);
    const applied = await db.query<{ n: string | number }>('SELECT count(*) AS n FROM schema_migrations');
    await db.close();

    up = run(process.execPath, [CLI, '--data', data, 'up'], env);
    await up.waitFor(/All services ready/, 60_000);
    s = await status(env, data);
    expect(s.code).toBe(0);
    const token1 = up.stdout().match(/Admin token: (\S+)/)?.[1];
    up.proc.kill('SIGKILL');
    await up.exited;

    const again = await openDb({ dataDir: join(data, 'pgdata') });
    expect(await again.query('SELECT v FROM test_marker')).toEqual([{ v: 'kept' }]);
    const appliedAfter = await again.query<{ n: string | number }>(
      'SELECT count(*) AS n FROM schema_migrations',
    );
    expect(Number(appliedAfter[0]!.n)).toBe(Number(applied[0]!.n));
    await again.close();

    // The bootstrap token is stable across restarts.
    up = run(process.execPath, [CLI, '--data', data, 'up'], env);
    await up.waitFor(/All services ready/, 60_000);
    expect(up.stdout().match(/Admin token: (\S+)/)?.[1]).toBe(token1);
    up.proc.kill('SIGTERM');
    expect((await up.exited).code).toBe(0);
  }, 180_000);

  it('exits 2 and lists every problem on invalid configuration', async () => {
    const child = run(process.execPath, [CLI, 'status'], {
      CARACAL_PORTS_API: 'x',
      CARACAL_LOG_LEVEL: 'loud',
    });
    const { code } = await child.exited;
    expect(code).toBe(2);
    expect(child.stderr()).toContain('CARACAL_PORTS_API');
    expect(child.stderr()).toContain('CARACAL_LOG_LEVEL');
  });
});
