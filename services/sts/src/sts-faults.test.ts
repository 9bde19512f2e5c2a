import { createBus } from '@caracal/bus';
import { createFaultProxy, createKeyring, createLogger, type FaultProxy, systemClock } from '@caracal/core';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_STREAM } from './index.js';
import { stsTestMigrations as migrations, seedZone, startTestSts, type TestSts } from './testing.js';

const keyring = createKeyring('m'.repeat(40));
const prefix = `sts-faults-${process.pid}-${Date.now()}:`;

let t: TestDb;
let sts: TestSts;
let url: string;
let redisProxy: FaultProxy;
let form: URLSearchParams;
let bus: ReturnType<typeof createBus>;

const mint = async () => {
  const res = await fetch(`${url}/oauth/2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  return res.status;
};
const metric = async (name: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1] ?? Number.NaN);
};

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, migrations);
  form = new URLSearchParams((await seedZone(t.db, keyring)).form);
  redisProxy = await createFaultProxy({ host: '127.0.0.1', port: 6379 });
  bus = createBus({
    redisUrl: redisProxy.url('redis'),
    keyPrefix: prefix,
    hmacKey: 'h'.repeat(40),
    producerId: 'sts-faults',
    clock: systemClock,
    logger: createLogger({ level: 'silent' }),
    commandTimeoutMs: 300,
  });
  sts = await startTestSts(t.db, keyring, { bus });
  url = sts.url;
});

afterAll(async () => {
  await sts?.stop();
  await bus?.close();
  await redisProxy?.close();
  await t?.cleanup();
});

describe('STS with the bus cut off', () => {
  it('spools decisions while Redis is unreachable and drains them, in order, once it returns', async () => {
    expect(await mint()).toBe(200);
    const baseline = await bus.length(AUDIT_STREAM);
    expect(baseline).toBe(1);

    redisProxy.set('reset');
    for (let i = 0; i < 5; i++) expect(await mint()).toBe(200);
    expect(await metric('caracal_sts_audit_replay_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
    const ready = (await (await fetch(`${url}/ready`)).json()) as {
      checks: Record<string, { ok: boolean; entries?: number }>;
    };
    expect(ready.checks.spool?.entries).toBe(5);
    expect(ready.checks.bus?.ok).toBe(false);

    redisProxy.set('pass');
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (await bus.length(AUDIT_STREAM).catch(() => 0)) < 6) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await bus.length(AUDIT_STREAM)).toBe(6);
    await bus.ensureGroup(AUDIT_STREAM, 'check', '0');
    const entries = await bus.read(AUDIT_STREAM, 'check', 'c1', { count: 100 });
    const seqs = entries.map((e) => e.message.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(entries.map((e) => e.message.eventId)).size).toBe(6);
    expect(await metric('caracal_sts_audit_dropped_total')).toBe(0);
  }, 40_000);
});
