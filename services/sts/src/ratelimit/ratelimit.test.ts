import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { CaracalError, createFaultProxy } from '@caracal/core';
import { type Db, migrate, openDb } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stsMigrations } from '../migrations/index.js';
import {
  createPostgresRateLimiter,
  createRedisRateLimiter,
  mintRateKey,
  type RateLimiter,
  windowStart,
} from './index.js';

const REDIS_URL = process.env.CARACAL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const MINUTE = 60_000;
// The first millisecond of a minute, so tests know exactly where the window ends.
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

type Backend = 'redis' | 'postgres' | 'pglite';

/** Two limiters over one shared store: two STS replicas. */
interface Replicas {
  a: RateLimiter;
  b: RateLimiter;
  cleanup(): Promise<void>;
}

async function openReplicas(backend: Backend): Promise<Replicas> {
  if (backend === 'redis') {
    const keyPrefix = `test:sts:rl:${Date.now().toString(36)}:${randomBytes(4).toString('hex')}:`;
    const a = createRedisRateLimiter({ url: REDIS_URL, keyPrefix, commandTimeoutMs: 1_000 });
    const b = createRedisRateLimiter({ url: REDIS_URL, keyPrefix, commandTimeoutMs: 1_000 });
    return {
      a,
      b,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        const raw = new Redis(REDIS_URL, { protocol: 2 });
        const keys = await raw.keys(`${keyPrefix}*`);
        if (keys.length) await raw.del(...keys);
        raw.disconnect();
      },
    };
  }
  const t = await openTestDb(backend);
  await migrate(t.db, stsMigrations);
  // Postgres: the second replica has its own pool on the same schema. PGlite is one process, one handle.
  const db2 =
    backend === 'postgres' ? await openDb({ url: t.location, schema: t.db.schema, poolSize: 5 }) : t.db;
  const a = createPostgresRateLimiter({ db: t.db, cleanupIntervalMs: 0 });
  const b = createPostgresRateLimiter({ db: db2, cleanupIntervalMs: 0 });
  return {
    a,
    b,
    async cleanup() {
      await Promise.all([a.close(), b.close()]);
      if (db2 !== t.db) await db2.close();
      await t.cleanup();
    },
  };
}

