import { CaracalError, Registry } from '@caracal/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConsumer } from './consumer.js';
import { registerStreamMetrics } from './metrics.js';
import { BUS_KINDS, type BusFixture, openBusFixture, silentLogger } from './testing.js';
import type { Bus, BusEntry } from './types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

let streamNo = 0;
const freshStream = () => `s${++streamNo}-${process.pid}`;

async function publishN(bus: Bus, stream: string, n: number): Promise<string[]> {
  const eventIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const eventId = crypto.randomUUID();
    await bus.publish(stream, { type: 'test.event', payload: { i }, eventId });
    eventIds.push(eventId);
  }
  return eventIds;
}

/** An idempotent effect store: applies each event id once, counts attempts. */
function effects() {
  const applied = new Map<string, number>();
  const attempts = new Map<string, number>();
  return {
    applied,
    attempts,
    apply(e: BusEntry) {
      attempts.set(e.message.eventId, (attempts.get(e.message.eventId) ?? 0) + 1);
      if (!applied.has(e.message.eventId))
        applied.set(e.message.eventId, (e.message.payload as { i: number }).i);
    },
  };
}

describe.each(BUS_KINDS)('bus contract: %s', (kind) => {
  let fx: BusFixture;
  let bus: Bus;

  beforeAll(async () => {
    fx = await openBusFixture(kind);
    bus = fx.bus();
  });
  afterAll(async () => {
    await fx?.cleanup();
  });

  it('publishes signed, stamped entries and delivers them once per group in order', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const eventIds = await publishN(bus, stream, 5);
    expect(await bus.length(stream)).toBe(5);
    const got = await bus.read(stream, 'g', 'c1', { count: 10 });
    expect(got.map((e) => e.message.eventId)).toEqual(eventIds);
    expect(got.map((e) => e.message.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(got.every((e) => e.deliveries === 1 && e.message.producerId === bus.producerId)).toBe(true);
    expect(await bus.read(stream, 'g', 'c2', { count: 10 })).toEqual([]);
    expect(
      await bus.ack(
        stream,
        'g',
        got.map((e) => e.id),
      ),
    ).toBe(5);
    expect(await bus.pendingCount(stream, 'g')).toBe(0);
    // A second group sees everything again.
    await bus.ensureGroup(stream, 'other');
    expect((await bus.read(stream, 'other', 'c1', { count: 10 })).length).toBe(5);
  });

  it('counts lag (undelivered + pending) and pending correctly', async () => {
    const stream = freshStream();
    await publishN(bus, stream, 10);
    await bus.ensureGroup(stream, 'g', '0');
    await bus.ensureGroup(stream, 'late', '$');
    expect(await bus.lag(stream, 'g')).toBe(10);
    expect(await bus.pendingCount(stream, 'g')).toBe(0);
    expect(await bus.lag(stream, 'late')).toBe(0);
    const got = await bus.read(stream, 'g', 'c1', { count: 4 });
    expect(got.length).toBe(4);
    expect(await bus.lag(stream, 'g')).toBe(10);
    expect(await bus.pendingCount(stream, 'g')).toBe(4);
    await bus.ack(stream, 'g', [got[0]!.id, got[1]!.id]);
    expect(await bus.lag(stream, 'g')).toBe(8);
    expect(await bus.pendingCount(stream, 'g')).toBe(2);
    await publishN(bus, stream, 1);
    expect(await bus.lag(stream, 'late')).toBe(1);
    expect(await bus.lag(stream, 'g')).toBe(9);
    expect(await bus.length(stream)).toBe(11);
  });

  it('refuses reads on a group that does not exist', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    await expect(bus.read(stream, 'nope', 'c1')).rejects.toMatchObject({ code: 'bus_no_group' });
  });

  it('a blocked read wakes up when an entry is published', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const t0 = Date.now();
    const reading = bus.read(stream, 'g', 'c1', { blockMs: 3000 });
    await sleep(100);
    await bus.publish(stream, { type: 't', payload: {} });
    const got = await reading;
    expect(got.length).toBe(1);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('a consumer killed mid-batch leaves pending entries that another consumer claims after the idle limit', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const eventIds = await publishN(bus, stream, 12);
    // Consumer A takes a batch and dies (a second bus: its own connection, then closed).
    const a = fx.bus();
    const taken = await a.read(stream, 'g', 'a', { count: 5 });
    expect(taken.length).toBe(5);
    await a.close();
    expect(await bus.pendingCount(stream, 'g')).toBe(5);
    // Too early to claim.
    expect(await bus.claimIdle(stream, 'g', 'b', 10_000)).toEqual([]);

    // Consumer C hangs on its first entry, then is stopped without acking.
    let hung = 0;
    const c = createConsumer({
      bus,
      stream,
      group: 'g',
      consumer: 'c',
      logger: silentLogger(),
      claimIdleMs: 60_000,
      batchSize: 3,
      blockMs: 50,
      handler: () => {
        hung++;
        return new Promise(() => {});
      },
    });
    c.start();
    await until(() => hung === 1);
    await c.stop({ timeoutMs: 50 });
    expect(await bus.pendingCount(stream, 'g')).toBe(8);

    const fx2 = effects();
    const deliveries: number[] = [];
    const b = createConsumer({
      bus,
      stream,
      group: 'g',
      consumer: 'b',
      logger: silentLogger(),
      claimIdleMs: 200,
      blockMs: 50,
      handler: async (e) => {
        deliveries.push(e.deliveries);
        fx2.apply(e);
      },
    });
    b.start();
    await until(() => fx2.applied.size === 12);
    await b.stop();
    // A's 5 and C's 3 were claimed (second delivery); the 4 nobody had read arrive fresh.
    expect(deliveries.sort()).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
    expect([...fx2.applied.keys()].sort()).toEqual([...eventIds].sort());
    expect([...fx2.attempts.values()].every((n) => n === 1)).toBe(true);
    expect(await bus.pendingCount(stream, 'g')).toBe(0);
    expect(await bus.lag(stream, 'g')).toBe(0);
  });

  it('claims count deliveries', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    await publishN(bus, stream, 1);
    await bus.read(stream, 'g', 'a');
    await sleep(30);
    const first = await bus.claimIdle(stream, 'g', 'b', 10);
    expect(first.map((e) => e.deliveries)).toEqual([2]);
    await sleep(30);
    const second = await bus.claimIdle(stream, 'g', 'a', 10);
    expect(second.map((e) => e.deliveries)).toEqual([3]);
    expect(await bus.claimIdle(stream, 'g', 'c', 10_000)).toEqual([]);
  });

  it('a poison message reaches the DLQ after N deliveries with its error, and replays from it', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const eventIds = await publishN(bus, stream, 6);
    const poison = eventIds[2]!;
    let poisoned = true;
    const fx1 = effects();
    const consumer = createConsumer({
      bus,
      stream,
      group: 'g',
      consumer: 'c',
      logger: silentLogger(),
      claimIdleMs: 60,
      maxDeliveries: 3,
      blockMs: 30,
      handler: async (e) => {
        if (poisoned && e.message.eventId === poison) throw new Error(`poison pill ${e.deliveries}`);
        fx1.apply(e);
      },
    });
    consumer.start();
    await until(async () => (await bus.dlqList(stream)).length === 1);
    await until(async () => (await bus.pendingCount(stream, 'g')) === 0);
    expect(fx1.applied.size).toBe(5);
    expect(fx1.applied.has(poison)).toBe(false);
    const [dead] = await bus.dlqList(stream);
    expect(dead).toMatchObject({ reason: 'max_deliveries', group: 'g', deliveries: 3, stream });
    expect(dead!.error).toContain('poison pill 3');
    expect(dead!.message?.eventId).toBe(poison);
    expect(consumer.stats().dead).toBe(1);

    poisoned = false;
    const [newId] = await bus.dlqReplay(stream);
    expect(newId).toBeDefined();
    await until(() => fx1.applied.has(poison));
    await consumer.stop();
    expect(await bus.dlqList(stream)).toEqual([]);
    expect(await bus.pendingCount(stream, 'g')).toBe(0);
    expect(await bus.length(stream)).toBe(7);
  });

  it('an entry that is never acked (crashing consumer) goes to the DLQ when claimed past maxDeliveries', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const [eventId] = await publishN(bus, stream, 1);
    expect((await bus.read(stream, 'g', 'a')).length).toBe(1);
    for (let i = 2; i <= 3; i++) {
      await sleep(15);
      expect(
        (await bus.claimIdle(stream, 'g', 'a', 10, { maxDeliveries: 3 })).map((e) => e.deliveries),
      ).toEqual([i]);
    }
    await sleep(15);
    expect(await bus.claimIdle(stream, 'g', 'a', 10, { maxDeliveries: 3 })).toEqual([]);
    const [dead] = await bus.dlqList(stream);
    expect(dead).toMatchObject({ reason: 'max_deliveries', deliveries: 4 });
    expect(dead!.message?.eventId).toBe(eventId);
    expect(await bus.pendingCount(stream, 'g')).toBe(0);
  });

  it('with an idempotent handler nothing is lost or applied twice across redeliveries', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const total = 150;
    const eventIds = await publishN(bus, stream, total);
    const fx1 = effects();
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    // The effect is applied, then the "process" fails before acking 20% of the time.
    const handler = async (e: BusEntry) => {
      fx1.apply(e);
      if (random() < 0.2) throw new Error('crashed after the effect');
    };
    const consumers = ['x', 'y'].map((name) =>
      createConsumer({
        bus: fx.bus(),
        stream,
        group: 'g',
        consumer: name,
        logger: silentLogger(),
        claimIdleMs: 80,
        blockMs: 30,
        handler,
      }),
    );
    for (const c of consumers) c.start();
    await until(
      async () => fx1.applied.size === total && (await bus.pendingCount(stream, 'g')) === 0,
      20_000,
    );
    for (const c of consumers) await c.stop();
    expect([...fx1.applied.keys()].sort()).toEqual([...eventIds].sort());
    const attempts = [...fx1.attempts.values()].reduce((a, b) => a + b, 0);
    expect(attempts).toBeGreaterThan(total); // there were redeliveries
    expect(await bus.dlqList(stream)).toEqual([]);
    expect(await bus.lag(stream, 'g')).toBe(0);
  });

  it('forged and unsigned messages go to the DLQ as bad_signature and never reach a handler', async () => {
    const stream = freshStream();
    const otherStream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const [good] = await publishN(bus, stream, 1);
    // Signed with another key.
    const forger = fx.bus({ hmacKey: 'attacker-key-attacker-key-attacker-key!!' });
    await forger.publish(stream, { type: 'revocation.created', payload: { allow: 'everything' } });
    // Unsigned, and a valid message copied from another stream.
    const sealed = bus.seal(otherStream, { type: 'audit.decision', payload: { decision: 'allow' } });
    await fx.forge(stream, sealed.body);
    await fx.forge(stream, sealed.body, sealed.sig);
    // Garbage.
    await fx.forge(stream, 'not json', 'deadbeef');

    const got = await bus.read(stream, 'g', 'c', { count: 10 });
    expect(got.map((e) => e.message.eventId)).toEqual([good]);
    const dlq = await bus.dlqList(stream);
    expect(dlq.length).toBe(4);
    expect(dlq.every((d) => d.reason === 'bad_signature' && d.message === undefined)).toBe(true);
    expect(dlq.map((d) => d.error)).toContain('unsigned message');
    expect(await bus.pendingCount(stream, 'g')).toBe(1);
    // Replaying a forged entry does not launder it.
    expect(await bus.dlqReplay(stream)).toEqual([]);
    expect(
      (
        await bus.dlqReplay(
          stream,
          dlq.map((d) => d.id),
        )
      ).length,
    ).toBe(4);
    expect(await bus.read(stream, 'g', 'c', { count: 10 })).toEqual([]);
    expect((await bus.dlqList(stream)).length).toBe(4);
  });

  it('keeps event id and sequence of messages sealed earlier (spool drain)', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const sealed = bus.seal(stream, { type: 't', payload: { n: 1 }, eventId: 'e-1' });
    await bus.publish(stream, { type: 't', payload: { n: 2 } });
    await bus.publishSealed(JSON.parse(JSON.stringify(sealed)));
    const got = await bus.read(stream, 'g', 'c', { count: 10 });
    expect(got.map((e) => [e.message.seq, e.message.eventId === 'e-1'])).toEqual([
      [2, false],
      [1, true],
    ]);
  });

  it('keeps entries of a slow handler alive, so they are not claimed from it', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const [eventId] = await publishN(bus, stream, 1);
    const calls: string[] = [];
    const slow = createConsumer({
      bus,
      stream,
      group: 'g',
      consumer: 'slow',
      logger: silentLogger(),
      claimIdleMs: 150,
      blockMs: 30,
      handler: async (e) => {
        calls.push(`slow:${e.message.eventId}`);
        await sleep(600);
      },
    });
    const other = createConsumer({
      bus: fx.bus(),
      stream,
      group: 'g',
      consumer: 'other',
      logger: silentLogger(),
      claimIdleMs: 150,
      blockMs: 30,
      handler: async (e) => void calls.push(`other:${e.message.eventId}`),
    });
    slow.start();
    await until(() => calls.length === 1);
    other.start();
    await until(async () => (await bus.pendingCount(stream, 'g')) === 0);
    await Promise.all([slow.stop(), other.stop()]);
    expect(calls).toEqual([`slow:${eventId}`]);
  });

  it('does not burn deliveries while a dependency of the handler is down (503)', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const [eventId] = await publishN(bus, stream, 1);
    let attempts = 0;
    const c = createConsumer({
      bus,
      stream,
      group: 'g',
      consumer: 'c',
      logger: silentLogger(),
      claimIdleMs: 60,
      maxDeliveries: 2,
      blockMs: 30,
      backoffMinMs: 20,
      backoffMaxMs: 40,
      handler: async () => {
        if (++attempts < 8) throw new CaracalError('db_unavailable', 503, 'Database unavailable');
      },
    });
    c.start();
    await until(async () => attempts >= 8 && (await bus.pendingCount(stream, 'g')) === 0);
    await c.stop();
    expect(await bus.dlqList(stream)).toEqual([]);
    expect(c.stats()).toMatchObject({ handled: 1, dead: 0 });
    expect(eventId).toBeDefined();
  });

  it('handles batches with a batch handler and isolates a poison entry one by one', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    const eventIds = await publishN(bus, stream, 20);
    const poison = eventIds[7]!;
    const batches: number[] = [];
    const fx1 = effects();
    const c = createConsumer({
      bus,
      stream,
      group: 'g',
      consumer: 'c',
      logger: silentLogger(),
      claimIdleMs: 50,
      maxDeliveries: 2,
      batchSize: 10,
      blockMs: 30,
      batchHandler: async (entries) => {
        if (entries.some((e) => e.message.eventId === poison)) throw new Error('poison in batch');
        batches.push(entries.length);
        for (const e of entries) fx1.apply(e);
      },
      handler: async (e) => {
        if (e.message.eventId === poison) throw new Error('poison');
        fx1.apply(e);
      },
    });
    c.start();
    await until(async () => (await bus.dlqSize(stream)) === 1 && (await bus.pendingCount(stream, 'g')) === 0);
    await c.stop();
    expect(fx1.applied.size).toBe(19);
    expect(batches.length).toBeGreaterThan(0);
    expect((await bus.dlqList(stream))[0]!.message?.eventId).toBe(poison);
  });

  it('exposes lag, pending and DLQ size as gauges', async () => {
    const stream = freshStream();
    await bus.ensureGroup(stream, 'g');
    await publishN(bus, stream, 3);
    await bus.read(stream, 'g', 'c', { count: 1 });
    const registry = new Registry();
    registerStreamMetrics({ registry, bus, stream, group: 'g', prefix: 'caracal_audit' });
    const text = await registry.metrics();
    expect(text).toContain('caracal_audit_consumer_lag 3');
    expect(text).toContain('caracal_audit_consumer_pending 1');
    expect(text).toContain('caracal_audit_dlq_size 0');
  });

  it('answers ping', async () => {
    expect(await bus.ping()).toBeGreaterThanOrEqual(0);
  });
});
