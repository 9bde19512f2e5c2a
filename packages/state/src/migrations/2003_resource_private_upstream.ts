import type { Migration } from '@caracal/store';

/** Per-resource opt-in: the Gateway may connect to this resource's loopback/private upstream. */
export const resourcePrivateUpstreamMigration: Migration = {
  version: 2003,
  name: 'state_resource_private_upstream',
  sql: `
ALTER TABLE state_resources ADD COLUMN allow_private_upstream boolean NOT NULL DEFAULT false;
`,
};
