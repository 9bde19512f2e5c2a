import { Redis, type RedisOptions } from 'ioredis';
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
  const owned = !opts.redis;
  let redis: Redis;
  if (opts.redis) redis = opts.redis;
  else {
    if (!opts.url) throw new Error('createRedisRateLimiter needs a url or a redis connection');
    const options: RedisOptions = {
      lazyConnect: true,
      protocol: 2,
      // Fail fast: a hit that cannot be counted now is a denied mint, never a queued or replayed one.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeoutMs,
      connectTimeout: 1_000,
      enableAutoPipelining: true,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    };
    redis = new Redis(opts.url, options);
    redis.on('error', () => {}); // surfaced per hit as rate_limit_unavailable
    redis.connect().catch(() => {});
  }
  const scripted = redis as ScriptedRedis;
  if (typeof scripted.stsRateHit !== 'function') {
    redis.defineCommand('stsRateHit', { numberOfKeys: 1, lua: HIT });
  }
  // Settled once the first connection attempt has either succeeded or failed; until then a hit waits briefly,
  // so the first mints after start do not fail just because the connection is still being opened.
  let settled = redis.status === 'ready';
  const firstAttempt = new Promise<void>((resolve) => {
    const done = () => {
      settled = true;
      for (const ev of ['ready', 'error', 'close'] as const) redis.off(ev, done);
      resolve();
    };
    if (settled) resolve();
    else for (const ev of ['ready', 'error', 'close'] as const) redis.once(ev, done);
  });

  async function ready(): Promise<void> {
    if (settled) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      firstAttempt,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
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
