import type { Migration } from '@caracal/store';

/**
 * Consumed mandate ids for the embedded (Postgres/PGlite) replay guard. Logged, not UNLOGGED: a crash must
 * not forget a consumed jti while its mandate is still valid, or the mandate could be replayed.
 */
export const gatewayConsumedJtisMigration: Migration = {
  version: 4001,
  name: 'gateway_consumed_jtis',
  sql: `
CREATE TABLE gateway_consumed_jtis (
  jti text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE INDEX gateway_consumed_jtis_expires ON gateway_consumed_jtis (expires_at);
`,
};
