import { Registry } from '@caracal/core';
import { describe, expect, it } from 'vitest';
import { registerPoolMetric } from './metrics.js';
import { openTestDb } from './testing.js';

describe('registerPoolMetric', () => {
  it('reports caracal_db_pool_in_use_ratio per service at scrape time', async () => {
    const registry = new Registry();
    const t = await openTestDb('postgres', { poolSize: 4 });
    try {
      registerPoolMetric(registry, 'api', t.db);
      registerPoolMetric(registry, 'sts', { poolInUseRatio: () => 0.5 });
      let during = '';
      await t.db.tx(async (q) => {
        await q.query('SELECT 1');
        during = await registry.metrics();
      });
      expect(during).toContain('caracal_db_pool_in_use_ratio{service="api"} 0.25');
      expect(during).toContain('caracal_db_pool_in_use_ratio{service="sts"} 0.5');
      expect(await registry.metrics()).toContain('caracal_db_pool_in_use_ratio{service="api"} 0');
    } finally {
      await t.cleanup();
    }
  });
});
