import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CaracalError,
  type Clock,
  type Keyring,
  type Logger,
  type Registry,
  systemClock,
} from '@caracal/core';
import type { Db } from '@caracal/store';
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import { fetch as undiciFetch } from 'undici';
import { type ProviderMetrics, providerMetrics } from './metrics.js';
import { type FetchLike, requestToken, TokenEndpointError, type TokenSet } from './token-endpoint.js';
import { claimLease, readTokenRow, releaseLease, type StoredTokenRow, storeToken } from './token-store.js';
import type {
  CircuitStateName,
  OAuth2ClientCredentialsConfig,
  OAuth2RefreshTokenConfig,
  ProviderConfig,
  ProviderCredential,
  ProviderStatus,
  StaticApiKeyConfig,
} from './types.js';

export interface ProviderBrokerOptions {
  db: Db;
  keyring: Keyring;
  logger: Logger;
  registry: Registry;
  clock?: Clock;
  /** Token endpoint transport; default undici's fetch. */
  fetch?: FetchLike;
  /** Refresh this long before expiry; default 60 s. */
  refreshAheadMs?: number;
  /** Per token-endpoint call; default 5 s. */
  timeoutMs?: number;
  /** Per provider; defaults: open after 3 consecutive failures, try again (half-open) after 10 s. */
  breaker?: { consecutiveFailures?: number; halfOpenAfterMs?: number };
  /** How long a refresh lease holds before another replica may take over; default timeoutMs + 5 s. */
  leaseMs?: number;
  /** Token lifetime assumed when the endpoint gives no expires_in; default 5 min. */
  defaultTtlMs?: number;
  /** Background sweep that refreshes tokens ahead of expiry without waiting for traffic; default 5 s, 0 = off. */
  sweepIntervalMs?: number;
  /** The sweep ignores providers unused for this long; default 15 min. */
  idleAfterMs?: number;
  /** This replica's lease owner id; default a random UUID. */
  owner?: string;
}

/** Brokers upstream credentials so agents never hold them; one per STS process. */
export interface ProviderBroker {
  /** The header to inject for this provider; cached until near expiry; throws `provider_unavailable` (503). */
  getCredential(providerId: string, config: ProviderConfig): Promise<ProviderCredential>;
  /** Health per provider seen so far, for /ready and `caracal recover`. */
  status(): ProviderStatus[];
  /** Refresh every recently used token inside its refresh-ahead window; resolves when in-flight refreshes settle. */
  refreshDue(): Promise<void>;
  /** Drop a provider (deleted or reconfigured in the control plane) from memory. */
  forget(providerId: string): void;
  /** Stop the sweep and wait for in-flight refreshes. */
  stop(): Promise<void>;
}

type OAuthConfig = OAuth2ClientCredentialsConfig | OAuth2RefreshTokenConfig;

interface CachedToken {
  credential: ProviderCredential;
  expiresAt: number;
}

interface OAuthEntry {
  providerId: string;
  config: OAuthConfig;
  digest: string;
  cached?: CachedToken;
  inflight?: Promise<ProviderCredential>;
  /** Background refreshes wait until then after a failure or a lost race (clock ms). */
  nextBackgroundAt: number;
  lastUsedAt: number;
  lastError?: ProviderStatus['lastError'];
  /** A rotated refresh token the database did not take (it was down); used before the stored one. */
  unsavedRefreshToken?: string;
  breaker: CircuitBreakerPolicy;
  state: CircuitStateName;
}

const STATE_NAMES: Record<CircuitState, CircuitStateName> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'open',
};
const STATE_VALUES: Record<CircuitStateName, number> = { closed: 0, open: 1, 'half-open': 0.5 };
const LEASE_POLL_MS = 50;
const BACKGROUND_RETRY_MS = 1_000;

