import { attachBus, type Bus } from '@caracal/bus';
import {
  CaracalError,
  createServiceBase,
  type Keyring,
  type Service,
  type ServiceContext,
} from '@caracal/core';
import { CONTROL_STREAM, OUTBOX_OWNER, stateMigrations } from '@caracal/state';
import { attachDb, createOutboxRelay, type Db, type Migration, outboxStatus } from '@caracal/store';
import { registerRoutes } from './routes.js';

export type ApiDeps = ServiceContext & {
  db: Db;
  bus: Bus;
  migrations: Migration[];
  /** Seals provider secrets and signing keys; digests client secrets and admin keys. */
  keyring: Keyring;
  /** Bootstrap admin token (scope `admin`, actor 'bootstrap'). */
  adminToken: string;
};

/** Oldest pending outbox event the readiness check tolerates (the alert fires at the same age). */
export const OUTBOX_AGE_BUDGET_MS = 300_000;

/**
 * The api service: admin routes under /v1 over @caracal/state, and the relay that publishes its outbox
 * (owner `caracal_api`) to the bus stream `caracal.control`.
 */
export function createApi(deps: ApiDeps): Service {
  const service = createServiceBase({ name: 'api', port: deps.config.ports.api, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);

  // Fail closed if a caller wires the service without its secrets or the state migrations.
  const missing = [
    !deps.keyring && 'keyring',
    !deps.adminToken && 'adminToken',
    !stateMigrations.every((m) => deps.migrations.some((d) => d.version === m.version)) &&
      'stateMigrations in migrations',
  ].filter((x): x is string => typeof x === 'string');
  if (missing.length) {
    service.logger.error({ missing }, 'api is missing dependencies; /v1 answers 503');
    service.app.addHook('onRequest', async (req) => {
      if (req.url.startsWith('/v1/')) {
        throw new CaracalError(
          'api_not_configured',
          503,
          `The API service was started without: ${missing.join(', ')}.`,
        );
      }
    });
  } else {
    registerRoutes(service.app, {
      db: deps.db,
      keyring: deps.keyring,
      adminToken: deps.adminToken,
      clock: deps.clock,
    });
  }

  const relay = createOutboxRelay({
    db: deps.db,
    owner: OUTBOX_OWNER,
    publish: async (stream, payload, eventId) => {
      const type = (payload as { type?: unknown } | null)?.type;
      await deps.bus.publish(stream, {
        type: typeof type === 'string' ? type : 'control.changed',
        payload,
        eventId,
      });
    },
    maxAttempts: deps.config.outbox.maxAttempts,
    pollMs: deps.config.outbox.pollMs,
    clock: deps.clock,
    logger: service.logger,
    registry: service.metrics.registry,
    metricPrefix: 'caracal_api',
  });
  let relayRunning = false;
  service.checks.add({
    name: 'outbox',
    timeoutMs: 2000,
    budgetMs: OUTBOX_AGE_BUDGET_MS,
    check: async () => {
      const s = await outboxStatus(deps.db, OUTBOX_OWNER);
      return {
        ok: relayRunning,
        ...(relayRunning ? {} : { detail: 'outbox relay is not running' }),
        ageMs: Math.round(s.oldestPendingAgeSeconds * 1000),
        pending: s.pending,
        dead: s.dead,
        stream: CONTROL_STREAM,
      };
    },
  });
  service.onStart(() => {
    relay.start();
    relayRunning = true;
  });
  service.onStop(async () => {
    relayRunning = false;
    await relay.stop();
  });
  return service;
}
