import { createServiceBase, type Service, type ServiceContext } from '@caracal/core';

export type ConsoleDeps = ServiceContext;

/** Serves the operator console. This step serves /health, /ready and /metrics. */
export function createConsole(deps: ConsoleDeps): Service {
  return createServiceBase({ name: 'console', port: deps.config.ports.console, ctx: deps });
}
