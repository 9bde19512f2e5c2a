import { randomUUID } from 'node:crypto';
import { type Clock, Gauge, type Registry, systemClock } from '@caracal/core';
import type { Db, Queryable } from './db.js';

/** What `enqueue` writes: an event for `stream`, owned by one service's relay. */
export interface OutboxEvent {
  /** The relay that publishes it, e.g. 'caracal_api'. */
  owner: string;
  stream: string;
  /** Any JSON value; stored as jsonb. */
  payload: unknown;
  /** Optional dedupe key: a second enqueue with the same (owner, key) adds nothing and returns the first event. */
  key?: string;
}

export interface Enqueued {
  /** The event id (uuid) the relay hands to `publish`; consumers dedupe on it. */
  eventId: string;
  /** True when `key` matched an event already enqueued. */
  duplicate: boolean;
}

/** Write an event inside the caller's transaction: it exists if and only if the caller's change commits. */
export async function enqueue(q: Queryable, event: OutboxEvent): Promise<Enqueued> {
  if (event.payload === undefined) throw new TypeError('outbox payload must be a JSON value, not undefined');
  const payload = JSON.stringify(event.payload);
  const [row] = await q.query<{ event_id: string }>(
    `INSERT INTO outbox (owner, stream, dedupe_key, payload) VALUES ($1, $2, $3, $4::jsonb)
     ON CONFLICT (owner, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
     RETURNING event_id::text`,
    [event.owner, event.stream, event.key ?? null, payload],
  );
  if (row) return { eventId: row.event_id, duplicate: false };
  const [prior] = await q.query<{ event_id: string }>(
    'SELECT event_id::text FROM outbox WHERE owner = $1 AND dedupe_key = $2',
    [event.owner, event.key],
  );
  if (!prior) throw new Error(`outbox enqueue for key ${event.key} neither inserted nor found a row`);
  return { eventId: prior.event_id, duplicate: true };
}

export interface OutboxStatus {
  pending: number;
  dead: number;
  /** Age of the oldest pending event by the database clock; 0 when none is pending. */
  oldestPendingAgeSeconds: number;
}

/** Pending and dead counts and the oldest pending age, for one owner or (no owner) all of them. */
export async function outboxStatus(db: Queryable, owner?: string): Promise<OutboxStatus> {
  const [row] = await db.query<{ pending: number; dead: number; age: number }>(
    `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
            count(*) FILTER (WHERE status = 'dead')::int AS dead,
            COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending')), 0)::float8 AS age
       FROM outbox WHERE status IN ('pending', 'dead') AND ($1::text IS NULL OR owner = $1)`,
    [owner ?? null],
  );
  return {
    pending: row?.pending ?? 0,
    dead: row?.dead ?? 0,
    oldestPendingAgeSeconds: Math.max(0, row?.age ?? 0),
  };
}

