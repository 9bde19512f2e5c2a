import type { ServiceBase } from '@caracal/core';
import type { Db } from './db.js';
import { registerPoolMetric } from './metrics.js';
import { type Migration, schemaCheck } from './migrate.js';

/** Wires a database into a service: `db` and `schema` readiness checks and the pool gauge. */
export function attachDb(service: ServiceBase, db: Db, migrations: readonly Migration[]): void {
  service.checks.add({
    name: 'db',
    timeoutMs: 2000,
    check: async () => {
      try {
        await db.query('SELECT 1');
        return { ok: true, kind: db.kind };
      } catch (err) {
        return { ok: false, kind: db.kind, detail: (err as Error).message };
      }
    },
  });
  service.checks.add({ name: 'schema', timeoutMs: 2000, check: () => schemaCheck(db, migrations) });
  registerPoolMetric(service.metrics.registry, service.name, db);
}
