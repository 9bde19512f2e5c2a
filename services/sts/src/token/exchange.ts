import { randomUUID } from 'node:crypto';
import type { Clock, Keyring } from '@caracal/core';
import { MANDATE_TTL_CAP_SEC } from '@caracal/mandate';
import { verifyClientSecret } from '@caracal/state';
import type { AuthzResult } from '../authz/reference.js';
import type { PolicyBundles } from '../policy/bundles.js';
import { mintRateKey, type RateLimiter } from '../ratelimit/index.js';
import type { ZoneDirectory } from '../zones.js';
import { oauthError } from './errors.js';
import type { TokenRequest } from './request.js';

export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** What the audit trail records for every exchange, allowed or not. */
export interface DecisionEvent {
  decision_id: string;
  zone_id: string;
  application_id: string;
  resources: string[];
  scopes: string[];
  decision: 'allow' | 'deny' | 'hold' | 'error';
  reasons: string[];
  determining_policies: string[];
  policy_version?: string;
  jti?: string;
  expires_at?: number;
  error?: string;
}

export interface TokenResponse {
  access_token: string;
  issued_token_type: typeof JWT_TOKEN_TYPE;
  token_type: 'N_A';
  expires_in: number;
  scope: string;
}

/** Approval holds, kept in the control-plane state. */
export interface ApprovalStore {
  /** Record a hold; returns the approval id the client waits on. */
  request(hold: {
    zoneId: string;
    applicationId: string;
    resources: string[];
    scopes: string[];
    tiers: string[];
    reasons: string[];
  }): Promise<string>;
  /** Use an approved approval once; the tiers it grants, or null when it is not usable for this request. */
  consume(use: {
    id: string;
    zoneId: string;
    applicationId: string;
    resources: string[];
    scopes: string[];
  }): Promise<string[] | null>;
}

export interface ExchangeDeps {
  zones: ZoneDirectory;
  bundles: PolicyBundles;
  keyring: Keyring;
  clock: Clock;
  /** `aud` of mandates presented to the Gateway. */
  gatewayAudience: string;
  rateLimiter: RateLimiter;
  approvals: ApprovalStore;
  mintsPerMinute: number;
  /** Records the decision before the answer leaves; throws when evidence cannot be kept (the exchange is then refused). */
  record(event: DecisionEvent): Promise<void>;
}

/**
 * RFC 8693 exchange: authenticate the application, check resources and scopes, rate limit, decide with
 * the zone's policy, mint a `use=gateway` mandate. Every outcome is recorded before it is answered.
 */
