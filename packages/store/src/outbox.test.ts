import { ManualClock, Registry } from '@caracal/core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrate } from './migrate.js';
import { storeMigrations } from './migrations/index.js';
import {
  createOutboxRelay,
  enqueue,
  listDead,
  type OutboxRelayOptions,
  outboxStatus,
  pruneSent,
  requeueDead,
} from './outbox.js';
import { openTestDb, type TestDb } from './testing.js';

type Published = { stream: string; payload: unknown; id: string };

describe.each(['postgres', 'pglite'] as const)('outbox on %s', (kind) => {
  let t: TestDb;
  let clock: ManualClock;
  let published: Published[];
  const collect = async (stream: string, payload: unknown, id: string) => {
    published.push({ stream, payload, id });
  };
  const relay = (o: Partial<OutboxRelayOptions> = {}) =>
    createOutboxRelay({ db: t.db, owner: 'caracal_api', publish: collect, clock, backoffMs: 1000, ...o });

  beforeAll(async () => {
    t = await openTestDb(kind);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.reset();
    await migrate(t.db, storeMigrations);
    clock = new ManualClock();
    published = [];
  });

  it('keeps an event only when the enclosing transaction commits', async () => {
    await t.db.exec('CREATE TABLE mandate (id text PRIMARY KEY)');
    const committed = await t.db.tx(async (q) => {
      await q.query(`INSERT INTO mandate VALUES ('m1')`);
      return enqueue(q, { owner: 'caracal_api', stream: 'mandates', payload: { id: 'm1' } });
    });
    await expect(
      t.db.tx(async (q) => {
        await q.query(`INSERT INTO mandate VALUES ('m2')`);
        await enqueue(q, { owner: 'caracal_api', stream: 'mandates', payload: { id: 'm2' } });
        throw new Error('handler failed');
      }),
    ).rejects.toThrow('handler failed');
    expect(await outboxStatus(t.db, 'caracal_api')).toMatchObject({ pending: 1, dead: 0 });
    expect(await relay().drainOnce()).toEqual({ claimed: 1, published: 1, retried: 0, dead: 0 });
    expect(published).toEqual([{ stream: 'mandates', payload: { id: 'm1' }, id: committed.eventId }]);
    expect(committed.eventId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await relay().drainOnce()).toMatchObject({ claimed: 0 });
  });

  it('dedupes on an optional key', async () => {
    const a = await enqueue(t.db, { owner: 'caracal_api', stream: 's', payload: 1, key: 'k' });
    const b = await enqueue(t.db, { owner: 'caracal_api', stream: 's', payload: 2, key: 'k' });
    expect(b).toEqual({ eventId: a.eventId, duplicate: true });
    expect((await outboxStatus(t.db)).pending).toBe(1);
  });

  it('publishes in enqueue order, across batches', async () => {
    for (let i = 0; i < 25; i++)
      await enqueue(t.db, { owner: 'caracal_api', stream: `s${i % 3}`, payload: { i } });
    await enqueue(t.db, { owner: 'other_owner', stream: 's0', payload: { i: -1 } });
    const r = relay({ batchSize: 10 });
    while ((await r.drainOnce()).claimed > 0);
    expect(published.map((p) => (p.payload as { i: number }).i)).toEqual(
      Array.from({ length: 25 }, (_, i) => i),
    );
    expect(await outboxStatus(t.db, 'caracal_api')).toEqual({
      pending: 0,
      dead: 0,
      oldestPendingAgeSeconds: 0,
    });
    expect((await outboxStatus(t.db, 'other_owner')).pending).toBe(1);
  });

  it('retries with exponential backoff, holding back later events of the same stream', async () => {
    let failing = true;
    const publish = async (stream: string, payload: unknown, id: string) => {
      if (failing && (payload as { n: number }).n === 1) throw new Error('bus down');
      published.push({ stream, payload, id });
    };
    await enqueue(t.db, { owner: 'caracal_api', stream: 'a', payload: { n: 1 } });
    await enqueue(t.db, { owner: 'caracal_api', stream: 'a', payload: { n: 2 } });
    await enqueue(t.db, { owner: 'caracal_api', stream: 'b', payload: { n: 3 } });
    const r = relay({ publish, backoffMs: 1000 });
    expect(await r.drainOnce()).toEqual({ claimed: 3, published: 1, retried: 1, dead: 0 });
    expect(published.map((p) => (p.payload as { n: number }).n)).toEqual([3]);
    // Not due yet: neither the failed event nor the one behind it in stream 'a' goes out.
    expect(await r.drainOnce()).toMatchObject({ claimed: 0 });
    clock.advance(999);
    expect(await r.drainOnce()).toMatchObject({ claimed: 0 });
    clock.advance(1);
    expect(await r.drainOnce()).toMatchObject({ claimed: 2, retried: 1 }); // attempt 2 fails
    clock.advance(1999);
    expect(await r.drainOnce()).toMatchObject({ claimed: 0 }); // second delay is 2 s
    clock.advance(1);
    failing = false;
    expect(await r.drainOnce()).toMatchObject({ claimed: 2, published: 2 });
    expect(published.map((p) => (p.payload as { n: number }).n)).toEqual([3, 1, 2]);
    const [row] = await t.db.query<{ attempts: number; status: string; last_error: string | null }>(
      'SELECT attempts, status, last_error FROM outbox ORDER BY id LIMIT 1',
    );
    expect(row).toEqual({ attempts: 2, status: 'sent', last_error: null });
  });

  it('marks an event dead after maxAttempts, exposes it, and requeues it', async () => {
    const registry = new Registry();
    const publish = async () => {
      throw new Error('poison');
    };
    const { eventId } = await enqueue(t.db, { owner: 'caracal_api', stream: 'a', payload: { n: 1 } });
    await enqueue(t.db, { owner: 'caracal_api', stream: 'a', payload: { n: 2 } });
    const r = relay({ publish, maxAttempts: 3, backoffMs: 10, registry });
    const results = [];
    for (let i = 0; i < 3; i++) {
      results.push(await r.drainOnce());
      clock.advance(1000);
    }
    expect(results.map((x) => x.dead)).toEqual([0, 0, 1]);
    expect(await outboxStatus(t.db, 'caracal_api')).toMatchObject({ pending: 1, dead: 1 });
    const metrics = await registry.metrics();
    expect(metrics).toContain('caracal_api_outbox_dead_total 1');
    expect(metrics).toMatch(/caracal_api_outbox_oldest_pending_age_seconds \d/);
    const [dead] = await listDead(t.db, 'caracal_api');
    expect(dead).toMatchObject({ eventId, stream: 'a', attempts: 3, lastError: 'poison', payload: { n: 1 } });

    // The dead event no longer holds back its stream.
    const ok = relay();
    expect(await ok.drainOnce()).toMatchObject({ published: 1 });
    expect(await requeueDead(t.db, { owner: 'caracal_api', eventIds: [eventId] })).toBe(1);
    expect(await ok.drainOnce()).toMatchObject({ published: 1 });
    expect(published.map((p) => p.id)[1]).toBe(eventId);
    expect(await registry.metrics()).toContain('caracal_api_outbox_dead_total 0');
  });

  it('two relays in parallel never publish an event twice', async () => {
    await t.db.query(
      `INSERT INTO outbox (owner, stream, payload) SELECT 'caracal_api', 's' || (g % 7), jsonb_build_object('g', g)
         FROM generate_series(1, 300) g`,
    );
    const slowCollect = async (stream: string, payload: unknown, id: string) => {
      await new Promise((res) => setImmediate(res));
      published.push({ stream, payload, id });
    };
    const relays = [1, 2].map(() => relay({ publish: slowCollect, batchSize: 20 }));
    const counts = [0, 0];
    await Promise.all(
      relays.map(async (r, i) => {
        for (;;) {
          const res = await r.drainOnce();
          counts[i]! += res.published;
          if (res.claimed > 0) continue;
          if ((await outboxStatus(t.db, 'caracal_api')).pending === 0) return;
          // The other relay holds the heads of every stream; PGlite never yields to timers on its own.
          await new Promise((res) => setTimeout(res, 1));
        }
      }),
    );
    const ids = published.map((p) => p.id);
    expect(ids.length).toBe(300);
    expect(new Set(ids).size).toBe(300);
    if (kind === 'postgres') expect(counts.every((c) => c > 0)).toBe(true);
  });

  it('re-publishes events whose relay died mid-batch once the lease expires', async () => {
    await enqueue(t.db, { owner: 'caracal_api', stream: 's', payload: 1 });
    // Simulate a relay that claimed and crashed: a lease with no one behind it.
    await t.db.query(`UPDATE outbox SET leased_until = $1, leased_by = 'ghost'`, [
      new Date(clock.now() + 30_000),
    ]);
    expect(await relay().drainOnce()).toMatchObject({ claimed: 0 });
    clock.advance(30_000);
    expect(await relay().drainOnce()).toMatchObject({ published: 1 });
  });

  it('runs in the background until stopped, and prunes old sent events', async () => {
    const r = relay({ pollMs: 5, retainSentMs: 1000 });
    r.start();
    await enqueue(t.db, { owner: 'caracal_api', stream: 's', payload: 'x' });
    for (let i = 0; i < 200 && published.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    await r.stop();
    expect(published).toHaveLength(1);
    clock.advance(2000);
    expect(await pruneSent(t.db, { olderThanMs: 1000, now: clock.now() })).toBe(1);
  });

  it('times out a hanging publish and counts it as a failure', async () => {
    await enqueue(t.db, { owner: 'caracal_api', stream: 's', payload: 1 });
    const r = relay({ publish: () => new Promise(() => {}), publishTimeoutMs: 50 });
    expect(await r.drainOnce()).toMatchObject({ retried: 1 });
    const [row] = await t.db.query<{ last_error: string }>('SELECT last_error FROM outbox');
    expect(row?.last_error).toMatch(/timed out/);
  });
});
