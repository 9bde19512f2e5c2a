import type { Bus } from '@caracal/bus';
import { busMigrations, createBus } from '@caracal/bus';
import {
  configSchema,
  createKeyring,
  createLogger,
  loadConfig,
  ManualClock,
  type Service,
} from '@caracal/core';
import { stateMigrations } from '@caracal/state';
import { mergeMigrations, migrate, storeMigrations } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi } from './index.js';

const ADMIN = 'bootstrap-admin-token-for-tests-0123';
const GOOD_POLICY = 'package zone\n\ndefault allow := false\n\nallow if input.ok\n';
const BROKEN_POLICY = 'package zone\n\nallow if {\n  input.x ==\n';
const migrations = mergeMigrations(storeMigrations, busMigrations, stateMigrations);

interface Harness {
  t: TestDb;
  bus: Bus;
  api: Service;
  clock: ManualClock;
}

async function harness(kind: 'postgres' | 'pglite'): Promise<Harness> {
  const t = await openTestDb(kind);
  await migrate(t.db, migrations);
  const clock = new ManualClock(Date.now());
  const logger = createLogger({ level: 'silent' });
  const config = loadConfig(configSchema, {
    env: {},
    flags: { ports: { api: 0 }, logLevel: 'silent', outbox: { pollMs: 20 } },
  });
  const bus = createBus({
    db: t.db,
    hmacKey: 'api-test-hmac-key-0123456789abcdef-xyz',
    producerId: 'api-test',
    clock,
    logger,
  });
  const api = createApi({
    config,
    logger,
    clock,
    db: t.db,
    bus,
    migrations,
    keyring: createKeyring('api-test-master-key-0123456789abcdef'),
    adminToken: ADMIN,
  });
  return { t, bus, api, clock };
}

type Body = Record<string, unknown>;
let seq = 0;
const zid = () => `z${Date.now().toString(36)}-${++seq}`;

function client(h: () => Harness) {
  return async (
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    opts: { token?: string | null; headers?: Record<string, string> } = {},
  ) => {
    const token = opts.token === undefined ? ADMIN : opts.token;
    const res = await h().api.app.inject({
      method,
      url,
      headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...opts.headers },
      ...(body === undefined ? {} : { payload: body as Body }),
    });
    return {
      status: res.statusCode,
      body: (res.body ? res.json() : null) as Body,
      text: res.body,
      headers: res.headers,
    };
  };
}

