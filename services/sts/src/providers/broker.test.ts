import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { CaracalError, createKeyring, createLogger, ManualClock, Registry } from '@caracal/core';
import { type Db, migrate, openDb } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { OAuth2Server } from 'oauth2-mock-server';
import { fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stsMigrations } from '../migrations/index.js';
import {
  createProviderBroker,
  type FetchLike,
  type ProviderBroker,
  type ProviderBrokerOptions,
  readProviderTokenHealth,
} from './index.js';
import type { OAuth2ClientCredentialsConfig, OAuth2RefreshTokenConfig } from './types.js';

type Mode = 'ok' | 'invalid_grant' | 'http_503';

/** What the real OAuth 2 server saw and how it should answer, per client id. */
interface ClientState {
  calls: number;
  mode: Mode;
  expiresIn?: number;
  /** For refresh-token clients: the only refresh token the server accepts now (rotated on every use). */
  validRefreshToken?: string;
  lastBody?: Record<string, string>;
  lastAuthorization?: string;
}

const SECRET = 's3cret-value-that-must-never-leak';
const keyring = createKeyring('test-master-key-0123456789abcdef-0123456789');
let server: OAuth2Server;
let tokenUrl: string;
let testDb: TestDb;
let db: Db;
const clients = new Map<string, ClientState>();
const brokers: ProviderBroker[] = [];
const extraDbs: Db[] = [];
const logLines: string[] = [];
let n = 0;

function client(id: string): ClientState {
  let c = clients.get(id);
  if (!c) {
    c = { calls: 0, mode: 'ok' };
    clients.set(id, c);
  }
  return c;
}

function clientIdOf(req: { headers: Record<string, unknown>; body: Record<string, string> }): string {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Basic ')) {
    return decodeURIComponent(Buffer.from(auth.slice(6), 'base64').toString().split(':')[0] ?? '');
  }
  return req.body.client_id ?? '';
}

beforeAll(async () => {
  server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  await server.start(0, '127.0.0.1');
  tokenUrl = `${server.issuer.url}/token`;
  // Tokens minted within one second are otherwise byte-identical (same claims, deterministic RS256).
  server.service.on('beforeTokenSigning', (token) => {
    token.payload.jti = randomUUID();
  });
  server.service.on('beforeResponse', (res, req) => {
    const r = req as unknown as { headers: Record<string, unknown>; body: Record<string, string> };
    const c = client(clientIdOf(r));
    c.calls++;
    c.lastBody = { ...r.body };
    c.lastAuthorization = typeof r.headers.authorization === 'string' ? r.headers.authorization : undefined;
    const body = res.body as Record<string, unknown>;
    if (c.mode === 'invalid_grant') {
      res.statusCode = 400;
      res.body = { error: 'invalid_grant', error_description: `bad ${SECRET}` };
      return;
    }
    if (c.mode === 'http_503') {
      res.statusCode = 503;
      res.body = { error: 'temporarily_unavailable' };
      return;
    }
    if (r.body.grant_type === 'refresh_token') {
      if (r.body.refresh_token !== c.validRefreshToken) {
        res.statusCode = 400;
        res.body = { error: 'invalid_grant' };
        return;
      }
      c.validRefreshToken = String(body.refresh_token);
    }
    if (c.expiresIn !== undefined) body.expires_in = c.expiresIn;
  });
  testDb = await openTestDb('postgres');
  db = testDb.db;
  await migrate(db, stsMigrations);
});

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
});

afterAll(async () => {
  await Promise.all(extraDbs.map((d) => d.close()));
  await testDb?.cleanup();
  await server?.stop();
});

