import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pruneReceipts, requestHash, withIdempotency } from './idempotency.js';
import { migrate } from './migrate.js';
import { storeMigrations } from './migrations/index.js';
import { openTestDb, type TestDb } from './testing.js';

describe.each(['postgres', 'pglite'] as const)('idempotency receipts on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(kind);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.reset();
    await migrate(t.db, storeMigrations);
    await t.db.exec('CREATE TABLE mandate (id serial PRIMARY KEY, subject text NOT NULL)');
  });

  const create =
    (subject: string) => async (q: { query: (s: string, p?: unknown[]) => Promise<unknown[]> }) => {
      const [row] = (await q.query('INSERT INTO mandate (subject) VALUES ($1) RETURNING id', [subject])) as {
        id: number;
      }[];
      return { status: 201, body: { zeta: 1, id: row?.id, subject, alpha: [true, null] } };
    };

  it('runs once and replays the stored response for the same key and request', async () => {
    const id = { scope: 'api:POST /mandates', key: 'k-1', requestHash: requestHash({ subject: 'a' }) };
    const first = await withIdempotency(t.db, id, create('a'));
    const second = await withIdempotency(t.db, id, create('a'));
    expect(first).toEqual({
      status: 201,
      body: { zeta: 1, id: 1, subject: 'a', alpha: [true, null] },
      replayed: false,
    });
    expect(second).toEqual({ ...first, replayed: true });
    expect(Object.keys(second.body)).toEqual(['zeta', 'id', 'subject', 'alpha']); // exact text, key order kept
    expect(await t.db.query('SELECT count(*)::int AS n FROM mandate')).toEqual([{ n: 1 }]);
  });

  it('rejects the same key with a different request as idempotency_key_reused (422)', async () => {
    await withIdempotency(
      t.db,
      { scope: 's', key: 'k', requestHash: requestHash({ subject: 'a' }) },
      create('a'),
    );
    await expect(
      withIdempotency(
        t.db,
        { scope: 's', key: 'k', requestHash: requestHash({ subject: 'b' }) },
        create('b'),
      ),
    ).rejects.toMatchObject({ code: 'idempotency_key_reused', status: 422 });
    // Another scope is another key space.
    const other = await withIdempotency(t.db, { scope: 's2', key: 'k', requestHash: 'x' }, create('b'));
    expect(other.replayed).toBe(false);
  });

  it('stores nothing when fn throws, so a retry runs it', async () => {
    const id = { scope: 's', key: 'k', requestHash: 'h' };
    await expect(
      withIdempotency(t.db, id, async (q) => {
        await create('a')(q);
        throw new Error('downstream failed');
      }),
    ).rejects.toThrow('downstream failed');
    expect(await t.db.query('SELECT count(*)::int AS n FROM mandate')).toEqual([{ n: 0 }]);
    expect((await withIdempotency(t.db, id, create('a'))).replayed).toBe(false);
  });

  it('runs fn once for concurrent duplicates; the others replay', async () => {
    const id = { scope: 's', key: 'race', requestHash: 'h' };
    let runs = 0;
    const slow = async (q: Parameters<ReturnType<typeof create>>[0]) => {
      runs++;
      await new Promise((res) => setTimeout(res, 50));
      return create('a')(q);
    };
    const results = await Promise.all(Array.from({ length: 5 }, () => withIdempotency(t.db, id, slow)));
    expect(runs).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(new Set(results.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect(await t.db.query('SELECT count(*)::int AS n FROM mandate')).toEqual([{ n: 1 }]);
  });

  it('prunes receipts older than a cutoff', async () => {
    await withIdempotency(t.db, { scope: 's', key: 'old', requestHash: 'h' }, create('a'));
    await t.db.query(`UPDATE idempotency_receipts SET created_at = now() - interval '2 days'`);
    await withIdempotency(t.db, { scope: 's', key: 'new', requestHash: 'h' }, create('b'));
    expect(await pruneReceipts(t.db, { olderThanMs: 86_400_000 })).toBe(1);
  });
});

describe('requestHash', () => {
  it('ignores key order and undefined members, and distinguishes values', () => {
    expect(requestHash({ a: 1, b: { c: [1, 2], d: undefined } })).toBe(
      requestHash({ b: { c: [1, 2] }, a: 1 }),
    );
    expect(requestHash({ a: 1 })).not.toBe(requestHash({ a: '1' }));
    expect(requestHash([1, 2])).not.toBe(requestHash([2, 1]));
    expect(requestHash({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });
});