describe.each<Backend>(['redis', 'postgres', 'pglite'])('mint rate limit on %s', (backend) => {
  let r: Replicas;
  beforeAll(async () => {
    r = await openReplicas(backend);
  });
  afterAll(async () => {
    await r?.cleanup();
  });

  it('allows exactly N across two replicas hitting concurrently', async () => {
    const key = mintRateKey('zone-1', 'res:a', `app-${backend}`);
    const limit = 25;
    const decisions = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? r.a : r.b).hit(key, limit, T0 + 10_000 + i)),
    );
    const allowed = decisions.filter((d) => d.allowed);
    expect(allowed).toHaveLength(limit);
    expect(new Set(allowed.map((d) => d.remaining))).toEqual(
      new Set(Array.from({ length: limit }, (_, i) => i)),
    );
    for (const d of decisions) expect(d.resetAt).toBe(T0 + MINUTE);
    for (const d of decisions.filter((x) => !x.allowed)) expect(d.remaining).toBe(0);
  });

  it('starts a new window when the clock crosses the minute', async () => {
    const key = mintRateKey('zone-1', 'res:b', `app-${backend}`);
    const late = T0 + MINUTE - 1; // last millisecond of the window
    expect(await r.a.hit(key, 2, late)).toEqual({ allowed: true, remaining: 1, resetAt: T0 + MINUTE });
    expect((await r.b.hit(key, 2, late)).allowed).toBe(true);
    expect((await r.a.hit(key, 2, late)).allowed).toBe(false);
    expect(await r.b.hit(key, 2, T0 + MINUTE)).toEqual({
      allowed: true,
      remaining: 1,
      resetAt: T0 + 2 * MINUTE,
    });
  });

  it('counts each (zone, resource, application) separately', async () => {
    const one = mintRateKey('z', 'r', `a1-${backend}`);
    const two = mintRateKey('z', 'r', `a2-${backend}`);
    expect((await r.a.hit(one, 1, T0)).allowed).toBe(true);
    expect((await r.a.hit(one, 1, T0)).allowed).toBe(false);
    expect((await r.b.hit(two, 1, T0)).allowed).toBe(true);
    expect(mintRateKey('a:b', 'c', 'd')).not.toBe(mintRateKey('a', 'b:c', 'd'));
  });

  it('matches the fixed-window model for any sequence of hits from either replica', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 * MINUTE }), fc.boolean()),
          {
            maxLength: 25,
          },
        ),
        async (limit, raw) => {
          const prefix = `prop-${backend}-${++run}-`;
          const hits = [...raw].sort((x, y) => x[1] - y[1]);
          const used = new Map<string, number>();
          for (const [k, offset, onA] of hits) {
            const now = T0 + offset;
            const slot = `${k}@${windowStart(now, MINUTE)}`;
            const before = used.get(slot) ?? 0;
            const d = await (onA ? r.a : r.b).hit(`${prefix}${k}`, limit, now);
            expect(d.allowed).toBe(before < limit);
            expect(d.remaining).toBe(Math.max(0, limit - before - 1));
            expect(d.resetAt).toBe(windowStart(now, MINUTE) + MINUTE);
            used.set(slot, before + 1);
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('mint rate limit fails closed', () => {
  it('throws rate_limit_unavailable quickly when Redis is down, never allowed', async () => {
    const limiter = createRedisRateLimiter({ url: `redis://127.0.0.1:${await closedPort()}` });
    try {
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const err = await limiter.hit('k', 1000, T0).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CaracalError);
        expect(err).toMatchObject({ code: 'rate_limit_unavailable', status: 503 });
        expect(performance.now() - started).toBeLessThan(500);
      }
    } finally {
      await limiter.close();
    }
  });

  it('fails closed while a live Redis connection is cut or silent, and recovers after', async () => {
    const target = new URL(REDIS_URL);
    const proxy = await createFaultProxy({ host: target.hostname, port: Number(target.port || 6379) });
    const keyPrefix = `test:sts:rl:fault:${randomBytes(4).toString('hex')}:`;
    const limiter = createRedisRateLimiter({ url: proxy.url('redis'), keyPrefix });
    try {
      expect((await limiter.hit('k', 1000, T0)).allowed).toBe(true);
      for (const mode of ['block', 'reset'] as const) {
        proxy.set(mode);
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          await expect(limiter.hit('k', 1000, T0)).rejects.toMatchObject({ code: 'rate_limit_unavailable' });
          expect(performance.now() - started).toBeLessThan(600); // the 250 ms command timeout, at worst
        }
      }
      proxy.set('pass');
      await expect
        .poll(
          () =>
            limiter.hit('k', 1000, T0).then(
              (d) => d.allowed,
              () => false,
            ),
          { timeout: 8_000, interval: 100 },
        )
        .toBe(true);
    } finally {
      await limiter.close();
      await proxy.close();
    }
  });

  it('throws rate_limit_unavailable when the database is gone', async () => {
    const t: TestDb = await openTestDb('postgres');
    try {
      await migrate(t.db, stsMigrations);
      const db: Db = await openDb({ url: t.location, schema: t.db.schema, poolSize: 1 });
      const limiter = createPostgresRateLimiter({ db, cleanupIntervalMs: 0 });
      expect((await limiter.hit('k', 10, T0)).allowed).toBe(true);
      await db.close();
      await expect(limiter.hit('k', 10, T0)).rejects.toMatchObject({
        code: 'rate_limit_unavailable',
        status: 503,
      });
      await limiter.close();
    } finally {
      await t.cleanup();
    }
  });

  it('prunes windows older than the previous one', async () => {
    const t = await openTestDb('pglite');
    try {
      await migrate(t.db, stsMigrations);
      const limiter = createPostgresRateLimiter({ db: t.db, cleanupIntervalMs: 0 });
      await limiter.hit('k', 10, T0);
      await limiter.hit('k', 10, T0 + MINUTE);
      await limiter.hit('k', 10, T0 + 2 * MINUTE);
      expect(await limiter.prune(T0 + 2 * MINUTE + 5)).toBe(1);
      const rows = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM sts_mint_rate_windows');
      expect(rows[0]?.n).toBe(2);
      expect(windowStart(T0 + 59_999, MINUTE)).toBe(T0);
      await limiter.close();
    } finally {
      await t.cleanup();
    }
  });
});
