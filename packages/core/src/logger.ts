import { type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** Bound to every line; omit when several services share the process (each binds its own). */
  service?: string;
  level?: string;
  /** Write to this destination instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
}

/** JSON logger for one service; request ids are attached by the HTTP factory. */
export function createLogger(opts: LoggerOptions): Logger {
  const options = { level: opts.level ?? 'info', base: opts.service ? { service: opts.service } : {} };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
