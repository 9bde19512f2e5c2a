import { join } from 'node:path';
import { attachBus, attachEvidence, type Bus } from '@caracal/bus';
import {
  CaracalError,
  Counter,
  createServiceBase,
  type Keyring,
  type Service,
  type ServiceContext,
  sendProblem,
} from '@caracal/core';
import { consumeApproval, getApproval, requestApproval } from '@caracal/state';
import { attachDb, type Db, type Migration } from '@caracal/store';
import { z } from 'zod';
import { registerGatewayExchange } from './gateway-exchange.js';
import { PolicyBundles } from './policy/bundles.js';
import { createProviderBroker } from './providers/index.js';
import { createPostgresRateLimiter, createRedisRateLimiter, type RateLimiter } from './ratelimit/index.js';
import { oauthError } from './token/errors.js';
import { type ApprovalStore, type DecisionEvent, exchange } from './token/exchange.js';
import { parseTokenRequest } from './token/request.js';
import { ZoneDirectory } from './zones.js';

export { AUTHZ_QUERY, AUTHZ_SOURCE } from './authz/contract.js';
export { stsMigrations } from './migrations/index.js';
export { SESSION_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from './token/request.js';

/** Stream every STS decision is published on. */
export const AUDIT_STREAM = 'caracal.audit';

export type StsDeps = ServiceContext & {
  db: Db;
  bus: Bus;
  migrations: Migration[];
  keyring: Keyring;
  /** Default: Redis when configured, else the database. */
  rateLimiter?: RateLimiter;
};

/** The STS: RFC 8693 token exchange deciding with the zone's Rego policy and minting mandates. */
export function createSts(deps: StsDeps): Service {
  const { config, clock } = deps;
  const service = createServiceBase({ name: 'sts', port: config.ports.sts, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  const log = service.logger;
  const registry = service.metrics.registry;
  const issuer = config.sts.issuer ?? `http://${config.host}:${config.ports.sts}`;
  const bundles = new PolicyBundles({ clock, logger: log, registry });
  const zones = new ZoneDirectory({
    db: deps.db,
    keyring: deps.keyring,
    bundles,
    clock,
    logger: log,
    issuer: () => issuer,
  });
  const dropped = new Counter({
    name: 'caracal_sts_audit_dropped_total',
    help: 'Decisions refused because their audit event could be neither published nor spooled',
    registers: [registry],
  });
  const decisions = new Counter({
    name: 'caracal_sts_decisions_total',
    help: 'Token exchange outcomes',
    labelNames: ['decision'] as const,
    registers: [registry],
  });

  const rateLimiter =
    deps.rateLimiter ??
    (config.redisUrl
      ? createRedisRateLimiter({ url: config.redisUrl, keyPrefix: `${config.redisKeyPrefix}sts:mint:` })
      : createPostgresRateLimiter({ db: deps.db, clock, logger: log }));

  // Brokers upstream credentials for the Gateway's exchange; its metrics and status are live from start.
  const providers = createProviderBroker({
    db: deps.db,
    keyring: deps.keyring,
    logger: log,
    registry,
    clock,
  });

  const writeCtx = () => ({ keyring: deps.keyring, now: clock.now(), actor: 'sts' });
  const approvals: ApprovalStore = {
    request: async (hold) => (await requestApproval(deps.db, writeCtx(), hold)).id,
    consume: async (use) => (await consumeApproval(deps.db, writeCtx(), use))?.tiers ?? null,
  };

  const evidence = attachEvidence(service, deps.bus, {
    dir: join(config.data, 'spool', 'sts'),
    fsyncIntervalMs: config.spool.fsyncIntervalMs,
    metricsPrefix: 'caracal_sts',
  });
  let poller: NodeJS.Timeout | undefined;

  const record = async (event: DecisionEvent) => {
    decisions.inc({ decision: event.decision });
    try {
      await evidence.record(AUDIT_STREAM, {
        type: 'sts.decision',
        payload: event,
        eventId: event.decision_id,
      });
    } catch (err) {
      if ((err as CaracalError).code === 'not_started') throw err; // nothing was lost: the STS is not serving yet
      dropped.inc();
      log.error(
        { err: (err as Error).message, decisionId: event.decision_id },
        'audit event lost; refusing the exchange',
      );
      throw new CaracalError(
        'audit_unavailable',
        503,
        'Evidence cannot be recorded; the exchange is refused.',
        {
          error: 'temporarily_unavailable',
          error_description: 'Evidence cannot be recorded; the exchange is refused.',
        },
      );
    }
  };

  service.app.post('/oauth/2/token', async (req, reply) => {
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
      throw oauthError(
        'invalid_request',
        'The token request must be application/x-www-form-urlencoded (RFC 6749 §4.1.3).',
      );
    }
    const tokenRequest = parseTokenRequest(req.body, req.query as Record<string, unknown>);
    const answer = await exchange(tokenRequest, {
      zones,
      bundles,
      keyring: deps.keyring,
      clock,
      gatewayAudience: config.sts.gatewayAudience,
      mintsPerMinute: config.sts.mintsPerMinute,
      record,
      rateLimiter,
      approvals,
    });
    return reply.header('cache-control', 'no-store').send(answer);
  });

  registerGatewayExchange(service.app, {
    zones,
    providers,
    keyring: deps.keyring,
    clock,
    logger: log,
    gatewayAudience: config.sts.gatewayAudience,
    record,
  });

  service.app.get(
    '/.well-known/jwks.json',
    { schema: { querystring: z.strictObject({ zone_id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) }) } },
    async (req, reply) => {
      const zone = zones.get(req.query.zone_id);
      if (!zone)
        return sendProblem(reply, new CaracalError('zone_not_found', 404, 'Zone not found.'), req.url);
      return reply.header('cache-control', 'public, max-age=60').send(zone.keyRing.jwks());
    },
  );

  // The agent waits here after `interaction_required`; the id is unguessable (96 random bits) and reveals only the status.
  service.app.get(
    '/approvals/:approvalId',
    {
      schema: {
        params: z.strictObject({ approvalId: z.string().regex(/^apr_[0-9a-f]{24}$/) }),
        querystring: z.strictObject({ wait: z.coerce.number().int().min(0).max(30).optional() }),
      },
    },
    async (req, reply) => {
      const deadline = clock.now() + (req.query.wait ?? 0) * 1000;
      for (;;) {
        const a = await getApproval(deps.db, req.params.approvalId, clock.now());
        if (!a)
          return sendProblem(
            reply,
            new CaracalError('approval_not_found', 404, 'Approval not found.'),
            req.url,
          );
        if (a.status !== 'pending' || clock.now() >= deadline || req.raw.destroyed) {
          return { id: a.id, status: a.status, expires_at: a.expires_at };
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    },
  );

  service.app.get(
    '/internal/policy/status/:zoneId',
    { schema: { params: z.strictObject({ zoneId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) }) } },
    async (req) => bundles.status(req.params.zoneId),
  );

  service.checks.add({
    name: 'zones',
    budgetMs: config.sts.policyStaleBudgetMs,
    check: () => {
      const at = zones.syncedAt();
      if (at === undefined) return { ok: false, detail: zones.error() ?? 'zones not loaded yet' };
      return {
        ok: true,
        ageMs: clock.now() - at,
        zones: zones.size(),
        ...(zones.error() ? { detail: zones.error() } : {}),
      };
    },
  });
  service.checks.add({
    name: 'policy',
    budgetMs: config.sts.policyStaleBudgetMs,
    check: () => ({ ok: true, ageMs: Math.round(bundles.maxAgeSeconds() * 1000) }),
  });
  // A broken provider fails only its own resources; the status is shown here, readiness does not depend on it.
  service.checks.add({
    name: 'providers',
    check: () => {
      const status = providers.status();
      const open = status.filter((p) => p.state !== 'closed').map((p) => p.providerId);
      return {
        ok: true,
        providers: status.length,
        ...(open.length ? { detail: `circuit not closed: ${open.join(', ')}` } : {}),
      };
    },
  });

  const sync = async () => {
    try {
      await zones.sync();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'zone sync failed; serving the last snapshots');
    }
  };

  service.onStart(async () => {
    await sync();
    poller = setInterval(sync, config.sts.zonePollMs);
    poller.unref();
  });
  service.onStop(async () => {
    if (poller) clearInterval(poller);
    if (!deps.rateLimiter) await rateLimiter.close();
    await providers.stop();
  });
  return service;
}
