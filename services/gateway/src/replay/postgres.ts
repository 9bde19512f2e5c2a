import { type Clock, type Logger, systemClock } from '@caracal/core';
import type { Db } from '@caracal/store';
import { checkJti, DEFAULT_LEEWAY_MS, type ReplayGuard, replayStoreUnavailable } from './types.js';

export interface PostgresReplayGuardOptions {
  db: Db;
  clock?: Clock;
  logger?: Logger;
  /** Extra life past exp; default 30 s. */
  leewayMs?: number;
  /** A consume with no answer after this fails as replay_store_unavailable; default 1 s. */
  timeoutMs?: number;
  /** How often expired rows are deleted; default 60 s, 0 = never (call `sweep`). */
  sweepIntervalMs?: number;
  /** Rows deleted per sweep statement; default 10,000. */
  sweepBatch?: number;
}

export interface PostgresReplayGuard extends ReplayGuard {
  /** Delete rows whose life has ended; returns how many went. */
  sweep(now?: number): Promise<number>;
}

// An expired row not yet swept still answers false: a stale jti is refused, which is the safe side.
const CONSUME_SQL = `INSERT INTO gateway_consumed_jtis (jti, expires_at) VALUES ($1, $2)
ON CONFLICT (jti) DO NOTHING RETURNING 1 AS first`;

const SWEEP_SQL = `DELETE FROM gateway_consumed_jtis WHERE jti IN (
  SELECT jti FROM gateway_consumed_jtis WHERE expires_at < $1 LIMIT $2
) RETURNING 1`;

/** Replay guard on Postgres or PGlite (embedded mode): one insert per consume, expired rows swept. */
export function createPostgresReplayGuard(opts: PostgresReplayGuardOptions): PostgresReplayGuard {
  const { db } = opts;
  const clock = opts.clock ?? systemClock;
  const leewayMs = opts.leewayMs ?? DEFAULT_LEEWAY_MS;
  const timeoutMs = opts.timeoutMs ?? 1_000;
  const batch = opts.sweepBatch ?? 10_000;
  const sweepMs = opts.sweepIntervalMs ?? 60_000;

  async function sweep(now = clock.now()): Promise<number> {
    let total = 0;
    for (;;) {
      const rows = await db.query(SWEEP_SQL, [new Date(now), batch]);
      total += rows.length;
      if (rows.length < batch) return total;
    }
  }

  const timer =
    sweepMs > 0
      ? setInterval(() => {
          sweep().catch((err: unknown) =>
            opts.logger?.warn({ err: (err as Error).message }, 'consumed jti sweep failed'),
          );
        }, sweepMs)
      : undefined;
  timer?.unref();

  return {
    async consume(jti: string, expiresAtMs: number): Promise<boolean> {
      checkJti(jti);
      const expiresAt = expiresAtMs + leewayMs;
      if (expiresAt <= clock.now()) return false;
      let timeout: NodeJS.Timeout | undefined;
      try {
        const rows = await Promise.race([
          db.query(CONSUME_SQL, [jti, new Date(expiresAt)]),
          new Promise<never>((_, reject) => {
            timeout = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return rows.length === 1;
      } catch (err) {
        throw replayStoreUnavailable('database', err);
      } finally {
        clearTimeout(timeout);
      }
    },
    sweep,
    async close() {
      if (timer) clearInterval(timer);
    },
  };
}
