import { Redis, type RedisOptions } from 'ioredis';

/** A Redis connection that never queues or replays a command, and how to wait for its first connect. */
export interface FailFastRedis {
  redis: Redis;
  /** Resolves once the first connection attempt has settled, or after `commandTimeoutMs`. */
  ready(): Promise<void>;
  /** True when this helper opened the connection (and the caller should quit it on close). */
  owned: boolean;
}

/**
 * For request-path checks that must fail closed (rate limits, single-use ids): a command that cannot run
 * now is an error for the caller to deny on, never queued or resent later. Until the first connection
 * attempt settles, `ready()` waits at most one command timeout, so the first requests after start do not
 * fail just because the connection is still opening.
 */
export function failFastRedis(opts: {
  url?: string;
  redis?: Redis;
  commandTimeoutMs: number;
}): FailFastRedis {
  let redis: Redis;
  const owned = !opts.redis;
  if (opts.redis) redis = opts.redis;
  else {
    if (!opts.url) throw new Error('failFastRedis needs a url or a redis connection');
    const options: RedisOptions = {
      lazyConnect: true,
      protocol: 2,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: 1_000,
      enableAutoPipelining: true,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    };
    redis = new Redis(opts.url, options);
    redis.on('error', () => {}); // surfaced per command to the caller
    redis.connect().catch(() => {});
  }
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
  return {
    redis,
    owned,
    async ready() {
      if (settled) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        firstAttempt,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, opts.commandTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
