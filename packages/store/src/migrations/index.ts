import type { Migration } from '../migrate.js';
import { outboxMigration } from './1001_outbox.js';
import { idempotencyReceiptsMigration } from './1002_idempotency_receipts.js';

/**
 * The store's own migrations. Versions are global across every package's list, so each owner takes a
 * range: the store uses 1000–1999; `mergeMigrations` rejects any collision.
 */
export const storeMigrations: readonly Migration[] = [outboxMigration, idempotencyReceiptsMigration];
