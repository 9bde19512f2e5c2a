export { attachDb } from './attach.js';
export {
  checkSchemaName,
  type Db,
  type DbOptions,
  isConnectionError,
  mapDbError,
  openDb,
  type Queryable,
  TransactionAbortedError,
  type Tx,
} from './db.js';
export {
  type IdempotencyKey,
  type IdempotentResponse,
  type IdempotentResult,
  pruneReceipts,
  requestHash,
  withIdempotency,
} from './idempotency.js';
export { registerPoolMetric } from './metrics.js';
export {
  type AppliedMigration,
  type ChecksumMismatch,
  describeStatus,
  type MigrateResult,
  type Migration,
  type MigrationStatus,
  mergeMigrations,
  migrate,
  migrationChecksum,
  migrationStatus,
  schemaCheck,
} from './migrate.js';
export { storeMigrations } from './migrations/index.js';
export {
  createOutboxRelay,
  type DeadEvent,
  type DrainResult,
  type Enqueued,
  enqueue,
  listDead,
  type OutboxEvent,
  type OutboxRelay,
  type OutboxRelayOptions,
  type OutboxStatus,
  outboxStatus,
  pruneSent,
  type RelayLogger,
  registerOutboxMetrics,
  requeueDead,
} from './outbox.js';
