import type { Clock } from './clock.js';
import type { HttpApp } from './http.js';
import { createHttpServer } from './http.js';
import type { Logger } from './logger.js';
import { createMetrics, type ServiceMetrics } from './metrics.js';
import { Readiness } from './readiness.js';

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
  host: string;
  port: number;
  logger: Logger;
  clock: Clock;
  graceMs?: number;
  processMetrics?: boolean;
  http?: { bodyLimitBytes?: number; requestTimeoutMs?: number; keepAliveTimeoutMs?: number };
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
  const logger = opts.logger.child({ service: opts.name });
  const metrics = createMetrics(opts.name, { processMetrics: opts.processMetrics });
  const checks = new Readiness(opts.name, metrics);
  const app = createHttpServer({ service: opts.name, logger, metrics, readiness: checks, ...opts.http });
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
    clock: opts.clock,
    onStart: (h) => void startHooks.push(h),
    onStop: (h) => void stopHooks.push(h),
    async start() {
      if (url) return url;
      url = await app.listen({ host: opts.host, port: opts.port, listenTextResolver: () => '' });
      for (const h of startHooks) await h();
      logger.info({ url }, 'service started');
      return url;
    },
    stop() {
      stopping ??= (async () => {
        const grace = opts.graceMs ?? 10_000;
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
