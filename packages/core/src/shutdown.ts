import type { Logger } from './logger.js';

export interface ShutdownOptions {
  logger: Logger;
  /** Stops everything: drain, flush, close. */
  stop: () => Promise<void>;
  /** Hard limit after which the process exits 1. */
  graceMs: number;
  exit?: (code: number) => void;
}

/** On the first SIGTERM/SIGINT stop gracefully and exit 0; a second signal or an overrun exits 1. */
export function installShutdown(opts: ShutdownOptions): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let started = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) {
      opts.logger.warn({ signal }, 'second signal; exiting now');
      exit(1);
      return;
    }
    started = true;
    opts.logger.info({ signal }, 'shutting down');
    const hard = setTimeout(() => {
      opts.logger.error({ graceMs: opts.graceMs }, 'shutdown overran its grace period');
      exit(1);
    }, opts.graceMs + 2_000);
    hard.unref();
    opts.stop().then(
      () => {
        clearTimeout(hard);
        opts.logger.flush?.();
        exit(0);
      },
      (err: unknown) => {
        opts.logger.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
