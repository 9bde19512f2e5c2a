import type { Migration } from '@caracal/store';
import { stsProviderTokensMigration } from './3001_sts_provider_tokens.js';
import { stsMintRateWindowsMigration } from './3002_sts_mint_rate_windows.js';

/** The STS's own tables; the STS owns versions 3000–3999 (`mergeMigrations` rejects collisions). */
export const stsMigrations: Migration[] = [stsProviderTokensMigration, stsMintRateWindowsMigration];
