export { attachBus, attachEvidence, type Evidence } from './attach.js';
export {
  type BatchHandler,
  type Consumer,
  type ConsumerOptions,
  type ConsumerStats,
  createConsumer,
  type EntryHandler,
} from './consumer.js';
export { type BusOptions, createBus } from './create-bus.js';
export { type FailFastRedis, failFastRedis } from './fail-fast-redis.js';
export { busReadinessCheck, registerStreamMetrics, type StreamMetricsOptions } from './metrics.js';
export { type BusMigration, busMigrations } from './migrations/index.js';
export { publishOrSpool } from './publish-or-spool.js';
export { canonicalJson, MIN_HMAC_KEY_LENGTH } from './signing.js';
export {
  createReplaySpool,
  type DrainResult,
  type ReplaySpool,
  type ReplaySpoolOptions,
  type SpoolCorruption,
  type SpoolDrainer,
  type SpoolMetricsOptions,
  type SpoolStatus,
} from './spool.js';
export * from './types.js';
