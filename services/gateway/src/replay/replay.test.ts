import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { CaracalError, type Clock, createFaultProxy, systemClock } from '@caracal/core';
import { type Db, migrate, openDb } from '@caracal/store';
import { openTestDb, testDatabaseUrl, uniqueSchemaName } from '@caracal/store/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayMigrations } from '../migrations/index.js';
import { createPostgresReplayGuard, createRedisReplayGuard, type ReplayGuard } from './index.js';

const REDIS_URL = process.env.CARACAL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

type Backend = 'redis' | 'postgres' | 'pglite';

/** Two guards over one shared store: two Gateway replicas. */
interface Replicas {
  a: ReplayGuard;
  b: ReplayGuard;
  clock: Clock;
  /** Let the store forget expired entries (Redis does it by itself; the SQL guard sweeps). */
  expire(): Promise<void>;
  /** Whether the store still holds `jti`. */
  holds(jti: string): Promise<boolean>;
  cleanup(): Promise<void>;
}

async function openReplicas(backend: Backend): Promise<Replicas> {
  const clock = systemClock;
  if (backend === 'redis') {
    const keyPrefix = `test:gw:jti:${Date.now().toString(36)}:${randomBytes(4).toString('hex')}:`;
    const opts = { url: REDIS_URL, keyPrefix, commandTimeoutMs: 1_000, leewayMs: 0, clock };
    const a = createRedisReplayGuard(opts);
    const b = createRedisReplayGuard(opts);
    const raw = new Redis(REDIS_URL, { protocol: 2 });
    return {
      a,
      b,
      clock,
      expire: () => new Promise((r) => setTimeout(r, 250)),
      holds: async (jti) => (await raw.exists(`${keyPrefix}${jti}`)) === 1,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        const keys = await raw.keys(`${keyPrefix}*`);
        if (keys.length) await raw.del(...keys);
        raw.disconnect();
      },
    };
  }
  const t = await openTestDb(backend);
  await migrate(t.db, gatewayMigrations);
  // Postgres: the second replica has its own pool on the same schema. PGlite is one process, one handle.
  const db2 =
    backend === 'postgres' ? await openDb({ url: t.location, schema: t.db.schema, poolSize: 5 }) : t.db;
  const a = createPostgresReplayGuard({ db: t.db, clock, leewayMs: 0, sweepIntervalMs: 0 });
  const b = createPostgresReplayGuard({ db: db2, clock, leewayMs: 0, sweepIntervalMs: 0 });
  return {
    a,
    b,
    clock,
    async expire() {
      await a.sweep(Date.now() + 250);
    },
    holds: async (jti) =>
      (await t.db.query('SELECT 1 FROM gateway_consumed_jtis WHERE jti = $1', [jti])).length === 1,
    async cleanup() {
      await Promise.all([a.close(), b.close()]);
      if (db2 !== t.db) await db2.close();
      await t.cleanup();
    },
  };
}

