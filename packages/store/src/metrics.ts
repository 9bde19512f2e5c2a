import { Gauge, type Registry } from '@caracal/core';
import type { Db } from './db.js';

const POOL_METRIC = 'caracal_db_pool_in_use_ratio';

// One gauge per registry; several services sharing a registry each add their own label.
const poolsByRegistry = new WeakMap<Registry, Map<string, Pick<Db, 'poolInUseRatio'>>>();

/** Gauge `caracal_db_pool_in_use_ratio{service}`, read from `db.poolInUseRatio()` at scrape time. */
export function registerPoolMetric(
  registry: Registry,
  service: string,
  db: Pick<Db, 'poolInUseRatio'>,
): void {
  let pools = poolsByRegistry.get(registry);
  if (!pools) {
    const tracked = new Map<string, Pick<Db, 'poolInUseRatio'>>();
    pools = tracked;
    poolsByRegistry.set(registry, tracked);
    if (!registry.getSingleMetric(POOL_METRIC)) {
      new Gauge({
        name: POOL_METRIC,
        help: 'Share of database pool connections in use (PGlite: 1 while a statement runs)',
        labelNames: ['service'] as const,
        registers: [registry],
        collect() {
          for (const [name, pool] of tracked) this.set({ service: name }, pool.poolInUseRatio());
        },
      });
    }
  }
  pools.set(service, db);
}
