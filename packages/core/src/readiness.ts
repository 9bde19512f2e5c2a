import type { ServiceMetrics } from './metrics.js';

/** What a check reports. `ageMs` is compared with the check's budget when both are present. */
export interface CheckOutcome {
  ok: boolean;
  detail?: string;
  ageMs?: number;
  [extra: string]: unknown;
}

export interface ReadinessCheck {
  name: string;
  check: () => Promise<CheckOutcome> | CheckOutcome;
  /** Freshness budget: the check fails when its reported age exceeds this. */
  budgetMs?: number;
  /** Per-check timeout; a check that does not answer in time fails. */
  timeoutMs?: number;
}

export interface CheckReport extends CheckOutcome {
  latencyMs: number;
  budgetMs?: number;
}

export interface ReadinessReport {
  service: string;
  ready: boolean;
  checks: Record<string, CheckReport>;
}

/** Registry of dependency checks behind /ready; counts readiness transitions. */
export class Readiness {
  private readonly checks: ReadinessCheck[] = [];
  private last: boolean | undefined;

  constructor(
    private readonly service: string,
    private readonly metrics?: ServiceMetrics,
  ) {}

  add(check: ReadinessCheck): this {
    if (this.checks.some((c) => c.name === check.name))
      throw new Error(`duplicate readiness check ${check.name}`);
    this.checks.push(check);
    return this;
  }

  async report(): Promise<ReadinessReport> {
    const entries = await Promise.all(this.checks.map(async (c) => [c.name, await this.run(c)] as const));
    const ready = entries.every(([, r]) => r.ok);
    if (this.last !== undefined && this.last !== ready)
      this.metrics?.readinessTransitions.inc({ service: this.service });
    this.last = ready;
    return { service: this.service, ready, checks: Object.fromEntries(entries) };
  }

  private async run(c: ReadinessCheck): Promise<CheckReport> {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<CheckOutcome>((resolve) => {
        timer = setTimeout(
          () => resolve({ ok: false, detail: `no answer within ${c.timeoutMs ?? 2000} ms` }),
          c.timeoutMs ?? 2000,
        );
      });
      const outcome = await Promise.race([Promise.resolve().then(c.check), timeout]);
      const report: CheckReport = { ...outcome, latencyMs: round(performance.now() - t0) };
      if (c.budgetMs !== undefined) {
        report.budgetMs = c.budgetMs;
        if (outcome.ageMs !== undefined && outcome.ageMs > c.budgetMs) {
          report.ok = false;
          report.detail = report.detail ?? `age ${outcome.ageMs} ms exceeds budget ${c.budgetMs} ms`;
        }
      }
      return report;
    } catch (err) {
      return { ok: false, detail: (err as Error).message, latencyMs: round(performance.now() - t0) };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
