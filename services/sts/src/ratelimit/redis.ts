import { failFastRedis } from '@caracal/bus';
import type { Redis } from 'ioredis';
import {
  DEFAULT_WINDOW_MS,
  decide,
  type RateLimitDecision,
  type RateLimiter,
  unavailable,
  windowStart,
} from './types.js';

export interface RedisRateLimiterOptions {
  /** A Redis URL: the limiter opens (and closes) its own fail-fast connection. */
  url?: string;
  /** Or a connection owned by the caller (left open on close). */
  redis?: Redis;
  /** Default `caracal:sts:mint:`. */
  keyPrefix?: string;
  windowMs?: number;
  /** Per command, and the longest a first hit waits for the initial connection; default 250 ms. */
  commandTimeoutMs?: number;
}

// One round trip: count, and give a new window's key a TTL so it disappears after the window.
const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

interface ScriptedRedis extends Redis {
  stsRateHit(key: string, ttlMs: number): Promise<number>;
}

/** Fixed-window limiter on Redis (production): one EVALSHA per hit, shared by every replica. */
export function createRedisRateLimiter(opts: RedisRateLimiterOptions): RateLimiter {
  const windowMs = opts.windowMs ?? DEFAULT_WINDOW_MS;
  const prefix = opts.keyPrefix ?? 'caracal:sts:mint:';
  const timeoutMs = opts.commandTimeoutMs ?? 250;
  const { redis, owned, ready } = failFastRedis({ ...opts, commandTimeoutMs: timeoutMs });
  const scripted = redis as ScriptedRedis;
  if (typeof scripted.stsRateHit !== 'function') {
    redis.defineCommand('stsRateHit', { numberOfKeys: 1, lua: HIT });
  }
  return {
    async hit(key: string, limit: number, now: number): Promise<RateLimitDecision> {
      const start = windowStart(now, windowMs);
      const resetAt = start + windowMs;
      let count: number;
      try {
        await ready();
        // TTL: the rest of the window plus one more, so clock skew between replicas never resets a live window.
        count = Number(await scripted.stsRateHit(`${prefix}${key}:${start}`, resetAt - now + windowMs));
      } catch (err) {
        throw unavailable('redis', err);
      }
      return decide(limit > 0 ? count : undefined, limit, resetAt);
    },
    async close() {
      if (owned) redis.disconnect();
    },
  };
}
