import type { Bus } from '@caracal/bus';
import { createKeyring } from '@caracal/core';
import { createApplication, createResource, createZone } from '@caracal/state';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  stsTestMigrations as migrations,
  type SeededZone,
  seedZone,
  startTestSts,
  type TestSts,
} from './testing.js';

const keyring = createKeyring('m'.repeat(40));

let t: TestDb;
let sts: TestSts;
let url: string;
let zone: SeededZone;
let secret: string;
let appId: string;
let bus: Bus;
const ctx = () => ({ keyring, now: Date.now(), actor: 'test' });

async function token(fields: Record<string, string | string[]>) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
  const res = await fetch(`${url}/oauth/2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const exchangeFor = (over: Record<string, string | string[]> = {}) => token({ ...zone.form, ...over });
const activate = (source: string) => zone.activate(source);

async function until(fn: () => Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, migrations);
  zone = await seedZone(t.db, keyring, {
    scopes: ['read', 'write'],
    policy:
      'package caracal.authz\n\nimport rego.v1\n\ndeny contains "no_writes_in_test" if "write" in input.scopes\n',
  });
  appId = zone.appId;
  secret = zone.secret;
  await createZone(t.db, ctx(), { id: 'z2', name: 'Zone two' });
  await createResource(t.db, ctx(), 'z2', {
    identifier: 'resource://hr/payroll',
    scopes: ['read'],
    upstream_url: 'https://hr.example.com/api',
  });
  sts = await startTestSts(t.db, keyring, { flags: { sts: { zonePollMs: 200 } } });
  url = sts.url;
  bus = sts.bus;
});

afterAll(async () => {
  await sts?.stop();
  await t?.cleanup();
});

describe('STS token exchange on real Postgres', () => {
  it('mints a gateway mandate that jose verifies against the JWKS', async () => {
    const res = await exchangeFor();
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_type: 'N_A',
      scope: 'read',
    });
    const jwks = (await (await fetch(`${url}/.well-known/jwks.json?zone_id=z1`)).json()) as Parameters<
      typeof createLocalJWKSet
    >[0];
    const { payload, protectedHeader } = await jwtVerify(
      res.body.access_token as string,
      createLocalJWKSet(jwks),
    );
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({
      use: 'gateway',
      zone_id: 'z1',
      client_id: appId,
      resources: ['resource://crm/contacts'],
      scope: 'read',
    });
    expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(300);
  });

  it('answers every refusal with an OAuth error and never a token', async () => {
    const cases: [Record<string, string>, number, string][] = [
      [{ client_secret: 'wrong' }, 401, 'invalid_client'],
      [{ application_id: 'nope' }, 401, 'invalid_client'],
      [{ zone_id: 'z9' }, 401, 'invalid_client'],
      [{ resource: 'resource://hr/payroll' }, 400, 'invalid_target'], // exists, but in another zone
      [{ scope: 'admin' }, 400, 'invalid_scope'],
      [{ scope: 'write' }, 403, 'access_denied'], // the adopter's deny rule
    ];
    for (const [over, status, error] of cases) {
      const res = await exchangeFor(over);
      expect([res.status, res.body.error]).toEqual([status, error]);
      expect(res.body.access_token).toBeUndefined();
      expect(JSON.stringify(res.body)).not.toContain(secret);
    }
    const denied = await exchangeFor({ scope: 'write' });
    expect(denied.body.reasons).toEqual(['no_writes_in_test']);
  });

  it('refuses a broken activation and keeps serving the active policy', async () => {
    // The control plane compiles before activating; the STS's own keep-last-good is unit-tested in bundles.test.ts.
    await expect(activate('package caracal.authz\n\nallow if {')).rejects.toMatchObject({
      code: 'policy_compile_failed',
    });
    const status = await (await fetch(`${url}/internal/policy/status/z1`)).json();
    expect(status).toMatchObject({ loaded: true });
    expect((await exchangeFor()).status).toBe(200);
  });

  it('picks up a new activation within the poll interval', async () => {
    await activate('package caracal.authz\n\nimport rego.v1\n\ndeny contains "everything_frozen" if true\n');
    await until(async () => (await exchangeFor()).body.error === 'access_denied');
    expect((await exchangeFor()).body.reasons).toEqual(['everything_frozen']);
    await activate(
      'package caracal.authz\n\nimport rego.v1\n\ndeny contains "no_writes_in_test" if "write" in input.scopes\n',
    );
    await until(async () => (await exchangeFor()).status === 200);
  });

  it('denies everything in a zone without an activated policy', async () => {
    const app2 = await createApplication(t.db, ctx(), 'z2', { name: 'agent2' });
    await until(async () => {
      const res = await exchangeFor({
        zone_id: 'z2',
        application_id: app2.application.id,
        client_secret: app2.client_secret,
        resource: 'resource://hr/payroll',
      });
      return res.status === 503 && res.body.error === 'temporarily_unavailable';
    });
  });

  it('records every decision, allowed or not, on the audit stream before answering', async () => {
    const before = await bus.length('caracal.audit');
    await exchangeFor();
    await exchangeFor({ client_secret: 'wrong' });
    await exchangeFor({ scope: 'write' });
    expect(await bus.length('caracal.audit')).toBe(before + 3);
  });

  it('reports readiness per dependency and the policy metrics', async () => {
    expect((await exchangeFor()).status).toBe(200);
    const ready = (await (await fetch(`${url}/ready`)).json()) as {
      ready: boolean;
      checks: Record<string, unknown>;
    };
    expect(ready.ready).toBe(true);
    expect(Object.keys(ready.checks).sort()).toEqual([
      'bus',
      'db',
      'policy',
      'providers',
      'schema',
      'spool',
      'zones',
    ]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/caracal_sts_opa_max_policy_age_seconds \d/);
    expect(metrics).toMatch(/caracal_sts_decisions_total\{decision="allow"\} \d+/);
  });
});