export interface DeadEvent {
  eventId: string;
  owner: string;
  stream: string;
  payload: unknown;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

/** Dead events, oldest first, for `caracal recover`. */
export async function listDead(db: Queryable, owner?: string, limit = 100): Promise<DeadEvent[]> {
  const rows = await db.query<{
    event_id: string;
    owner: string;
    stream: string;
    payload: unknown;
    attempts: number;
    last_error: string | null;
    created_at: Date;
  }>(
    `SELECT event_id::text, owner, stream, payload, attempts, last_error, created_at FROM outbox
      WHERE status = 'dead' AND ($1::text IS NULL OR owner = $1) ORDER BY id LIMIT $2`,
    [owner ?? null, limit],
  );
  return rows.map((r) => ({
    eventId: r.event_id,
    owner: r.owner,
    stream: r.stream,
    payload: r.payload,
    attempts: r.attempts,
    lastError: r.last_error,
    createdAt: r.created_at,
  }));
}

/** Put dead events back to pending with a fresh attempt budget; all of an owner's, or only `eventIds`. */
export async function requeueDead(
  db: Queryable,
  opts: { owner?: string; eventIds?: string[] } = {},
): Promise<number> {
  const rows = await db.query(
    `UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL, leased_until = NULL, leased_by = NULL
      WHERE status = 'dead' AND ($1::text IS NULL OR owner = $1) AND ($2::text[] IS NULL OR event_id::text = ANY($2::text[]))
      RETURNING id`,
    [opts.owner ?? null, opts.eventIds ?? null],
  );
  return rows.length;
}

/** Delete sent events older than `olderThanMs` (by `now`); returns how many. */
export async function pruneSent(
  db: Queryable,
  opts: { olderThanMs: number; now: number; owner?: string },
): Promise<number> {
  const rows = await db.query(
    `DELETE FROM outbox WHERE status = 'sent' AND sent_at < $1 AND ($2::text IS NULL OR owner = $2) RETURNING id`,
    [new Date(opts.now - opts.olderThanMs), opts.owner ?? null],
  );
  return rows.length;
}

/** The subset of a pino logger the relay uses. */
export interface RelayLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface OutboxRelayOptions {
  db: Db;
  owner: string;
  /** Deliver one event; resolve only once the bus has it. The id travels with the message for dedupe. */
  publish: (stream: string, payload: unknown, id: string) => Promise<void>;
  /** Attempts before an event is marked dead; default 10. */
  maxAttempts?: number;
  /** Idle wait between polls; default 200 ms. */
  pollMs?: number;
  /** Events claimed per poll; default 100. */
  batchSize?: number;
  /** First retry delay, doubled per attempt up to maxBackoffMs; defaults 1 s and 5 min. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** How long a claimed batch is reserved for this relay; default 30 s. */
  leaseMs?: number;
  /** A publish that takes longer counts as failed; default 10 s. */
  publishTimeoutMs?: number;
  /** Sent events are deleted after this long; default 24 h; 0 keeps them. */
  retainSentMs?: number;
  clock?: Clock;
  logger?: RelayLogger;
  /** Registry for `<metricPrefix>_outbox_*` gauges. */
  registry?: Registry;
  /** Metric name prefix, e.g. 'caracal_api'; default the owner. */
  metricPrefix?: string;
  /** Identifies this relay in leases; default a random id. */
  relayId?: string;
}

export interface DrainResult {
  claimed: number;
  published: number;
  /** Failed and scheduled for retry. */
  retried: number;
  /** Failed for the last time and marked dead. */
  dead: number;
}

export interface OutboxRelay {
  /** Poll in the background until stop(). */
  start(): void;
  /** Stop polling; resolves once the batch in progress is finished. */
  stop(): Promise<void>;
  /** Claim one batch and publish it; the loop's step, callable directly in tests and `caracal recover`. */
  drainOnce(): Promise<DrainResult>;
}

interface ClaimedRow {
  id: string;
  event_id: string;
  stream: string;
  payload: unknown;
  attempts: number;
}

const PRUNE_EVERY_MS = 60_000;

/**
 * Relay for one owner's outbox. A poll claims due events with FOR UPDATE SKIP LOCKED and leases them
 * (committed), then publishes outside any transaction, so a slow bus holds no connection and an embedded
 * bus can use the same PGlite. Publishing is at-least-once: a relay that dies mid-batch leaves leases that
 * expire. Events of one stream go out in id order: a failing event holds back its stream's later events until
 * it is sent or dead (strict for one relay; parallel relays keep it except in a narrow claim race).
 */
export function createOutboxRelay(opts: OutboxRelayOptions): OutboxRelay {
  const { db, owner, publish } = opts;
  const maxAttempts = opts.maxAttempts ?? 10;
  const pollMs = opts.pollMs ?? 200;
  const batchSize = opts.batchSize ?? 100;
  const backoffMs = opts.backoffMs ?? 1_000;
  const maxBackoffMs = opts.maxBackoffMs ?? 300_000;
  const leaseMs = opts.leaseMs ?? 30_000;
  const publishTimeoutMs = opts.publishTimeoutMs ?? 10_000;
  const retainSentMs = opts.retainSentMs ?? 86_400_000;
  const clock = opts.clock ?? systemClock;
  const relayId = opts.relayId ?? `${owner}:${randomUUID()}`;
  const log = opts.logger;
  if (opts.registry) registerOutboxMetrics(opts.registry, opts.metricPrefix ?? owner, db, owner);

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let lastPrune = 0;

  async function claim(now: number): Promise<ClaimedRow[]> {
    const rows = await db.query<ClaimedRow>(
      `UPDATE outbox SET leased_until = $3, leased_by = $4
        WHERE id IN (
          SELECT o.id FROM outbox o
           WHERE o.owner = $1 AND o.status = 'pending'
             AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= $2)
             AND (o.leased_until IS NULL OR o.leased_until <= $2)
             AND NOT EXISTS (
               SELECT 1 FROM outbox e
                WHERE e.owner = o.owner AND e.stream = o.stream AND e.status = 'pending' AND e.id < o.id
                  AND (e.next_attempt_at > $2 OR e.leased_until > $2))
           ORDER BY o.id LIMIT $5
           FOR UPDATE SKIP LOCKED)
        RETURNING id::text, event_id::text, stream, payload, attempts`,
      [owner, new Date(now), new Date(now + leaseMs), relayId, batchSize],
    );
    return rows.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }

  async function release(ids: string[]): Promise<void> {
    if (!ids.length) return;
    await db.query(
      'UPDATE outbox SET leased_until = NULL, leased_by = NULL WHERE id = ANY($1::bigint[]) AND leased_by = $2',
      [ids, relayId],
    );
  }

  async function drainOnce(): Promise<DrainResult> {
    const started = clock.now();
    const rows = await claim(started);
    const result: DrainResult = { claimed: rows.length, published: 0, retried: 0, dead: 0 };
    const blocked = new Set<string>();
    const untouched: string[] = [];
    for (const row of rows) {
      // Keep order within a stream, and never publish on a lease that may have run out.
      if (blocked.has(row.stream) || clock.now() - started > leaseMs - publishTimeoutMs) {
        untouched.push(row.id);
        continue;
      }
      try {
        await withTimeout(publish(row.stream, row.payload, row.event_id), publishTimeoutMs);
      } catch (err) {
        blocked.add(row.stream);
        const attempts = row.attempts + 1;
        const dead = attempts >= maxAttempts;
        const delay = Math.min(maxBackoffMs, backoffMs * 2 ** (attempts - 1));
        await db.query(
          `UPDATE outbox SET attempts = $3, status = $4, next_attempt_at = $5, last_error = $6,
                  leased_until = NULL, leased_by = NULL
            WHERE id = $1 AND leased_by = $2`,
          [
            row.id,
            relayId,
            attempts,
            dead ? 'dead' : 'pending',
            new Date(clock.now() + delay),
            errorText(err),
          ],
        );
        if (dead) {
          result.dead++;
          log?.error(
            { owner, eventId: row.event_id, stream: row.stream, attempts, err },
            'outbox event dead',
          );
        } else {
          result.retried++;
          log?.warn(
            { owner, eventId: row.event_id, stream: row.stream, attempts, delayMs: delay, err },
            'outbox publish failed',
          );
        }
        continue;
      }
      const marked = await db.query(
        `UPDATE outbox SET status = 'sent', sent_at = $3, leased_until = NULL, leased_by = NULL, last_error = NULL
          WHERE id = $1 AND leased_by = $2 RETURNING id`,
        [row.id, relayId, new Date(clock.now())],
      );
      if (!marked.length)
        log?.warn({ owner, eventId: row.event_id }, 'outbox lease lost before mark; event may publish twice');
      result.published++;
    }
    await release(untouched);
    return result;
  }

  async function prune(): Promise<void> {
    const now = clock.now();
    if (!retainSentMs || now - lastPrune < PRUNE_EVERY_MS) return;
    lastPrune = now;
    await pruneSent(db, { olderThanMs: retainSentMs, now, owner });
  }

  async function run(): Promise<void> {
    while (running) {
      let full = false;
      try {
        full = (await drainOnce()).claimed >= batchSize;
        await prune();
      } catch (err) {
        log?.warn({ owner, err }, 'outbox relay poll failed; retrying');
      }
      if (!running || full) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      loop = undefined;
    },
    drainOnce,
  };
}

/**
 * `<prefix>_outbox_oldest_pending_age_seconds` and `<prefix>_outbox_dead_total`, read from the table at
 * scrape time. The dead count is a gauge of dead rows now (despite `_total`, the name the alerts use): it
 * survives restarts and drops after a requeue, which a process-local counter would not.
 */
export function registerOutboxMetrics(
  registry: Registry,
  prefix: string,
  db: Queryable,
  owner: string,
): void {
  const ageName = `${prefix}_outbox_oldest_pending_age_seconds`;
  const deadName = `${prefix}_outbox_dead_total`;
  // On a failed read the gauges keep their last value; the database's own checks report the outage.
  if (!registry.getSingleMetric(ageName)) {
    new Gauge({
      name: ageName,
      help: 'Age of the oldest outbox event not yet published',
      registers: [registry],
      async collect() {
        const s = await outboxStatus(db, owner).catch(() => undefined);
        if (s) this.set(s.oldestPendingAgeSeconds);
      },
    });
  }
  if (!registry.getSingleMetric(deadName)) {
    new Gauge({
      name: deadName,
      help: 'Outbox events that exhausted their attempts (requeue with caracal recover)',
      registers: [registry],
      async collect() {
        const s = await outboxStatus(db, owner).catch(() => undefined);
        if (s) this.set(s.dead);
      },
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`publish timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 2000);
}
