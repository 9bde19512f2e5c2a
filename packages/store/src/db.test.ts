import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { CaracalError } from '@caracal/core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDb, TransactionAbortedError } from './db.js';
import { openTestDb, type TestDb } from './testing.js';

describe.each(['postgres', 'pglite'] as const)('Db over %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(kind);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.reset();
  });

  it('runs in its own schema and returns int8 as string, jsonb parsed, timestamptz as Date', async () => {
    const [row] = await t.db.query<{ s: string; n: string; i: number; j: unknown; d: Date }>(
      `SELECT current_schema() AS s, 9007199254740993::int8 AS n, 7::int4 AS i, '{"a":[1]}'::jsonb AS j, now() AS d`,
    );
    expect(row?.s).toBe(t.db.schema);
    expect(row?.n).toBe('9007199254740993');
    expect(row?.i).toBe(7);
    expect(row?.j).toEqual({ a: [1] });
    expect(row?.d).toBeInstanceOf(Date);
  });

  it('exec runs several statements; tx commits on resolve and rolls back on throw', async () => {
    await t.db.exec(
      'CREATE TABLE item (id int PRIMARY KEY, body jsonb); CREATE INDEX item_body ON item ((body->>1));',
    );
    const out = await t.db.tx(async (q) => {
      await q.query('INSERT INTO item VALUES ($1, $2)', [1, JSON.stringify({ x: 1 })]);
      return 'done';
    });
    expect(out).toBe('done');
    await expect(
      t.db.tx(async (q) => {
        await q.query('INSERT INTO item VALUES ($1, $2)', [2, null]);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const rows = await t.db.query<{ id: number; body: unknown }>('SELECT id, body FROM item ORDER BY id');
    expect(rows).toEqual([{ id: 1, body: { x: 1 } }]);
  });

  it('concurrent transactions do not interleave (each sees only its own writes until commit)', async () => {
    await t.db.exec('CREATE TABLE counter (n int NOT NULL)');
    await t.db.query('INSERT INTO counter VALUES (0)');
    await Promise.all(
      Array.from({ length: 20 }, () =>
        t.db.tx(async (q) => {
          const [r] = await q.query<{ n: number }>('SELECT n FROM counter FOR UPDATE');
          await new Promise((res) => setTimeout(res, 1));
          await q.query('UPDATE counter SET n = $1', [(r?.n ?? 0) + 1]);
        }),
      ),
    );
    expect(await t.db.query('SELECT n FROM counter')).toEqual([{ n: 20 }]);
  });

  it('refuses to report success when fn swallowed an SQL error (COMMIT rolled back)', async () => {
    await t.db.exec('CREATE TABLE item (id int PRIMARY KEY)');
    const swallowed = t.db.tx(async (q) => {
      await q.query('INSERT INTO item VALUES (1)');
      await q.query('INSERT INTO item VALUES (1)').catch(() => {});
      return 'looks fine';
    });
    await expect(swallowed).rejects.toBeInstanceOf(TransactionAbortedError);
    expect(await t.db.query('SELECT id FROM item')).toEqual([]);
    expect(await t.db.tx((q) => q.query('SELECT 1 AS one'))).toEqual([{ one: 1 }]);
  });

  it('a statement outside a transaction never sees it half-done', async () => {
    await t.db.exec('CREATE TABLE pair (n int)');
    const writer = t.db.tx(async (q) => {
      await q.query('INSERT INTO pair VALUES (1)');
      await new Promise((res) => setTimeout(res, 30));
      await q.query('INSERT INTO pair VALUES (2)');
    });
    await new Promise((res) => setTimeout(res, 5));
    const [seen] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM pair');
    await writer;
    expect([0, 2]).toContain(seen?.n);
  });

  it('a stale transaction handle is refused after commit', async () => {
    let stale: { query: (s: string) => Promise<unknown> } | undefined;
    await t.db.tx(async (q) => {
      stale = q;
    });
    await expect(stale!.query('SELECT 1')).rejects.toThrow(/transaction already finished/);
  });

  it('reports pool use between 0 and 1', async () => {
    expect(t.db.poolInUseRatio()).toBe(0);
    let during = 0;
    await t.db.tx(async (q) => {
      during = t.db.poolInUseRatio();
      await q.query('SELECT 1');
    });
    expect(during).toBeGreaterThan(0);
    expect(during).toBeLessThanOrEqual(1);
  });

  it('maps use after close to db_unavailable', async () => {
    const own = kind === 'pglite' ? await openTestDb('pglite') : undefined;
    const other = own ? own.db : await openDb({ url: t.location, schema: t.db.schema });
    await other.close();
    await expect(other.query('SELECT 1')).rejects.toMatchObject({ code: 'db_unavailable', status: 503 });
    await own?.cleanup();
  });
});

describe('PGlite specifics', () => {
  it('detects a query on the Db from inside its own transaction instead of deadlocking', async () => {
    const t = await openTestDb('pglite');
    try {
      await expect(t.db.tx(() => t.db.query('SELECT 1'))).rejects.toThrow(/would deadlock/);
      expect(await t.db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await t.cleanup();
    }
  });

  it('refuses a second open of the same data dir', async () => {
    const t = await openTestDb('pglite');
    try {
      await expect(openDb({ dataDir: t.location })).rejects.toMatchObject({ code: 'db_unavailable' });
    } finally {
      await t.cleanup();
    }
  });

  it('keeps a committed row when its process is killed with SIGKILL, and takes over the stale lock', async () => {
    const t = await openTestDb('pglite');
    await t.db.close();
    try {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          fileURLToPath(new URL('./fixtures/pglite-writer-child.ts', import.meta.url)),
          t.location,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('committed') && resolve());
        child.once('exit', (code) => reject(new Error(`writer exited ${code} before committing`)));
      });
      child.kill('SIGKILL');
      await once(child, 'exit');
      const again = await openDb({ dataDir: t.location });
      expect(await again.query('SELECT id FROM evidence')).toEqual([{ id: 1 }]);
      await again.close();
    } finally {
      await t.cleanup();
    }
  }, 30_000);

  it('keeps data across close and reopen', async () => {
    const t = await openTestDb('pglite');
    try {
      await t.db.exec('CREATE TABLE kept (v text)');
      await t.db.query(`INSERT INTO kept VALUES ('x')`);
      await t.db.close();
      const again = await openDb({ dataDir: t.location });
      expect(await again.query('SELECT v FROM kept')).toEqual([{ v: 'x' }]);
      await again.close();
    } finally {
      await t.cleanup();
    }
  });
});

describe('Postgres down', () => {
  it('fails with db_unavailable when nothing listens on the port', async () => {
    const port = await closedPort();
    const err = await openDb({ url: `postgres://postgres@127.0.0.1:${port}/postgres`, schema: 'x' }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(CaracalError);
    expect(err).toMatchObject({ code: 'db_unavailable', status: 503 });
    expect(err.detail).toMatch(/ECONNREFUSED|connect/);
  });
});

/** A port that was just free: bind to 0, read the port, close. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}
