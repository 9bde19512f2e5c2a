import type { Migration } from '../migrate.js';

/** Idempotency receipts: the stored response of a keyed request, written in the request's transaction. */
export const idempotencyReceiptsMigration: Migration = {
  version: 1002,
  name: 'store_idempotency_receipts',
  sql: `
CREATE TABLE idempotency_receipts (
  scope text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status integer,
  body json, -- json, not jsonb: a replay returns the exact text, key order included
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_receipts_created ON idempotency_receipts (created_at);
`,
};
