import type { Migration } from '@caracal/store';

/**
 * Fixed-window mint counters for the embedded (Postgres/PGlite) rate limiter. UNLOGGED: counters need no
 * crash durability, and skipping the WAL keeps the one upsert per mint cheap.
 */
export const stsMintRateWindowsMigration: Migration = {
  version: 3002,
  name: 'sts_mint_rate_windows',
  sql: `
CREATE UNLOGGED TABLE sts_mint_rate_windows (
  key text NOT NULL,
  window_start timestamptz NOT NULL,
  count integer NOT NULL,
  PRIMARY KEY (key, window_start)
);
CREATE INDEX sts_mint_rate_windows_start ON sts_mint_rate_windows (window_start);
`,
};
