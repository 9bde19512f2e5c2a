import { mergeMigrations, storeMigrations } from '@caracal/store';
import { describe, expect, it } from 'vitest';
import { gatewayMigrations } from './index.js';

describe('gateway migrations', () => {
  it('stay in the Gateway range 4000–4999 and merge with the store list', () => {
    for (const m of gatewayMigrations) {
      expect(m.version).toBeGreaterThanOrEqual(4000);
      expect(m.version).toBeLessThanOrEqual(4999);
    }
    expect(mergeMigrations(storeMigrations, gatewayMigrations).map((m) => m.version)).toContain(4001);
  });
});
