import { Counter, Gauge, type Registry } from '@caracal/core';

/** The broker's metrics; names fixed by DESIGN §6. Labels carry provider ids only, never secrets. */
export interface ProviderMetrics {
  refreshErrors: Counter<'provider' | 'reason'>;
  circuitOpen: Counter<'provider'>;
  circuitState: Gauge<'provider'>;
}

function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

/** Register (or reuse, when a second broker shares the registry) the provider metrics. */
export function providerMetrics(registry: Registry): ProviderMetrics {
  return {
    refreshErrors:
      existing(registry, 'caracal_sts_provider_refresh_errors_total') ??
      new Counter({
        name: 'caracal_sts_provider_refresh_errors_total',
        help: 'Failed provider token refreshes, by provider and reason (revoked, rejected, transient)',
        labelNames: ['provider', 'reason'] as const,
        registers: [registry],
      }),
    circuitOpen:
      existing(registry, 'caracal_sts_provider_circuit_open_total') ??
      new Counter({
        name: 'caracal_sts_provider_circuit_open_total',
        help: 'Times a provider circuit breaker opened',
        labelNames: ['provider'] as const,
        registers: [registry],
      }),
    circuitState:
      existing(registry, 'caracal_sts_provider_circuit_state') ??
      new Gauge({
        name: 'caracal_sts_provider_circuit_state',
        help: 'Provider circuit breaker state: 0 closed, 0.5 half-open, 1 open',
        labelNames: ['provider'] as const,
        registers: [registry],
      }),
  };
}
