import type { Clock } from './clock.js';
import type { CaracalConfig } from './config.js';
import type { HttpApp } from './http.js';
import { createHttpServer } from './http.js';
import type { Logger } from './logger.js';
import { createMetrics, type ServiceMetrics } from './metrics.js';
import { Readiness, type ReadinessCheck } from './readiness.js';

/** What every service factory receives besides its own dependencies. */
export interface ServiceContext {
  config: CaracalConfig;
  logger: Logger;
  clock: Clock;
  /** Collect process metrics; off when several services share one process (only one collects). */
  processMetrics?: boolean;
}

/** What every service factory returns. */
export interface Service {
  name: string;
  app: HttpApp;
  checks: Readiness;
  metrics: ServiceMetrics;
  /** Listen and start background work; resolves with the bound URL. */
  start(): Promise<string>;
  /** Stop accepting, drain in-flight requests within the grace period, stop background work. */
  stop(): Promise<void>;
}

export interface ServiceBaseOptions {
  name: string;
  port: number;
  ctx: ServiceContext;
  /** Dependency checks behind /ready. */
  checks?: ReadinessCheck[];
}

type Hook = () => Promise<void> | void;

/** Shared skeleton of a service: HTTP app with health routes, metrics, readiness, start/stop hooks. */
export interface ServiceBase extends Service {
  logger: Logger;
  clock: Clock;
  /** Run after the server listens (start loops). */
  onStart(hook: Hook): void;
  /** Run after the server has drained, in reverse order of registration (flush, close pools). */
  onStop(hook: Hook): void;
}

export function createServiceBase(opts: ServiceBaseOptions): ServiceBase {
  const { config, clock } = opts.ctx;
  const logger = opts.ctx.logger.child({ service: opts.name });
  const metrics = createMetrics(opts.name, { processMetrics: opts.ctx.processMetrics });
  const checks = new Readiness(opts.name, metrics);
  for (const c of opts.checks ?? []) checks.add(c);
  const app = createHttpServer({ service: opts.name, logger, metrics, readiness: checks, ...config.http });
  const startHooks: Hook[] = [];
  const stopHooks: Hook[] = [];
  let url: string | undefined;
  let stopping: Promise<void> | undefined;

  return {
    name: opts.name,
    app,
    checks,
    metrics,
    logger,
    clock,
    onStart: (h) => void startHooks.push(h),
    onStop: (h) => void stopHooks.push(h),
    async start() {
      if (url) return url;
      url = await app.listen({
        host: config.host,
        port: opts.port,
        listenTextResolver: (a) => `listening at ${a}`,
      });
      for (const h of startHooks) await h();
      return url;
    },
    stop() {
      stopping ??= (async () => {
        const grace = config.shutdownGraceMs;
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<'expired'>((resolve) => {
          timer = setTimeout(() => resolve('expired'), grace);
        });
        const outcome = await Promise.race([app.close().then(() => 'drained' as const), expired]);
        clearTimeout(timer);
        if (outcome === 'expired') {
          logger.warn({ graceMs: grace }, 'grace period over; closing remaining connections');
          app.server.closeAllConnections();
        }
        for (const h of [...stopHooks].reverse()) {
          try {
            await h();
          } catch (err) {
            logger.error({ err }, 'stop hook failed');
          }
        }
        logger.info('service stopped');
      })();
      return stopping;
    },
  };
}
