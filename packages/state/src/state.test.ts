import { CaracalError, createKeyring } from '@caracal/core';
import { type Db, enqueue, mergeMigrations, migrate, storeMigrations } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activatePolicySet,
  authenticateAdminKey,
  authenticateApplication,
  createAdminKey,
  createApplication,
  createPolicySet,
  createPolicyVersion,
  createProvider,
  createResource,
  createZone,
  getProvider,
  getRolloutFreeze,
  getZone,
  hostMatches,
  listApplications,
  listProviders,
  listResources,
  listSigningKeys,
  listZoneIds,
  loadZoneSnapshot,
  openProviderSecret,
  putDataDocument,
  resourceIdentifier,
  revokeAdminKey,
  rotateApplicationSecret,
  rotateSigningKey,
  scopesAllow,
  setRolloutFreeze,
  stateMigrations,
  updateApplication,
  updateProvider,
  type WriteContext,
  zoneVersions,
} from './index.js';

const keyring = createKeyring('state-test-master-key-0123456789abcdef');
const T0 = Date.parse('2026-01-01T00:00:00Z');
const ctx = (now = T0, actor = 'bootstrap'): WriteContext => ({ keyring, now, actor });
let zoneSeq = 0;
const zid = () => `z${Date.now().toString(36)}-${++zoneSeq}`;

const GOOD_POLICY = `package zone

default allow := false

allow if {
  input.app_id in data.app_ids
}
`;
const BROKEN_POLICY = 'package zone\n\nallow if {\n  input.x ==\n';

async function events(db: Db, type?: string) {
  const rows = await db.query<{ payload: { type: string; zoneId: string | null; actor: string } }>(
    `SELECT payload FROM outbox WHERE owner = 'caracal_api' AND stream = 'caracal.control' ORDER BY id`,
  );
  return rows.map((r) => r.payload).filter((p) => type === undefined || p.type === type);
}

async function expectCode(p: Promise<unknown>, code: string, status?: number): Promise<CaracalError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaracalError);
  expect((err as CaracalError).code).toBe(code);
  if (status !== undefined) expect((err as CaracalError).status).toBe(status);
  return err as CaracalError;
}

const migrations = mergeMigrations(storeMigrations, stateMigrations);

