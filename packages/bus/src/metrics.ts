import { Gauge, type ReadinessCheck, type Registry } from '@caracal/core';
import type { Bus } from './types.js';

export interface StreamMetricsOptions {
  registry: Registry;
  bus: Bus;
  stream: string;
  group: string;
  /** e.g. `caracal_audit` → caracal_audit_consumer_lag, caracal_audit_consumer_pending, caracal_audit_dlq_size. */
  prefix: string;
}

/**
 * Gauges of one consumer group, read from the bus at scrape time. While the bus is down they keep
 * their last value (the bus readiness check reports the outage).
 */
export function registerStreamMetrics(opts: StreamMetricsOptions): void {
  const { bus, stream, group, prefix } = opts;
  const gauge = (name: string, help: string, read: () => Promise<number>) =>
    new Gauge({
      name: `${prefix}_${name}`,
      help,
      registers: [opts.registry],
      async collect() {
        try {
          this.set(await read());
        } catch {
          // keep the last value
        }
      },
    });
  gauge('consumer_lag', `Entries of ${stream} not yet delivered to ${group}, plus pending ones`, () =>
    bus.lag(stream, group),
  );
  gauge('consumer_pending', `Entries of ${stream} delivered to ${group} and not yet acked`, () =>
    bus.pendingCount(stream, group),
  );
  gauge('dlq_size', `Entries in ${stream}:dlq`, () => bus.dlqSize(stream));
}

/** Readiness check for /ready: the bus answers a round trip. */
export function busReadinessCheck(
  bus: Bus,
  opts: { name?: string; timeoutMs?: number } = {},
): ReadinessCheck {
  return {
    name: opts.name ?? 'bus',
    timeoutMs: opts.timeoutMs ?? 1000,
    async check() {
      try {
        const latencyMs = await bus.ping();
        return { ok: true, kind: bus.kind, pingMs: Math.round(latencyMs * 10) / 10 };
      } catch (err) {
        return { ok: false, kind: bus.kind, detail: err instanceof Error ? err.message : String(err) };
      }
    },
  };
}
