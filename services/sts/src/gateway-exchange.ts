/**
 * `POST /internal/gateway/exchange`: the Gateway trades a verified `use=gateway` mandate for what it needs to
 * forward one request: a `use=resource` mandate, the resource's upstream and the brokered credential.
 *
 * Service authentication: `X-Caracal-Signature: t=<unix s>,n=<nonce>,s=<hex>` where `s` is HMAC-SHA256 over
 * `POST\n/internal/gateway/exchange\n<t>\n<n>\n<sha256 hex of the body>`, keyed by a subkey both services derive
 * from the master key. `t` must be within ±60 s; each nonce is accepted once. Nonces are remembered in this
 * process only (120 s): with several STS replicas a captured request could be replayed once against each other
 * replica within 60 s, which yields nothing more than the original caller got (the same mandate exchange).
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import {
  CaracalError,
  type Clock,
  gatewayServiceKey,
  type HttpApp,
  type Keyring,
  type Logger,
  signServiceCall,
} from '@caracal/core';
import { MANDATE_TTL_DEFAULT_SEC, type MandateClaims } from '@caracal/mandate';
import { openProviderSecret, type Resource, type SnapshotProvider } from '@caracal/state';
import { z } from 'zod';
import type { ProviderBroker, ProviderConfig, ProviderCredential } from './providers/index.js';
import type { DecisionEvent } from './token/exchange.js';
import type { ZoneDirectory } from './zones.js';

export const GATEWAY_EXCHANGE_PATH = '/internal/gateway/exchange';
export const SIGNATURE_HEADER = 'x-caracal-signature';
const SKEW_SEC = 60;
const NONCE_TTL_MS = 120_000;
const MAX_NONCES = 100_000;

export { gatewayServiceKey };

/** Hex HMAC of one exchange call. */
export function signExchange(key: string, t: string, nonce: string, body: Buffer | string): string {
  return signServiceCall(key, { method: 'POST', path: GATEWAY_EXCHANGE_PATH, t, nonce, body });
}

/** What the exchange records (on the audit stream, as an `sts.decision` with `exchange: 'gateway'`). */
export interface GatewayExchangeEvent extends DecisionEvent {
  exchange: 'gateway';
  gateway_jti?: string;
  method: string;
  path: string;
}

export interface GatewayExchangeDeps {
  zones: ZoneDirectory;
  providers: ProviderBroker;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  gatewayAudience: string;
  record(event: GatewayExchangeEvent): Promise<void>;
}

const exchangeBody = z.strictObject({
  mandate: z.string().min(1).max(4096),
  method: z.string().regex(/^[A-Z]{1,16}$/),
  path: z.string().min(1).max(4096).startsWith('/'),
  /** The resource the request targets (the Gateway's X-Caracal-Resource); default the mandate's only one. */
  resource: z.string().startsWith('resource://').max(512).optional(),
});

function authFailed(detail: string): CaracalError {
  return new CaracalError('service_auth_failed', 401, detail);
}

/** Checks X-Caracal-Signature; remembers nonces so each is used once. */
function createServiceAuth(key: string, clock: Clock) {
  const nonces = new Map<string, number>();
  return (header: unknown, body: Buffer): void => {
    if (typeof header !== 'string' || header.length > 512) throw authFailed('Missing service signature.');
    const parts = new Map(
      header.split(',').map((p) => {
        const i = p.indexOf('=');
        return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
      }),
    );
    const t = parts.get('t');
    const n = parts.get('n');
    const s = parts.get('s');
    if (
      !t ||
      !n ||
      !s ||
      !/^\d{1,12}$/.test(t) ||
      !/^[A-Za-z0-9_-]{16,128}$/.test(n) ||
      !/^[0-9a-f]{64}$/.test(s)
    ) {
      throw authFailed('Malformed service signature.');
    }
    const now = clock.now();
    if (Math.abs(now / 1000 - Number(t)) > SKEW_SEC)
      throw authFailed('Service signature is out of its time window.');
    const expected = Buffer.from(signExchange(key, t, n, body), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(s, 'hex'))) throw authFailed('Service signature is invalid.');
    for (const [k, until] of nonces) {
      if (until > now && nonces.size < MAX_NONCES) break; // insertion order: the rest are younger
      nonces.delete(k);
    }
    if (nonces.has(n)) throw authFailed('Service signature was already used.');
    nonces.set(n, now + NONCE_TTL_MS);
  };
}

/**
 * Does `path` (below the resource, no query) match `pattern`? `:param` matches one non-empty segment, a
 * trailing `/*` matches the rest (zero or more segments). Dot and empty segments never match.
 */