describe.each(['postgres', 'pglite'] as const)('control-plane CRUD on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(kind);
    await migrate(t.db, migrations);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('creates a zone with a signing key and refuses a duplicate', async () => {
    const id = zid();
    const zone = await createZone(t.db, ctx(), { id, name: 'Prod' });
    expect(zone).toMatchObject({ id, name: 'Prod', active_policy_set: null });
    const keys = await listSigningKeys(t.db, id, T0);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ status: 'current', alg: 'ES256' });
    expect(JSON.stringify(keys)).not.toMatch(/"d":/);
    await expectCode(createZone(t.db, ctx(), { id, name: 'Again' }), 'zone_exists', 409);
    expect(await listZoneIds(t.db)).toContain(id);
    await expectCode(getZone(t.db, 'nope'), 'zone_not_found', 404);
  });

  it('shows a client secret once and verifies it via its digest only', async () => {
    const id = zid();
    await createZone(t.db, ctx(), { id, name: 'z' });
    const { application, client_secret } = await createApplication(t.db, ctx(), id, { name: 'agent' });
    expect(client_secret).toMatch(/^cs_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(application)).not.toContain(client_secret);
    const [row] = await t.db.query<{ secret_digest: string }>(
      'SELECT secret_digest FROM state_applications WHERE id = $1',
      [application.id],
    );
    expect(row?.secret_digest).not.toContain(client_secret);
    expect(await authenticateApplication(t.db, keyring, id, application.id, client_secret, T0)).toBe(true);
    expect(await authenticateApplication(t.db, keyring, id, application.id, `${client_secret}x`, T0)).toBe(
      false,
    );
    await updateApplication(t.db, ctx(), id, application.id, { status: 'disabled' });
    expect(await authenticateApplication(t.db, keyring, id, application.id, client_secret, T0)).toBe(false);
    const listed = await listApplications(t.db, id);
    expect(JSON.stringify(listed)).not.toContain(client_secret);
  });

  it('creates resources, refuses duplicates and paginates', async () => {
    const id = zid();
    await createZone(t.db, ctx(), { id, name: 'z' });
    for (let i = 0; i < 5; i++) {
      await createResource(t.db, ctx(), id, {
        identifier: `resource://api.example.com/r${i}`,
        scopes: ['read', 'write'],
        upstream_url: 'https://api.example.com/v1',
        operations: [{ method: 'GET', path: '/items/:id', scope: 'read' }],
      });
    }
    await expectCode(
      createResource(t.db, ctx(), id, {
        identifier: 'resource://api.example.com/r0',
        scopes: ['x'],
        upstream_url: 'https://a.b',
      }),
      'resource_exists',
      409,
    );
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listResources(t.db, id, { limit: 2, cursor });
      seen.push(...page.items.map((r) => r.identifier));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([0, 1, 2, 3, 4].map((i) => `resource://api.example.com/r${i}`));
    const r = (await listResources(t.db, id, { limit: 1 })).items[0];
    expect(r?.allowed_hosts).toEqual(['api.example.com']);
  });

  it('seals provider secrets and never returns them', async () => {
    const id = zid();
    await createZone(t.db, ctx(), { id, name: 'z' });
    const secret = 'sk_live_provider_secret_value_123';
    const p = await createProvider(t.db, ctx(), id, {
      name: 'gh',
      kind: 'oauth2_client_credentials',
      config: { token_url: 'https://idp.example.com/token', client_id: 'cid' },
      secret: { client_secret: secret },
    });
    expect(p.secret_fields).toEqual(['client_secret']);
    const texts = [p, await getProvider(t.db, id, p.id), await listProviders(t.db, id)].map((x) =>
      JSON.stringify(x),
    );
    for (const text of texts) expect(text).not.toContain(secret);
    const [row] = await t.db.query<{ sealed_secret: string }>(
      'SELECT sealed_secret FROM state_providers WHERE id = $1',
      [p.id],
    );
    expect(row?.sealed_secret).not.toContain(secret);
    const snap = await loadZoneSnapshot(t.db, keyring, id, T0);
    expect(JSON.stringify(snap.providers)).not.toContain(secret);
    expect(openProviderSecret(keyring, snap.providers[0]!)).toEqual({ client_secret: secret });
    expect(JSON.stringify(await events(t.db))).not.toContain(secret);
  });
});

describe('resource identifiers and hosts', () => {
  it('accepts only strict resource:// identifiers', () => {
    const ok = ['resource://api.example.com', 'resource://files/v1/docs', 'resource://a-b.c9/x.y/_z~'];
    const bad = [
      'https://api.example.com',
      'resource://API.example.com',
      'resource://api.example.com/',
      'resource://a//b',
      'resource://a/../b',
      'resource://a/./b',
      'resource://-a.example.com',
      'resource:///x',
      'resource://a?x=1',
      'resource://a#f',
      'resource://a/b c',
      'resource://a:8080',
      `resource://${'a'.repeat(250)}`,
    ];
    for (const s of ok) expect([s, resourceIdentifier.safeParse(s).success]).toEqual([s, true]);
    for (const s of bad) expect([s, resourceIdentifier.safeParse(s).success]).toEqual([s, false]);
  });

  it('matches allowlist entries against hosts', () => {
    expect(hostMatches('api.example.com', 'api.example.com')).toBe(true);
    expect(hostMatches('api.example.com', 'api.example.com:8443')).toBe(true);
    expect(hostMatches('api.example.com:8443', 'api.example.com')).toBe(false);
    expect(hostMatches('*.example.com', 'a.b.example.com')).toBe(true);
    expect(hostMatches('*.example.com', 'example.com')).toBe(false);
    expect(hostMatches('*.example.com', 'evilexample.com')).toBe(false);
  });
});

