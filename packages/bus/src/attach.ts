import type { ServiceBase } from '@caracal/core';
import { busReadinessCheck } from './metrics.js';
import type { Bus } from './types.js';

/** Wires the bus into a service's readiness: a `bus` check that pings it. */
export function attachBus(service: ServiceBase, bus: Bus): void {
  service.checks.add(busReadinessCheck(bus, { name: 'bus', timeoutMs: 2000 }));
}
