import { attachBus, type Bus } from '@caracal/bus';
import { createServiceBase, type Service, type ServiceContext } from '@caracal/core';
import { attachDb, type Db, type Migration } from '@caracal/store';

export type CoordinatorDeps = ServiceContext & { db: Db; bus: Bus; migrations: Migration[] };

/** The coordinator service. This step serves /health, /ready and /metrics. */
export function createCoordinator(deps: CoordinatorDeps): Service {
  const service = createServiceBase({ name: 'coordinator', port: deps.config.ports.coordinator, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  return service;
}
