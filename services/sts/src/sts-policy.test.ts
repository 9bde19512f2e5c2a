import { createFaultProxy, createKeyring, type FaultProxy } from '@caracal/core';
import { createApplication, createResource, putDataDocument } from '@caracal/state';
import { type Db, migrate, openDb } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SeededZone, seedZone, startTestSts, stsTestMigrations, type TestSts } from './testing.js';

const keyring = createKeyring('m'.repeat(40));
let t: TestDb;
let pgProxy: FaultProxy;
let viaProxy: Db;
let sts: TestSts;
let zone: SeededZone;
let outsider: { id: string; secret: string };

const ctx = () => ({ keyring, now: Date.now(), actor: 'test' });
async function exchange(over: Record<string, string> = {}) {
  const res = await fetch(`${sts.url}/oauth/2/token`, {
    method: 'POST',
    body: new URLSearchParams({ ...zone.form, ...over }),
  });
  return { status: res.status, body: (await res.json()) as { error?: string; reasons?: string[] } };
}
async function metric(name: string) {
  const text = await (await fetch(`${sts.url}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1] ?? Number.NaN);
}

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, stsTestMigrations);
  zone = await seedZone(t.db, keyring, { scopes: ['read', 'write'] });
  await createResource(t.db, ctx(), zone.zoneId, {
    identifier: 'resource://billing/invoices',
    scopes: ['read'],
    upstream_url: 'https://billing.example.com',
  });
  await createResource(t.db, ctx(), zone.zoneId, {
    identifier: 'resource://crm/payroll',
    scopes: ['read', 'write'],
    upstream_url: 'https://crm.example.com/payroll',
  });
  const other = await createApplication(t.db, ctx(), zone.zoneId, { name: 'not-in-app-ids' });
  outsider = { id: other.application.id, secret: other.client_secret };
  await putDataDocument(t.db, ctx(), zone.zoneId, {
    document: {
      app_ids: { [zone.appId]: true },
      grants: { [zone.appId]: [{ id: 'g-crm', resource: 'resource://crm/*', scopes: ['read'] }] },
      restrict: [{ id: 'r-payroll', resource: 'resource://crm/payroll', scopes: ['read'], reason: 'audit' }],
    },
  });
  // The STS reads Postgres through a fault proxy so the test can cut it off.
  pgProxy = await createFaultProxy({ host: '127.0.0.1', port: 5432 });
  viaProxy = await openDb({
    url: pgProxy.url('postgres', '/postgres').replace('://', '://postgres@'),
    schema: t.db.schema,
    queryTimeoutMs: 1000,
  });
  // Rate limits on Redis, so minting does not depend on Postgres (with rate limits in Postgres it fails closed).
  sts = await startTestSts(viaProxy, keyring, {
    flags: {
      sts: { zonePollMs: 200 },
      redisUrl: 'redis://127.0.0.1:6379',
      redisKeyPrefix: `sts-policy-${t.db.schema}:`,
    },
  });
});

afterAll(async () => {
  await sts?.stop();
  await viaProxy?.close();
  await pgProxy?.close();
  await t?.cleanup();
});

describe('STS decisions through the zone policy, end to end', () => {
  it('answers each deny reason of the contract reachable from a token request', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ application_id: outsider.id, client_secret: outsider.secret }, 'unknown_application'],
      [{ resource: 'resource://billing/invoices' }, 'no_matching_grant'],
      [{ scope: 'write' }, 'scope_not_granted'],
      [{ resource: 'resource://crm/payroll' }, 'restricted'],
    ];
    for (const [over, reason] of cases) {
      const res = await exchange(over);
      expect([res.status, res.body.error, res.body.reasons]).toEqual([403, 'access_denied', [reason]]);
    }
    expect((await exchange()).status).toBe(200);
  });

  it('keeps deciding with the last good bundle while Postgres is away, and reports the growing policy age', async () => {
    expect(await metric('caracal_sts_opa_max_policy_age_seconds')).toBeLessThan(2);
    pgProxy.set('reset');
    await new Promise((r) => setTimeout(r, 2500));
    expect(await metric('caracal_sts_opa_max_policy_age_seconds')).toBeGreaterThanOrEqual(2);
    // Decisions come from memory and evidence goes to the spool while the database is away.
    const res = await exchange();
    expect(res.status).toBe(200);
    expect((await exchange({ scope: 'write' })).body.reasons).toEqual(['scope_not_granted']);
    // An STS that has never read the zone state (or keeps its rate limits in that database) fails closed with 503.
    const embedded = await startTestSts(viaProxy, keyring);
    const refused = await fetch(`${embedded.url}/oauth/2/token`, {
      method: 'POST',
      body: new URLSearchParams(zone.form),
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toBe('temporarily_unavailable');
    await embedded.stop();
    pgProxy.set('pass');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await metric('caracal_sts_opa_max_policy_age_seconds')) >= 1) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await metric('caracal_sts_opa_max_policy_age_seconds')).toBeLessThan(1);
  }, 30_000);
});
