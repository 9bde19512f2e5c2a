import { CaracalError, type Clock, type HttpApp, type Keyring } from '@caracal/core';
import * as state from '@caracal/state';
import { type Db, requestHash, withIdempotency } from '@caracal/store';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authenticate, authorize, type Principal } from './auth.js';

export interface RouteDeps {
  db: Db;
  keyring: Keyring;
  adminToken: string;
  clock: Clock;
}

const page = z.strictObject({
  limit: z.coerce.number().int().min(1).max(state.MAX_PAGE_SIZE).optional(),
  cursor: z.string().min(1).max(1024).optional(),
});
const zoneParams = z.strictObject({ zoneId: state.zoneId });
/** Generated ids (app_…, prv_…, ak_…): anything else cannot exist. */
const idParam = z.string().regex(/^[a-z]{2,4}_[0-9a-f]{24}$/, 'must be an id this API issued');
const appParams = z.strictObject({ zoneId: state.zoneId, appId: idParam });
const resourceParams = z.strictObject({ zoneId: state.zoneId, resource: state.resourceIdentifier });
const providerParams = z.strictObject({ zoneId: state.zoneId, providerId: idParam });
const policyParams = z.strictObject({
  zoneId: state.zoneId,
  name: state.policyName,
  version: z.coerce.number().int().min(1).max(2_147_483_647),
});
const setParams = z.strictObject({
  zoneId: state.zoneId,
  version: z.coerce.number().int().min(1).max(2_147_483_647),
});
const keyParams = z.strictObject({ keyId: idParam });
/** Action endpoints take an optional JSON object. */
const noBody = z.union([z.undefined(), z.null(), z.strictObject({})]);

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

interface Written {
  status: number;
  body: Record<string, unknown>;
  /** Secrets shown once: in the first answer only, never stored in the idempotency receipt. */
  once?: Record<string, string>;
}

