import { attachBus, type Bus } from '@caracal/bus';
import { createServiceBase, type Service, type ServiceContext } from '@caracal/core';
import { attachDb, type Db, type Migration } from '@caracal/store';

export type GatewayDeps = ServiceContext & { db: Db; bus: Bus; migrations: Migration[] };

/** The gateway service. This step serves /health, /ready and /metrics. */
export function createGateway(deps: GatewayDeps): Service {
  const service = createServiceBase({ name: 'gateway', port: deps.config.ports.gateway, ctx: deps });
  attachDb(service, deps.db, deps.migrations);
  attachBus(service, deps.bus);
  return service;
}
