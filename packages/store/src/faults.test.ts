import { createFaultProxy, type FaultProxy } from '@caracal/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from './db.js';
import { openDb } from './db.js';
import { dropSchema, testDatabaseUrl, uniqueSchemaName } from './testing.js';

// Postgres behind a TCP fault proxy: a dead network or dropped connections must fail fast as
// db_unavailable (never hang), and the Db must recover by itself when the network returns.
describe('Postgres faults', () => {
  let proxy: FaultProxy;
  let db: Db;
  const schema = uniqueSchemaName('f');
  beforeEach(async () => {
    const target = new URL(testDatabaseUrl());
    proxy = await createFaultProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const url = new URL(testDatabaseUrl());
    url.host = `127.0.0.1:${proxy.port}`;
    db = await openDb({
      url: url.toString(),
      schema,
      poolSize: 3,
      queryTimeoutMs: 500,
      connectTimeoutMs: 500,
    });
    await db.exec('CREATE TABLE IF NOT EXISTS item (id int)');
  });
  afterEach(async () => {
    await db.close();
    await proxy.close();
    await dropSchema(testDatabaseUrl(), schema);
  });

  it('a dead network fails queries and transactions within the timeout, then recovers', async () => {
    proxy.set('block');
    const t0 = Date.now();
    await expect(db.query('SELECT 1')).rejects.toMatchObject({ code: 'db_unavailable', status: 503 });
    await expect(db.tx((q) => q.query('INSERT INTO item VALUES (1)'))).rejects.toMatchObject({
      code: 'db_unavailable',
    });
    expect(Date.now() - t0).toBeLessThan(5_000);
    proxy.set('pass');
    expect(await db.query('SELECT count(*)::int AS n FROM item')).toEqual([{ n: 0 }]);
    expect(db.poolInUseRatio()).toBe(0);
  });

  it('dropped connections fail as db_unavailable, mid-transaction too, and nothing half-commits', async () => {
    const inTx = db.tx(async (q) => {
      await q.query('INSERT INTO item VALUES (1)');
      proxy.set('reset');
      await q.query('INSERT INTO item VALUES (2)');
    });
    await expect(inTx).rejects.toMatchObject({ code: 'db_unavailable' });
    await expect(db.query('SELECT 1')).rejects.toMatchObject({ code: 'db_unavailable' });
    proxy.set('pass');
    expect(await db.query('SELECT count(*)::int AS n FROM item')).toEqual([{ n: 0 }]);
  });
});
