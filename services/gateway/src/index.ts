import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { attachBus, attachEvidence, type Bus } from '@caracal/bus';
import {
  CaracalError,
  Counter,
  createServiceBase,
  Gauge,
  type Keyring,
  type Service,
  type ServiceContext,
} from '@caracal/core';
import { createJwksCache, createMandateVerifier } from '@caracal/mandate';
import { attachDb, type Db, type Migration } from '@caracal/store';
import { Agent, request } from 'undici';
import { gatewayMigrations } from './migrations/index.js';
import { type GatewayAuditEvent, type RevocationCheck, registerProxy } from './proxy.js';
import { createPostgresReplayGuard, createRedisReplayGuard, type ReplayGuard } from './replay/index.js';
import { createStsClient } from './sts-client.js';
import { createUpstreamDispatcher } from './upstream/index.js';

export type { GatewayAuditEvent, RevocationCheck } from './proxy.js';
export { gatewayMigrations };

/** Stream every Gateway decision and outcome is published on. */
export const AUDIT_STREAM = 'caracal.audit';

export type GatewayDeps = ServiceContext & {
  db: Db;
  bus: Bus;
  migrations: Migration[];
  keyring: Keyring;
  /** Revocation source (Coordinator snapshot); default none. */
  revocation?: RevocationCheck;
  /** Default: Redis when `config.redisUrl`, else the database. */
  replayGuard?: ReplayGuard;
};

const MAX_DISPATCHERS = 256;