function newBroker(overrides: Partial<ProviderBrokerOptions> = {}) {
  const registry = new Registry();
  const logger = createLogger({
    service: 'sts-test',
    level: 'debug',
    destination: new Writable({
      write(chunk, _e, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  });
  const broker = createProviderBroker({
    db,
    keyring,
    logger,
    registry,
    sweepIntervalMs: 0,
    ...overrides,
  });
  brokers.push(broker);
  return { broker, registry };
}

function ccConfig(
  clientId: string,
  extra: Partial<OAuth2ClientCredentialsConfig> = {},
): OAuth2ClientCredentialsConfig {
  return {
    kind: 'oauth2_client_credentials',
    tokenUrl,
    clientId,
    clientSecret: SECRET,
    scope: 'read',
    ...extra,
  };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  const v = values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

const uid = (p: string) => `${p}-${Date.now().toString(36)}-${++n}`;

describe('provider broker (real OAuth 2 server, real Postgres)', () => {
  it('fetches client credentials, caches them, and refreshes ahead of expiry', async () => {
    const clock = new ManualClock();
    const { broker } = newBroker({ clock });
    const id = uid('cc');
    const c = client(id);
    c.expiresIn = 300;
    const config = ccConfig(id, { audience: 'https://api.example' });

    const first = await broker.getCredential('prov-cc', config);
    expect(first.headerName).toBe('authorization');
    expect(first.headerValue).toMatch(/^Bearer ey/);
    expect(first.expiresAt).toBe(clock.now() + 300_000);
    expect(c.lastAuthorization).toMatch(/^Basic /);
    expect(c.lastBody).toMatchObject({
      grant_type: 'client_credentials',
      scope: 'read',
      audience: 'https://api.example',
    });
    expect(c.lastBody?.client_secret).toBeUndefined();

    clock.advance(200_000);
    expect(await broker.getCredential('prov-cc', config)).toBe(first);
    expect(c.calls).toBe(1);

    // Inside the 60 s refresh-ahead window: the old token is served at once, a new one is fetched behind it.
    clock.advance(50_000);
    expect(await broker.getCredential('prov-cc', config)).toBe(first);
    await broker.refreshDue();
    expect(c.calls).toBe(2);
    const second = await broker.getCredential('prov-cc', config);
    expect(second.headerValue).not.toBe(first.headerValue);
    expect(second.expiresAt).toBe(clock.now() + 300_000);

    // Stored sealed, never in plaintext.
    const [row] = await db.query<{ sealed_token: string }>(
      'SELECT sealed_token FROM sts_provider_tokens WHERE provider_id = $1',
      ['prov-cc'],
    );
    expect(row?.sealed_token).toMatch(/^v1\./);
    expect(row?.sealed_token).not.toContain(second.headerValue.slice(7, 40));
    expect(broker.status()).toContainEqual(
      expect.objectContaining({ providerId: 'prov-cc', state: 'closed', expiresAt: second.expiresAt }),
    );
  });

  it('sends client_secret_post credentials in the body when asked', async () => {
    const { broker } = newBroker();
    const id = uid('post');
    await broker.getCredential('prov-post', ccConfig(id, { authMethod: 'post' }));
    expect(client(id).lastAuthorization).toBeUndefined();
    expect(client(id).lastBody).toMatchObject({ client_id: id, client_secret: SECRET });
  });

  it('drops the cached and stored token when the provider config changes', async () => {
    const { broker } = newBroker();
    const id = uid('reconf');
    const first = await broker.getCredential('prov-reconf', ccConfig(id));
    expect(await broker.getCredential('prov-reconf', ccConfig(id))).toBe(first); // equal config, new object
    const rotated = await broker.getCredential('prov-reconf', ccConfig(id, { clientSecret: 'new-secret' }));
    expect(rotated.headerValue).not.toBe(first.headerValue);
    expect(client(id).calls).toBe(2);
    // A restarted replica with the new config adopts the stored token instead of fetching again.
    const { broker: other } = newBroker();
    const adopted = await other.getCredential('prov-reconf', ccConfig(id, { clientSecret: 'new-secret' }));
    expect(adopted.headerValue).toBe(rotated.headerValue);
    expect(client(id).calls).toBe(2);
  });

  it('persists a rotated refresh token and uses it after a restart', async () => {
    const clock = new ManualClock();
    const id = uid('rt');
    const c = client(id);
    c.validRefreshToken = 'rt-initial';
    c.expiresIn = 120;
    const config: OAuth2RefreshTokenConfig = {
      kind: 'oauth2_refresh_token',
      tokenUrl,
      clientId: id,
      clientSecret: SECRET,
      refreshToken: 'rt-initial',
    };
    const { broker } = newBroker({ clock });
    const first = await broker.getCredential('prov-rt', config);
    expect(c.lastBody?.refresh_token).toBe('rt-initial');
    const rotated1 = c.validRefreshToken;
    expect(rotated1).not.toBe('rt-initial');

    clock.advance(121_000); // expired: a synchronous refresh with the rotated token
    const second = await broker.getCredential('prov-rt', config);
    expect(c.lastBody?.refresh_token).toBe(rotated1);
    expect(second.headerValue).not.toBe(first.headerValue);

    // A new process (empty memory) reads the latest rotated token from the sealed row.
    await broker.stop();
    const { broker: restarted } = newBroker({ clock });
    clock.advance(121_000);
    const rotated2 = c.validRefreshToken;
    await restarted.getCredential('prov-rt', config);
    expect(c.lastBody?.refresh_token).toBe(rotated2);
    expect(c.calls).toBe(3);
  });

  it('opens the circuit on a revoked credential, fails fast, keeps other providers up, and recovers', async () => {
    const { broker, registry } = newBroker({ breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 } });
    const bad = uid('revoked');
    const good = uid('healthy');
    client(bad).mode = 'invalid_grant';
    const badConfig = ccConfig(bad);

    for (let i = 0; i < 3; i++) {
      const err = await broker.getCredential('prov-bad', badConfig).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CaracalError);
      expect(err).toMatchObject({ code: 'provider_unavailable', status: 503, extras: { reason: 'revoked' } });
    }
    expect(client(bad).calls).toBe(3);
    expect(
      await metric(registry, 'caracal_sts_provider_refresh_errors_total', { provider: 'prov-bad' }),
    ).toBe(3);
    expect(await metric(registry, 'caracal_sts_provider_circuit_open_total', { provider: 'prov-bad' })).toBe(
      1,
    );
    expect(await metric(registry, 'caracal_sts_provider_circuit_state', { provider: 'prov-bad' })).toBe(1);
    expect(broker.status()).toContainEqual(
      expect.objectContaining({
        providerId: 'prov-bad',
        state: 'open',
        lastError: expect.objectContaining({ code: 'invalid_grant', reason: 'revoked' }),
      }),
    );

    const health = await readProviderTokenHealth(db);
    expect(health).toContainEqual(
      expect.objectContaining({
        providerId: 'prov-bad',
        lastError: 'invalid_grant',
        expiresAt: null,
        leaseOwner: null,
      }),
    );

    // Open: a fast 503 without calling the server.
    const started = performance.now();
    await expect(broker.getCredential('prov-bad', badConfig)).rejects.toMatchObject({
      code: 'provider_unavailable',
      status: 503,
    });
    expect(performance.now() - started).toBeLessThan(50);
    expect(client(bad).calls).toBe(3);

    // Another provider is unaffected.
    const other = await broker.getCredential('prov-good', ccConfig(good));
    expect(other.headerValue).toMatch(/^Bearer /);
    expect(await metric(registry, 'caracal_sts_provider_circuit_state', { provider: 'prov-good' })).toBe(0);

    // The provider is fixed; after the half-open delay one trial call closes the circuit.
    client(bad).mode = 'ok';
    await sleep(350);
    const recovered = await broker.getCredential('prov-bad', badConfig);
    expect(recovered.headerValue).toMatch(/^Bearer /);
    expect(client(bad).calls).toBe(4);
    expect(await metric(registry, 'caracal_sts_provider_circuit_state', { provider: 'prov-bad' })).toBe(0);
    expect(broker.status().find((s) => s.providerId === 'prov-bad')?.state).toBe('closed');

    // Secrets never reach the logs, even the one the server echoed in error_description.
    const logs = logLines.join('');
    expect(logs).toContain('revoked');
    expect(logs).not.toContain(SECRET);
    expect(logs).not.toContain(recovered.headerValue.slice(7));
  });

  it('classifies 5xx and timeouts as transient, each bounded by the timeout', async () => {
    const { broker, registry } = newBroker({ timeoutMs: 150 });
    const id = uid('flaky');
    client(id).mode = 'http_503';
    await expect(broker.getCredential('prov-flaky', ccConfig(id))).rejects.toMatchObject({
      code: 'provider_unavailable',
      extras: { reason: 'transient' },
    });
    expect(
      await metric(registry, 'caracal_sts_provider_refresh_errors_total', {
        provider: 'prov-flaky',
        reason: 'transient',
      }),
    ).toBe(1);

    const hanging: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) =>
        init.signal.addEventListener('abort', () => reject(init.signal.reason)),
      );
    const { broker: slow } = newBroker({ timeoutMs: 150, fetch: hanging });
    const started = performance.now();
    await expect(slow.getCredential('prov-hang', ccConfig(uid('hang')))).rejects.toMatchObject({
      code: 'provider_unavailable',
    });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(slow.status()[0]?.lastError?.code).toBe('timeout');
  });

  it('lets only one of two replicas refresh; the other reads the stored token', async () => {
    const clock = new ManualClock();
    const id = uid('shared');
    const c = client(id);
    c.expiresIn = 300;
    const config = ccConfig(id);
    // The second replica has its own pool on the same schema; its token calls are slow, widening the race.
    const db2 = await openDb({ url: testDb.location, schema: db.schema, poolSize: 3 });
    extraDbs.push(db2);
    const slowFetch: FetchLike = async (url, init) => {
      await sleep(100);
      return undiciFetch(url, init) as unknown as ReturnType<FetchLike>;
    };
    const { broker: a } = newBroker({ clock, fetch: slowFetch, owner: 'replica-a' });
    const { broker: b } = newBroker({ clock, db: db2, fetch: slowFetch, owner: 'replica-b' });

    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).getCredential('prov-shared', config)),
    );
    expect(c.calls).toBe(1);
    expect(new Set(results.map((r) => r.headerValue)).size).toBe(1);

    // Both reach the refresh-ahead window at once: still one call to the server.
    clock.advance(250_000);
    await Promise.all([a.getCredential('prov-shared', config), b.getCredential('prov-shared', config)]);
    await Promise.all([a.refreshDue(), b.refreshDue()]);
    expect(c.calls).toBe(2);
    // The replica that lost reads the winner's token, or serves its still-valid one and adopts the new one next.
    clock.advance(1_000);
    await Promise.all([a.refreshDue(), b.refreshDue()]);
    const [fa, fb] = await Promise.all([
      a.getCredential('prov-shared', config),
      b.getCredential('prov-shared', config),
    ]);
    expect(fa.headerValue).toBe(fb.headerValue);
    expect(fa.headerValue).not.toBe(results[0]?.headerValue);
    expect(c.calls).toBe(2);
  });

  it('takes over the lease of a replica that died while refreshing, once the lease lapses', async () => {
    const clock = new ManualClock();
    const id = uid('orphan');
    await db.query(
      `INSERT INTO sts_provider_tokens (provider_id, lease_owner, lease_until) VALUES ($1, 'dead-replica', $2)`,
      ['prov-orphan', new Date(clock.now() + 10_000)],
    );
    const { broker } = newBroker({ clock, timeoutMs: 200 });
    await expect(broker.getCredential('prov-orphan', ccConfig(id))).rejects.toMatchObject({
      code: 'provider_unavailable',
      status: 503,
    });
    expect(client(id).calls).toBe(0);
    clock.advance(10_001);
    const cred = await broker.getCredential('prov-orphan', ccConfig(id));
    expect(cred.headerValue).toMatch(/^Bearer /);
    expect(client(id).calls).toBe(1);
    expect(broker.status().find((s) => s.providerId === 'prov-orphan')?.state).toBe('closed');
  });

  it('serves a static API key without calling anything', async () => {
    let called = 0;
    const { broker } = newBroker({
      fetch: async () => {
        called++;
        throw new Error('must not be called');
      },
    });
    const cred = await broker.getCredential('prov-static', {
      kind: 'static_api_key',
      apiKey: 'k-123',
      headerName: 'X-Api-Key',
    });
    expect(cred).toEqual({ kind: 'static_api_key', headerName: 'x-api-key', headerValue: 'k-123' });
    const bearer = await broker.getCredential('prov-static-2', {
      kind: 'static_api_key',
      apiKey: 'k-456',
      scheme: 'Bearer',
    });
    expect(bearer.headerValue).toBe('Bearer k-456');
    expect(called).toBe(0);
    expect(broker.status()).toContainEqual({
      providerId: 'prov-static',
      kind: 'static_api_key',
      state: 'closed',
    });
  });
});

