export {
  createPostgresRateLimiter,
  type PostgresRateLimiter,
  type PostgresRateLimiterOptions,
} from './postgres.js';
export { createRedisRateLimiter, type RedisRateLimiterOptions } from './redis.js';
export {
  DEFAULT_MINT_LIMIT,
  DEFAULT_WINDOW_MS,
  mintRateKey,
  type RateLimitDecision,
  type RateLimiter,
  windowStart,
} from './types.js';
