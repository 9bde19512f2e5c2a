import type { Migration } from '@caracal/store';
import { controlPlaneMigration } from './2001_control_plane.js';
import { approvalsMigration } from './2002_approvals.js';
import { resourcePrivateUpstreamMigration } from './2003_resource_private_upstream.js';

/** Migrations owned by @caracal/state (versions 2000–2999); merge them with the others in the CLI. */
export const stateMigrations: readonly Migration[] = [
  controlPlaneMigration,
  approvalsMigration,
  resourcePrivateUpstreamMigration,
];
