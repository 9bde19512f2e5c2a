import { EventEmitter } from 'node:events';
import { CaracalError, type Clock } from '@caracal/core';
import { type Db, isConnectionError } from '@caracal/store';
import type { DeadLetter, RawDlqEntry, RawEntry, StreamTransport } from './transport.js';
import type { DlqReason, StartAt } from './types.js';

export interface PgTransportOptions {
  /** The Db whose schema holds the busMigrations tables; the caller owns (opens and closes) it. */
  db: Db;
  clock: Clock;
  /** A blocked read re-checks the table this often unless an in-process append wakes it; default 100. */
  pollIntervalMs?: number;
}

interface EntryRow {
  id: string;
  body: string;
  sig: string;
  replay_of: string | null;
  deliveries?: number;
  last_error?: string | null;
}

const APPEND = `
WITH s AS (
  INSERT INTO bus_streams AS s (stream, last_id) VALUES ($1, 1)
  ON CONFLICT (stream) DO UPDATE SET last_id = s.last_id + 1
  RETURNING last_id)
INSERT INTO bus_entries (stream, id, body, sig, replay_of, created_at)
SELECT $1, s.last_id, $2::text, $3::text, $4::text, $5::bigint FROM s
RETURNING id::text AS id`;

// One statement: lock the group's offset, take the next entries, make them pending, move the offset.
const READ_NEW = `
WITH g AS (
  SELECT last_id FROM bus_groups WHERE stream = $1 AND grp = $2 FOR UPDATE),
e AS (
  SELECT x.id, x.body, x.sig, x.replay_of FROM bus_entries x, g
  WHERE x.stream = $1 AND x.id > g.last_id ORDER BY x.id LIMIT $4),
p AS (
  INSERT INTO bus_pending (stream, grp, entry_id, consumer, deliveries, delivered_at)
  SELECT $1, $2, e.id, $3::text, 1, $5::bigint FROM e),
u AS (
  UPDATE bus_groups SET last_id = (SELECT max(id) FROM e)
  WHERE stream = $1 AND grp = $2 AND EXISTS (SELECT 1 FROM e))
SELECT id::text AS id, body, sig, replay_of FROM e ORDER BY e.id`;

const CLAIM = `
WITH c AS (
  SELECT entry_id FROM bus_pending
  WHERE stream = $1 AND grp = $2 AND delivered_at <= $4
  ORDER BY entry_id LIMIT $5 FOR UPDATE SKIP LOCKED),
u AS (
  UPDATE bus_pending p SET consumer = $3, deliveries = p.deliveries + 1, delivered_at = $6
  FROM c WHERE p.stream = $1 AND p.grp = $2 AND p.entry_id = c.entry_id
  RETURNING p.entry_id, p.deliveries, p.last_error)
SELECT u.entry_id::text AS id, u.deliveries, u.last_error, e.body, e.sig, e.replay_of
FROM u JOIN bus_entries e ON e.stream = $1 AND e.id = u.entry_id
ORDER BY u.entry_id`;

const MOVE_TO_DLQ = `
WITH d AS (
  DELETE FROM bus_pending WHERE stream = $1 AND grp = $2 AND entry_id = $3
  RETURNING entry_id, deliveries),
ins AS (
  INSERT INTO bus_dlq (stream, original_id, grp, reason, error, deliveries, dead_at, body, sig)
  SELECT $1, d.entry_id::text, $2, $4::text, $5::text, d.deliveries, $6::bigint, e.body, e.sig
  FROM d JOIN bus_entries e ON e.stream = $1 AND e.id = d.entry_id
  RETURNING id)
SELECT count(*)::int AS n FROM ins`;

const DLQ_REPLAY = `
WITH d AS (
  DELETE FROM bus_dlq WHERE stream = $1 AND id = $2 RETURNING original_id, body, sig),
s AS (
  INSERT INTO bus_streams AS s (stream, last_id) SELECT $1, 1 FROM d
  ON CONFLICT (stream) DO UPDATE SET last_id = s.last_id + 1
  RETURNING last_id)
INSERT INTO bus_entries (stream, id, body, sig, replay_of, created_at)
SELECT $1, s.last_id, d.body, d.sig, d.original_id, $3::bigint FROM s, d
RETURNING id::text AS id`;

const DIGITS = /^[0-9]{1,18}$/;

