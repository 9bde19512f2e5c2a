import type { Migration } from '@caracal/store';

/** Approval holds: requests the policy held for a human decision, and their outcome. */
export const approvalsMigration: Migration = {
  version: 2002,
  name: 'state_approvals',
  sql: `
CREATE TABLE state_approvals (
  id text PRIMARY KEY,
  zone_id text NOT NULL REFERENCES state_zones (id),
  application_id text NOT NULL,
  resources text[] NOT NULL,
  scopes text[] NOT NULL,
  tiers text[] NOT NULL,
  reasons text[] NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  decided_at timestamptz,
  decided_by text,
  note text,
  used_at timestamptz
);
CREATE INDEX state_approvals_zone ON state_approvals (zone_id, id);
`,
};
