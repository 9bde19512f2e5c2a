import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApi } from '@caracal/api';
import { createAudit } from '@caracal/audit';
import { type Bus, busMigrations, createBus } from '@caracal/bus';
import { createConsole } from '@caracal/console-server';
import { createCoordinator } from '@caracal/coordinator';
import {
  type CaracalConfig,
  configSchema,
  createKeyring,
  createLogger,
  type Keyring,
  type Logger,
  loadConfig,
  SERVICE_NAMES,
  type Service,
  type ServiceName,
  systemClock,
} from '@caracal/core';
import { createGateway, gatewayMigrations } from '@caracal/gateway';
import { stateMigrations } from '@caracal/state';
import { type Db, type Migration, mergeMigrations, migrate, openDb, storeMigrations } from '@caracal/store';
import { createSts, stsMigrations } from '@caracal/sts';

/** Every migration of the product, in version order. */
export const productMigrations: Migration[] = mergeMigrations(
  storeMigrations,
  busMigrations,
  stateMigrations,
  stsMigrations,
  gatewayMigrations,
);

export interface GlobalFlags {
  data?: string;
  postgres?: string;
  redis?: string;
  host?: string;
  config?: string;
  logLevel?: string;
}

/** The one place CLI flags meet the config loader. */
export function loadCliConfig(flags: GlobalFlags): CaracalConfig {
  return loadConfig(configSchema, {
    file: flags.config,
    flags: {
      data: flags.data,
      databaseUrl: flags.postgres,
      redisUrl: flags.redis,
      host: flags.host,
      logLevel: flags.logLevel,
    },
  });
}

interface Secrets {
  busHmacKey: string;
  adminToken: string;
  masterKey: string;
}

/**
 * Secrets from config, else from `<data>/secrets.json` (created 0600 on first use).
 * Several processes on one machine share the file; separate machines must configure
 * CARACAL_BUS_HMAC_KEY and CARACAL_MASTER_KEY.
 */
export function resolveSecrets(config: CaracalConfig): Secrets {
  const file = join(config.data, 'secrets.json');
  let stored: Partial<Secrets> = {};
  try {
    stored = JSON.parse(readFileSync(file, 'utf8')) as Partial<Secrets>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new Error(`${file}: ${(err as Error).message}`);
  }
  const secrets: Secrets = {
    busHmacKey: config.busHmacKey ?? stored.busHmacKey ?? randomBytes(32).toString('base64url'),
    adminToken: config.adminToken ?? stored.adminToken ?? `cat_${randomBytes(24).toString('base64url')}`,
    masterKey: config.masterKey ?? stored.masterKey ?? randomBytes(32).toString('base64url'),
  };
  // Persist generated values only; configured ones never touch the disk.
  const keep: Partial<Secrets> = { ...stored };
  for (const k of ['busHmacKey', 'adminToken', 'masterKey'] as const) {
    if (!config[k] && !stored[k]) keep[k] = secrets[k];
  }
  if (Object.keys(keep).length !== Object.keys(stored).length) {
    mkdirSync(config.data, { recursive: true, mode: 0o700 });
    writeFileSync(file, `${JSON.stringify(keep, null, 2)}\n`, { mode: 0o600 });
  }
  return secrets;
}

/** Opens the configured database: PostgreSQL when a URL is set, else PGlite under the data dir. */
export async function openConfiguredDb(config: CaracalConfig, applicationName: string): Promise<Db> {
  const schema = config.databaseSchema;
  if (config.databaseUrl) return openDb({ url: config.databaseUrl, schema, applicationName });
  mkdirSync(config.data, { recursive: true, mode: 0o700 });
  const dataDir = join(config.data, 'pgdata');
  seedPgliteDataDir(dataDir);
  return openDb({ dataDir, schema });
}

/**
 * A new data dir starts as a copy of the initdb'd template the build prepares beside the bundle,
 * which takes a fraction of initdb's seconds. Without a template PGlite runs initdb itself.
 */
function seedPgliteDataDir(dataDir: string): void {
  if (existsSync(join(dataDir, 'PG_VERSION'))) return;
  const template = fileURLToPath(new URL('./pglite-template', import.meta.url));
  if (!existsSync(join(template, 'PG_VERSION'))) return;
  const partial = `${dataDir}.seeding-${process.pid}`;
  cpSync(template, partial, { recursive: true });
  rmSync(join(partial, 'CARACAL_PGLITE_VERSION'), { force: true });
  rmSync(dataDir, { recursive: true, force: true });
  renameSync(partial, dataDir);
}

export function describeStorage(config: CaracalConfig): string {
  const sql = config.databaseUrl
    ? `PostgreSQL ${redact(config.databaseUrl)}`
    : `PGlite at ${join(config.data, 'pgdata')}`;
  const bus = config.redisUrl
    ? `Redis Streams ${redact(config.redisUrl)}`
    : 'stream tables in the same database';
  return `SQL: ${sql}; bus: ${bus}`;
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** Everything a service factory may take; each takes the part it needs. */
type StackDeps = Parameters<typeof createApi>[0] & { keyring: Keyring; adminToken: string };
type Factory = (deps: StackDeps) => Service;
const FACTORIES: Record<ServiceName, Factory> = {
  api: createApi,
  console: createConsole,
  sts: createSts,
  gateway: createGateway,
  audit: createAudit,
  coordinator: createCoordinator,
};

export interface Stack {
  logger: Logger;
  db: Db;
  bus: Bus;
  services: Service[];
  secrets: Secrets;
  start(): Promise<{ name: string; url: string }[]>;
  stop(): Promise<void>;
}

/** Opens storage and bus and builds the named services; nothing listens until start(). */
export async function openStack(
  config: CaracalConfig,
  names: readonly ServiceName[],
  opts: { migrate: boolean },
): Promise<Stack> {
  const logger = createLogger({ level: config.logLevel });
  const secrets = resolveSecrets(config);
  const db = await openConfiguredDb(config, `caracal-${names.join('-')}`);
  let bus: Bus;
  try {
    if (opts.migrate) await migrate(db, productMigrations);
    bus = await createBus({
      redisUrl: config.redisUrl,
      keyPrefix: `${config.redisKeyPrefix}bus:`,
      db,
      hmacKey: secrets.busHmacKey,
      producerId: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
      clock: systemClock,
      logger,
    });
  } catch (err) {
    await db.close();
    throw err;
  }
  const keyring = createKeyring(secrets.masterKey, config.previousMasterKeys);
  const services = names.map((name, i) =>
    FACTORIES[name]({
      config,
      logger,
      clock: systemClock,
      db,
      bus,
      migrations: productMigrations,
      keyring,
      adminToken: secrets.adminToken,
      processMetrics: i === 0,
    }),
  );
  return {
    logger,
    db,
    bus,
    services,
    secrets,
    async start() {
      const urls = [];
      for (const s of services) urls.push({ name: s.name, url: await s.start() });
      return urls;
    },
    async stop() {
      await Promise.all(services.map((s) => s.stop()));
      await bus.close();
      await db.close();
    },
  };
}

export { SERVICE_NAMES };
