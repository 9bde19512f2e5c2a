export {
  createPostgresReplayGuard,
  type PostgresReplayGuard,
  type PostgresReplayGuardOptions,
} from './postgres.js';
export { createRedisReplayGuard, type RedisReplayGuardOptions } from './redis.js';
export { DEFAULT_LEEWAY_MS, MAX_JTI_LENGTH, type ReplayGuard } from './types.js';
