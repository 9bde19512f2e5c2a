import type { Queryable } from '@caracal/store';

/** One row of sts_provider_tokens, as the broker reads it. */
export interface StoredTokenRow {
  configDigest: string | null;
  sealedToken: string | null;
  expiresAt: number | null;
  generation: string;
  leaseOwner: string | null;
  leaseUntil: number;
}

interface RawRow {
  config_digest: string | null;
  sealed_token: string | null;
  expires_at: Date | null;
  generation: string;
  lease_owner: string | null;
  lease_until: Date;
}

/** Plain SQL over sts_provider_tokens. All times come from the broker's clock, so replicas and tests agree. */
export async function readTokenRow(q: Queryable, providerId: string): Promise<StoredTokenRow | undefined> {
  const [r] = await q.query<RawRow>(
    `SELECT config_digest, sealed_token, expires_at, generation, lease_owner, lease_until
       FROM sts_provider_tokens WHERE provider_id = $1`,
    [providerId],
  );
  if (!r) return undefined;
  return {
    configDigest: r.config_digest,
    sealedToken: r.sealed_token,
    expiresAt: r.expires_at ? r.expires_at.getTime() : null,
    generation: String(r.generation),
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until.getTime(),
  };
}

/**
 * Take the refresh lease: succeeds only when no live lease exists AND nobody stored a token since the caller
 * read `seenGeneration` (so a replica that lost the race re-reads the winner's token instead of refreshing).
 */
export async function claimLease(
  q: Queryable,
  providerId: string,
  owner: string,
  now: number,
  leaseUntil: number,
  seenGeneration: string,
): Promise<boolean> {
  const rows = await q.query(
    `INSERT INTO sts_provider_tokens (provider_id, lease_owner, lease_until, updated_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (provider_id) DO UPDATE
       SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until, updated_at = EXCLUDED.updated_at
       WHERE (sts_provider_tokens.lease_until <= EXCLUDED.updated_at OR sts_provider_tokens.lease_owner = $2)
         AND sts_provider_tokens.generation = $5::bigint
     RETURNING 1`,
    [providerId, owner, new Date(leaseUntil), new Date(now), seenGeneration],
  );
  return rows.length === 1;
}

/**
 * Store a fresh token and release the lease. Also accepted when the lease ran out but nobody else stored a
 * token since (`generation` unchanged): dropping a rotated refresh token would lock the provider out.
 */
export async function storeToken(
  q: Queryable,
  row: {
    providerId: string;
    owner: string;
    seenGeneration: string;
    configDigest: string;
    sealedToken: string;
    expiresAt: number;
    now: number;
  },
): Promise<boolean> {
  const rows = await q.query(
    `UPDATE sts_provider_tokens
        SET sealed_token = $3, expires_at = $4, config_digest = $5, generation = generation + 1,
            lease_owner = NULL, lease_until = 'epoch', last_error = NULL, last_error_at = NULL, updated_at = $6
      WHERE provider_id = $1 AND (lease_owner = $2 OR generation = $7::bigint)
      RETURNING 1`,
    [
      row.providerId,
      row.owner,
      row.sealedToken,
      new Date(row.expiresAt),
      row.configDigest,
      new Date(row.now),
      row.seenGeneration,
    ],
  );
  return rows.length === 1;
}

/** Release the lease after a failed refresh, recording the classified error; `invalidate` drops the token's expiry. */
export async function releaseLease(
  q: Queryable,
  providerId: string,
  owner: string,
  failure: { code: string; now: number; invalidate: boolean },
): Promise<void> {
  await q.query(
    `UPDATE sts_provider_tokens
        SET lease_owner = NULL, lease_until = 'epoch', last_error = $3, last_error_at = $4, updated_at = $4,
            expires_at = CASE WHEN $5::boolean THEN NULL ELSE expires_at END
      WHERE provider_id = $1 AND lease_owner = $2`,
    [providerId, owner, failure.code, new Date(failure.now), failure.invalidate],
  );
}

/** What the shared table says about each provider (for `caracal recover`, which has no broker memory). */
export interface StoredProviderHealth {
  providerId: string;
  /** ms epoch; null when no usable token is stored (never fetched, or invalidated as revoked). */
  expiresAt: number | null;
  leaseOwner: string | null;
  leaseUntil: number;
  lastError: string | null;
  lastErrorAt: number | null;
}

/** Every row of sts_provider_tokens without its secret column. */
export async function readProviderTokenHealth(q: Queryable): Promise<StoredProviderHealth[]> {
  const rows = await q.query<{
    provider_id: string;
    expires_at: Date | null;
    lease_owner: string | null;
    lease_until: Date;
    last_error: string | null;
    last_error_at: Date | null;
  }>(
    `SELECT provider_id, expires_at, lease_owner, lease_until, last_error, last_error_at
       FROM sts_provider_tokens ORDER BY provider_id`,
  );
  return rows.map((r) => ({
    providerId: r.provider_id,
    expiresAt: r.expires_at?.getTime() ?? null,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until.getTime(),
    lastError: r.last_error,
    lastErrorAt: r.last_error_at?.getTime() ?? null,
  }));
}
