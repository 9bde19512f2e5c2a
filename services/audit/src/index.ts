import { attachBus, type Bus } from '@caracal/bus';
import { createServiceBase, type Service, type ServiceContext } from '@caracal/core';
import { attachDb, type Db, type Migration } from '@caracal/store';

export type AuditDeps = ServiceContext & { db: Db; bus: Bus; migrations: Migration[] };

/** The audit service. This step serves /health, /ready and /metrics. */
export function createAudit(deps: AuditDeps): Service {
  const service = createServiceBase({ name: 'audit', port: deps.config.ports.audit, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  return service;
}