describe('control-plane domain on postgres', () => {
  let t: TestDb;
  let db: Db;
  beforeAll(async () => {
    t = await openTestDb('postgres');
    db = t.db;
    await migrate(db, migrations);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('keeps the previous client secret valid for the overlap window only', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    const first = await createApplication(db, ctx(), id, { name: 'a' });
    const appId = first.application.id;
    const second = await rotateApplicationSecret(db, ctx(T0 + 1000), id, appId, { overlap_seconds: 60 });
    expect(second.client_secret).not.toBe(first.client_secret);
    expect(second.application.previous_secret_expires_at).toBe(new Date(T0 + 61_000).toISOString());
    const auth = (s: string, at: number) => authenticateApplication(db, keyring, id, appId, s, at);
    expect(await auth(second.client_secret, T0 + 2000)).toBe(true);
    expect(await auth(first.client_secret, T0 + 60_000)).toBe(true);
    expect(await auth(first.client_secret, T0 + 61_000)).toBe(false);
    // Default overlap is 24 h; a second rotation drops the first secret at once.
    const third = await rotateApplicationSecret(db, ctx(T0 + 2000), id, appId);
    expect(third.application.previous_secret_expires_at).toBe(new Date(T0 + 2000 + 86_400_000).toISOString());
    expect(await auth(second.client_secret, T0 + 3000)).toBe(true);
    expect(await auth(first.client_secret, T0 + 3000)).toBe(false);
    // Overlap 0 revokes the previous secret immediately.
    const fourth = await rotateApplicationSecret(db, ctx(T0 + 3000), id, appId, { overlap_seconds: 0 });
    expect(await auth(third.client_secret, T0 + 3000)).toBe(false);
    expect(await auth(fourth.client_secret, T0 + 3000)).toBe(true);
  });

  it('dedupes policy versions and policy sets by content', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    const a = await createPolicyVersion(db, ctx(), id, { name: 'zone.rego', source: GOOD_POLICY });
    const b = await createPolicyVersion(db, ctx(), id, { name: 'zone.rego', source: GOOD_POLICY });
    expect(a.created).toBe(true);
    expect(b).toMatchObject({
      created: false,
      policy: { version: a.policy.version, content_hash: a.policy.content_hash },
    });
    const c = await createPolicyVersion(db, ctx(), id, {
      name: 'zone.rego',
      source: `${GOOD_POLICY}\n# v2\n`,
    });
    expect(c.policy.version).toBe(2);
    const s1 = await createPolicySet(db, ctx(), id, { modules: [{ name: 'zone.rego', version: 1 }] });
    const s2 = await createPolicySet(db, ctx(), id, { modules: [{ name: 'zone.rego', version: 1 }] });
    expect(s2).toMatchObject({ created: false, policySet: { version: s1.policySet.version } });
    await expectCode(
      createPolicySet(db, ctx(), id, { modules: [{ name: 'zone.rego', version: 9 }] }),
      'policy_not_found',
      404,
    );
  });

  it('refuses to activate a set that does not compile and keeps the previous activation', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    await createPolicyVersion(db, ctx(), id, { name: 'zone.rego', source: GOOD_POLICY });
    await createPolicyVersion(db, ctx(), id, { name: 'broken.rego', source: BROKEN_POLICY });
    const good = await createPolicySet(db, ctx(), id, { modules: [{ name: 'zone.rego', version: 1 }] });
    const bad = await createPolicySet(db, ctx(), id, {
      modules: [
        { name: 'zone.rego', version: 1 },
        { name: 'broken.rego', version: 1 },
      ],
    });
    await activatePolicySet(db, ctx(T0 + 5), id, good.policySet.version);
    const before = await events(db, 'policy_set.activated');
    const err = await expectCode(
      activatePolicySet(db, ctx(), id, bad.policySet.version),
      'policy_compile_failed',
      422,
    );
    const errors = err.extras.errors as { code: string; message: string; location: string }[];
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]?.code).toMatch(/^rego_/);
    expect(errors[0]?.location).toMatch(/^broken\.rego:\d+:\d+$/);
    const zone = await getZone(db, id);
    expect(zone.active_policy_set).toBe(good.policySet.version);
    expect(await events(db, 'policy_set.activated')).toHaveLength(before.length);
    await expectCode(activatePolicySet(db, ctx(), id, 99), 'policy_set_not_found', 404);
  });

  it('refuses activations while the rollout is frozen', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    await createPolicyVersion(db, ctx(), id, { name: 'zone.rego', source: GOOD_POLICY });
    const set = await createPolicySet(db, ctx(), id, { modules: [{ name: 'zone.rego', version: 1 }] });
    await expectCode(setRolloutFreeze(db, ctx(), { frozen: true }), 'validation_failed', 400);
    await setRolloutFreeze(db, ctx(), { frozen: true, reason: 'incident 42' });
    expect(await getRolloutFreeze(db)).toMatchObject({
      frozen: true,
      reason: 'incident 42',
      updated_by: 'bootstrap',
    });
    const err = await expectCode(
      activatePolicySet(db, ctx(), id, set.policySet.version),
      'rollout_frozen',
      409,
    );
    expect(err.detail).toContain('incident 42');
    expect((await getZone(db, id)).active_policy_set).toBeNull();
    await setRolloutFreeze(db, ctx(), { frozen: false });
    await activatePolicySet(db, ctx(), id, set.policySet.version);
    expect((await getZone(db, id)).active_policy_set).toBe(set.policySet.version);
  });

  it('writes the outbox event in the same transaction: a rolled back change writes none', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    const before = (await events(db)).length;
    await expect(
      db.tx(async (tx) => {
        await createApplication(tx, ctx(), id, { name: 'doomed' });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await events(db)).toHaveLength(before);
    expect((await listApplications(db, id)).items).toHaveLength(0);
    const v0 = (await zoneVersions(db)).get(id)!;
    await createApplication(db, ctx(T0, 'ak_test'), id, { name: 'kept' });
    const after = await events(db, 'application.created');
    expect(after.at(-1)).toMatchObject({ type: 'application.created', zoneId: id, actor: 'ak_test' });
    expect((await zoneVersions(db)).get(id)).toBe(v0 + 1);
    // A failed validation writes nothing either.
    await expectCode(createApplication(db, ctx(), id, { name: '' }), 'validation_failed', 400);
    expect(await events(db)).toHaveLength(before + 1);
    // enqueue is usable by the same transaction (sanity: the outbox table belongs to the store's migrations).
    await db.tx((tx) => enqueue(tx, { owner: 'other', stream: 's', payload: {} }));
  });

  it('replaces provider secrets without ever returning them', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    const p = await createProvider(db, ctx(), id, {
      name: 'k',
      kind: 'static_api_key',
      secret: { api_key: 'old-key-value' },
    });
    expect(p.config).toEqual({ header_name: 'authorization', value_prefix: '' });
    const u = await updateProvider(db, ctx(), id, p.id, { secret: { api_key: 'new-key-value' } });
    expect(JSON.stringify(u)).not.toContain('key-value');
    await expectCode(
      updateProvider(db, ctx(), id, p.id, { secret: { token: 'x' } }),
      'validation_failed',
      400,
    );
    const snap = await loadZoneSnapshot(db, keyring, id, T0);
    expect(openProviderSecret(keyring, snap.providers[0]!)).toEqual({ api_key: 'new-key-value' });
  });

  it('loads a zone snapshot for the STS', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    const app = await createApplication(db, ctx(), id, { name: 'a' });
    await createResource(db, ctx(), id, {
      identifier: 'resource://files.example.com',
      scopes: ['read'],
      upstream_url: 'https://files.example.com',
    });
    let snap = await loadZoneSnapshot(db, keyring, id, T0);
    expect(snap.policy).toBeNull();
    await createPolicyVersion(db, ctx(), id, { name: 'zone.rego', source: GOOD_POLICY });
    const set = await createPolicySet(db, ctx(), id, { modules: [{ name: 'zone.rego', version: 1 }] });
    await putDataDocument(db, ctx(), id, { document: { app_ids: [app.application.id] } });
    const again = await putDataDocument(db, ctx(), id, { document: { app_ids: [app.application.id] } });
    expect(again.created).toBe(false);
    await activatePolicySet(db, ctx(T0 + 10), id, set.policySet.version);
    const oldKid = snap.signing_keys.current.kid;
    await rotateSigningKey(db, ctx(T0 + 20), id, { retire_after_seconds: 3600 });
    snap = await loadZoneSnapshot(db, keyring, id, T0 + 30);
    expect(snap.version).toBe((await zoneVersions(db)).get(id));
    expect(snap.applications).toEqual([
      expect.objectContaining({ id: app.application.id, status: 'active', previous_secret_digest: null }),
    ]);
    expect(snap.applications[0]?.secret_digest).toBe(keyring.digest(app.client_secret, 'client-secret'));
    expect(snap.resources.map((r) => r.identifier)).toEqual(['resource://files.example.com']);
    expect(snap.policy).toMatchObject({
      version: set.policySet.version,
      activated_at: new Date(T0 + 10).toISOString(),
      modules: [{ name: 'zone.rego', version: 1, source: GOOD_POLICY }],
      data: { app_ids: [app.application.id] },
      data_version: 1,
    });
    expect(snap.signing_keys.current.kid).not.toBe(oldKid);
    expect(snap.signing_keys.current.private_jwk).toHaveProperty('d');
    expect(snap.signing_keys.previous).toEqual([
      expect.objectContaining({ kid: oldKid, retire_after: new Date(T0 + 20 + 3_600_000).toISOString() }),
    ]);
    expect(snap.signing_keys.previous[0]).not.toHaveProperty('private_jwk');
    // Past retire_after the previous key is no longer listed.
    const later = await loadZoneSnapshot(db, keyring, id, T0 + 20 + 3_600_001);
    expect(later.signing_keys.previous).toEqual([]);
    await expectCode(loadZoneSnapshot(db, keyring, 'missing-zone'), 'zone_not_found', 404);
  });

  it('serializes concurrent writes of one zone without deadlocks and counts each in the version', async () => {
    const id = zid();
    await createZone(db, ctx(), { id, name: 'z' });
    const app = await createApplication(db, ctx(), id, { name: 'a' });
    const prov = await createProvider(db, ctx(), id, {
      name: 'p',
      kind: 'static_api_key',
      secret: { api_key: 'k' },
    });
    const v0 = (await zoneVersions(db)).get(id)!;
    const writes = Array.from({ length: 24 }, (_, i) => {
      switch (i % 6) {
        case 0:
          return rotateApplicationSecret(db, ctx(), id, app.application.id);
        case 1:
          return updateApplication(db, ctx(), id, app.application.id, { name: `a${i}` });
        case 2:
          return updateProvider(db, ctx(), id, prov.id, { name: `p${i}` });
        case 3:
          return createPolicyVersion(db, ctx(), id, { name: `m${i}.rego`, source: GOOD_POLICY });
        case 4:
          return rotateSigningKey(db, ctx(), id, { retire_after_seconds: 60 });
        default:
          return createApplication(db, ctx(), id, { name: `n${i}` });
      }
    });
    await Promise.all(writes);
    expect((await zoneVersions(db)).get(id)).toBe(v0 + 24);
    const zoneEvents = (await events(db)).filter((e) => e.zoneId === id);
    expect(zoneEvents.length).toBe(3 + 24);
  });

  it('authenticates admin keys and checks scopes', async () => {
    const { admin_key, token } = await createAdminKey(db, ctx(), { name: 'ci', scopes: ['zone:prod:admin'] });
    expect(token.startsWith(`${admin_key.id}.`)).toBe(true);
    expect(JSON.stringify(admin_key)).not.toContain(token.split('.')[1]);
    expect((await authenticateAdminKey(db, keyring, token))?.id).toBe(admin_key.id);
    expect(await authenticateAdminKey(db, keyring, `${token}x`)).toBeNull();
    expect(await authenticateAdminKey(db, keyring, 'garbage')).toBeNull();
    await revokeAdminKey(db, ctx(), admin_key.id);
    expect(await authenticateAdminKey(db, keyring, token)).toBeNull();
    expect(scopesAllow(['read'], { method: 'GET' })).toBe(true);
    expect(scopesAllow(['read'], { method: 'POST' })).toBe(false);
    expect(scopesAllow(['zone:prod:admin'], { method: 'POST', zoneId: 'prod' })).toBe(true);
    expect(scopesAllow(['zone:prod:admin'], { method: 'POST', zoneId: 'dev' })).toBe(false);
    expect(scopesAllow(['zone:prod:admin'], { method: 'GET', globalOnly: true })).toBe(false);
    expect(scopesAllow(['zone:prod:read'], { method: 'DELETE', zoneId: 'prod' })).toBe(false);
  });
});