describe.each<Backend>(['redis', 'postgres', 'pglite'])('replay guard on %s', (backend) => {
  let r: Replicas;
  beforeAll(async () => {
    r = await openReplicas(backend);
  });
  afterAll(async () => {
    await r?.cleanup();
  });

  it('answers true once, then false, across replicas', async () => {
    const exp = Date.now() + 60_000;
    expect(await r.a.consume('jti-once', exp)).toBe(true);
    expect(await r.a.consume('jti-once', exp)).toBe(false);
    expect(await r.b.consume('jti-once', exp)).toBe(false);
    expect(await r.b.consume('jti-other', exp)).toBe(true);
  });

  it('lets exactly one of 50 concurrent consumes on two replicas win, for each of several jtis', async () => {
    const exp = Date.now() + 60_000;
    for (let k = 0; k < 5; k++) {
      const jti = `race-${k}-${randomBytes(4).toString('hex')}`;
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 ? r.a : r.b).consume(jti, exp)),
      );
      expect(answers.filter(Boolean)).toHaveLength(1);
    }
  });

  it('remembers a jti for the rest of its life, then forgets it', async () => {
    const jti = `short-${randomBytes(4).toString('hex')}`;
    expect(await r.a.consume(jti, Date.now() + 150)).toBe(true);
    expect(await r.b.consume(jti, Date.now() + 150)).toBe(false);
    expect(await r.holds(jti)).toBe(true);
    const long = `long-${randomBytes(4).toString('hex')}`;
    expect(await r.a.consume(long, Date.now() + 60_000)).toBe(true);
    await r.expire();
    expect(await r.holds(jti)).toBe(false);
    expect(await r.holds(long)).toBe(true);
    expect(await r.b.consume(long, Date.now() + 60_000)).toBe(false);
  });

  it('never answers true for a mandate already past its life', async () => {
    const jti = `expired-${randomBytes(4).toString('hex')}`;
    expect(await r.a.consume(jti, r.clock.now() - 1)).toBe(false);
    expect(await r.holds(jti)).toBe(false);
  });

  it('refuses an empty or oversized jti before touching the store', async () => {
    for (const jti of ['', 'x'.repeat(257)]) {
      await expect(r.a.consume(jti, Date.now() + 1_000)).rejects.toMatchObject({
        code: 'jti_invalid',
        status: 400,
      });
    }
  });
});

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Run `consume` and check it fails with replay_store_unavailable within `withinMs`. */
async function expectUnavailable(guard: ReplayGuard, withinMs: number): Promise<void> {
  const started = Date.now();
  const err = await guard.consume(`down-${randomBytes(4).toString('hex')}`, Date.now() + 60_000).then(
    (answer) => new Error(`expected a refusal, got ${answer}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaracalError);
  expect((err as CaracalError).code).toBe('replay_store_unavailable');
  expect((err as CaracalError).status).toBe(503);
  expect(Date.now() - started).toBeLessThan(withinMs);
}

describe('replay guard with its store down', () => {
  it('redis: a closed port fails fast with 503', async () => {
    const guard = createRedisReplayGuard({
      url: `redis://127.0.0.1:${await closedPort()}`,
      commandTimeoutMs: 200,
    });
    try {
      await expectUnavailable(guard, 1_000);
      await expectUnavailable(guard, 1_000);
    } finally {
      await guard.close();
    }
  });

  it('redis: blocked and reset through a fault proxy fail fast with 503, never true', async () => {
    const redisUrl = new URL(REDIS_URL);
    const proxy = await createFaultProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
    const keyPrefix = `test:gw:jti:fault:${randomBytes(4).toString('hex')}:`;
    const guard = createRedisReplayGuard({ url: proxy.url('redis'), keyPrefix, commandTimeoutMs: 200 });
    try {
      expect(await guard.consume('warm', Date.now() + 10_000)).toBe(true);
      for (const mode of ['block', 'reset'] as const) {
        proxy.set(mode);
        await expectUnavailable(guard, 1_000);
        await expectUnavailable(guard, 1_000);
      }
    } finally {
      await guard.close();
      await proxy.close();
      const raw = new Redis(REDIS_URL, { protocol: 2 });
      const keys = await raw.keys(`${keyPrefix}*`);
      if (keys.length) await raw.del(...keys);
      raw.disconnect();
    }
  });

  it('postgres: blocked and reset through a fault proxy fail fast with 503, never true', async () => {
    const pgUrl = new URL(testDatabaseUrl());
    const proxy = await createFaultProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const proxied = new URL(pgUrl);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    const schema = uniqueSchemaName('gwjti');
    let db: Db | undefined;
    const direct = await openDb({ url: testDatabaseUrl(), schema });
    try {
      await migrate(direct, gatewayMigrations);
      db = await openDb({ url: proxied.toString(), schema, poolSize: 2, connectTimeoutMs: 300 });
      const guard = createPostgresReplayGuard({ db, timeoutMs: 300, sweepIntervalMs: 0 });
      expect(await guard.consume('warm', Date.now() + 10_000)).toBe(true);
      for (const mode of ['block', 'reset'] as const) {
        proxy.set(mode);
        await expectUnavailable(guard, 1_500);
        await expectUnavailable(guard, 1_500);
      }
      await guard.close();
    } finally {
      proxy.set('reset');
      await db?.close().catch(() => {});
      await proxy.close();
      await direct.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await direct.close();
    }
  });
});