/** Create the provider credential broker (see DESIGN §5 "Provider credentials"). */
export function createProviderBroker(opts: ProviderBrokerOptions): ProviderBroker {
  const clock = opts.clock ?? systemClock;
  const fetchFn: FetchLike = opts.fetch ?? (undiciFetch as unknown as FetchLike);
  const refreshAheadMs = opts.refreshAheadMs ?? 60_000;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const leaseMs = opts.leaseMs ?? timeoutMs + 5_000;
  const defaultTtlMs = opts.defaultTtlMs ?? 300_000;
  const idleAfterMs = opts.idleAfterMs ?? 15 * 60_000;
  const consecutiveFailures = opts.breaker?.consecutiveFailures ?? 3;
  const halfOpenAfterMs = opts.breaker?.halfOpenAfterMs ?? 10_000;
  const owner = opts.owner ?? randomUUID();
  const metrics: ProviderMetrics = providerMetrics(opts.registry);
  const log = opts.logger;

  const oauth = new Map<string, OAuthEntry>();
  const statics = new Map<string, StaticApiKeyConfig>();
  const digests = new WeakMap<ProviderConfig, string>();
  let stopped = false;

  const sweepMs = opts.sweepIntervalMs ?? 5_000;
  const sweep =
    sweepMs > 0
      ? setInterval(() => {
          void refreshDue();
        }, sweepMs)
      : undefined;
  sweep?.unref();

  function configDigest(config: ProviderConfig): string {
    let d = digests.get(config);
    if (!d) {
      // Keyed digest: a low-entropy client secret cannot be recovered from it.
      const canonical = JSON.stringify(config, Object.keys(config).sort());
      d = opts.keyring.digest(canonical, 'sts-provider-config');
      digests.set(config, d);
    }
    return d;
  }

  function entryFor(providerId: string, config: OAuthConfig): OAuthEntry {
    const entry = oauth.get(providerId);
    if (entry) {
      if (entry.config !== config) {
        const digest = configDigest(config);
        if (digest !== entry.digest) {
          entry.digest = digest;
          entry.cached = undefined;
        }
        entry.config = config;
      }
      return entry;
    }
    const breaker = circuitBreaker(
      handleWhen((err) => err instanceof TokenEndpointError),
      { halfOpenAfter: halfOpenAfterMs, breaker: new ConsecutiveBreaker(consecutiveFailures) },
    );
    const created: OAuthEntry = {
      providerId,
      config,
      digest: configDigest(config),
      nextBackgroundAt: 0,
      lastUsedAt: clock.now(),
      breaker,
      state: 'closed',
    };
    breaker.onStateChange((s) => {
      created.state = STATE_NAMES[s];
      metrics.circuitState.set({ provider: providerId }, STATE_VALUES[created.state]);
    });
    breaker.onBreak(() => {
      metrics.circuitOpen.inc({ provider: providerId });
      log.error(
        { provider: providerId, lastError: created.lastError?.code },
        'provider circuit opened: its resources fail closed until a refresh succeeds',
      );
    });
    breaker.onReset(() => log.info({ provider: providerId }, 'provider circuit closed'));
    metrics.circuitState.set({ provider: providerId }, 0);
    oauth.set(providerId, created);
    return created;
  }

  function toCredential(entry: OAuthEntry, token: TokenSet, expiresAt: number): CachedToken {
    const credential: ProviderCredential = Object.freeze({
      kind: entry.config.kind,
      headerName: 'authorization',
      headerValue: `${token.tokenType} ${token.accessToken}`,
      expiresAt,
    });
    entry.cached = { credential, expiresAt };
    return entry.cached;
  }

  const sealContext = (providerId: string) => `provider-token:${providerId}`;

  function openRow(entry: OAuthEntry, row: StoredTokenRow): TokenSet | undefined {
    if (!row.sealedToken || row.configDigest !== entry.digest) return undefined;
    try {
      return JSON.parse(opts.keyring.open(row.sealedToken, sealContext(entry.providerId)).toString('utf8'));
    } catch {
      // Sealed under a master key no longer configured: treat as absent and obtain a new token.
      log.warn({ provider: entry.providerId }, 'stored provider token is unreadable; refreshing');
      return undefined;
    }
  }

  /** Read the shared row; refresh under the lease if its token is not fresh; adopt the winner's token otherwise. */
  async function acquire(entry: OAuthEntry): Promise<CachedToken> {
    const { providerId } = entry;
    const waitUntil = Date.now() + timeoutMs + 2_000;
    for (;;) {
      const now = clock.now();
      const row = await readTokenRow(opts.db, providerId);
      const stored = row ? openRow(entry, row) : undefined;
      const storedExpiry = stored && row?.expiresAt ? row.expiresAt : undefined;
      if (stored && storedExpiry && storedExpiry - refreshAheadMs > now) {
        return toCredential(entry, stored, storedExpiry);
      }
      if (row && row.leaseUntil > now && row.leaseOwner !== owner) {
        // Another replica is refreshing: keep using a still-valid token, otherwise wait for the winner's.
        if (stored && storedExpiry && storedExpiry > now) {
          entry.nextBackgroundAt = now + BACKGROUND_RETRY_MS;
          return toCredential(entry, stored, storedExpiry);
        }
        if (Date.now() > waitUntil) {
          throw new CaracalError(
            'provider_unavailable',
            503,
            `Provider '${providerId}' is being refreshed by another replica that has not finished.`,
            { provider: providerId },
          );
        }
        await sleep(LEASE_POLL_MS);
        continue;
      }
      const generation = row?.generation ?? '0';
      if (!(await claimLease(opts.db, providerId, owner, now, now + leaseMs, generation))) continue;
      return refreshUnderLease(entry, stored, generation);
    }
  }

  async function refreshUnderLease(
    entry: OAuthEntry,
    stored: TokenSet | undefined,
    generation: string,
  ): Promise<CachedToken> {
    const { providerId, config } = entry;
    const currentRefresh =
      config.kind === 'oauth2_refresh_token'
        ? (entry.unsavedRefreshToken ?? stored?.refreshToken ?? config.refreshToken)
        : undefined;
    let grant: Awaited<ReturnType<typeof requestToken>>;
    try {
      grant = await requestToken(fetchFn, config, currentRefresh, timeoutMs);
    } catch (err) {
      const failure =
        err instanceof TokenEndpointError ? err : new TokenEndpointError('transient', 'network');
      await onFailure(entry, failure);
      throw failure;
    }
    const now = clock.now();
    const expiresAt = now + (grant.expiresIn !== undefined ? grant.expiresIn * 1000 : defaultTtlMs);
    const token: TokenSet = { ...grant.token };
    if (config.kind === 'oauth2_refresh_token') token.refreshToken ??= currentRefresh;
    else delete token.refreshToken;
    let saved: boolean;
    try {
      saved = await storeToken(opts.db, {
        providerId,
        owner,
        seenGeneration: generation,
        configDigest: entry.digest,
        sealedToken: opts.keyring.seal(JSON.stringify(token), sealContext(providerId)),
        expiresAt,
        now,
      });
    } catch (err) {
      // The token is good: serve it from memory and keep a rotated refresh token for the next refresh here.
      // The lease lapses by itself. Other replicas (and a restart) only see the stored generation.
      log.error({ provider: providerId, err: (err as Error).message }, 'provider token could not be stored');
      entry.unsavedRefreshToken = token.refreshToken;
      return toCredential(entry, token, expiresAt);
    }
    entry.unsavedRefreshToken = undefined;
    if (!saved) {
      log.warn(
        { provider: providerId },
        'provider token refreshed after this replica lost its lease; another replica stored a newer one',
      );
    }
    entry.lastError = undefined;
    return toCredential(entry, token, expiresAt);
  }

  async function onFailure(entry: OAuthEntry, err: TokenEndpointError): Promise<void> {
    const { providerId } = entry;
    const now = clock.now();
    entry.lastError = { code: err.code, reason: err.reason, at: now };
    metrics.refreshErrors.inc({ provider: providerId, reason: err.reason });
    if (err.reason === 'revoked') {
      // The credential itself is dead: stop serving the token obtained with it, here and in the shared row.
      entry.cached = undefined;
      log.error(
        { provider: providerId, code: err.code, status: err.httpStatus },
        'provider credential rejected as revoked or expired: update the provider credentials; its resources fail closed',
      );
    } else {
      log.warn(
        { provider: providerId, code: err.code, status: err.httpStatus, reason: err.reason },
        'provider token refresh failed',
      );
    }
    try {
      await releaseLease(opts.db, providerId, owner, {
        code: err.code,
        now,
        invalidate: err.reason === 'revoked',
      });
    } catch (releaseErr) {
      // The lease then lapses on its own after leaseMs.
      log.warn({ provider: providerId, err: (releaseErr as Error).message }, 'provider lease release failed');
    }
  }

  function refresh(entry: OAuthEntry): Promise<ProviderCredential> {
    entry.inflight ??= entry.breaker
      .execute(() => acquire(entry))
      .then(
        (cached) => cached.credential,
        (err: unknown) => {
          throw toCaracalError(entry, err);
        },
      )
      .finally(() => {
        entry.inflight = undefined;
      });
    return entry.inflight;
  }

  function background(entry: OAuthEntry): Promise<unknown> {
    return refresh(entry).catch(() => {
      entry.nextBackgroundAt = clock.now() + BACKGROUND_RETRY_MS;
    });
  }

  function toCaracalError(entry: OAuthEntry, err: unknown): unknown {
    const provider = entry.providerId;
    if (err instanceof BrokenCircuitError) {
      return new CaracalError(
        'provider_unavailable',
        503,
        `Provider '${provider}' is unavailable: its circuit is open after repeated refresh failures.`,
        { provider },
      );
    }
    if (err instanceof TokenEndpointError) {
      return new CaracalError(
        'provider_unavailable',
        503,
        `Provider '${provider}' credential refresh failed (${err.code}).`,
        { provider, reason: err.reason },
      );
    }
    return err;
  }

  async function getCredential(providerId: string, config: ProviderConfig): Promise<ProviderCredential> {
    if (stopped) throw new CaracalError('provider_unavailable', 503, 'The provider broker is stopped.');
    if (config.kind === 'static_api_key') {
      statics.set(providerId, config);
      return staticCredential(config);
    }
    const entry = entryFor(providerId, config);
    const now = clock.now();
    entry.lastUsedAt = now;
    const cached = entry.cached;
    if (cached && now < cached.expiresAt) {
      if (now >= cached.expiresAt - refreshAheadMs && !entry.inflight && now >= entry.nextBackgroundAt) {
        void background(entry);
      }
      return cached.credential;
    }
    return refresh(entry);
  }

  async function refreshDue(): Promise<void> {
    if (stopped) return;
    const now = clock.now();
    const work: Promise<unknown>[] = [];
    for (const entry of oauth.values()) {
      if (entry.inflight) work.push(entry.inflight.catch(() => undefined));
      else if (
        entry.cached &&
        now >= entry.cached.expiresAt - refreshAheadMs &&
        now >= entry.nextBackgroundAt &&
        now - entry.lastUsedAt < idleAfterMs
      ) {
        work.push(background(entry));
      }
    }
    await Promise.all(work);
  }

  function status(): ProviderStatus[] {
    const out: ProviderStatus[] = [];
    for (const [providerId, config] of statics) out.push({ providerId, kind: config.kind, state: 'closed' });
    for (const e of oauth.values()) {
      const s: ProviderStatus = { providerId: e.providerId, kind: e.config.kind, state: e.state };
      if (e.cached) s.expiresAt = e.cached.expiresAt;
      if (e.lastError) s.lastError = { ...e.lastError };
      out.push(s);
    }
    return out;
  }

  return {
    getCredential,
    status,
    refreshDue,
    forget(providerId) {
      statics.delete(providerId);
      if (oauth.delete(providerId)) metrics.circuitState.remove({ provider: providerId });
    },
    async stop() {
      stopped = true;
      if (sweep) clearInterval(sweep);
      await Promise.all([...oauth.values()].map((e) => e.inflight?.catch(() => undefined)));
    },
  };
}

function staticCredential(config: StaticApiKeyConfig): ProviderCredential {
  const headerName = (config.headerName ?? 'authorization').toLowerCase();
  return {
    kind: 'static_api_key',
    headerName,
    headerValue: config.scheme ? `${config.scheme} ${config.apiKey}` : config.apiKey,
  };
}
