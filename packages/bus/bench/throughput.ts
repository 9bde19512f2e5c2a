/**
 * Publish → consume throughput of the bus, next to a raw ioredis baseline.
 * Each case: one producer with `concurrency` publishes in flight, one consumer reading batches of 100
 * and acking each batch; the clock stops when every message has been consumed and acked.
 */
import { randomBytes } from 'node:crypto';
import { createLogger, systemClock } from '@caracal/core';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDbKind } from '@caracal/store/testing';
import { Redis } from 'ioredis';
import { type Bus, busMigrations, createBus } from '../src/index.js';

const HMAC_KEY = 'bench-hmac-key-0123456789abcdef-0123456789';
const BATCH = 100;
const CONCURRENCY = 16;

function redisUrl(): string {
  return (
    process.env.CARACAL_BENCH_REDIS_URL ?? process.env.CARACAL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
  );
}

function payload(i: number) {
  return {
    i,
    decision: 'allow',
    subject: 'agent-42',
    resource: 'https://api.example.com/v1/things',
    pad: 'x'.repeat(200),
  };
}

/** Run `publishOne` for 0..n-1 with a bounded number in flight. */
async function produce(n: number, publishOne: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await publishOne(next++);
    }),
  );
}

async function timed(n: number, run: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await run();
  return n / ((performance.now() - t0) / 1000);
}

async function rawRedis(n: number): Promise<number> {
  const prefix = `bench:raw:${randomBytes(4).toString('hex')}:`;
  const key = `${prefix}stream`;
  const producer = new Redis(redisUrl(), { protocol: 2 });
  const consumer = new Redis(redisUrl(), { protocol: 2 });
  try {
    await producer.xgroup('CREATE', key, 'g', '0', 'MKSTREAM');
    return await timed(n, async () => {
      const consuming = (async () => {
        let got = 0;
        while (got < n) {
          const reply = (await consumer.xreadgroup(
            'GROUP',
            'g',
            'c',
            'COUNT',
            BATCH,
            'BLOCK',
            1000,
            'STREAMS',
            key,
            '>',
          )) as [string, [string, string[]][]][] | null;
          const entries = reply?.[0]?.[1] ?? [];
          if (entries.length === 0) continue;
          for (const [, fields] of entries) JSON.parse(fields[1]!);
          await consumer.xack(key, 'g', ...entries.map(([id]) => id));
          got += entries.length;
        }
      })();
      await produce(n, (i) => producer.xadd(key, '*', 'm', JSON.stringify(payload(i))));
      await consuming;
    });
  } finally {
    await producer.del(key);
    producer.disconnect();
    consumer.disconnect();
  }
}

async function throughBus(n: number, producer: Bus, consumer: Bus): Promise<number> {
  const stream = 'bench';
  await consumer.ensureGroup(stream, 'g');
  return timed(n, async () => {
    const consuming = (async () => {
      let got = 0;
      while (got < n) {
        const entries = await consumer.read(stream, 'g', 'c', { count: BATCH, blockMs: 1000 });
        if (entries.length === 0) continue;
        await consumer.ack(
          stream,
          'g',
          entries.map((e) => e.id),
        );
        got += entries.length;
      }
    })();
    await produce(n, (i) => producer.publish(stream, { type: 'bench.event', payload: payload(i) }));
    await consuming;
  });
}

async function ourRedis(n: number): Promise<number> {
  const keyPrefix = `bench:bus:${randomBytes(4).toString('hex')}:`;
  const logger = createLogger({ service: 'bench', level: 'silent' });
  const opts = { redisUrl: redisUrl(), keyPrefix, hmacKey: HMAC_KEY, clock: systemClock, logger };
  const producer = createBus({ ...opts, producerId: 'bench-p' });
  const consumer = createBus({ ...opts, producerId: 'bench-c' });
  try {
    return await throughBus(n, producer, consumer);
  } finally {
    await producer.close();
    await consumer.close();
    const r = new Redis(redisUrl(), { protocol: 2 });
    const keys = await r.keys(`${keyPrefix}*`);
    if (keys.length) await r.del(...keys);
    r.disconnect();
  }
}

async function ourPostgres(n: number, kind: TestDbKind): Promise<number> {
  const testDb = await openTestDb(kind);
  const logger = createLogger({ service: 'bench', level: 'silent' });
  try {
    await migrate(testDb.db, busMigrations);
    const opts = { db: testDb.db, hmacKey: HMAC_KEY, clock: systemClock, logger };
    const producer = createBus({ ...opts, producerId: 'bench-p' });
    const consumer = createBus({ ...opts, producerId: 'bench-c' });
    try {
      return await throughBus(n, producer, consumer);
    } finally {
      await producer.close();
      await consumer.close();
    }
  } finally {
    await testDb.cleanup();
  }
}

/** Messages per second, publish → consume → ack, for the raw baseline and each bus implementation. */
export async function benchBusThroughput(opts: {
  messages: number;
}): Promise<{ name: string; opsPerSec: number }[]> {
  const n = opts.messages;
  const cases: [string, () => Promise<number>][] = [
    ['bus: raw ioredis XADD/XREADGROUP (baseline)', () => rawRedis(n)],
    ['bus: caracal redis stream', () => ourRedis(n)],
    ['bus: caracal postgres stream (postgres)', () => ourPostgres(n, 'postgres')],
    ['bus: caracal postgres stream (pglite)', () => ourPostgres(n, 'pglite')],
  ];
  const out: { name: string; opsPerSec: number }[] = [];
  for (const [name, run] of cases) out.push({ name, opsPerSec: Math.round(await run()) });
  return out;
}
