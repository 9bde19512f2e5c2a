import { type Clock, systemClock } from '@caracal/core';
import { Redis, type RedisOptions } from 'ioredis';
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
  const owned = !opts.redis;
  let redis: Redis;
  if (opts.redis) redis = opts.redis;
  else {
    if (!opts.url) throw new Error('createRedisReplayGuard needs a url or a redis connection');
    const options: RedisOptions = {
      lazyConnect: true,
      protocol: 2,
      // Fail fast: a jti that cannot be consumed now is a denied request, never a queued or replayed SET.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeoutMs,
      connectTimeout: 1_000,
      enableAutoPipelining: true,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    };
    redis = new Redis(opts.url, options);
    redis.on('error', () => {}); // surfaced per consume as replay_store_unavailable
    redis.connect().catch(() => {});
  }

  // Until the first connection attempt settles, a consume waits for it (at most one command timeout), so
  // the first requests after start do not fail just because the connection is still opening.
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
