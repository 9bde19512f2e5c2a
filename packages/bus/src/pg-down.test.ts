import { systemClock } from '@caracal/core';
import { migrate, openDb } from '@caracal/store';
import { dropSchema, testDatabaseUrl, uniqueSchemaName } from '@caracal/store/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createConsumer } from './consumer.js';
import { createBus } from './create-bus.js';
import { busMigrations } from './migrations/index.js';
import { silentLogger, TEST_HMAC_KEY, tcpProxy } from './testing.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
});

describe('bus down (postgres stream)', () => {
  it('fails fast with bus_unavailable while Postgres is unreachable and recovers after', async () => {
    const url = new URL(testDatabaseUrl());
    const proxy = await tcpProxy(url.hostname, Number(url.port || 5432));
    closers.push(() => proxy.close());
    const schema = uniqueSchemaName('bus');
    closers.push(() => dropSchema(testDatabaseUrl(), schema));
    const proxied = new URL(testDatabaseUrl());
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    const db = await openDb({ url: proxied.toString(), schema, poolSize: 2 });
    closers.push(() => db.close());
    await migrate(db, busMigrations);
    const bus = createBus({
      db,
      hmacKey: TEST_HMAC_KEY,
      producerId: 'p',
      clock: systemClock,
      logger: silentLogger(),
    });
    await bus.ensureGroup('audit', 'g');
    const seen: number[] = [];
    const consumer = createConsumer({
      bus,
      stream: 'audit',
      group: 'g',
      consumer: 'c',
      logger: silentLogger(),
      blockMs: 100,
      backoffMinMs: 50,
      backoffMaxMs: 400,
      handler: async (e) => void seen.push(e.message.payload as number),
    });
    closers.push(() => consumer.stop());
    consumer.start();
    await bus.publish('audit', { type: 't', payload: 1 });
    await expect.poll(() => seen).toEqual([1]);

    await proxy.down();
    const t0 = Date.now();
    await expect(bus.publish('audit', { type: 't', payload: 2 })).rejects.toMatchObject({
      code: 'bus_unavailable',
      status: 503,
    });
    await expect(bus.ping()).rejects.toMatchObject({ code: 'bus_unavailable' });
    expect(Date.now() - t0).toBeLessThan(3000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(consumer.stats().busErrors).toBeGreaterThan(0);
    expect(consumer.stats().busErrors).toBeLessThan(20);

    await proxy.up();
    await expect
      .poll(
        () =>
          bus.publish('audit', { type: 't', payload: 3 }).then(
            () => true,
            () => false,
          ),
        {
          timeout: 8000,
          interval: 200,
        },
      )
      .toBe(true);
    await expect.poll(() => seen.includes(3), { timeout: 8000 }).toBe(true);
  }, 30_000);
});
