import type { Clock } from '@caracal/core';
import { type KeySource, type VerificationKey, verificationKeyFromJwk } from './jwk.js';

export interface JwksCacheOptions {
  /** Fetches a zone's JWKS from the configured STS; the URL is ours, never taken from a token. */
  fetchJwks: (zoneId: string) => Promise<unknown>;
  clock: Clock;
  /** Age after which a zone's set is refreshed in the background on next use (default 5 min). */
  ttlMs?: number;
  /** Least time between two fetches for one zone, whatever triggers them (default 30 s). */
  minRefreshIntervalMs?: number;
}

/** How fresh one zone's key set is (for readiness and metrics). */
export interface JwksZoneStatus {
  zoneId: string;
  keyCount: number;
  /** When the set in use was fetched (ms since the epoch); undefined before the first success. */
  loadedAt?: number;
  ageMs?: number;
  lastAttemptAt?: number;
  /** Message of the last failed fetch, cleared by the next success. */
  lastError?: string;
  /** Keys of the last fetched document that were skipped as unusable. */
  skippedKeys: number;
}

/** The Gateway's cache of remote zone JWKS, keyed by (zone, kid). */
export interface JwksCache extends KeySource {
  /** Refreshes the zone's set for an unknown `kid`, at most once per interval; concurrent callers share one fetch. */
  refreshFor(kid: string, zoneId: string | undefined): Promise<void>;
  /** The key for (zone, kid), fetching once (rate-limited) when it is not cached. */
  resolve(zoneId: string, kid: string): Promise<VerificationKey | undefined>;
  /** Fetches the zone's set now unless a fetch is in flight (startup warm-up); ignores the refresh interval. */
  load(zoneId: string): Promise<void>;
  status(zoneId: string): JwksZoneStatus | undefined;
}

interface ZoneEntry {
  keys: Map<string, VerificationKey>;
  loadedAt?: number;
  lastAttemptAt?: number;
  lastError?: string;
  skippedKeys: number;
  inflight?: Promise<void>;
}

const sameKey = (a: VerificationKey, b: VerificationKey) =>
  a.alg === b.alg && JSON.stringify(a.publicJwk) === JSON.stringify(b.publicJwk);

/** A JWKS cache that keeps the last good set when a fetch fails and never stampedes the STS. */
export function createJwksCache(options: JwksCacheOptions): JwksCache {
  const { fetchJwks, clock } = options;
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const minIntervalMs = options.minRefreshIntervalMs ?? 30_000;
  const zones = new Map<string, ZoneEntry>();

  function entry(zoneId: string): ZoneEntry {
    let z = zones.get(zoneId);
    if (!z) {
      z = { keys: new Map(), skippedKeys: 0 };
      zones.set(zoneId, z);
    }
    return z;
  }

  function install(z: ZoneEntry, doc: unknown): void {
    const list = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(list)) throw new Error('JWKS document has no keys array');
    const next = new Map<string, VerificationKey>();
    let skipped = 0;
    for (const jwk of list) {
      let key: VerificationKey;
      try {
        key = verificationKeyFromJwk(jwk);
      } catch {
        skipped++;
        continue;
      }
      if (next.has(key.kid)) {
        skipped++;
        continue;
      }
      // Keep the old object for an unchanged key so verifiers keep their prepared state.
      const old = z.keys.get(key.kid);
      next.set(key.kid, old && sameKey(old, key) ? old : key);
    }
    // An empty set is far likelier a broken STS than a real rotation: keep what we have.
    if (next.size === 0) throw new Error(`JWKS document has no usable keys (${skipped} skipped)`);
    z.keys = next;
    z.skippedKeys = skipped;
    z.loadedAt = clock.now();
    z.lastError = undefined;
  }

  function refresh(zoneId: string, force: boolean): Promise<void> {
    const z = entry(zoneId);
    if (z.inflight) return z.inflight;
    const now = clock.now();
    if (!force && z.lastAttemptAt !== undefined && now - z.lastAttemptAt < minIntervalMs)
      return Promise.resolve();
    z.lastAttemptAt = now;
    // Never synchronous, so `inflight` is set before the fetch can settle and clear it.
    const run = Promise.resolve()
      .then(() => fetchJwks(zoneId))
      .then((doc) => install(z, doc))
      .catch((e: unknown) => {
        z.lastError = e instanceof Error ? e.message : String(e);
      })
      .finally(() => {
        z.inflight = undefined;
      });
    z.inflight = run;
    return run;
  }

  function lookup(kid: string, zoneId: string | undefined): VerificationKey | undefined {
    if (zoneId === undefined) return undefined;
    const z = zones.get(zoneId);
    if (!z) return undefined;
    if (z.loadedAt !== undefined && clock.now() - z.loadedAt >= ttlMs) void refresh(zoneId, false);
    return z.keys.get(kid);
  }

  return {
    lookup,
    async refreshFor(kid, zoneId) {
      if (zoneId === undefined) return;
      if (zones.get(zoneId)?.keys.has(kid)) return;
      await refresh(zoneId, false);
    },
    async resolve(zoneId, kid) {
      const hit = lookup(kid, zoneId);
      if (hit) return hit;
      await refresh(zoneId, false);
      return zones.get(zoneId)?.keys.get(kid);
    },
    load: (zoneId) => refresh(zoneId, true),
    status(zoneId) {
      const z = zones.get(zoneId);
      if (!z) return undefined;
      const s: JwksZoneStatus = { zoneId, keyCount: z.keys.size, skippedKeys: z.skippedKeys };
      if (z.loadedAt !== undefined) {
        s.loadedAt = z.loadedAt;
        s.ageMs = clock.now() - z.loadedAt;
      }
      if (z.lastAttemptAt !== undefined) s.lastAttemptAt = z.lastAttemptAt;
      if (z.lastError !== undefined) s.lastError = z.lastError;
      return s;
    },
  };
}
