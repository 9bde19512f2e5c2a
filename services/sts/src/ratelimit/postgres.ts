import { type Clock, type Logger, systemClock } from '@caracal/core';
import type { Db } from '@caracal/store';
import {
  DEFAULT_WINDOW_MS,
  decide,
  type RateLimitDecision,
  type RateLimiter,
  unavailable,
  windowStart,
} from './types.js';

export interface PostgresRateLimiterOptions {
  db: Db;
  clock?: Clock;
  logger?: Logger;
  windowMs?: number;
  /** How often old windows are deleted; default 60 s, 0 = never (call `prune`). */
  cleanupIntervalMs?: number;
}

export interface PostgresRateLimiter extends RateLimiter {
  /** Delete windows that ended before the previous one; returns how many rows went. */
  prune(now?: number): Promise<number>;
}

// The count only grows while under the limit: a denied hit locks the row but writes nothing.
const HIT_SQL = `INSERT INTO sts_mint_rate_windows (key, window_start, count) VALUES ($1, $2, 1)
ON CONFLICT (key, window_start) DO UPDATE SET count = sts_mint_rate_windows.count + 1
  WHERE sts_mint_rate_windows.count < $3
RETURNING count`;

/** Fixed-window limiter on Postgres or PGlite (embedded mode): one upsert per hit. */
export function createPostgresRateLimiter(opts: PostgresRateLimiterOptions): PostgresRateLimiter {
  const { db } = opts;
  const clock = opts.clock ?? systemClock;
  const windowMs = opts.windowMs ?? DEFAULT_WINDOW_MS;
  const cleanupMs = opts.cleanupIntervalMs ?? 60_000;

  async function prune(now = clock.now()): Promise<number> {
    const rows = await db.query('DELETE FROM sts_mint_rate_windows WHERE window_start < $1 RETURNING 1', [
      new Date(windowStart(now, windowMs) - windowMs),
    ]);
    return rows.length;
  }

  const timer =
    cleanupMs > 0
      ? setInterval(() => {
          prune().catch((err: unknown) =>
            opts.logger?.warn({ err: (err as Error).message }, 'mint rate window cleanup failed'),
          );
        }, cleanupMs)
      : undefined;
  timer?.unref();

  return {
    async hit(key: string, limit: number, now: number): Promise<RateLimitDecision> {
      const start = windowStart(now, windowMs);
      const resetAt = start + windowMs;
      if (limit <= 0) return decide(undefined, limit, resetAt);
      let rows: { count: number }[];
      try {
        rows = await db.query<{ count: number }>(HIT_SQL, [key, new Date(start), limit]);
      } catch (err) {
        throw unavailable('database', err);
      }
      return decide(rows[0]?.count, limit, resetAt);
    },
    prune,
    async close() {
      if (timer) clearInterval(timer);
    },
  };
}