/** The Gateway: verifies `use=gateway` mandates, exchanges them at the STS and proxies to the upstream. */
export function createGateway(deps: GatewayDeps): Service {
  const { config, clock } = deps;
  const service = createServiceBase({ name: 'gateway', port: config.ports.gateway, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  const log = service.logger;
  const registry = service.metrics.registry;
  const stsUrl = (config.gateway.stsUrl ?? `http://${config.host}:${config.ports.sts}`).replace(/\/$/, '');
  const issuer = config.sts.issuer ?? `http://${config.host}:${config.ports.sts}`;

  const auditDropped = new Counter({
    name: 'caracal_gateway_audit_dropped_total',
    help: 'Audit events neither published nor spooled (decision events also refuse the request)',
    labelNames: ['event'] as const,
    registers: [registry],
  });
  const stsErrors = new Counter({
    name: 'caracal_gateway_sts_exchange_errors_total',
    help: 'STS exchange calls that failed (unreachable, timeout, 5xx, bad answer)',
    registers: [registry],
  });
  const circuitOpen = new Gauge({
    name: 'caracal_gateway_sts_circuit_open',
    help: '1 while the STS circuit is open',
    registers: [registry],
  });
  circuitOpen.set(0);
  const requests = new Counter({
    name: 'caracal_gateway_requests_total',
    help: 'Proxied requests by result (forwarded with upstream status, or denied with code)',
    labelNames: ['result', 'code'] as const,
    registers: [registry],
  });

  const jwksAgent = new Agent({ connectTimeout: 2_000, headersTimeout: 2_000, bodyTimeout: 2_000 });
  const jwks = createJwksCache({
    clock,
    // The URL is ours; the zone id was checked against [A-Za-z0-9_-]{1,64} before it gets here.
    fetchJwks: async (zoneId) => {
      const res = await request(`${stsUrl}/.well-known/jwks.json?zone_id=${encodeURIComponent(zoneId)}`, {
        dispatcher: jwksAgent,
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`JWKS fetch answered ${res.statusCode}`);
      }
      return res.body.json();
    },
  });
  const verifier = createMandateVerifier({
    keys: jwks,
    issuer,
    audience: config.sts.gatewayAudience,
    clock,
    onUnknownKey: (kid, zoneId) => jwks.refreshFor(kid, zoneId),
  });

  // Embedded mode keeps consumed jtis in the database: without the Gateway's table in this deployment's
  // migrations it cannot check single use, so it refuses every proxied request (and says so in /ready).
  const replayTableMissing =
    !deps.replayGuard &&
    !config.redisUrl &&
    !deps.migrations.some((m) => gatewayMigrations.some((g) => g.version === m.version));
  const replay =
    deps.replayGuard ??
    (config.redisUrl
      ? createRedisReplayGuard({
          url: config.redisUrl,
          keyPrefix: `${config.redisKeyPrefix}gateway:jti:`,
          clock,
        })
      : createPostgresReplayGuard({
          db: deps.db,
          clock,
          logger: log,
          ...(replayTableMissing ? { sweepIntervalMs: 0 } : {}),
        }));

  const sts = createStsClient({
    stsUrl,
    keyring: deps.keyring,
    clock,
    timeoutMs: config.gateway.stsTimeoutMs,
    consecutiveFailures: config.gateway.stsBreakerFailures,
    halfOpenAfterMs: config.gateway.stsBreakerHalfOpenMs,
    onError: () => stsErrors.inc(),
    onStateChange: (open) => {
      circuitOpen.set(open ? 1 : 0);
      log[open ? 'error' : 'info']({ sts: stsUrl }, open ? 'STS circuit opened' : 'STS circuit left open');
    },
  });

  // One dispatcher per upstream URL and policy: its SSRF policy applies at connect time to every resolved
  // address. Private addresses are allowed globally (config) or by the resource's own opt-in.
  const dispatchers = new Map<string, Agent>();
  const dispatcherFor = (upstreamUrl: string, resourceAllowsPrivate: boolean): Agent => {
    const allowPrivate = config.gateway.allowPrivateUpstreams || resourceAllowsPrivate;
    const key = `${allowPrivate ? 'private' : 'public'} ${upstreamUrl}`;
    let d = dispatchers.get(key);
    if (!d) {
      if (dispatchers.size >= MAX_DISPATCHERS) {
        const [oldest, agent] = dispatchers.entries().next().value as [string, Agent];
        dispatchers.delete(oldest);
        void agent.close().catch(() => {});
      }
      d = createUpstreamDispatcher({ allowPrivate });
      dispatchers.set(key, d);
    }
    return d;
  };

  const evidence = attachEvidence(service, deps.bus, {
    dir: join(config.data, 'spool', 'gateway'),
    fsyncIntervalMs: config.spool.fsyncIntervalMs,
    metricsPrefix: 'caracal_gateway',
  });
  const audit = async (event: GatewayAuditEvent, required: boolean): Promise<void> => {
    try {
      await evidence.record(AUDIT_STREAM, {
        type: `gateway.${event.kind}`,
        payload: event,
        eventId: event.event_id,
      });
    } catch (err) {
      auditDropped.inc({ event: event.kind });
      log.error(
        { err: (err as Error).message, eventId: event.event_id, kind: event.kind },
        'audit event lost',
      );
      if (required) throw err;
    }
  };

  if (replayTableMissing) {
    log.error(
      'gatewayMigrations are not part of this deployment and no Redis is configured: every request is refused',
    );
  }
  registerProxy(service.app, {
    clock,
    logger: log,
    verifier,
    replay,
    revocation: deps.revocation,
    sts,
    preflightSec: config.gateway.mandatePreflightSec,
    ...(replayTableMissing
      ? {
          disabled: new CaracalError(
            'gateway_not_installed',
            503,
            'The Gateway tables are not installed in this deployment; nothing is forwarded.',
          ),
        }
      : {}),
    dispatcherFor,
    audit,
    outcome: (result, code) => requests.inc({ result, code }),
  });

  service.checks.add({
    name: 'sts',
    check: async () => {
      await sts.probe();
      const state = sts.state();
      return state === 'closed' ? { ok: true, state } : { ok: false, state, detail: `STS circuit ${state}` };
    },
  });
  service.checks.add({
    name: 'replay',
    timeoutMs: 2_000,
    check: async () => {
      if (replayTableMissing) {
        return { ok: true, detail: 'proxy disabled: gatewayMigrations are not in this deployment' };
      }
      try {
        // A real consume of a throwaway id: the same path requests take.
        await replay.consume(`ready-probe:${randomUUID()}`, clock.now());
        return { ok: true };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    },
  });

  service.onStop(async () => {
    if (!deps.replayGuard) await replay.close();
    await sts.close();
    await jwksAgent.close();
    await Promise.all([...dispatchers.values()].map((d) => d.close().catch(() => {})));
  });
  return service;
}
