import { CaracalError, type ServiceBase } from '@caracal/core';
import { busReadinessCheck } from './metrics.js';
import { publishOrSpool } from './publish-or-spool.js';
import { createReplaySpool, type ReplaySpool, type SpoolDrainer } from './spool.js';
import type { Bus, PublishInput, SealedMessage } from './types.js';

/** Wires the bus into a service's readiness: a `bus` check that pings it. */
export function attachBus(service: ServiceBase, bus: Bus): void {
  service.checks.add(busReadinessCheck(bus, { name: 'bus', timeoutMs: 2000 }));
}

/** Publishes a service's evidence, spooling it locally while the bus is down. */
export interface Evidence {
  /**
   * Resolves once the event is on the bus or durably spooled; throws when neither worked (or before start),
   * and the caller must then refuse and count the drop.
   */
  record<T>(stream: string, input: PublishInput<T>): Promise<void>;
}

/**
 * Wires a replay spool into a service: opened at start under `<dir>`, drained in order while the bus is back,
 * closed at stop, shown as the `spool` readiness check, with `<prefix>_audit_replay_*` metrics.
 */
export function attachEvidence(
  service: ServiceBase,
  bus: Bus,
  opts: { dir: string; fsyncIntervalMs: number; metricsPrefix: string },
): Evidence {
  let spool: ReplaySpool<SealedMessage> | undefined;
  let drainer: SpoolDrainer | undefined;
  service.checks.add({
    name: 'spool',
    check: () => {
      if (!spool) return { ok: false, detail: 'not open' };
      return { ok: true, entries: spool.status().entries, oldestAgeSeconds: spool.oldestAgeSeconds() };
    },
  });
  service.onStart(async () => {
    spool = await createReplaySpool<SealedMessage>({
      dir: opts.dir,
      fsyncIntervalMs: opts.fsyncIntervalMs,
      clock: service.clock,
      logger: service.logger,
      metrics: { registry: service.metrics.registry, prefix: opts.metricsPrefix },
    });
    drainer = spool.startDrainer({ publish: (m) => bus.publishSealed(m).then(() => {}) });
  });
  service.onStop(async () => {
    await drainer?.stop();
    await spool?.close();
  });
  return {
    async record(stream, input) {
      if (!spool) throw new CaracalError('not_started', 503, `The ${service.name} service is starting.`);
      await publishOrSpool(bus, spool, stream, input);
    },
  };
}
