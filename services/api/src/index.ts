import { attachBus, type Bus } from '@caracal/bus';
import { createServiceBase, type Service, type ServiceContext } from '@caracal/core';
import { attachDb, type Db, type Migration } from '@caracal/store';

export type ApiDeps = ServiceContext & { db: Db; bus: Bus; migrations: Migration[] };

/** The api service. This step serves /health, /ready and /metrics. */
export function createApi(deps: ApiDeps): Service {
  const service = createServiceBase({ name: 'api', port: deps.config.ports.api, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  return service;
}
