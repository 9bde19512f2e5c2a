import { failFastRedis } from '@caracal/bus';
import { type Clock, systemClock } from '@caracal/core';
import type { Redis } from 'ioredis';
import { checkJti, DEFAULT_LEEWAY_MS, type ReplayGuard, replayStoreUnavailable } from './types.js';

export interface RedisReplayGuardOptions {
  /** A Redis URL: the guard opens (and closes) its own fail-fast connection. */
  url?: string;
  /** Or a connection owned by the caller (left open on close); it should be fail-fast too. */
  redis?: Redis;
  /** Default `caracal:gateway:jti:`. */
  keyPrefix?: string;
  /** Per command, and the longest a first consume waits for the initial connection; default 250 ms. */
  commandTimeoutMs?: number;
  /** Extra life past exp; default 30 s. */
  leewayMs?: number;
  clock?: Clock;
}

/** Replay guard on Redis (production): one `SET key 1 NX PX <remaining life>` per consume. */
export function createRedisReplayGuard(opts: RedisReplayGuardOptions): ReplayGuard {
  const prefix = opts.keyPrefix ?? 'caracal:gateway:jti:';
  const timeoutMs = opts.commandTimeoutMs ?? 250;
  const leewayMs = opts.leewayMs ?? DEFAULT_LEEWAY_MS;
  const clock = opts.clock ?? systemClock;
  const { redis, owned, ready } = failFastRedis({ ...opts, commandTimeoutMs: timeoutMs });

  return {
    async consume(jti: string, expiresAtMs: number): Promise<boolean> {
      checkJti(jti);
      const ttl = Math.ceil(expiresAtMs + leewayMs - clock.now());
      if (ttl <= 0) return false; // past its life: nothing to remember, and never a first use
      let answer: string | null;
      try {
        await ready();
        answer = await redis.set(`${prefix}${jti}`, '1', 'PX', ttl, 'NX');
      } catch (err) {
        throw replayStoreUnavailable('redis', err);
      }
      return answer === 'OK';
    },
    async close() {
      if (owned) redis.disconnect();
    },
  };
}
