import type { Migration } from '../migrate.js';

/** Transactional outbox: event rows written in the caller's transaction, published by the relay. */
export const outboxMigration: Migration = {
  version: 1001,
  name: 'store_outbox',
  sql: `
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  owner text NOT NULL,
  stream text NOT NULL,
  dedupe_key text,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz,
  leased_until timestamptz,
  leased_by text,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (owner, id) WHERE status = 'pending';
CREATE INDEX outbox_pending_stream ON outbox (owner, stream, id) WHERE status = 'pending';
CREATE INDEX outbox_dead ON outbox (owner, id) WHERE status = 'dead';
CREATE UNIQUE INDEX outbox_dedupe ON outbox (owner, dedupe_key) WHERE dedupe_key IS NOT NULL;
`,
};