export function matchOperationPath(pattern: string, path: string): boolean {
  const segs = path === '/' ? [] : path.slice(1).replace(/\/$/, '').split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..' || /%2e|%2f|%5c/i.test(s))) return false;
  let pat = pattern === '/' ? [] : pattern.slice(1).split('/');
  const rest = pat[pat.length - 1] === '*';
  if (rest) pat = pat.slice(0, -1);
  if (rest ? segs.length < pat.length : segs.length !== pat.length) return false;
  return pat.every((p, i) => (p.startsWith(':') ? segs[i]!.length > 0 : p === segs[i]));
}

/**
 * The scope the request needs: the declared operation's scope, or null when none matches. A resource that
 * declares no operations allows any method and path (within the mandate's scopes): returns undefined.
 */
export function requiredScope(resource: Resource, method: string, path: string): string | null | undefined {
  if (!resource.operations?.length) return undefined;
  const op = resource.operations.find((o) => o.method === method && matchOperationPath(o.path, path));
  return op ? op.scope : null;
}

/** The broker's config for a snapshot provider, built once per snapshot object (the broker caches by identity). */
function providerConfigFor(
  keyring: Keyring,
  cache: WeakMap<SnapshotProvider, ProviderConfig>,
  p: SnapshotProvider,
): ProviderConfig {
  const hit = cache.get(p);
  if (hit) return hit;
  const secret = openProviderSecret(keyring, p);
  const c = p.config as Record<string, unknown>;
  const scope = Array.isArray(c.scopes) && c.scopes.length ? (c.scopes as string[]).join(' ') : undefined;
  let config: ProviderConfig;
  if (p.kind === 'static_api_key') {
    // The prefix is prepended verbatim (it carries its own separator, e.g. "Bearer ").
    config = {
      kind: 'static_api_key',
      apiKey: `${(c.value_prefix as string | undefined) ?? ''}${secret.api_key}`,
      headerName: (c.header_name as string | undefined) ?? 'authorization',
    };
  } else if (p.kind === 'oauth2_client_credentials') {
    config = {
      kind: 'oauth2_client_credentials',
      tokenUrl: c.token_url as string,
      clientId: c.client_id as string,
      clientSecret: secret.client_secret!,
      ...(scope ? { scope } : {}),
      ...(typeof c.audience === 'string' ? { audience: c.audience } : {}),
    };
  } else {
    config = {
      kind: 'oauth2_refresh_token',
      tokenUrl: c.token_url as string,
      clientId: c.client_id as string,
      refreshToken: secret.refresh_token!,
      ...(secret.client_secret ? { clientSecret: secret.client_secret } : {}),
      ...(scope ? { scope } : {}),
    };
  }
  cache.set(p, config);
  return config;
}

function unverifiedZone(token: string): string {
  const payload = token.split('.')[1];
  let zoneId: unknown;
  try {
    zoneId = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8'))?.zone_id;
  } catch {
    zoneId = undefined;
  }
  if (typeof zoneId !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(zoneId)) {
    throw new CaracalError('mandate_malformed', 401, 'Mandate names no valid zone.');
  }
  return zoneId;
}

/** Registers the exchange route in its own scope: the body is kept raw so the signature covers its bytes. */
export function registerGatewayExchange(app: HttpApp, deps: GatewayExchangeDeps): void {
  const key = gatewayServiceKey(deps.keyring);
  const authenticate = createServiceAuth(key, deps.clock);
  const providerConfigs = new WeakMap<SnapshotProvider, ProviderConfig>();

  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) =>
      done(null, body),
    );
    scope.post(GATEWAY_EXCHANGE_PATH, async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      authenticate(req.headers[SIGNATURE_HEADER], raw);
      let parsed: z.infer<typeof exchangeBody>;
      try {
        parsed = exchangeBody.parse(JSON.parse(raw.toString('utf8')));
      } catch {
        throw new CaracalError('validation_failed', 400, 'Invalid gateway exchange body.');
      }
      const answer = await gatewayExchange(parsed, deps, providerConfigs);
      return reply.header('cache-control', 'no-store').send(answer);
    });
  });
}

export interface GatewayExchangeAnswer {
  resource_mandate: string;
  /** `allow_private`: the resource opted in to a loopback/private upstream (the Gateway still refuses metadata). */
  upstream: { url: string; allowed_hosts: string[]; allow_private: boolean };
  credential: { header_name: string; header_value: string } | null;
  expires_at: number;
}