describe.each(['postgres', 'pglite'] as const)('api CRUD on %s', (kind) => {
  let h: Harness;
  const call = client(() => h);
  beforeAll(async () => {
    h = await harness(kind);
  });
  afterAll(async () => {
    await h?.api.stop();
    await h?.bus.close();
    await h?.t.cleanup();
  });

  it('creates and reads a zone, application, resource and provider', async () => {
    const id = zid();
    const zone = await call('POST', '/v1/zones', { id, name: 'Prod' });
    expect(zone.status).toBe(201);
    expect(zone.body).toMatchObject({ id, name: 'Prod', version: 2 });
    expect((await call('POST', '/v1/zones', { id, name: 'dup' })).body.code).toBe('zone_exists');

    const app = await call('POST', `/v1/zones/${id}/applications`, { name: 'agent' });
    expect(app.status).toBe(201);
    expect(app.body.client_secret).toMatch(/^cs_/);
    const got = await call('GET', `/v1/zones/${id}/applications/${app.body.id}`);
    expect(got.status).toBe(200);
    expect(got.text).not.toContain(app.body.client_secret as string);

    const rid = 'resource://api.example.com/v1';
    const res = await call('POST', `/v1/zones/${id}/resources`, {
      identifier: rid,
      scopes: ['read'],
      upstream_url: 'https://api.example.com/v1',
      operations: [{ method: 'GET', path: '/items/:id', scope: 'read' }],
    });
    expect(res.status).toBe(201);
    const enc = encodeURIComponent(rid);
    expect((await call('GET', `/v1/zones/${id}/resources/${enc}`)).body).toMatchObject({
      identifier: rid,
      allowed_hosts: ['api.example.com'],
      allow_private_upstream: false,
    });
    const put = await call('PUT', `/v1/zones/${id}/resources/${enc}`, {
      scopes: ['read', 'write'],
      upstream_url: 'https://api.example.com/v2',
    });
    expect(put.body).toMatchObject({
      scopes: ['read', 'write'],
      upstream_url: 'https://api.example.com/v2',
      allow_private_upstream: false,
    });
    const privateRid = 'resource://local.example.com/echo';
    const local = await call('POST', `/v1/zones/${id}/resources`, {
      identifier: privateRid,
      scopes: ['read'],
      upstream_url: 'http://127.0.0.1:8090',
      allow_private_upstream: true,
    });
    expect(local.status).toBe(201);
    expect(local.body).toMatchObject({ identifier: privateRid, allow_private_upstream: true });
    const privateEnc = encodeURIComponent(privateRid);
    expect((await call('GET', `/v1/zones/${id}/resources/${privateEnc}`)).body.allow_private_upstream).toBe(
      true,
    );
    // A replace that omits the flag turns it off (PUT replaces the whole definition).
    const cleared = await call('PUT', `/v1/zones/${id}/resources/${privateEnc}`, {
      scopes: ['read'],
      upstream_url: 'http://127.0.0.1:8090',
    });
    expect(cleared.body.allow_private_upstream).toBe(false);
    const notBool = await call('POST', `/v1/zones/${id}/resources`, {
      identifier: 'resource://local.example.com/bad',
      scopes: ['read'],
      upstream_url: 'http://127.0.0.1:8090',
      allow_private_upstream: 'yes',
    });
    expect(notBool.status).toBe(400);
    expect((await call('DELETE', `/v1/zones/${id}/resources/${privateEnc}`)).status).toBe(204);
    expect(
      (
        await call('POST', `/v1/zones/${id}/resources`, {
          identifier: rid,
          scopes: ['x'],
          upstream_url: 'https://api.example.com',
        })
      ).body.code,
    ).toBe('resource_exists');

    const secret = 'very-secret-api-key-value-42';
    const prov = await call('POST', `/v1/zones/${id}/providers`, {
      name: 'k',
      kind: 'static_api_key',
      secret: { api_key: secret },
    });
    expect(prov.status).toBe(201);
    const texts = [
      prov.text,
      (await call('GET', `/v1/zones/${id}/providers/${prov.body.id}`)).text,
      (await call('GET', `/v1/zones/${id}/providers`)).text,
      (
        await call('PATCH', `/v1/zones/${id}/providers/${prov.body.id}`, {
          secret: { api_key: `${secret}-2` },
        })
      ).text,
    ];
    for (const text of texts) expect(text).not.toContain(secret);
    expect((await call('DELETE', `/v1/zones/${id}/resources/${enc}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/zones/${id}/providers/${prov.body.id}`)).status).toBe(204);
    expect((await call('GET', `/v1/zones/${id}`)).body.version).toBeGreaterThan(2);
  });

  it('answers 404s with stable codes', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const cases: [string, string][] = [
      ['/v1/zones/missing-zone', 'zone_not_found'],
      ['/v1/zones/missing-zone/applications', 'zone_not_found'],
      [`/v1/zones/${id}/applications/app_000000000000000000000000`, 'application_not_found'],
      [
        `/v1/zones/${id}/resources/${encodeURIComponent('resource://nope.example.com')}`,
        'resource_not_found',
      ],
      [`/v1/zones/${id}/providers/prv_000000000000000000000000`, 'provider_not_found'],
      [`/v1/zones/${id}/policy-sets/7`, 'policy_set_not_found'],
      [`/v1/zones/${id}/policies/zone.rego/versions/3`, 'policy_not_found'],
      [`/v1/zones/${id}/data`, 'data_not_found'],
      ['/v1/nothing-here', 'route_not_found'],
    ];
    for (const [url, code] of cases) {
      const r = await call('GET', url);
      expect([url, r.status, r.body.code]).toEqual([url, 404, code]);
      expect(r.headers['content-type']).toContain('application/problem+json');
    }
  });
});

