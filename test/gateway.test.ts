// The governed request end to end: a real STS and Gateway on real Postgres (and Redis), a real upstream.
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Bus, createBus } from '@caracal/bus';
import {
  configSchema,
  createFaultProxy,
  createKeyring,
  createLogger,
  type FaultProxy,
  loadConfig,
  systemClock,
} from '@caracal/core';
import { createGateway, gatewayMigrations } from '@caracal/gateway';
import { createMandateSigner, MANDATE_TYP, type MandateDraft } from '@caracal/mandate';
import { createProvider, createResource, deleteResource, loadZoneSnapshot } from '@caracal/state';
import { mergeMigrations, migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestUpstream, type TestUpstream } from '../services/gateway/src/upstream/testing.js';
import {
  type SeededZone,
  seedZone,
  startTestSts,
  stsTestMigrations,
  type TestSts,
} from '../services/sts/src/testing.js';
import { freePort } from './support.js';

const keyring = createKeyring('g'.repeat(40));
const ISSUER = 'http://caracal-sts.test';
const LOCAL = 'resource://crm/local';
const OPS = 'resource://crm/ops';
const PRIVATE = 'resource://crm/private';
const logger = createLogger({ level: 'silent' });
const ctx = () => ({ keyring, now: Date.now(), actor: 'test' });
const REDIS = new URL(process.env.CARACAL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');

let t: TestDb;
let upstream: TestUpstream;
let zone: SeededZone;
let sts: TestSts;
let stsPort: number;
let gw: RunningGateway;
const cleanups: (() => Promise<unknown>)[] = [];

interface RunningGateway {
  url: string;
  stop(): Promise<void>;
}

async function startGateway(
  flags: Record<string, unknown> = {},
  bus?: Bus,
  migrations = mergeMigrations(stsTestMigrations, gatewayMigrations),
): Promise<RunningGateway> {
  const data = mkdtempSync(join(tmpdir(), 'caracal-gw-test-'));
  const { gateway: gatewayFlags, ...rest } = flags as { gateway?: Record<string, unknown> };
  const config = loadConfig(configSchema, {
    env: {},
    flags: {
      data,
      ports: { gateway: 0 },
      sts: { issuer: ISSUER },
      gateway: {
        stsUrl: `http://127.0.0.1:${stsPort}`,
        allowPrivateUpstreams: true,
        stsBreakerHalfOpenMs: 500,
        stsTimeoutMs: 1000,
        ...gatewayFlags,
      },
      ...rest,
    },
  });
  const gatewayBus =
    bus ??
    createBus({ db: t.db, hmacKey: 'h'.repeat(40), producerId: 'gw-test', clock: systemClock, logger });
  const service = createGateway({
    config,
    logger,
    clock: systemClock,
    db: t.db,
    bus: gatewayBus,
    migrations,
    keyring,
    processMetrics: false,
  });
  const url = await service.start();
  return {
    url,
    async stop() {
      await service.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** A fresh `use=gateway` mandate from the real STS. */
async function mint(resource = LOCAL, scope = 'read'): Promise<string> {
  const res = await fetch(`${sts.url}/oauth/2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...zone.form, resource, scope }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`mint failed: ${JSON.stringify(body)}`);
  return body.access_token;
}

async function call(
  token: string | undefined,
  path = '/items/1',
  opts: {
    resource?: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    base?: string;
  } = {},
) {
  const res = await fetch(`${opts.base ?? gw.url}${path}`, {
    method: opts.method ?? 'GET',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      'x-caracal-resource': opts.resource ?? LOCAL,
      ...opts.headers,
    },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text, headers: res.headers };
}

/** A GET with its path sent byte for byte. */
function rawGet(token: string, path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path,
        headers: { authorization: `Bearer ${token}`, 'x-caracal-resource': LOCAL },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text || '{}') }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A signer for zone `zoneId`'s current key, with our own clock: forged-but-signed mandates for denial tests. */
async function zoneSigner(zoneId: string, clock = systemClock) {
  const snap = await loadZoneSnapshot(t.db, keyring, zoneId);
  const cur = snap.signing_keys.current;
  return createMandateSigner(
    { kid: cur.kid, alg: cur.alg, privateJwk: cur.private_jwk!, publicJwk: cur.public_jwk },
    { issuer: ISSUER, clock },
  );
}

const draft = (over: Partial<MandateDraft> = {}): MandateDraft => ({
  sub: zone.appId,
  sub_type: 'application',
  aud: 'caracal-gateway',
  zone_id: 'z1',
  client_id: zone.appId,
  use: 'gateway',
  resources: [LOCAL],
  scope: 'read',
  ttlSec: 120,
  ...over,
});

async function until(fn: () => Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('condition not met in time');
}

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, mergeMigrations(stsTestMigrations, gatewayMigrations));
  upstream = await startTestUpstream();
  zone = await seedZone(t.db, keyring, { scopes: ['read', 'write'] });
  await seedZone(t.db, keyring, { zoneId: 'z2' });
  const provider = await createProvider(t.db, ctx(), 'z1', {
    name: 'crm key',
    kind: 'static_api_key',
    config: { header_name: 'x-api-key', value_prefix: 'Key ' },
    secret: { api_key: 'upstream-secret' },
  });
  await createResource(t.db, ctx(), 'z1', {
    identifier: LOCAL,
    scopes: ['read', 'write'],
    upstream_url: upstream.url('/api'),
    provider_id: provider.id,
  });
  await createResource(t.db, ctx(), 'z1', {
    identifier: OPS,
    scopes: ['read', 'write'],
    upstream_url: upstream.url('/ops'),
    operations: [
      { method: 'GET', path: '/items/:id', scope: 'read' },
      { method: 'POST', path: '/items', scope: 'write' },
      { method: 'GET', path: '/files/*', scope: 'read' },
    ],
  });
  // The same loopback upstream, but this resource opts in to a private upstream on its own.
  await createResource(t.db, ctx(), 'z1', {
    identifier: PRIVATE,
    scopes: ['read'],
    upstream_url: upstream.url('/private'),
    allow_private_upstream: true,
  });
  stsPort = await freePort();
  sts = await startTestSts(t.db, keyring, {
    flags: { ports: { sts: stsPort }, sts: { issuer: ISSUER, zonePollMs: 200 } },
  });
  gw = await startGateway();
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await gw?.stop();
  await sts?.stop();
  await upstream?.close();
  await t?.cleanup();
});

describe('gateway: allowed requests', () => {
  it('forwards with the brokered credential, never the caller Authorization, propagating ids', async () => {
    const token = await mint();
    const before = upstream.seen.length;
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const res = await call(token, '/items/1?x=1', { headers: { 'x-request-id': 'req-123', traceparent } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ method: 'GET', url: '/api/items/1?x=1' });
    expect(upstream.seen.length).toBe(before + 1);
    const seen = upstream.seen.at(-1)!;
    expect(seen.headers['x-api-key']).toBe('Key upstream-secret');
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['x-caracal-resource']).toBeUndefined();
    expect(seen.headers['x-request-id']).toBe('req-123');
    expect(seen.headers.traceparent).toBe(traceparent);
    expect(res.headers.get('x-request-id')).toBe('req-123');
  });

  it('streams a request body through and passes the upstream status and headers back', async () => {
    const token = await mint(LOCAL, 'write');
    const res = await call(token, '/items', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(200_000) }),
    });
    expect(res.status).toBe(200);
    expect((res.json.body as string).length).toBe(200_000 + 11);
    expect(res.headers.get('content-type')).toBe('application/json');
  });

  it('enforces declared operations: granted scope passes, undeclared or ungranted is 403', async () => {
    const before = upstream.seen.length;
    expect((await call(await mint(OPS), '/items/7', { resource: OPS })).status).toBe(200);
    expect((await call(await mint(OPS), '/files/a/b.txt', { resource: OPS })).status).toBe(200);
    const post = await call(await mint(OPS), '/items', { resource: OPS, method: 'POST', body: '{}' });
    expect(post.status).toBe(403);
    expect(post.json.code).toBe('operation_not_permitted');
    const undeclared = await call(await mint(OPS), '/admin', { resource: OPS });
    expect(undeclared.json.code).toBe('operation_not_permitted');
    expect(upstream.seen.length).toBe(before + 2);
  });
});

describe('gateway: per-resource private upstream opt-in (global flag off)', () => {
  let strict: RunningGateway;
  beforeAll(async () => {
    strict = await startGateway({ gateway: { allowPrivateUpstreams: false } });
    cleanups.push(() => strict.stop());
  });

  it('refuses a loopback upstream whose resource did not opt in, before reaching it', async () => {
    const before = upstream.seen.length;
    const res = await call(await mint(), '/items/1', { base: strict.url });
    expect({ status: res.status, code: res.json.code }).toEqual({
      status: 403,
      code: 'upstream_address_refused',
    });
    expect(upstream.seen.length).toBe(before);
  });

  it('reaches the loopback upstream of a resource that opted in', async () => {
    const before = upstream.seen.length;
    const res = await call(await mint(PRIVATE), '/items/1', { base: strict.url, resource: PRIVATE });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ method: 'GET', url: '/private/items/1' });
    expect(upstream.seen.length).toBe(before + 1);
    const seen = upstream.seen.at(-1)!;
    // No brokered credential: the upstream gets the resource mandate, never the caller's gateway mandate.
    expect(seen.headers.authorization).toMatch(/^Bearer /);
    const claims = JSON.parse(
      Buffer.from(seen.headers.authorization!.slice(7).split('.')[1]!, 'base64url').toString('utf8'),
    );
    expect(claims).toMatchObject({ use: 'resource', aud: PRIVATE });
  });

  it('the opt-in is per resource: a not-opted-in resource is still refused afterwards', async () => {
    const before = upstream.seen.length;
    const res = await call(await mint(), '/items/1', { base: strict.url });
    expect(res.json.code).toBe('upstream_address_refused');
    expect(upstream.seen.length).toBe(before);
  });
});

describe('gateway: evidence', () => {
  it('records a decision before forwarding, an outcome after, and every denial', async () => {
    const reader = createBus({
      db: t.db,
      hmacKey: 'h'.repeat(40),
      producerId: 'reader',
      clock: systemClock,
      logger,
    });
    cleanups.push(() => reader.close());
    await reader.ensureGroup('caracal.audit', 'gw-test', '$');
    const ok = await call(await mint(), '/items/9', { headers: { 'x-request-id': 'evidence-ok' } });
    expect(ok.status).toBe(200);
    const bad = await call(undefined, '/items/9', { headers: { 'x-request-id': 'evidence-denied' } });
    expect(bad.status).toBe(401);
    const events: { type: string; payload: Record<string, unknown> }[] = [];
    await until(async () => {
      for (const e of await reader.read('caracal.audit', 'gw-test', 'c1', { count: 100 })) {
        events.push(e.message as { type: string; payload: Record<string, unknown> });
      }
      return (
        events.some((e) => e.type === 'gateway.outcome') && events.some((e) => e.type === 'gateway.denial')
      );
    });
    const of = (id: string) => events.filter((e) => e.payload.request_id === id).map((e) => e.type);
    expect(of('evidence-ok')).toEqual(['gateway.decision', 'gateway.outcome']);
    expect(of('evidence-denied')).toEqual(['gateway.denial']);
    const outcome = events.find((e) => e.type === 'gateway.outcome')!.payload;
    expect(outcome).toMatchObject({ status: 200, resource: LOCAL, zone_id: 'z1', method: 'GET' });
    expect(outcome.bytes).toBeGreaterThan(0);
    // The STS recorded its side of the exchange on the same stream.
    expect(events.some((e) => e.type === 'sts.decision' && e.payload.exchange === 'gateway')).toBe(true);
  });
});

describe('gateway: every denial stops before the upstream', () => {
  const denied = async (
    res: Promise<Awaited<ReturnType<typeof call>>>,
    status: number,
    code: string,
  ): Promise<void> => {
    const before = upstream.seen.length;
    const r = await res;
    expect({ status: r.status, code: r.json.code }).toEqual({ status, code });
    expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(upstream.seen.length).toBe(before);
  };

  it('no bearer', () => denied(call(undefined), 401, 'mandate_missing'));

  it('bad signature', async () => {
    const token = await mint();
    const [h, p, s] = token.split('.');
    const flipped = `${s!.slice(0, 10)}${s![10] === 'A' ? 'B' : 'A'}${s!.slice(11)}`;
    await denied(call(`${h}.${p}.${flipped}`), 401, 'mandate_bad_signature');
  });

  it('alg none', async () => {
    const [, p] = (await mint()).split('.');
    const h = Buffer.from(JSON.stringify({ alg: 'none', typ: MANDATE_TYP, kid: 'x' })).toString('base64url');
    await denied(call(`${h}.${p}.`), 401, 'mandate_alg_not_allowed');
  });

  it('key from another zone', async () => {
    const forged = (await zoneSigner('z2')).mint(draft()).token;
    await denied(call(forged), 401, 'mandate_unknown_key');
  });

  it('expired', async () => {
    const past = { now: () => Date.now() - 600_000 };
    await denied(
      call((await zoneSigner('z1', past)).mint(draft({ ttlSec: 60 })).token),
      401,
      'mandate_expired',
    );
  });

  it('expiring within the preflight window', async () => {
    const token = (await zoneSigner('z1')).mint(draft({ ttlSec: 20 })).token;
    await denied(call(token), 401, 'mandate_expiring');
  });

  it('wrong use (a resource or session mandate)', async () => {
    const signer = await zoneSigner('z1');
    await denied(call(signer.mint(draft({ use: 'resource', ttlSec: 60 })).token), 403, 'mandate_wrong_use');
    await denied(call(signer.mint(draft({ use: 'session' })).token), 403, 'mandate_wrong_use');
  });

  it('wrong resource header', async () => {
    await denied(call(await mint(), '/items/1', { resource: OPS }), 403, 'mandate_wrong_resource');
    await denied(call(await mint(), '/items/1', { resource: 'crm/local' }), 400, 'resource_header_invalid');
  });

  it('replayed jti', async () => {
    const token = await mint();
    expect((await call(token)).status).toBe(200);
    await denied(call(token), 401, 'mandate_replayed');
  });

  it('unknown resource (deleted after the mandate was minted)', async () => {
    await createResource(t.db, ctx(), 'z1', {
      identifier: 'resource://crm/temp',
      scopes: ['read'],
      upstream_url: upstream.url('/tmp'),
    });
    await until(async () => {
      try {
        await mint('resource://crm/temp');
        return true;
      } catch {
        return false;
      }
    });
    const token = await mint('resource://crm/temp');
    await deleteResource(t.db, ctx(), 'z1', 'resource://crm/temp');
    // The STS notices the deletion at its next zone poll (200 ms here).
    await new Promise((r) => setTimeout(r, 800));
    await denied(call(token, '/x', { resource: 'resource://crm/temp' }), 404, 'resource_not_found');
  });

  it('private upstream when private upstreams are not allowed', async () => {
    const strict = await startGateway({ gateway: { allowPrivateUpstreams: false } });
    cleanups.push(() => strict.stop());
    await denied(call(await mint(), '/items/1', { base: strict.url }), 403, 'upstream_address_refused');
  });

  it('path traversal', async () => {
    // Sent raw: fetch would normalise dot segments before they leave the client.
    for (const path of ['/items/%2e%2e/admin', '/items/../admin', '/items//admin', '/a/%252e%252e/b']) {
      const before = upstream.seen.length;
      const r = await rawGet(await mint(), path);
      expect({ path, status: r.status, code: r.json.code }).toEqual({
        path,
        status: 400,
        code: 'path_traversal_refused',
      });
      expect(upstream.seen.length).toBe(before);
    }
  });

  it('internal header', async () => {
    await denied(
      call(await mint(), '/items/1', { headers: { 'x-caracal-signature': 't=1,n=2,s=3' } }),
      400,
      'internal_header_refused',
    );
  });

  it('reserved paths are not proxied', async () => {
    await denied(
      call(await mint(), '/internal/gateway/exchange', { method: 'POST', body: '{}' }),
      404,
      'route_not_found',
    );
  });
});

describe('gateway: dependencies failing', () => {
  it('without its tables in the deployment (and no Redis) the Gateway refuses everything', async () => {
    const bare = await startGateway({}, undefined, stsTestMigrations);
    cleanups.push(() => bare.stop());
    const before = upstream.seen.length;
    const res = await call(await mint(), '/items/1', { base: bare.url });
    expect({ status: res.status, code: res.json.code }).toEqual({
      status: 503,
      code: 'gateway_not_installed',
    });
    expect(upstream.seen.length).toBe(before);
  });

  it('Redis cut: the replay store fails closed with 503, and recovers', async () => {
    const proxy: FaultProxy = await createFaultProxy({
      host: REDIS.hostname,
      port: Number(REDIS.port || 6379),
    });
    cleanups.push(() => proxy.close());
    const redisGw = await startGateway({
      redisUrl: proxy.url('redis'),
      redisKeyPrefix: `test:gw:${Date.now().toString(36)}:`,
    });
    cleanups.push(() => redisGw.stop());
    expect((await call(await mint(), '/items/1', { base: redisGw.url })).status).toBe(200);
    proxy.set('reset');
    const before = upstream.seen.length;
    const res = await call(await mint(), '/items/1', { base: redisGw.url });
    expect({ status: res.status, code: res.json.code }).toEqual({
      status: 503,
      code: 'replay_store_unavailable',
    });
    expect(upstream.seen.length).toBe(before);
    proxy.set('pass');
    await until(async () => (await call(await mint(), '/items/1', { base: redisGw.url })).status === 200);
  });

  it('bus cut: audit is spooled, the request is still served, and the spool drains later', async () => {
    const proxy = await createFaultProxy({ host: REDIS.hostname, port: Number(REDIS.port || 6379) });
    cleanups.push(() => proxy.close());
    const bus = createBus({
      redisUrl: proxy.url('redis'),
      keyPrefix: `test:gwbus:${Date.now().toString(36)}:`,
      hmacKey: 'h'.repeat(40),
      producerId: 'gw-bus-test',
      clock: systemClock,
      logger,
      commandTimeoutMs: 300,
      readyTimeoutMs: 200,
    });
    cleanups.push(() => bus.close());
    const busGw = await startGateway({}, bus);
    cleanups.push(() => busGw.stop());
    const spooled = async () => {
      const ready = (await (await fetch(`${busGw.url}/ready`)).json()) as {
        checks: { spool: { entries: number } };
      };
      return ready.checks.spool.entries;
    };
    expect((await call(await mint(), '/items/1', { base: busGw.url })).status).toBe(200);
    const published = await bus.length('caracal.audit');
    proxy.set('reset');
    const res = await call(await mint(), '/items/1', { base: busGw.url });
    expect(res.status).toBe(200);
    expect(await spooled()).toBeGreaterThan(0);
    proxy.set('pass');
    await until(async () => (await spooled()) === 0, 20_000);
    expect(await bus.length('caracal.audit')).toBeGreaterThan(published);
  });

  it('STS down: 502, then the circuit opens (503 without calling), then closes when the STS is back', async () => {
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => mint()));
    await sts.stop();
    for (const token of tokens.slice(0, 3)) {
      const r = await call(token);
      expect({ status: r.status, code: r.json.code }).toEqual({ status: 502, code: 'sts_exchange_failed' });
    }
    const t0 = Date.now();
    const open = await call(tokens[3]);
    expect({ status: open.status, code: open.json.code }).toEqual({ status: 503, code: 'sts_circuit_open' });
    expect(Date.now() - t0).toBeLessThan(200);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/caracal_gateway_sts_circuit_open 1/);
    expect(metrics).toMatch(/caracal_gateway_sts_exchange_errors_total 3/);
    expect((await fetch(`${gw.url}/ready`)).status).toBe(503);

    sts = await startTestSts(t.db, keyring, {
      flags: { ports: { sts: stsPort }, sts: { issuer: ISSUER, zonePollMs: 200 } },
    });
    // Readiness probes the STS through the circuit once half-open is due, so it closes without traffic.
    await until(async () => (await fetch(`${gw.url}/ready`)).status === 200);
    expect((await call(tokens[4])).status).toBe(200);
  });
});