describe('provider broker on PGlite (embedded mode)', () => {
  let lite: TestDb;
  beforeAll(async () => {
    lite = await openTestDb('pglite');
    await migrate(lite.db, stsMigrations);
  });
  afterAll(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.stop()));
    await lite?.cleanup();
  });

  it('fetches, refreshes ahead, rotates and invalidates on revocation', async () => {
    const clock = new ManualClock();
    const id = uid('lite');
    const c = client(id);
    c.expiresIn = 120;
    c.validRefreshToken = 'rt-lite';
    const config: OAuth2RefreshTokenConfig = {
      kind: 'oauth2_refresh_token',
      tokenUrl,
      clientId: id,
      refreshToken: 'rt-lite',
    };
    const { broker } = newBroker({ clock, db: lite.db });
    const first = await broker.getCredential('prov-lite', config);
    expect(c.lastBody).toMatchObject({ client_id: id, refresh_token: 'rt-lite' }); // public client
    clock.advance(70_000);
    expect(await broker.getCredential('prov-lite', config)).toBe(first);
    await broker.refreshDue();
    const second = await broker.getCredential('prov-lite', config);
    expect(second.headerValue).not.toBe(first.headerValue);
    expect(c.calls).toBe(2);

    c.mode = 'invalid_grant';
    clock.advance(121_000);
    await expect(broker.getCredential('prov-lite', config)).rejects.toMatchObject({
      code: 'provider_unavailable',
    });
    const health = await readProviderTokenHealth(lite.db);
    expect(health).toEqual([
      expect.objectContaining({ providerId: 'prov-lite', expiresAt: null, lastError: 'invalid_grant' }),
    ]);
  });
});
