// Seeds a zone the STS can mint for, through the control-plane domain functions; for tests and benchmarks.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type Bus, busMigrations, createBus } from '@caracal/bus';
import {
  configSchema,
  createLogger,
  type Keyring,
  loadConfig,
  type Service,
  systemClock,
} from '@caracal/core';
import {
  activatePolicySet,
  createApplication,
  createPolicySet,
  createPolicyVersion,
  createResource,
  createZone,
  putDataDocument,
  stateMigrations,
} from '@caracal/state';
import { type Db, type Migration, mergeMigrations, storeMigrations } from '@caracal/store';
import { createSts } from './index.js';
import { stsMigrations } from './migrations/index.js';
import { TOKEN_EXCHANGE_GRANT } from './token/request.js';

/** The tables an STS needs. */
export const stsTestMigrations: Migration[] = mergeMigrations(
  storeMigrations,
  busMigrations,
  stateMigrations,
  stsMigrations,
);

export interface SeededZone {
  zoneId: string;
  appId: string;
  secret: string;
  /** Form fields of an exchange the zone's policy allows. */
  form: Record<string, string>;
  /** Activate a new policy set made of one adopter module. */
  activate(source: string): Promise<unknown>;
}

/** A zone with one application granted `scopes` on `resource://crm/*`, and an activated adopter policy. */
export async function seedZone(
  db: Db,
  keyring: Keyring,
  opts: {
    zoneId?: string;
    scopes?: string[];
    policy?: string;
    grant?: Record<string, unknown>;
    data?: Record<string, unknown>;
    upstreamUrl?: string;
  } = {},
): Promise<SeededZone> {
  const zoneId = opts.zoneId ?? 'z1';
  const scopes = opts.scopes ?? ['read'];
  const ctx = () => ({ keyring, now: Date.now(), actor: 'test' });
  await createZone(db, ctx(), { id: zoneId, name: `Zone ${zoneId}` });
  const app = await createApplication(db, ctx(), zoneId, { name: 'agent' });
  const appId = app.application.id;
  await createResource(db, ctx(), zoneId, {
    identifier: 'resource://crm/contacts',
    scopes,
    upstream_url: opts.upstreamUrl ?? 'https://crm.example.com/api',
  });
  await putDataDocument(db, ctx(), zoneId, {
    document: {
      app_ids: { [appId]: true },
      grants: { [appId]: [{ id: 'g-crm', resource: 'resource://crm/*', scopes, ...opts.grant }] },
      ...opts.data,
    },
  });
  const activate = async (source: string) => {
    const { policy } = await createPolicyVersion(db, ctx(), zoneId, { name: 'adopter', source });
    const { policySet } = await createPolicySet(db, ctx(), zoneId, {
      modules: [{ name: 'adopter', version: policy.version }],
    });
    return activatePolicySet(db, ctx(), zoneId, policySet.version);
  };
  await activate(opts.policy ?? 'package caracal.authz\n');
  return {
    zoneId,
    appId,
    secret: app.client_secret,
    form: {
      grant_type: TOKEN_EXCHANGE_GRANT,
      zone_id: zoneId,
      application_id: appId,
      client_secret: app.client_secret,
      resource: 'resource://crm/contacts',
      scope: scopes[0]!,
    },
    activate,
  };
}

export interface TestSts {
  service: Service;
  url: string;
  bus: Bus;
  stop(): Promise<void>;
}

/** An STS on a free port over `db`, with a throwaway data dir; the bus defaults to the Postgres stream on `db`. */
export async function startTestSts(
  db: Db,
  keyring: Keyring,
  opts: { bus?: Bus; flags?: Record<string, unknown>; logs?: string[] } = {},
): Promise<TestSts> {
  // With `logs`, every line down to debug is collected there, so tests can assert on what would be logged.
  const logs = opts.logs;
  const logger = logs
    ? createLogger({
        level: 'debug',
        destination: new Writable({ write: (c, _e, cb) => cb(void logs.push(String(c))) }),
      })
    : createLogger({ level: 'silent' });
  const data = mkdtempSync(join(tmpdir(), 'caracal-sts-test-'));
  const config = loadConfig(configSchema, {
    env: {},
    flags: { data, ports: { sts: 0 }, ...opts.flags },
  });
  const bus =
    opts.bus ??
    createBus({ db, hmacKey: 'h'.repeat(40), producerId: 'sts-test', clock: systemClock, logger });
  const service = createSts({
    config,
    logger,
    clock: systemClock,
    db,
    bus,
    migrations: stsTestMigrations,
    keyring,
    processMetrics: false,
  });
  const url = await service.start();
  return {
    service,
    url,
    bus,
    async stop() {
      await service.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}
