import type { Migration } from '@caracal/store';
import { gatewayConsumedJtisMigration } from './4001_gateway_consumed_jtis.js';

/** The Gateway's own tables; the Gateway owns versions 4000–4999 (`mergeMigrations` rejects collisions). */
export const gatewayMigrations: Migration[] = [gatewayConsumedJtisMigration];