describe('api on postgres', () => {
  let h: Harness;
  const call = client(() => h);
  beforeAll(async () => {
    h = await harness('postgres');
  });
  afterAll(async () => {
    await h?.api.stop();
    await h?.bus.close();
    await h?.t.cleanup();
  });

  it('authenticates every /v1 request and enforces key scopes', async () => {
    const a = zid();
    const b = zid();
    await call('POST', '/v1/zones', { id: a, name: 'a' });
    await call('POST', '/v1/zones', { id: b, name: 'b' });
    const none = await call('GET', '/v1/zones', undefined, { token: null });
    expect([none.status, none.body.code]).toEqual([401, 'unauthorized']);
    const bad = await call('GET', '/v1/zones', undefined, { token: `${ADMIN}x` });
    expect([bad.status, bad.body.code]).toEqual([401, 'unauthorized']);
    expect((await call('GET', '/v1/zones', undefined, { token: 'ak_0.cak_x' })).status).toBe(401);

    const mk = async (scopes: string[]) => {
      const r = await call('POST', '/v1/admin-keys', { name: 'k', scopes });
      expect(r.status).toBe(201);
      return r.body.token as string;
    };
    const read = await mk(['read']);
    const zoneA = await mk([`zone:${a}:admin`]);
    expect((await call('GET', `/v1/zones/${b}`, undefined, { token: read })).status).toBe(200);
    const denied = await call('POST', `/v1/zones/${a}/applications`, { name: 'x' }, { token: read });
    expect([denied.status, denied.body.code]).toEqual([403, 'forbidden_scope']);
    expect((await call('POST', `/v1/zones/${a}/applications`, { name: 'x' }, { token: zoneA })).status).toBe(
      201,
    );
    expect(
      (await call('POST', `/v1/zones/${b}/applications`, { name: 'x' }, { token: zoneA })).body.code,
    ).toBe('forbidden_scope');
    expect((await call('GET', '/v1/zones', undefined, { token: zoneA })).body.code).toBe('forbidden_scope');
    expect(
      (await call('POST', '/v1/admin-keys', { name: 'k', scopes: ['admin'] }, { token: zoneA })).status,
    ).toBe(403);
    expect(
      (await call('PUT', '/v1/rollout-freeze', { frozen: true, reason: 'x' }, { token: read })).status,
    ).toBe(403);

    // The actor of a change is the key id; a revoked key stops working.
    const keys = await call('GET', '/v1/admin-keys?limit=200');
    const zoneKey = (keys.body.items as { id: string; scopes: string[] }[]).find(
      (k) => k.scopes[0] === `zone:${a}:admin`,
    )!;
    expect(keys.text).not.toContain(zoneA.split('.')[1]);
    const [ev] = await h.t.db.query<{ payload: { actor: string } }>(
      `SELECT payload FROM outbox WHERE payload->>'type' = 'application.created' AND payload->>'zoneId' = $1`,
      [a],
    );
    expect(ev?.payload.actor).toBe(zoneKey.id);
    expect((await call('DELETE', `/v1/admin-keys/${zoneKey.id}`)).body.revoked_at).not.toBeNull();
    expect((await call('GET', `/v1/zones/${a}`, undefined, { token: zoneA })).status).toBe(401);
  });

  it('lists every validation error of a body', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const r = await call('POST', `/v1/zones/${id}/resources`, {
      identifier: 'https://not-a-resource',
      scopes: [],
      upstream_url: 'ftp://x',
      max_mandate_ttl_seconds: 0,
      surprise: true,
    });
    expect([r.status, r.body.code]).toEqual([400, 'validation_failed']);
    const paths = (r.body.errors as { path: string }[]).map((e) => e.path).sort();
    expect(paths).toEqual(
      expect.arrayContaining(['identifier', 'scopes', 'upstream_url', 'max_mandate_ttl_seconds', '(root)']),
    );
    const ops = await call('POST', `/v1/zones/${id}/resources`, {
      identifier: 'resource://a.example.com',
      scopes: ['read'],
      upstream_url: 'https://evil.example.net',
      allowed_hosts: ['a.example.com'],
      operations: [{ method: 'GET', path: '/x', scope: 'write' }],
    });
    expect((ops.body.errors as { path: string }[]).map((e) => e.path).sort()).toEqual([
      'allowed_hosts',
      'operations.0.scope',
    ]);
    const q = await call('GET', `/v1/zones/${id}/applications?limit=0&bogus=1`);
    expect(q.body.code).toBe('validation_failed');
    expect((await call('GET', `/v1/zones/${id}/applications?cursor=garbage`)).body.code).toBe(
      'invalid_cursor',
    );
    expect((await call('GET', '/v1/zones/Not_A_Zone')).body.code).toBe('validation_failed');
    // Text Postgres cannot store faithfully is refused, not a 500 and not silently altered.
    const nul = await call('POST', `/v1/zones/${id}/applications`, { name: 'a\u0000b' });
    expect([nul.status, nul.body.code]).toEqual([400, 'validation_failed']);
    const sur = await call('PUT', `/v1/zones/${id}/data`, { document: { grants: [{ who: '\ud800' }] } });
    expect([sur.status, (sur.body.errors as { path: string }[])[0]?.path]).toEqual([
      400,
      'document.grants.0.who',
    ]);
    const cur = Buffer.from(JSON.stringify(['\u0000'])).toString('base64url');
    expect((await call('GET', `/v1/zones/${id}/applications?cursor=${cur}`)).body.code).toBe(
      'invalid_cursor',
    );
  });

  it('paginates with opaque cursors over more than one page', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const created: string[] = [];
    for (let i = 0; i < 7; i++)
      created.push((await call('POST', `/v1/zones/${id}/applications`, { name: `a${i}` })).body.id as string);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: { body: Body } = await call(
        'GET',
        `/v1/zones/${id}/applications?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...(r.body.items as { id: string }[]).map((x) => x.id));
      cursor = r.body.next_cursor as string | null;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...created].sort());
  });

  it('replays an idempotent create and refuses the key with another body', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const headers = { 'idempotency-key': `k-${id}` };
    const first = await call('POST', `/v1/zones/${id}/applications`, { name: 'agent' }, { headers });
    expect(first.status).toBe(201);
    expect(first.body.client_secret).toMatch(/^cs_/);
    const again = await call('POST', `/v1/zones/${id}/applications`, { name: 'agent' }, { headers });
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual({ ...first.body, client_secret: null });
    const other = await call('POST', `/v1/zones/${id}/applications`, { name: 'other' }, { headers });
    expect([other.status, other.body.code]).toEqual([422, 'idempotency_key_reused']);
    const list = await call('GET', `/v1/zones/${id}/applications`);
    expect(list.body.items).toHaveLength(1);
    // The receipt never holds the secret.
    const receipts = await h.t.db.query<{ body: unknown }>('SELECT body FROM idempotency_receipts');
    expect(JSON.stringify(receipts)).not.toContain(first.body.client_secret as string);
    const zoneAgain = await call(
      'POST',
      '/v1/zones',
      { id: zid(), name: 'n' },
      { headers: { 'idempotency-key': 'zone-1' } },
    );
    expect(zoneAgain.status).toBe(201);
  });

  it('activates policy sets: compile errors are 422, the freeze is 409, the previous activation stays', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const p1 = await call('POST', `/v1/zones/${id}/policies`, { name: 'zone.rego', source: GOOD_POLICY });
    expect([p1.status, p1.body.version, p1.body.created]).toEqual([201, 1, true]);
    const p1again = await call('POST', `/v1/zones/${id}/policies`, {
      name: 'zone.rego',
      source: GOOD_POLICY,
    });
    expect([p1again.status, p1again.body.version, p1again.body.created]).toEqual([200, 1, false]);
    await call('POST', `/v1/zones/${id}/policies`, { name: 'broken.rego', source: BROKEN_POLICY });
    const good = await call('POST', `/v1/zones/${id}/policy-sets`, {
      modules: [{ name: 'zone.rego', version: 1 }],
    });
    const bad = await call('POST', `/v1/zones/${id}/policy-sets`, {
      modules: [
        { name: 'zone.rego', version: 1 },
        { name: 'broken.rego', version: 1 },
      ],
    });
    expect((await call('POST', `/v1/zones/${id}/policy-sets/${good.body.version}/activate`)).status).toBe(
      200,
    );
    const refused = await call('POST', `/v1/zones/${id}/policy-sets/${bad.body.version}/activate`);
    expect([refused.status, refused.body.code]).toEqual([422, 'policy_compile_failed']);
    expect((refused.body.errors as { location: string }[])[0]?.location).toMatch(/^broken\.rego:\d+:\d+$/);
    expect((await call('GET', `/v1/zones/${id}`)).body.active_policy_set).toBe(good.body.version);

    expect(
      (await call('PUT', '/v1/rollout-freeze', { frozen: true, reason: 'recovery' })).body,
    ).toMatchObject({ frozen: true });
    expect((await call('GET', '/v1/rollout-freeze')).body).toMatchObject({
      frozen: true,
      reason: 'recovery',
      updated_by: 'bootstrap',
    });
    const frozen = await call('POST', `/v1/zones/${id}/policy-sets/${good.body.version}/activate`);
    expect([frozen.status, frozen.body.code]).toEqual([409, 'rollout_frozen']);
    await call('PUT', '/v1/rollout-freeze', { frozen: false });
    expect((await call('POST', `/v1/zones/${id}/policy-sets/${good.body.version}/activate`)).status).toBe(
      200,
    );

    const data = await call('PUT', `/v1/zones/${id}/data`, { document: { app_ids: ['a'] } });
    expect([data.status, data.body.version]).toEqual([201, 1]);
    expect((await call('GET', `/v1/zones/${id}/data`)).body.document).toEqual({ app_ids: ['a'] });
    const keys = await call('POST', `/v1/zones/${id}/signing-keys/rotate`, { retire_after_seconds: 60 });
    expect((keys.body.items as { status: string }[]).map((k) => k.status)).toEqual(['current', 'previous']);
    expect(keys.text).not.toMatch(/"d":/);
  });

  it('never answers a create endpoint with a 5xx, whatever the JSON body', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const endpoints = [
      '/v1/zones',
      `/v1/zones/${id}/applications`,
      `/v1/zones/${id}/resources`,
      `/v1/zones/${id}/providers`,
      `/v1/zones/${id}/policies`,
      `/v1/zones/${id}/policy-sets`,
      '/v1/admin-keys',
      `/v1/zones/${id}/applications/app_000000000000000000000000/rotate-secret`,
    ];
    // Strings include what Postgres refuses (NUL, lone surrogates) besides ordinary text.
    const unit = fc.oneof(
      { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 1 }) },
      { weight: 1, arbitrary: fc.constantFrom('\u0000', '\ud800', '\udc00', 'é', '😀', '"', '\\', '/') },
    );
    const str = fc.string({ unit, maxLength: 40 });
    const json = fc.jsonValue({ stringUnit: unit, maxDepth: 4 });
    const shaped = fc.record(
      {
        id: fc.oneof(str, fc.constant(zid())),
        name: str,
        identifier: fc.oneof(str, fc.constant('resource://x.example.com/a')),
        scopes: fc.array(fc.oneof(str, json)),
        upstream_url: fc.oneof(fc.webUrl(), str),
        kind: fc.constantFrom('static_api_key', 'oauth2_client_credentials', 'oauth2_refresh_token', 'x'),
        config: fc.oneof(json, fc.record({ token_url: fc.webUrl(), client_id: str, scopes: fc.array(str) })),
        secret: fc.dictionary(str, str),
        source: str,
        modules: fc.array(fc.record({ name: str, version: fc.oneof(fc.integer(), fc.double()) })),
        document: json,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints), fc.oneof(json, shaped), async (url, body) => {
        const r = await h.api.app.inject({
          method: 'POST',
          url,
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
          payload: JSON.stringify(body),
        });
        expect(r.statusCode, r.body).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
  });

  it('never answers an activation with a 5xx, whatever the policy source', async () => {
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'z' });
    const rego = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc
        .array(
          fc.constantFrom(
            'allow if {',
            '}',
            'input.x == 1',
            'default allow := false',
            'x := [1,',
            'some i in input',
            'count(',
            '"s"',
            '\n',
          ),
          {
            maxLength: 12,
          },
        )
        .map((parts) => `package zone\n${parts.join('\n')}`),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(rego, async (source) => {
        const p = await call('POST', `/v1/zones/${id}/policies`, { name: `p${++n}.rego`, source });
        if (p.status >= 400) {
          expect(p.status, p.text).toBeLessThan(500);
          return;
        }
        const set = await call('POST', `/v1/zones/${id}/policy-sets`, {
          modules: [{ name: p.body.name, version: p.body.version }],
        });
        const r = await call('POST', `/v1/zones/${id}/policy-sets/${set.body.version}/activate`);
        expect([200, 422], r.text).toContain(r.status);
      }),
      { numRuns: 60 },
    );
  });

  it('runs the outbox relay between start and stop and reports it in /ready', async () => {
    const before = await h.api.app.inject({ url: '/ready' });
    expect(before.json().checks.outbox).toMatchObject({ ok: false, detail: 'outbox relay is not running' });
    await h.api.start();
    const id = zid();
    await call('POST', '/v1/zones', { id, name: 'relayed' });
    await h.bus.ensureGroup('caracal.control', 'test', '0');
    const types: string[] = [];
    for (const deadline = Date.now() + 15_000; !types.includes('zone.created') && Date.now() < deadline; ) {
      const entries = await h.bus.read('caracal.control', 'test', 'c1', { count: 100, blockMs: 100 });
      for (const e of entries)
        if ((e.message.payload as { zoneId?: string }).zoneId === id) types.push(e.message.type);
      if (!entries.length) await new Promise((r) => setTimeout(r, 25));
    }
    expect(types).toContain('zone.created');
    const ready = await h.api.app.inject({ url: '/ready' });
    expect(ready.json().checks.outbox).toMatchObject({ ok: true });
    const metrics = await h.api.app.inject({ url: '/metrics' });
    expect(metrics.body).toContain('caracal_api_outbox_oldest_pending_age_seconds');
    expect(metrics.body).toContain('caracal_api_outbox_dead_total');
    await h.api.stop();
  });
});

describe('api without its dependencies', () => {
  it('fails closed with 503 api_not_configured on /v1', async () => {
    const h = await harness('postgres');
    try {
      const api = createApi({
        config: loadConfig(configSchema, { env: {}, flags: { logLevel: 'silent' } }),
        logger: createLogger({ level: 'silent' }),
        clock: h.clock,
        db: h.t.db,
        bus: h.bus,
        migrations: mergeMigrations(storeMigrations, busMigrations),
        keyring: createKeyring('api-test-master-key-0123456789abcdef'),
        adminToken: '',
      });
      const r = await api.app.inject({ url: '/v1/zones', headers: { authorization: 'Bearer x' } });
      expect([r.statusCode, r.json().code]).toEqual([503, 'api_not_configured']);
      expect(r.json().detail).toContain('adminToken');
      expect(r.json().detail).toContain('stateMigrations');
      expect((await api.app.inject({ url: '/health' })).statusCode).toBe(200);
    } finally {
      await h.bus.close();
      await h.t.cleanup();
    }
  });
});