/** Registers every /v1 route on the service's app. */
export function registerRoutes(app: HttpApp, deps: RouteDeps): void {
  const { db, keyring, clock } = deps;
  const principals = new WeakMap<FastifyRequest, Principal>();

  const guard = (globalOnly: boolean) => async (req: FastifyRequest) => {
    const p = await authenticate(req, deps);
    const zoneId = (req.params as { zoneId?: unknown } | undefined)?.zoneId;
    authorize(p, { method: req.method, zoneId: typeof zoneId === 'string' ? zoneId : undefined, globalOnly });
    principals.set(req, p);
  };
  const zoneGuard = guard(false);
  const globalGuard = guard(true);

  const principal = (req: FastifyRequest): Principal => {
    const p = principals.get(req);
    if (!p) throw new CaracalError('unauthorized', 401, 'Authentication required.');
    return p;
  };
  const ctx = (req: FastifyRequest): state.WriteContext => ({
    keyring,
    now: clock.now(),
    actor: principal(req).actor,
  });

  /**
   * Run a change, once per Idempotency-Key when the client sends one: the same key and body replay the
   * first answer (secrets shown once come back null), another body under the same key is 422.
   */
  async function write(req: FastifyRequest, reply: FastifyReply, fn: (q: state.DbOrTx) => Promise<Written>) {
    const key = req.headers['idempotency-key'];
    if (key === undefined) {
      const r = await fn(db);
      return reply.code(r.status).send({ ...r.body, ...r.once });
    }
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new CaracalError(
        'invalid_idempotency_key',
        400,
        'Idempotency-Key must be 1–255 visible ASCII characters.',
      );
    }
    let once: Record<string, string> | undefined;
    let onceFields: string[] = [];
    const result = await withIdempotency(
      db,
      {
        scope: `api:${principal(req).actor}:${req.method} ${req.url.split('?')[0]}`,
        key,
        requestHash: requestHash(req.body ?? null),
      },
      async (tx) => {
        const r = await fn(tx);
        once = r.once;
        onceFields = Object.keys(r.once ?? {});
        return {
          status: r.status,
          body: { ...r.body, ...(onceFields.length ? { once_fields: onceFields } : {}) },
        };
      },
    );
    if (result.replayed) {
      reply.header('idempotent-replayed', 'true');
      const body = { ...result.body } as Record<string, unknown>;
      for (const f of (body.once_fields as string[] | undefined) ?? []) body[f] = null;
      delete body.once_fields;
      return reply.code(result.status).send(body);
    }
    const body = { ...result.body } as Record<string, unknown>;
    delete body.once_fields;
    return reply.code(result.status).send({ ...body, ...once });
  }

  // ---- zones
  app.get('/v1/zones', { onRequest: globalGuard, schema: { querystring: page } }, async (req) =>
    state.listZones(db, req.query),
  );
  app.post('/v1/zones', { onRequest: globalGuard, schema: { body: state.createZoneInput } }, (req, reply) =>
    write(req, reply, async (q) => ({
      status: 201,
      body: { ...(await state.createZone(q, ctx(req), req.body)) },
    })),
  );
  app.get('/v1/zones/:zoneId', { onRequest: zoneGuard, schema: { params: zoneParams } }, async (req) =>
    state.getZone(db, req.params.zoneId),
  );

  // ---- applications
  app.get(
    '/v1/zones/:zoneId/applications',
    { onRequest: zoneGuard, schema: { params: zoneParams, querystring: page } },
    (req) => state.listApplications(db, req.params.zoneId, req.query),
  );
  app.post(
    '/v1/zones/:zoneId/applications',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.createApplicationInput } },
    (req, reply) =>
      write(req, reply, async (q) => {
        const r = await state.createApplication(q, ctx(req), req.params.zoneId, req.body);
        return { status: 201, body: { ...r.application }, once: { client_secret: r.client_secret } };
      }),
  );
  app.get(
    '/v1/zones/:zoneId/applications/:appId',
    { onRequest: zoneGuard, schema: { params: appParams } },
    (req) => state.getApplication(db, req.params.zoneId, req.params.appId),
  );
  app.patch(
    '/v1/zones/:zoneId/applications/:appId',
    { onRequest: zoneGuard, schema: { params: appParams, body: state.updateApplicationInput } },
    (req) => state.updateApplication(db, ctx(req), req.params.zoneId, req.params.appId, req.body),
  );
  app.post(
    '/v1/zones/:zoneId/applications/:appId/rotate-secret',
    { onRequest: zoneGuard, schema: { params: appParams, body: state.rotateSecretInput.optional() } },
    (req, reply) =>
      write(req, reply, async (q) => {
        const r = await state.rotateApplicationSecret(
          q,
          ctx(req),
          req.params.zoneId,
          req.params.appId,
          req.body ?? {},
        );
        return { status: 200, body: { ...r.application }, once: { client_secret: r.client_secret } };
      }),
  );

  // ---- resources (the identifier travels URL-encoded in the path)
  app.get(
    '/v1/zones/:zoneId/resources',
    { onRequest: zoneGuard, schema: { params: zoneParams, querystring: page } },
    (req) => state.listResources(db, req.params.zoneId, req.query),
  );
  app.post(
    '/v1/zones/:zoneId/resources',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.createResourceInput } },
    (req, reply) =>
      write(req, reply, async (q) => ({
        status: 201,
        body: { ...(await state.createResource(q, ctx(req), req.params.zoneId, req.body)) },
      })),
  );
  app.get(
    '/v1/zones/:zoneId/resources/:resource',
    { onRequest: zoneGuard, schema: { params: resourceParams } },
    (req) => state.getResource(db, req.params.zoneId, req.params.resource),
  );
  app.put(
    '/v1/zones/:zoneId/resources/:resource',
    { onRequest: zoneGuard, schema: { params: resourceParams, body: state.updateResourceInput } },
    (req) => state.replaceResource(db, ctx(req), req.params.zoneId, req.params.resource, req.body),
  );
  app.delete(
    '/v1/zones/:zoneId/resources/:resource',
    { onRequest: zoneGuard, schema: { params: resourceParams } },
    async (req, reply) => {
      await state.deleteResource(db, ctx(req), req.params.zoneId, req.params.resource);
      return reply.code(204).send();
    },
  );

  // ---- provider connections (secret fields are write-only)
  app.get(
    '/v1/zones/:zoneId/providers',
    { onRequest: zoneGuard, schema: { params: zoneParams, querystring: page } },
    (req) => state.listProviders(db, req.params.zoneId, req.query),
  );
  app.post(
    '/v1/zones/:zoneId/providers',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.createProviderInput } },
    (req, reply) =>
      write(req, reply, async (q) => ({
        status: 201,
        body: { ...(await state.createProvider(q, ctx(req), req.params.zoneId, req.body)) },
      })),
  );
  app.get(
    '/v1/zones/:zoneId/providers/:providerId',
    { onRequest: zoneGuard, schema: { params: providerParams } },
    (req) => state.getProvider(db, req.params.zoneId, req.params.providerId),
  );
  app.patch(
    '/v1/zones/:zoneId/providers/:providerId',
    { onRequest: zoneGuard, schema: { params: providerParams, body: state.updateProviderInput } },
    (req) => state.updateProvider(db, ctx(req), req.params.zoneId, req.params.providerId, req.body),
  );
  app.delete(
    '/v1/zones/:zoneId/providers/:providerId',
    { onRequest: zoneGuard, schema: { params: providerParams } },
    async (req, reply) => {
      await state.deleteProvider(db, ctx(req), req.params.zoneId, req.params.providerId);
      return reply.code(204).send();
    },
  );

  // ---- policies, policy sets, activation
  app.get(
    '/v1/zones/:zoneId/policies',
    { onRequest: zoneGuard, schema: { params: zoneParams, querystring: page } },
    (req) => state.listPolicyVersions(db, req.params.zoneId, req.query),
  );
  app.post(
    '/v1/zones/:zoneId/policies',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.createPolicyInput } },
    (req, reply) =>
      write(req, reply, async (q) => {
        const r = await state.createPolicyVersion(q, ctx(req), req.params.zoneId, req.body);
        return { status: r.created ? 201 : 200, body: { ...r.policy, created: r.created } };
      }),
  );
  app.get(
    '/v1/zones/:zoneId/policies/:name/versions/:version',
    { onRequest: zoneGuard, schema: { params: policyParams } },
    (req) => state.getPolicyVersion(db, req.params.zoneId, req.params.name, req.params.version),
  );
  app.get(
    '/v1/zones/:zoneId/policy-sets',
    { onRequest: zoneGuard, schema: { params: zoneParams, querystring: page } },
    (req) => state.listPolicySets(db, req.params.zoneId, req.query),
  );
  app.post(
    '/v1/zones/:zoneId/policy-sets',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.createPolicySetInput } },
    (req, reply) =>
      write(req, reply, async (q) => {
        const r = await state.createPolicySet(q, ctx(req), req.params.zoneId, req.body);
        return { status: r.created ? 201 : 200, body: { ...r.policySet, created: r.created } };
      }),
  );
  app.get(
    '/v1/zones/:zoneId/policy-sets/:version',
    { onRequest: zoneGuard, schema: { params: setParams } },
    (req) => state.getPolicySet(db, req.params.zoneId, req.params.version),
  );
  app.post(
    '/v1/zones/:zoneId/policy-sets/:version/activate',
    { onRequest: zoneGuard, schema: { params: setParams, body: noBody } },
    (req) => state.activatePolicySet(db, ctx(req), req.params.zoneId, req.params.version),
  );

  // ---- data document
  app.get('/v1/zones/:zoneId/data', { onRequest: zoneGuard, schema: { params: zoneParams } }, async (req) => {
    const d = await state.getDataDocument(db, req.params.zoneId);
    if (!d)
      throw new CaracalError('data_not_found', 404, `Zone '${req.params.zoneId}' has no data document yet.`);
    return d;
  });
  app.put(
    '/v1/zones/:zoneId/data',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.dataDocumentInput } },
    async (req, reply) => {
      const r = await state.putDataDocument(db, ctx(req), req.params.zoneId, req.body);
      return reply.code(r.created ? 201 : 200).send({ ...r.data, created: r.created });
    },
  );

  // ---- signing keys
  app.get(
    '/v1/zones/:zoneId/signing-keys',
    { onRequest: zoneGuard, schema: { params: zoneParams } },
    async (req) => ({
      items: await state.listSigningKeys(db, req.params.zoneId, clock.now()),
      next_cursor: null,
    }),
  );
  app.post(
    '/v1/zones/:zoneId/signing-keys/rotate',
    { onRequest: zoneGuard, schema: { params: zoneParams, body: state.rotateSigningKeyInput.optional() } },
    async (req) => ({
      items: await state.rotateSigningKey(db, ctx(req), req.params.zoneId, req.body ?? {}),
      next_cursor: null,
    }),
  );

  // ---- approval holds (requested by the STS, decided here)
  const approvalParams = z.strictObject({ zoneId: state.zoneId, approvalId: idParam });
  app.get(
    '/v1/zones/:zoneId/approvals',
    { onRequest: zoneGuard, schema: { params: zoneParams, querystring: page } },
    (req) => state.listApprovals(db, req.params.zoneId, clock.now(), req.query),
  );
  app.get(
    '/v1/zones/:zoneId/approvals/:approvalId',
    { onRequest: zoneGuard, schema: { params: approvalParams } },
    async (req) => {
      const a = await state.getApproval(db, req.params.approvalId, clock.now());
      if (!a || a.zone_id !== req.params.zoneId) {
        throw new CaracalError('approval_not_found', 404, `Approval '${req.params.approvalId}' not found.`);
      }
      return a;
    },
  );
  app.post(
    '/v1/zones/:zoneId/approvals/:approvalId/decision',
    { onRequest: zoneGuard, schema: { params: approvalParams, body: state.decideApprovalInput } },
    (req) => state.decideApproval(db, ctx(req), req.params.zoneId, req.params.approvalId, req.body),
  );

  // ---- admin keys and the rollout freeze (global)
  app.get('/v1/admin-keys', { onRequest: globalGuard, schema: { querystring: page } }, (req) =>
    state.listAdminKeys(db, req.query),
  );
  app.post(
    '/v1/admin-keys',
    { onRequest: globalGuard, schema: { body: state.createAdminKeyInput } },
    (req, reply) =>
      write(req, reply, async (q) => {
        const r = await state.createAdminKey(q, ctx(req), req.body);
        return { status: 201, body: { ...r.admin_key }, once: { token: r.token } };
      }),
  );
  app.delete('/v1/admin-keys/:keyId', { onRequest: globalGuard, schema: { params: keyParams } }, (req) =>
    state.revokeAdminKey(db, ctx(req), req.params.keyId),
  );
  app.get('/v1/rollout-freeze', { onRequest: globalGuard }, () => state.getRolloutFreeze(db));
  app.put(
    '/v1/rollout-freeze',
    { onRequest: globalGuard, schema: { body: state.rolloutFreezeInput } },
    (req) => state.setRolloutFreeze(db, ctx(req), req.body),
  );
}
