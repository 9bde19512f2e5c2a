import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@caracal/core';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createConsumer } from './consumer.js';
import { createBus } from './create-bus.js';
import { publishOrSpool } from './publish-or-spool.js';
import { createReplaySpool } from './spool.js';
import { silentLogger, type TcpProxy, TEST_HMAC_KEY, tcpProxy, testRedisUrl } from './testing.js';
import type { Bus, SealedMessage } from './types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function bus(redisUrl: string, keyPrefix = `test:bus-down:${Date.now()}:${Math.random()}:`): Bus {
  const b = createBus({
    redisUrl,
    keyPrefix,
    hmacKey: TEST_HMAC_KEY,
    producerId: 't',
    clock: systemClock,
    logger: silentLogger(),
  });
  closers.push(async () => {
    await b.close();
    const raw = new Redis(testRedisUrl(), { protocol: 2 });
    const keys = await raw.keys(`${keyPrefix}*`);
    if (keys.length) await raw.del(...keys);
    raw.disconnect();
  });
  return b;
}

async function redisProxy(): Promise<TcpProxy> {
  const target = new URL(testRedisUrl());
  const proxy = await tcpProxy(target.hostname, Number(target.port || 6379));
  closers.push(() => proxy.close());
  return proxy;
}

describe('bus down (redis)', () => {
  it('Redis at a closed port gives a clear bus_unavailable error quickly', async () => {
    const b = bus('redis://127.0.0.1:1');
    for (const op of [
      () => b.publish('audit', { type: 't', payload: {} }),
      () => b.ping(),
      () => b.read('audit', 'g', 'c', { blockMs: 1000 }),
    ]) {
      const t0 = Date.now();
      await expect(op()).rejects.toMatchObject({ code: 'bus_unavailable', status: 503 });
      expect(Date.now() - t0).toBeLessThan(1500);
    }
  });

  it('fails fast during an outage, recovers after it, and the consumer backs off instead of spinning', async () => {
    const proxy = await redisProxy();
    const b = bus(`redis://127.0.0.1:${proxy.port}`);
    await b.ensureGroup('audit', 'g');
    await b.publish('audit', { type: 't', payload: { n: 1 } });
    const seen: number[] = [];
    const consumer = createConsumer({
      bus: b,
      stream: 'audit',
      group: 'g',
      consumer: 'c',
      logger: silentLogger(),
      blockMs: 200,
      backoffMinMs: 50,
      backoffMaxMs: 400,
      handler: async (e) => void seen.push((e.message.payload as { n: number }).n),
    });
    closers.push(() => consumer.stop());
    consumer.start();
    await expect.poll(() => seen.length).toBe(1);

    await proxy.down();
    const t0 = Date.now();
    await expect(b.publish('audit', { type: 't', payload: { n: 2 } })).rejects.toMatchObject({
      code: 'bus_unavailable',
    });
    expect(Date.now() - t0).toBeLessThan(1500);
    await sleep(1500);
    // 1.5 s of outage with backoff 50 → 400 ms: a handful of attempts, not thousands.
    expect(consumer.stats().busErrors).toBeGreaterThan(0);
    expect(consumer.stats().busErrors).toBeLessThan(20);

    await proxy.up();
    await expect
      .poll(
        async () =>
          b.publish('audit', { type: 't', payload: { n: 3 } }).then(
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

  it('spools events while the bus is down and drains them, same event ids, once it is back', async () => {
    const proxy = await redisProxy();
    const b = bus(`redis://127.0.0.1:${proxy.port}`);
    const dir = mkdtempSync(join(tmpdir(), 'caracal-spool-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const spool = await createReplaySpool<SealedMessage>({ dir, clock: systemClock, logger: silentLogger() });
    closers.push(() => spool.close());
    await b.ensureGroup('audit', 'g');
    expect(await publishOrSpool(b, spool, 'audit', { type: 't', payload: 1, eventId: 'e1' })).toBe(
      'published',
    );
    await proxy.down();
    expect(await publishOrSpool(b, spool, 'audit', { type: 't', payload: 2, eventId: 'e2' })).toBe('spooled');
    await proxy.up();
    // Order holds: with e2 still spooled, e3 queues behind it even though the bus is back.
    await expect
      .poll(
        () =>
          b.ping().then(
            () => true,
            () => false,
          ),
        { timeout: 8000, interval: 100 },
      )
      .toBe(true);
    expect(await publishOrSpool(b, spool, 'audit', { type: 't', payload: 3, eventId: 'e3' })).toBe('spooled');
    expect(spool.status().entries).toBe(2);
    const drainer = spool.startDrainer({ intervalMs: 20, publish: (m) => b.publishSealed(m).then(() => {}) });
    closers.push(() => drainer.stop());
    await expect.poll(() => spool.status().entries, { timeout: 8000 }).toBe(0);
    const got = await b.read('audit', 'g', 'c', { count: 10 });
    expect(got.map((e) => [e.message.eventId, e.message.seq])).toEqual([
      ['e1', 1],
      ['e2', 2],
      ['e3', 3],
    ]);
  }, 30_000);
});