async function gatewayExchange(
  req: z.infer<typeof exchangeBody>,
  deps: GatewayExchangeDeps,
  providerConfigs: WeakMap<SnapshotProvider, ProviderConfig>,
): Promise<GatewayExchangeAnswer> {
  const { clock } = deps;
  const zoneId = unverifiedZone(req.mandate);
  const zone = deps.zones.get(zoneId);
  if (!zone) throw new CaracalError('mandate_unknown_key', 401, 'Mandate key is not known.');
  let claims: MandateClaims;
  try {
    claims = zone.verifier.verify(req.mandate, {
      use: 'gateway',
      zoneId,
      ...(req.resource ? { resource: req.resource } : {}),
    });
  } catch (err) {
    throw err instanceof CaracalError
      ? err
      : new CaracalError('mandate_malformed', 401, 'Mandate could not be verified.');
  }
  if (claims.aud !== deps.gatewayAudience) {
    throw new CaracalError('mandate_wrong_audience', 401, 'Mandate audience is not the Gateway.');
  }
  const resourceId = req.resource ?? (claims.resources.length === 1 ? claims.resources[0] : undefined);
  if (!resourceId) {
    throw new CaracalError('resource_required', 400, 'The mandate names several resources; say which one.');
  }
  const scopes = claims.scope ? claims.scope.split(' ') : [];
  const path = req.path.split('?')[0]!;
  const base = {
    decision_id: randomUUID(),
    zone_id: zoneId,
    application_id: claims.client_id,
    resources: [resourceId],
    scopes,
    determining_policies: [],
    exchange: 'gateway' as const,
    gateway_jti: claims.jti,
    method: req.method,
    path,
  };
  const refuse = async (err: CaracalError): Promise<never> => {
    await deps.record({ ...base, decision: 'deny', reasons: [err.code] });
    throw err;
  };

  const resource = zone.resources.get(resourceId);
  if (!resource) {
    return refuse(new CaracalError('resource_not_found', 404, `Resource ${resourceId} no longer exists.`));
  }
  const needed = requiredScope(resource, req.method, path);
  if (needed === null || (needed !== undefined && !scopes.includes(needed))) {
    return refuse(
      new CaracalError(
        'operation_not_permitted',
        403,
        needed === null
          ? `${req.method} ${path} is not a declared operation of ${resourceId}.`
          : `${req.method} ${path} needs scope ${needed}, which the mandate does not grant.`,
      ),
    );
  }
  const remainingSec = claims.exp - Math.ceil(clock.now() / 1000);
  const ttlSec = Math.min(MANDATE_TTL_DEFAULT_SEC.resource, remainingSec, resource.max_mandate_ttl_seconds);
  if (ttlSec < 1) return refuse(new CaracalError('mandate_expiring', 401, 'Mandate is about to expire.'));

  let credential: ProviderCredential | undefined;
  if (resource.provider_id) {
    const provider = zone.snapshot.providers.find((p) => p.id === resource.provider_id);
    try {
      if (!provider) throw new CaracalError('provider_unavailable', 503, 'The resource provider is missing.');
      credential = await deps.providers.getCredential(
        provider.id,
        providerConfigFor(deps.keyring, providerConfigs, provider),
      );
    } catch (err) {
      const e =
        err instanceof CaracalError
          ? err
          : new CaracalError('provider_unavailable', 503, 'The brokered credential cannot be obtained.');
      deps.logger.warn({ provider: resource.provider_id, code: e.code }, 'brokered credential unavailable');
      await deps.record({ ...base, decision: 'error', reasons: [e.code], error: e.code });
      throw e;
    }
  }

  const minted = zone.signer.mint({
    sub: claims.sub,
    sub_type: claims.sub_type,
    aud: resourceId,
    zone_id: zoneId,
    client_id: claims.client_id,
    use: 'resource',
    resources: [resourceId],
    scope: needed ?? claims.scope,
    ...(claims.sid ? { sid: claims.sid } : {}),
    ...(claims.did ? { did: claims.did } : {}),
    ttlSec,
  });
  await deps.record({
    ...base,
    decision: 'allow',
    reasons: [],
    jti: minted.claims.jti,
    expires_at: minted.claims.exp,
  });
  return {
    resource_mandate: minted.token,
    upstream: {
      url: resource.upstream_url,
      allowed_hosts: resource.allowed_hosts,
      allow_private: resource.allow_private_upstream,
    },
    credential: credential
      ? { header_name: credential.headerName, header_value: credential.headerValue }
      : null,
    expires_at: minted.claims.exp,
  };
}
