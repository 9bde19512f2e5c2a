import { CaracalError, type Logger } from '@caracal/core';
import { describeError } from './signed-bus.js';
import {
  type Bus,
  type BusEntry,
  DEFAULT_CLAIM_IDLE_MS,
  DEFAULT_MAX_DELIVERIES,
  type StartAt,
} from './types.js';

/**
 * Handles one entry. Delivery is at-least-once: the same event can arrive again after a crash,
 * a claim or a DLQ replay, so a handler MUST be idempotent by `entry.message.eventId`
 * (e.g. a unique key on the event id in the same transaction as its effect).
 * Throwing a CaracalError with status 503 (a dependency is down: db_unavailable, …) means "try again
 * later": the consumer keeps the entry in hand and retries with backoff, without counting a delivery.
 * Any other error means "this entry failed": it stays pending, is redelivered after `claimIdleMs`,
 * and moves to the DLQ with the error after `maxDeliveries` deliveries.
 */
export type EntryHandler = (entry: BusEntry) => Promise<void>;

/** Handles a whole batch at once (e.g. one multi-row insert); same idempotency rule. On any error the batch is retried entry by entry with `handler`. */
export type BatchHandler = (entries: BusEntry[]) => Promise<void>;

export interface ConsumerOptions {
  bus: Bus;
  stream: string;
  group: string;
  /** Unique per process (e.g. `audit-<host>-<pid>`). */
  consumer: string;
  handler: EntryHandler;
  /** Optional fast path for batches of more than one entry. */
  batchHandler?: BatchHandler;
  logger: Logger;
  /** Pending entries idle this long are claimed (from crashed or hung consumers, and failed ones); default 30 s. */
  claimIdleMs?: number;
  /** Deliveries before the DLQ; default 8. */
  maxDeliveries?: number;
  /** Entries per read; default 32. */
  batchSize?: number;
  /** How long one read waits for new entries; default 1000. Also bounds how fast stop() returns. */
  blockMs?: number;
  /** Where a new group starts; default '0' (everything in the stream). */
  startAt?: StartAt;
  /** Backoff between attempts while the bus is failing; default 100 → 5000 ms, doubling, with jitter. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

export interface ConsumerStats {
  handled: number;
  failed: number;
  dead: number;
  busErrors: number;
  lastBusError?: string;
}

export interface Consumer {
  start(): void;
  /** Stop reading; waits for the entry in hand up to timeoutMs (default 10 s). Unacked entries stay pending. */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  readonly running: boolean;
  stats(): ConsumerStats;
}