/** Database trouble becomes bus_unavailable (503); SQL errors are bugs and pass through. */
function mapPgError(err: unknown, what: string): unknown {
  if (err instanceof CaracalError) {
    return err.status === 503 && err.code !== 'bus_unavailable'
      ? new CaracalError('bus_unavailable', 503, `Bus unavailable (postgres ${what}): ${err.detail}`, {}, err)
      : err;
  }
  if (isConnectionError(err)) {
    const msg = err instanceof Error ? err.message : String(err);
    return new CaracalError('bus_unavailable', 503, `Bus unavailable (postgres ${what}): ${msg}`, {}, err);
  }
  return err;
}

function toRaw(r: EntryRow): RawEntry {
  const raw: RawEntry = { id: r.id, body: r.body, sig: r.sig, deliveries: r.deliveries ?? 1 };
  if (r.replay_of) raw.replayOf = r.replay_of;
  if (r.last_error) raw.lastError = r.last_error;
  return raw;
}

/**
 * The embedded stream: entries, group offsets and pending entries in tables (PGlite or Postgres).
 * Blocked reads poll with a short interval; appends through this instance wake them at once.
 */
export class PgTransport implements StreamTransport {
  readonly kind = 'postgres' as const;
  private readonly db: Db;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly appended = new EventEmitter();
  private closed = false;

  constructor(opts: PgTransportOptions) {
    this.db = opts.db;
    this.clock = opts.clock;
    this.pollIntervalMs = opts.pollIntervalMs ?? 100;
    this.appended.setMaxListeners(0);
  }

  private async q<R>(what: string, sql: string, params: unknown[]): Promise<R[]> {
    if (this.closed) throw new CaracalError('bus_unavailable', 503, 'Bus is closed.');
    try {
      return await this.db.query<R>(sql, params);
    } catch (err) {
      throw mapPgError(err, what);
    }
  }

  async append(stream: string, body: string, sig: string, replayOf?: string): Promise<string> {
    const rows = await this.q<{ id: string }>('append', APPEND, [
      stream,
      body,
      sig,
      replayOf ?? null,
      this.clock.now(),
    ]);
    this.appended.emit(stream);
    return rows[0]!.id;
  }

  async ensureGroup(stream: string, group: string, startAt: StartAt): Promise<void> {
    await this.q(
      'ensure group',
      `INSERT INTO bus_groups (stream, grp, last_id, created_at)
       SELECT $1::text, $2::text, CASE WHEN $3::text = '$' THEN COALESCE((SELECT last_id FROM bus_streams WHERE stream = $1), 0) ELSE 0 END, $4::bigint
       ON CONFLICT (stream, grp) DO NOTHING`,
      [stream, group, startAt, this.clock.now()],
    );
  }

  async readNew(
    stream: string,
    group: string,
    consumer: string,
    count: number,
    blockMs: number,
  ): Promise<RawEntry[]> {
    const deadline = performance.now() + blockMs;
    let groupChecked = false;
    for (;;) {
      const rows = await this.q<EntryRow>('read', READ_NEW, [
        stream,
        group,
        consumer,
        count,
        this.clock.now(),
      ]);
      if (rows.length > 0) return rows.map(toRaw);
      if (!groupChecked) {
        await this.requireGroup(stream, group);
        groupChecked = true;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0 || this.closed) return [];
      await this.waitForAppend(stream, Math.min(remaining, this.pollIntervalMs));
    }
  }

  private async requireGroup(stream: string, group: string): Promise<void> {
    const rows = await this.q('group', 'SELECT 1 FROM bus_groups WHERE stream = $1 AND grp = $2', [
      stream,
      group,
    ]);
    if (rows.length === 0)
      throw new CaracalError('bus_no_group', 409, `No group '${group}' on stream '${stream}'.`);
  }

