import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

/** One prom-client registry per service, with process metrics and the HTTP histogram. */
export interface ServiceMetrics {
  registry: Registry;
  httpDuration: Histogram<'service' | 'route' | 'method' | 'status'>;
  readinessTransitions: Counter<'service'>;
}

export interface MetricsOptions {
  /** Collect process metrics (off when several services share one process, to avoid duplicates). */
  processMetrics?: boolean;
}

export function createMetrics(service: string, opts: MetricsOptions = {}): ServiceMetrics {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, labels: { service } });
  const httpDuration = new Histogram({
    name: 'caracal_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['service', 'route', 'method', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const readinessTransitions = new Counter({
    name: 'caracal_readiness_transitions_total',
    help: 'Readiness changes (ready <-> not ready) of this instance',
    labelNames: ['service'] as const,
    registers: [registry],
  });
  return { registry, httpDuration, readinessTransitions };
}