export async function exchange(req: TokenRequest, deps: ExchangeDeps): Promise<TokenResponse> {
  const decisionId = randomUUID();
  const base = {
    decision_id: decisionId,
    zone_id: req.zoneId,
    application_id: req.applicationId,
    resources: req.resources,
    scopes: req.scopes,
  };
  const refuse = async (
    err: ReturnType<typeof oauthError>,
    decision: DecisionEvent['decision'],
    reasons: string[],
    extra: Partial<DecisionEvent> = {},
  ): Promise<never> => {
    await deps.record({ ...base, decision, reasons, determining_policies: [], ...extra });
    throw err;
  };

  const zone = deps.zones.get(req.zoneId);
  if (!zone && (deps.zones.syncedAt() === undefined || deps.zones.error() !== undefined)) {
    // Zone state cannot be read: say so, rather than blaming the client's credentials.
    return refuse(oauthError('temporarily_unavailable', 'Zone state is not available; try again.'), 'error', [
      'zones_unavailable',
    ]);
  }
  const app = zone?.applications.get(req.applicationId);
  // One answer for unknown zone, unknown application and wrong secret: nothing to enumerate.
  if (!zone || !app || !verifyClientSecret(deps.keyring, app, req.clientSecret, deps.clock.now())) {
    return refuse(oauthError('invalid_client', 'Client authentication failed.'), 'deny', ['invalid_client']);
  }
  let sessionId = req.sessionId;
  if (req.subjectToken !== undefined) {
    try {
      const session = zone.verifier.verify(req.subjectToken, { use: 'session', zoneId: req.zoneId });
      if (session.client_id !== req.applicationId || (sessionId !== undefined && session.sid !== sessionId)) {
        throw new Error('session mandate belongs to another application or session');
      }
      sessionId = session.sid ?? session.sub;
    } catch (err) {
      return refuse(
        oauthError('invalid_grant', 'The subject token is not a valid session mandate of this zone.'),
        'deny',
        ['invalid_subject_token'],
        { error: (err as { code?: string }).code ?? 'invalid_subject_token' },
      );
    }
  }
  for (const r of req.resources) {
    const resource = zone.resources.get(r);
    if (!resource) {
      return refuse(oauthError('invalid_target', `Resource ${r} is not registered in this zone.`), 'deny', [
        'invalid_target',
      ]);
    }
    const undeclared = req.scopes.filter((s) => !resource.scopes.includes(s));
    if (undeclared.length) {
      return refuse(
        oauthError('invalid_scope', `Resource ${r} does not declare scope ${undeclared.join(', ')}.`),
        'deny',
        ['invalid_scope'],
      );
    }
  }
  for (const r of req.resources) {
    let hit: Awaited<ReturnType<RateLimiter['hit']>>;
    try {
      hit = await deps.rateLimiter.hit(
        mintRateKey(req.zoneId, r, req.applicationId),
        deps.mintsPerMinute,
        deps.clock.now(),
      );
    } catch (err) {
      // The limiter's store is down: fail closed.
      return refuse(
        oauthError('temporarily_unavailable', 'The mint rate limit cannot be checked.'),
        'error',
        ['rate_limit_unavailable'],
        { error: (err as { code?: string }).code ?? 'rate_limit_unavailable' },
      );
    }
    if (!hit.allowed) {
      const retryAfter = Math.max(1, Math.ceil((hit.resetAt - deps.clock.now()) / 1000));
      return refuse(
        oauthError(
          'temporarily_unavailable',
          'Mint rate limit reached for this application and resource.',
          { retry_after: retryAfter },
          429,
        ),
        'deny',
        ['rate_limited'],
      );
    }
  }

  let approvedTiers: string[] | undefined;
  if (req.approvalId !== undefined) {
    let tiers: string[] | null;
    try {
      tiers = await deps.approvals.consume({
        id: req.approvalId,
        zoneId: req.zoneId,
        applicationId: req.applicationId,
        resources: req.resources,
        scopes: req.scopes,
      });
    } catch (err) {
      return refuse(
        oauthError('temporarily_unavailable', 'The approval cannot be checked.'),
        'error',
        ['approval_unavailable'],
        { error: (err as { code?: string }).code ?? 'approval_unavailable' },
      );
    }
    if (!tiers) {
      return refuse(
        oauthError(
          'invalid_grant',
          'The approval is not approved, has expired or been used, or does not cover this request.',
        ),
        'deny',
        ['approval_not_usable'],
      );
    }
    approvedTiers = tiers;
  }

  let holdReasons: string[] = [];
  const holdTiers = new Set<string>();
  const determining = new Set<string>();
  let policyVersion: string | undefined;
  for (const resource of req.resources) {
    let result: AuthzResult & { policyVersion: string };
    try {
      result = deps.bundles.decide(req.zoneId, {
        app_id: req.applicationId,
        resource,
        scopes: req.scopes,
        ...(sessionId ? { session: { id: sessionId, labels: [] } } : {}),
        ...(approvedTiers ? { approved_tiers: approvedTiers } : {}),
      });
    } catch (err) {
      return refuse(
        oauthError('temporarily_unavailable', (err as Error).message),
        'error',
        ['policy_not_loaded'],
        { error: (err as { code?: string }).code ?? 'policy_error' },
      );
    }
    policyVersion = result.policyVersion;
    for (const p of result.determining_policies) determining.add(p);
    if (result.decision === 'deny') {
      return refuse(
        oauthError('access_denied', `Policy denied ${resource}: ${result.reasons.join(', ')}.`, {
          reasons: result.reasons,
        }),
        'deny',
        result.reasons,
        { determining_policies: [...determining], policy_version: result.policyVersion },
      );
    }
    if (result.decision === 'hold') {
      holdReasons = [...holdReasons, ...result.reasons];
      for (const t of result.diagnostics.approval_tiers ?? []) holdTiers.add(t);
    }
  }
  if (holdReasons.length) {
    const hold = {
      determining_policies: [...determining],
      ...(policyVersion ? { policy_version: policyVersion } : {}),
    };
    let approvalId: string;
    try {
      approvalId = await deps.approvals.request({
        zoneId: req.zoneId,
        applicationId: req.applicationId,
        resources: req.resources,
        scopes: req.scopes,
        tiers: [...holdTiers],
        reasons: holdReasons,
      });
    } catch (err) {
      return refuse(
        oauthError('temporarily_unavailable', 'The approval hold cannot be recorded.'),
        'error',
        holdReasons,
        {
          ...hold,
          error: (err as { code?: string }).code ?? 'approval_unavailable',
        },
      );
    }
    return refuse(
      oauthError('interaction_required', 'The request needs an approval before a mandate can be issued.', {
        reasons: holdReasons,
        approval_id: approvalId,
        approval_url: `/approvals/${approvalId}`,
      }),
      'hold',
      holdReasons,
      hold,
    );
  }

  const capByResource = Math.min(...req.resources.map((r) => zone.resources.get(r)!.max_mandate_ttl_seconds));
  const ttlSec = Math.min(req.ttlSeconds ?? 120, capByResource, MANDATE_TTL_CAP_SEC.gateway);
  const minted = zone.signer.mint({
    sub: req.applicationId,
    sub_type: sessionId ? 'session' : 'application',
    aud: deps.gatewayAudience,
    zone_id: req.zoneId,
    client_id: req.applicationId,
    use: 'gateway',
    resources: req.resources,
    scope: req.scopes.join(' '),
    ...(sessionId ? { sid: sessionId } : {}),
    ...(req.delegationId ? { did: req.delegationId } : {}),
    ttlSec,
  });
  await deps.record({
    ...base,
    decision: 'allow',
    reasons: [],
    determining_policies: [...determining],
    ...(policyVersion ? { policy_version: policyVersion } : {}),
    jti: minted.claims.jti,
    expires_at: minted.claims.exp,
  });
  return {
    access_token: minted.token,
    issued_token_type: JWT_TOKEN_TYPE,
    token_type: 'N_A',
    expires_in: ttlSec,
    scope: minted.claims.scope,
  };
}