  private waitForAppend(stream: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.appended.off(stream, done);
        this.appended.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.appended.once(stream, done);
      this.appended.once('close', done);
    });
  }

  async claimIdle(
    stream: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    count: number,
  ): Promise<RawEntry[]> {
    const now = this.clock.now();
    const rows = await this.q<EntryRow>('claim', CLAIM, [
      stream,
      group,
      consumer,
      now - minIdleMs,
      count,
      now,
    ]);
    return rows.map(toRaw);
  }

  async ack(stream: string, group: string, ids: string[]): Promise<number> {
    const valid = ids.filter((id) => DIGITS.test(id));
    if (valid.length === 0) return 0;
    const rows = await this.q<{ n: number }>(
      'ack',
      `WITH d AS (
         DELETE FROM bus_pending
         WHERE stream = $1 AND grp = $2 AND entry_id = ANY (string_to_array($3, ',')::bigint[])
         RETURNING 1)
       SELECT count(*)::int AS n FROM d`,
      [stream, group, valid.join(',')],
    );
    return rows[0]?.n ?? 0;
  }

  async recordError(stream: string, group: string, id: string, error: string): Promise<void> {
    if (!DIGITS.test(id)) return;
    await this.q(
      'record error',
      'UPDATE bus_pending SET last_error = $4 WHERE stream = $1 AND grp = $2 AND entry_id = $3',
      [stream, group, id, error],
    );
  }

  async moveToDlq(
    stream: string,
    group: string,
    id: string,
    _deliveries: number,
    dead: DeadLetter,
  ): Promise<boolean> {
    if (!DIGITS.test(id)) return false;
    const rows = await this.q<{ n: number }>('move to DLQ', MOVE_TO_DLQ, [
      stream,
      group,
      id,
      dead.reason,
      dead.error,
      dead.deadAt,
    ]);
    return (rows[0]?.n ?? 0) > 0;
  }

  async touch(stream: string, group: string, consumer: string, ids: string[]): Promise<void> {
    const valid = ids.filter((id) => DIGITS.test(id));
    if (valid.length === 0) return;
    await this.q(
      'touch',
      `UPDATE bus_pending SET delivered_at = $5
       WHERE stream = $1 AND grp = $2 AND consumer = $3 AND entry_id = ANY (string_to_array($4, ',')::bigint[])`,
      [stream, group, consumer, valid.join(','), this.clock.now()],
    );
  }

  async pendingCount(stream: string, group: string): Promise<number> {
    const rows = await this.q<{ n: number }>(
      'pending',
      'SELECT count(*)::int AS n FROM bus_pending WHERE stream = $1 AND grp = $2',
      [stream, group],
    );
    return rows[0]?.n ?? 0;
  }

  async lag(stream: string, group: string): Promise<number> {
    // Ids are dense per stream, so "not yet delivered" is a subtraction.
    const rows = await this.q<{ n: number }>(
      'lag',
      `SELECT (COALESCE((SELECT last_id FROM bus_streams WHERE stream = $1), 0) - g.last_id
               + (SELECT count(*) FROM bus_pending p WHERE p.stream = $1 AND p.grp = $2))::int AS n
       FROM bus_groups g WHERE g.stream = $1 AND g.grp = $2`,
      [stream, group],
    );
    if (rows.length === 0)
      throw new CaracalError('bus_no_group', 409, `No group '${group}' on stream '${stream}'.`);
    return rows[0]!.n;
  }

  async length(stream: string): Promise<number> {
    const rows = await this.q<{ n: number }>(
      'length',
      'SELECT count(*)::int AS n FROM bus_entries WHERE stream = $1',
      [stream],
    );
    return rows[0]?.n ?? 0;
  }

  async dlqList(stream: string, count: number): Promise<RawDlqEntry[]> {
    const rows = await this.q<{
      id: string;
      original_id: string;
      grp: string;
      reason: string;
      error: string;
      deliveries: number;
      dead_at: string;
      body: string;
      sig: string;
    }>(
      'DLQ list',
      `SELECT id::text AS id, original_id, grp, reason, error, deliveries, dead_at::text AS dead_at, body, sig
       FROM bus_dlq WHERE stream = $1 ORDER BY id LIMIT $2`,
      [stream, count],
    );
    return rows.map((r) => ({
      id: r.id,
      stream,
      originalId: r.original_id,
      group: r.grp,
      reason: r.reason as DlqReason,
      error: r.error,
      deliveries: r.deliveries,
      deadAt: Number(r.dead_at),
      body: r.body,
      sig: r.sig,
    }));
  }

  async dlqSize(stream: string): Promise<number> {
    const rows = await this.q<{ n: number }>(
      'DLQ size',
      'SELECT count(*)::int AS n FROM bus_dlq WHERE stream = $1',
      [stream],
    );
    return rows[0]?.n ?? 0;
  }

  async dlqReplay(stream: string, ids: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const id of ids) {
      if (!DIGITS.test(id)) continue;
      const rows = await this.q<{ id: string }>('DLQ replay', DLQ_REPLAY, [stream, id, this.clock.now()]);
      if (rows[0]) out.push(rows[0].id);
    }
    if (out.length > 0) this.appended.emit(stream);
    return out;
  }

  async ping(): Promise<void> {
    await this.q('ping', 'SELECT 1', []);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.appended.emit('close');
  }
}
