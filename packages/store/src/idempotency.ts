import { createHash } from 'node:crypto';
import { CaracalError } from '@caracal/core';
import type { Db, Queryable, Tx } from './db.js';

export interface IdempotencyKey {
  /** Namespace of the key, e.g. 'api:POST /mandates' or a tenant; keys are unique per scope. */
  scope: string;
  /** The client's Idempotency-Key. */
  key: string;
  /** Hash of the request the key was first used with (see `requestHash`). */
  requestHash: string;
}

/** What a keyed operation answers; stored and replayed verbatim. `body` must be JSON-serializable. */
export interface IdempotentResponse<B = unknown> {
  status: number;
  body: B;
}

export interface IdempotentResult<B = unknown> extends IdempotentResponse<B> {
  /** True when this is the stored response of an earlier call. */
  replayed: boolean;
}

/**
 * Run `fn` once per (scope, key). The first call runs it in a transaction and stores its response in the
 * same transaction; a repeat with the same request hash gets the stored response without running `fn`;
 * the same key with another request is `idempotency_key_reused` (422). A concurrent duplicate waits on the
 * first's uncommitted receipt row (primary key) and then replays it, so `fn` never runs twice. When `fn`
 * throws, nothing is stored and the key stays free for a retry.
 */
export async function withIdempotency<B>(
  db: Db,
  id: IdempotencyKey,
  fn: (q: Tx) => Promise<IdempotentResponse<B>>,
): Promise<IdempotentResult<B>> {
  return db.tx(async (q) => {
    const claimed = await q.query(
      `INSERT INTO idempotency_receipts (scope, key, request_hash) VALUES ($1, $2, $3)
       ON CONFLICT (scope, key) DO NOTHING RETURNING 1`,
      [id.scope, id.key, id.requestHash],
    );
    if (!claimed.length) return replay<B>(q, id);
    const response = await fn(q);
    const text = JSON.stringify(response.body ?? null);
    await q.query(
      'UPDATE idempotency_receipts SET status = $3, body = $4::json WHERE scope = $1 AND key = $2',
      [id.scope, id.key, response.status, text],
    );
    // Answer with what a replay will return, so the first and later answers are identical.
    return { status: response.status, body: JSON.parse(text) as B, replayed: false };
  });
}

async function replay<B>(q: Queryable, id: IdempotencyKey): Promise<IdempotentResult<B>> {
  const [receipt] = await q.query<{ request_hash: string; status: number | null; body_text: string | null }>(
    'SELECT request_hash, status, body::text AS body_text FROM idempotency_receipts WHERE scope = $1 AND key = $2',
    [id.scope, id.key],
  );
  if (!receipt || receipt.status === null || receipt.body_text === null) {
    // Only possible if the receipt was pruned between our insert and read; the client may retry.
    throw new CaracalError(
      'idempotency_conflict',
      409,
      `Idempotency key '${id.key}' changed while in use; retry.`,
    );
  }
  if (receipt.request_hash !== id.requestHash) {
    throw new CaracalError(
      'idempotency_key_reused',
      422,
      `Idempotency key '${id.key}' was already used with a different request.`,
    );
  }
  return { status: receipt.status, body: JSON.parse(receipt.body_text) as B, replayed: true };
}

/** sha256 (hex) of a value's canonical JSON (object keys sorted), for `requestHash`. */
export function requestHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Delete receipts older than `olderThanMs` by the database clock; returns how many. */
export async function pruneReceipts(db: Queryable, opts: { olderThanMs: number }): Promise<number> {
  const rows = await db.query(
    `DELETE FROM idempotency_receipts WHERE created_at < now() - ($1::float8 * interval '1 millisecond') RETURNING 1`,
    [opts.olderThanMs],
  );
  return rows.length;
}
