import type { ServiceBase } from '@caracal/core';
import type { Bus } from './types.js';

/** Wires the bus into a service's readiness: a `bus` check that pings it. */
export function attachBus(service: ServiceBase, bus: Bus): void {
  service.checks.add({
    name: 'bus',
    timeoutMs: 2000,
    check: async () => {
      try {
        const latencyMs = await bus.ping();
        return { ok: true, kind: bus.kind, pingMs: latencyMs };
      } catch (err) {
        return { ok: false, kind: bus.kind, detail: (err as Error).message };
      }
    },
  });
}
