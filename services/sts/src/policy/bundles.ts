import { CaracalError, type Clock, Counter, Gauge, type Logger, type Registry } from '@caracal/core';
import { type CompiledPolicy, compile } from '@caracal/rego';
import { AUTHZ_FILE, AUTHZ_QUERY, AUTHZ_SOURCE } from '../authz/contract.js';
import type { AuthzResult } from '../authz/reference.js';

/** An activated policy set of one zone, as the control plane hands it over. */
export interface PolicySetSource {
  zoneId: string;
  /** Version of the activated policy set. */
  version: string;
  /** Adopter modules (file → source); the platform contract is always added. */
  modules: Record<string, string>;
  /** The zone's data document the contract reads (grants, app_ids, …). */
  data: unknown;
  /** When the control plane activated it (ms). */
  activatedAt: number;
}

export interface CompileProblem {
  code: string;
  message: string;
  location?: string;
}

/** What /internal/policy/status/:zoneId shows. */
export interface BundleStatus {
  zoneId: string;
  loaded: boolean;
  version?: string;
  activatedAt?: number;
  loadedAt?: number;
  /** When the source of truth last confirmed this bundle is current (ms). */
  syncedAt?: number;
  ageSeconds?: number;
  /** The last version that failed to compile, and why; cleared when a newer version loads. */
  rejected?: { version: string; at: number; errors: CompileProblem[] };
}

interface ZoneBundle {
  version: string;
  policy: CompiledPolicy;
  data: unknown;
  activatedAt: number;
  loadedAt: number;
  syncedAt: number;
}

export interface PolicyBundlesOptions {
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Evaluation budget per decision; a runaway policy is an error, and errors deny. */
  maxSteps?: number;
}

export type ApplyOutcome = { ok: true; changed: boolean } | { ok: false; errors: CompileProblem[] };

/**
 * Compiled policy bundles per zone. A bundle that fails to compile is rejected and counted; the last good
 * bundle stays active. A zone whose policy never loaded denies everything.
 */
export class PolicyBundles {
  private readonly zones = new Map<string, ZoneBundle>();
  private readonly rejected = new Map<string, NonNullable<BundleStatus['rejected']>>();
  private readonly compileErrors: Counter<'zone'>;
  private readonly evalErrors: Counter<'zone'>;

  constructor(private readonly opts: PolicyBundlesOptions) {
    this.compileErrors = new Counter({
      name: 'caracal_sts_opa_compile_errors_total',
      help: 'Policy sets rejected because they failed to compile (the last good bundle stays active)',
      labelNames: ['zone'] as const,
      registers: [opts.registry],
    });
    this.evalErrors = new Counter({
      name: 'caracal_sts_policy_eval_errors_total',
      help: 'Decisions that ended in an evaluation error (denied)',
      labelNames: ['zone'] as const,
      registers: [opts.registry],
    });
    const bundles = this;
    new Gauge({
      name: 'caracal_sts_opa_max_policy_age_seconds',
      help: 'Largest time since a zone bundle was last confirmed current by the control plane',
      registers: [opts.registry],
      collect() {
        this.set(bundles.maxAgeSeconds());
      },
    });
  }

  /** Compile and activate a policy set; on a compile error keep the last good bundle. */
  apply(source: PolicySetSource): ApplyOutcome {
    const now = this.opts.clock.now();
    const current = this.zones.get(source.zoneId);
    if (current && current.version === source.version) {
      current.syncedAt = now;
      current.data = source.data;
      return { ok: true, changed: false };
    }
    const result = compile({ ...source.modules, [AUTHZ_FILE]: AUTHZ_SOURCE });
    if (!result.ok) {
      const errors = result.errors.map((e) => ({
        code: e.code,
        message: e.message,
        ...(e.location ? { location: `${e.location.file}:${e.location.line}:${e.location.col}` } : {}),
      }));
      this.rejected.set(source.zoneId, { version: source.version, at: now, errors });
      this.compileErrors.inc({ zone: source.zoneId });
      this.opts.logger.error(
        { zoneId: source.zoneId, version: source.version, keptVersion: current?.version ?? null, errors },
        'policy set failed to compile; keeping the last good bundle',
      );
      // The source of truth answered, so a kept bundle is still as fresh as it can be.
      if (current) current.syncedAt = now;
      return { ok: false, errors };
    }
    this.zones.set(source.zoneId, {
      version: source.version,
      policy: result.policy,
      data: source.data,
      activatedAt: source.activatedAt,
      loadedAt: now,
      syncedAt: now,
    });
    this.rejected.delete(source.zoneId);
    this.opts.logger.info({ zoneId: source.zoneId, version: source.version }, 'policy bundle loaded');
    return { ok: true, changed: true };
  }

  /** The control plane confirmed the zone's active version is unchanged. */
  markSynced(zoneId: string): void {
    const b = this.zones.get(zoneId);
    if (b) b.syncedAt = this.opts.clock.now();
  }

  /** Forget a deleted zone. */
  remove(zoneId: string): void {
    this.zones.delete(zoneId);
    this.rejected.delete(zoneId);
  }

  /** Decide one request; a zone without a bundle or an evaluation error denies. */
  decide(zoneId: string, input: unknown): AuthzResult & { policyVersion: string } {
    const b = this.zones.get(zoneId);
    if (!b) {
      throw new CaracalError(
        'policy_not_loaded',
        503,
        'No policy is loaded for this zone; every request is denied.',
      );
    }
    try {
      const result = b.policy.decide(AUTHZ_QUERY, {
        input,
        data: b.data,
        maxSteps: this.opts.maxSteps ?? 100_000,
      });
      if (!isResult(result)) throw new Error('policy result has the wrong shape');
      return { ...result, policyVersion: b.version };
    } catch (err) {
      this.evalErrors.inc({ zone: zoneId });
      this.opts.logger.error(
        { zoneId, version: b.version, err: (err as Error).message },
        'policy evaluation failed',
      );
      return {
        decision: 'deny',
        reasons: ['policy_error'],
        determining_policies: [],
        diagnostics: { error: [(err as Error).message] },
        policyVersion: b.version,
      };
    }
  }

  status(zoneId: string): BundleStatus {
    const b = this.zones.get(zoneId);
    const rejected = this.rejected.get(zoneId);
    if (!b) return { zoneId, loaded: false, ...(rejected ? { rejected } : {}) };
    return {
      zoneId,
      loaded: true,
      version: b.version,
      activatedAt: b.activatedAt,
      loadedAt: b.loadedAt,
      syncedAt: b.syncedAt,
      ageSeconds: (this.opts.clock.now() - b.syncedAt) / 1000,
      ...(rejected ? { rejected } : {}),
    };
  }

  zoneIds(): string[] {
    return [...this.zones.keys()];
  }

  /** Oldest confirmation across zones, in seconds (0 with no zones). */
  maxAgeSeconds(): number {
    const now = this.opts.clock.now();
    let max = 0;
    for (const b of this.zones.values()) max = Math.max(max, (now - b.syncedAt) / 1000);
    return max;
  }
}

function isResult(v: unknown): v is AuthzResult {
  const r = v as AuthzResult | undefined;
  return (
    typeof r === 'object' &&
    r !== null &&
    (r.decision === 'allow' || r.decision === 'deny' || r.decision === 'hold') &&
    Array.isArray(r.reasons) &&
    Array.isArray(r.determining_policies)
  );
}
