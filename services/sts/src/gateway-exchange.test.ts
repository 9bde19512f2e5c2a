import { randomBytes } from 'node:crypto';
import { createKeyring } from '@caracal/core';
import { createResource } from '@caracal/state';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GATEWAY_EXCHANGE_PATH,
  gatewayServiceKey,
  matchOperationPath,
  signExchange,
} from './gateway-exchange.js';
import { type SeededZone, seedZone, startTestSts, stsTestMigrations, type TestSts } from './testing.js';

describe('operation path patterns', () => {
  it.each([
    ['/items/:id', '/items/42', true],
    ['/items/:id', '/items/42/', true],
    ['/items/:id', '/items', false],
    ['/items/:id', '/items/42/x', false],
    ['/items', '/items', true],
    ['/files/*', '/files', true],
    ['/files/*', '/files/a/b/c', true],
    ['/files/*', '/filesx/a', false],
    ['/', '/', true],
    ['/', '/x', false],
    ['/a/:b/c', '/a/x/c', true],
    ['/a/:b/c', '/a//c', false],
    ['/files/*', '/files/../admin', false],
    ['/files/*', '/files/%2e%2e/admin', false],
  ])('%s vs %s → %s', (pattern, path, expected) => {
    expect(matchOperationPath(pattern, path)).toBe(expected);
  });

  it('a path holding a dot segment never matches any pattern', () => {
    const seg = fc.stringMatching(/^[a-z0-9]{1,6}$/);
    fc.assert(
      fc.property(
        fc.array(seg, { maxLength: 4 }),
        fc.constantFrom('.', '..', '%2e%2e', '%2E.'),
        fc.array(seg, { maxLength: 4 }),
        fc.array(fc.oneof(seg, fc.constant(':p')), { maxLength: 4 }),
        fc.boolean(),
        (pre, dot, post, pat, rest) => {
          const path = `/${[...pre, dot, ...post].join('/')}`;
          const pattern = `/${pat.join('/')}${rest ? (pat.length ? '/*' : '*') : ''}`;
          expect(matchOperationPath(pattern, path)).toBe(false);
        },
      ),
    );
  });
});

const keyring = createKeyring('x'.repeat(40));
let t: TestDb;
let sts: TestSts;
let zone: SeededZone;

async function mint(fields: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${sts.url}/oauth/2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...zone.form, ...fields }),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

async function exchange(
  body: unknown,
  sign: { key?: string; t?: number; n?: string; tamper?: boolean; header?: string | null } = {},
) {
  const raw = JSON.stringify(body);
  const ts = String(sign.t ?? Math.floor(Date.now() / 1000));
  const n = sign.n ?? randomBytes(16).toString('base64url');
  const s = signExchange(sign.key ?? gatewayServiceKey(keyring), ts, n, raw);
  const header = sign.header === undefined ? `t=${ts},n=${n},s=${s}` : sign.header;
  const res = await fetch(`${sts.url}${GATEWAY_EXCHANGE_PATH}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(header === null ? {} : { 'x-caracal-signature': header }),
    },
    body: sign.tamper ? raw.replace('GET', 'PUT') : raw,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, stsTestMigrations);
  zone = await seedZone(t.db, keyring, { scopes: ['read', 'write'] });
  await createResource(t.db, { keyring, now: Date.now(), actor: 'test' }, zone.zoneId, {
    identifier: 'resource://crm/ops',
    scopes: ['read', 'write'],
    upstream_url: 'https://ops.example.com/v1',
    operations: [{ method: 'GET', path: '/items/:id', scope: 'read' }],
  });
  sts = await startTestSts(t.db, keyring);
});

afterAll(async () => {
  await sts?.stop();
  await t?.cleanup();
});

describe('POST /internal/gateway/exchange', () => {
  const body = async (over: Record<string, unknown> = {}) => ({
    mandate: await mint(),
    method: 'GET',
    path: '/contacts/1',
    resource: 'resource://crm/contacts',
    ...over,
  });

  it('answers a resource mandate bounded by the gateway mandate, and the upstream', async () => {
    const b = await body();
    const res = await exchange(b);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      upstream: {
        url: 'https://crm.example.com/api',
        allowed_hosts: ['crm.example.com'],
        allow_private: false,
      },
      credential: null,
    });
    const claims = JSON.parse(
      Buffer.from((res.json.resource_mandate as string).split('.')[1]!, 'base64url').toString(),
    );
    const gateway = JSON.parse(Buffer.from(b.mandate.split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({ use: 'resource', aud: 'resource://crm/contacts', zone_id: zone.zoneId });
    expect(claims.exp).toBeLessThanOrEqual(gateway.exp);
    expect(res.json.expires_at).toBe(claims.exp);
  });

  it('refuses calls that are not signed with the gateway service key', async () => {
    const b = await body();
    for (const sign of [
      { header: null },
      { header: 'garbage' },
      { key: 'not-the-key' },
      { t: Math.floor(Date.now() / 1000) - 120 },
      { t: Math.floor(Date.now() / 1000) + 120 },
      { tamper: true },
    ]) {
      const res = await exchange(b, sign);
      expect({ sign, status: res.status, code: res.json.code }).toEqual({
        sign,
        status: 401,
        code: 'service_auth_failed',
      });
    }
  });

  it('accepts each nonce once', async () => {
    const n = randomBytes(16).toString('base64url');
    expect((await exchange(await body(), { n })).status).toBe(200);
    const again = await exchange(await body(), { n });
    expect({ status: again.status, code: again.json.code }).toEqual({
      status: 401,
      code: 'service_auth_failed',
    });
  });

  it('verifies the mandate itself', async () => {
    const b = await body();
    const [h, p] = b.mandate.split('.');
    const forged = await exchange({ ...b, mandate: `${h}.${p}.${'A'.repeat(86)}` });
    expect(forged.json.code).toBe('mandate_bad_signature');
    const wrongResource = await exchange({ ...b, resource: 'resource://crm/other' });
    expect(wrongResource.json.code).toBe('mandate_wrong_resource');
  });

  it('checks declared operations against the mandate scopes', async () => {
    const ops = async (method: string, path: string, scope = 'read') =>
      exchange({
        mandate: await mint({ resource: 'resource://crm/ops', scope }),
        method,
        path,
        resource: 'resource://crm/ops',
      });
    expect((await ops('GET', '/items/7')).status).toBe(200);
    const res = await ops('GET', '/items/7', 'write');
    expect({ status: res.status, code: res.json.code }).toEqual({
      status: 403,
      code: 'operation_not_permitted',
    });
    expect((await ops('DELETE', '/items/7')).json.code).toBe('operation_not_permitted');
    expect((await ops('GET', '/other')).json.code).toBe('operation_not_permitted');
  });
});
