import type { Migration } from '@caracal/store';

/** One forward-only migration; the store's runner (`migrate`) applies them in version order and checksums the SQL. */
export type BusMigration = Migration;

/** Tables of the Postgres stream (embedded mode). Versions 100–199 belong to the bus. Never edit a landed one. */
export const busMigrations: BusMigration[] = [
  {
    version: 100,
    name: 'bus_streams',
    sql: `
-- One row per stream: the id counter. Its row lock serializes appends per stream, so ids
-- are dense and commit in order, and a reader that sees id N has seen every id below N.
CREATE TABLE bus_streams (
  stream text PRIMARY KEY,
  last_id bigint NOT NULL
);

CREATE TABLE bus_entries (
  stream text NOT NULL,
  id bigint NOT NULL,
  body text NOT NULL,
  sig text NOT NULL,
  replay_of text,
  created_at bigint NOT NULL,
  PRIMARY KEY (stream, id)
);

-- last_id: highest entry id handed to the group (Redis: last-delivered-id).
CREATE TABLE bus_groups (
  stream text NOT NULL,
  grp text NOT NULL,
  last_id bigint NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (stream, grp)
);

-- Delivered, not yet acked (Redis: the PEL). delivered_at is bus-clock ms of the last delivery.
CREATE TABLE bus_pending (
  stream text NOT NULL,
  grp text NOT NULL,
  entry_id bigint NOT NULL,
  consumer text NOT NULL,
  deliveries integer NOT NULL,
  delivered_at bigint NOT NULL,
  last_error text,
  PRIMARY KEY (stream, grp, entry_id)
);
CREATE INDEX bus_pending_idle ON bus_pending (stream, grp, delivered_at);

CREATE TABLE bus_dlq (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream text NOT NULL,
  original_id text NOT NULL,
  grp text NOT NULL,
  reason text NOT NULL,
  error text NOT NULL,
  deliveries integer NOT NULL,
  dead_at bigint NOT NULL,
  body text NOT NULL,
  sig text NOT NULL
);
CREATE INDEX bus_dlq_stream ON bus_dlq (stream, id);
`,
  },
];
