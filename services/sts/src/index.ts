import { attachBus, type Bus } from '@caracal/bus';
import { createServiceBase, type Service, type ServiceContext } from '@caracal/core';
import { attachDb, type Db, type Migration } from '@caracal/store';

export type StsDeps = ServiceContext & { db: Db; bus: Bus; migrations: Migration[] };

/** The sts service. This step serves /health, /ready and /metrics. */
export function createSts(deps: StsDeps): Service {
  const service = createServiceBase({ name: 'sts', port: deps.config.ports.sts, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  return service;
}
