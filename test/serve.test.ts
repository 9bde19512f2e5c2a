import { createFaultProxy, type FaultProxy } from '@caracal/core';
import { dropSchema, testDatabaseUrl, uniqueSchemaName } from '@caracal/store/testing';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type Child, freePort, run } from './support.js';

const CLI = 'apps/cli/bin/caracal.mjs';

async function ready(port: number) {
  const res = await fetch(`http://127.0.0.1:${port}/ready`);
  return {
    status: res.status,
    body: (await res.json()) as { checks: Record<string, { ok: boolean; detail?: string }> },
  };
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('caracal serve on real PostgreSQL and Redis', () => {
  it('is not ready until migrated, detects tampering, and fails closed while a dependency is cut off', async () => {
    const schema = uniqueSchemaName('serve');
    cleanups.push(() => dropSchema(testDatabaseUrl(), schema));
    const pgProxy: FaultProxy = await createFaultProxy({ host: '127.0.0.1', port: 5432 });
    const redisProxy: FaultProxy = await createFaultProxy({ host: '127.0.0.1', port: 6379 });
    cleanups.push(
      () => pgProxy.close(),
      () => redisProxy.close(),
    );
    const port = await freePort();
    const env = {
      CARACAL_DATABASE_URL: pgProxy.url('postgres', '/postgres').replace('://', '://postgres@'),
      CARACAL_DATABASE_SCHEMA: schema,
      CARACAL_REDIS_URL: redisProxy.url('redis'),
      CARACAL_REDIS_KEY_PREFIX: `${schema}:`,
      CARACAL_PORTS_API: String(port),
      CARACAL_BUS_HMAC_KEY: 'k'.repeat(40),
      CARACAL_ADMIN_TOKEN: 't'.repeat(20),
      CARACAL_LOG_LEVEL: 'warn',
    };

    const api: Child = run(process.execPath, [CLI, 'serve', 'api'], env);
    cleanups.push(async () => {
      api.proc.kill('SIGKILL');
      await api.exited;
    });
    await api.waitFor(/api listening on/);

    // Behind: nothing migrated yet.
    let r = await ready(port);
    expect(r.status).toBe(503);
    expect(r.body.checks.schema!.ok).toBe(false);
    expect(r.body.checks.schema!.detail).toMatch(/behind/);
    expect(r.body.checks.db!.ok).toBe(true);
    expect(r.body.checks.bus!.ok).toBe(true);

    // Two concurrent `migrate up` processes apply each migration once.
    const a = run(process.execPath, [CLI, 'migrate', 'up'], env);
    const b = run(process.execPath, [CLI, 'migrate', 'up'], env);
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
    const appliedLines = (a.stdout() + b.stdout()).match(/^applied \d+/gm) ?? [];
    expect(new Set(appliedLines).size).toBe(appliedLines.length);
    const client = new pg.Client({ connectionString: testDatabaseUrl() });
    await client.connect();
    cleanups.push(() => client.end());
    const { rows } = await client.query(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
    expect(rows.length).toBe(appliedLines.length);

    r = await until(
      () => ready(port),
      (x) => x.status === 200,
    );
    expect(r.status).toBe(200);
    const status = run(process.execPath, [CLI, 'migrate', 'status'], env);
    expect((await status.exited).code).toBe(0);
    expect(status.stdout()).toContain('schema matches this build');

    // Postgres cut off: not ready, with the reason; back: ready again.
    pgProxy.set('block');
    r = await until(
      () => ready(port),
      (x) => x.status === 503,
    );
    expect(r.status).toBe(503);
    expect(r.body.checks.db!.ok).toBe(false);
    pgProxy.set('pass');
    r = await until(
      () => ready(port),
      (x) => x.status === 200,
      30_000,
    );
    expect(r.status).toBe(200);

    // Redis cut off: the bus check fails; back: ready.
    redisProxy.set('reset');
    r = await until(
      () => ready(port),
      (x) => x.status === 503,
    );
    expect(r.body.checks.bus!.ok).toBe(false);
    redisProxy.set('pass');
    r = await until(
      () => ready(port),
      (x) => x.status === 200,
      30_000,
    );
    expect(r.status).toBe(200);

    // A tampered applied migration is caught by checksum.
    await client.query(`UPDATE "${schema}".schema_migrations SET checksum = 'x' WHERE version = $1`, [
      rows[0].version,
    ]);
    r = await until(
      () => ready(port),
      (x) => x.status === 503,
    );
    expect(r.body.checks.schema!.detail).toMatch(/checksum/i);
    const tampered = run(process.execPath, [CLI, 'migrate', 'status'], env);
    expect((await tampered.exited).code).toBe(1);
    expect(tampered.stdout()).toMatch(/CHECKSUM MISMATCH/);
  }, 120_000);

  it('refuses to serve without a shared PostgreSQL', async () => {
    const child = run(process.execPath, [CLI, 'serve', 'sts'], { CARACAL_LOG_LEVEL: 'warn' });
    expect((await child.exited).code).toBe(1);
    expect(child.stderr()).toMatch(/needs a shared PostgreSQL/);
  });
});