/** A read → claim → handle → ack loop over one stream and group, with DLQ policy and backoff. */
export function createConsumer(opts: ConsumerOptions): Consumer {
  const { bus, stream, group, consumer, handler, logger } = opts;
  const claimIdleMs = opts.claimIdleMs ?? DEFAULT_CLAIM_IDLE_MS;
  const maxDeliveries = opts.maxDeliveries ?? DEFAULT_MAX_DELIVERIES;
  const batchSize = opts.batchSize ?? 32;
  const blockMs = Math.max(10, opts.blockMs ?? 1000);
  const backoffMin = opts.backoffMinMs ?? 100;
  const backoffMax = opts.backoffMaxMs ?? 5000;
  // Check for idle entries a few times per idle period, not on every read.
  const claimEveryMs = Math.max(20, Math.min(claimIdleMs / 2, 5000));
  const stats: ConsumerStats = { handled: 0, failed: 0, dead: 0, busErrors: 0 };
  const log = logger.child({ stream, group, consumer });

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  const backoff = (failures: number) => {
    const base = Math.min(backoffMax, backoffMin * 2 ** Math.min(failures - 1, 16));
    return base / 2 + Math.random() * (base / 2);
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const isTransient = (err: unknown) => err instanceof CaracalError && err.status === 503;

  async function handleOne(entry: BusEntry): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await handler(entry);
        return true;
      } catch (err) {
        if (isTransient(err) && running) {
          // A dependency is down, not the entry: hold it (keepalive runs) and retry without burning deliveries.
          const delay = backoff(attempt + 1);
          if (attempt === 0 || attempt % 20 === 0) {
            log.warn(
              { id: entry.id, err: describeError(err), retryInMs: Math.round(delay) },
              'bus consumer: handler waiting',
            );
          }
          await sleep(delay);
          if (running) continue;
          return false; // stopping: the entry stays pending for whoever claims it
        }
        if (isTransient(err)) return false;
        stats.failed++;
        const outcome = await bus.fail(stream, group, entry, err, { maxDeliveries });
        if (outcome === 'dead') stats.dead++;
        log.warn(
          {
            id: entry.id,
            eventId: entry.message.eventId,
            deliveries: entry.deliveries,
            outcome,
            err: describeError(err),
          },
          'bus consumer: handler failed',
        );
        return false;
      }
    }
  }

  async function handle(entries: BusEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const inHand = new Set(entries.map((e) => e.id));
    // Reset the idle time of entries in hand, so slow handlers and transient retries are not claimed from.
    const keepalive = setInterval(
      () => {
        bus.touch(stream, group, consumer, [...inHand]).catch(() => {});
      },
      Math.max(10, claimIdleMs / 3),
    );
    try {
      if (opts.batchHandler && entries.length > 1) {
        try {
          await opts.batchHandler(entries);
          await bus.ack(
            stream,
            group,
            entries.map((e) => e.id),
          );
          stats.handled += entries.length;
          return;
        } catch (err) {
          if (err instanceof CaracalError && err.code === 'bus_unavailable') throw err;
          log.debug(
            { err: describeError(err), size: entries.length },
            'bus consumer: batch failed, retrying one by one',
          );
        }
      }
      for (const entry of entries) {
        if (!running) return; // left pending; claimed later
        const ok = await handleOne(entry);
        inHand.delete(entry.id);
        if (!ok) continue;
        await bus.ack(stream, group, [entry.id]);
        stats.handled++;
      }
    } finally {
      clearInterval(keepalive);
    }
  }

  async function run(): Promise<void> {
    let failures = 0;
    let groupReady = false;
    let lastClaimAt = 0;
    while (running) {
      try {
        if (!groupReady) {
          await bus.ensureGroup(stream, group, opts.startAt ?? '0');
          groupReady = true;
        }
        if (performance.now() - lastClaimAt >= claimEveryMs) {
          lastClaimAt = performance.now();
          const claimed = await bus.claimIdle(stream, group, consumer, claimIdleMs, {
            count: batchSize,
            maxDeliveries,
          });
          await handle(claimed);
        }
        if (!running) break;
        const entries = await bus.read(stream, group, consumer, { count: batchSize, blockMs });
        await handle(entries);
        if (failures > 0) log.info({ failures }, 'bus consumer: bus is back');
        failures = 0;
      } catch (err) {
        // The group can vanish (Redis restarted without persistence): create it again.
        if ((err as { code?: string }).code === 'bus_no_group') groupReady = false;
        failures++;
        stats.busErrors++;
        stats.lastBusError = describeError(err);
        const delay = backoff(failures);
        // Log the first failure and then sparsely, so an outage does not flood the log.
        if (failures === 1 || failures % 20 === 0) {
          log.warn(
            { failures, err: stats.lastBusError, retryInMs: Math.round(delay) },
            'bus consumer: bus error',
          );
        }
        if (running) await sleep(delay);
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop({ timeoutMs = 10_000 } = {}) {
      if (!running && !loop) return;
      running = false;
      wake?.();
      const current = loop;
      loop = undefined;
      if (!current) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        current,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            log.warn({ timeoutMs }, 'bus consumer: stop timed out with an entry in hand; it stays pending');
            resolve();
          }, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
    get running() {
      return running;
    },
    stats: () => ({ ...stats }),
  };
}
