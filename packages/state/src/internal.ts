import { createHash, randomBytes } from 'node:crypto';
import { CaracalError, type Keyring, zodIssues } from '@caracal/core';
import { type Db, enqueue, type Queryable, type Tx } from '@caracal/store';
import type { z } from 'zod';

/** Who makes a change and when: every write records both in its outbox event. */
export interface WriteContext {
  keyring: Keyring;
  /** Milliseconds since the epoch, from the caller's clock. */
  now: number;
  /** Admin key id, or 'bootstrap' for the bootstrap token. */
  actor: string;
}

/** The outbox owner and stream of control-plane events. */
export const OUTBOX_OWNER = 'caracal_api';
export const CONTROL_STREAM = 'caracal.control';

/** A database handle or an open transaction: writes join the transaction, or open one. */
export type DbOrTx = Db | Tx;

/** Run fn in the caller's transaction, or in a new one when given the Db. */
export function inTx<T>(q: DbOrTx, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return 'tx' in q ? q.tx(fn) : fn(q);
}

/** Random id with a type prefix, e.g. `app_3fa9…` (hex, so it never contains the token separator). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

/** A 256-bit random secret with a type prefix, shown once. */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True for text Postgres cannot store faithfully: NUL (refused by text and jsonb) or lone surrogates. */
export function isUnstorableText(s: string): boolean {
  return s.includes('\u0000') || LONE_SURROGATE.test(s);
}

/** Paths of every string (value or key) in `value` that Postgres cannot store. */
function unstorablePaths(value: unknown, path: (string | number)[] = [], out: string[] = []): string[] {
  if (out.length >= 20) return out;
  if (typeof value === 'string') {
    if (isUnstorableText(value)) out.push(path.map(String).join('.') || '(root)');
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      unstorablePaths(v, [...path, i], out);
    });
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (isUnstorableText(k)) out.push([...path, k].map(String).join('.'));
      unstorablePaths(v, [...path, k], out);
    }
  }
  return out;
}

/** Parse domain input with a zod schema; failures are `validation_failed` listing every issue. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const bad = unstorablePaths(value);
  if (bad.length) {
    throw new CaracalError('validation_failed', 400, `Invalid ${what}.`, {
      errors: bad.map((path) => ({
        path,
        message: 'must not contain NUL characters or unpaired UTF-16 surrogates',
      })),
    });
  }
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new CaracalError('validation_failed', 400, `Invalid ${what}.`, { errors: zodIssues(r.error) });
}

/** Every `type` a control-plane event can have (the bus message type equals the payload's `type`). */
export const CONTROL_EVENT_TYPES = [
  'zone.created',
  'application.created',
  'application.updated',
  'application.secret_rotated',
  'resource.created',
  'resource.updated',
  'resource.deleted',
  'provider.created',
  'provider.updated',
  'provider.deleted',
  'policy.created',
  'policy_set.created',
  'policy_set.activated',
  'data.updated',
  'signing_key.rotated',
  'admin_key.created',
  'admin_key.revoked',
  'rollout_freeze.changed',
  'approval.requested',
  'approval.decided',
] as const;
export type ControlEventType = (typeof CONTROL_EVENT_TYPES)[number];

/**
 * Payload of a control-plane event. The outbox adds `zoneVersion` (the zone's version after the change,
 * null without a zone), `actor` and `at` (ISO time), so the STS can skip reloads it has already seen.
 */
export interface ChangeEvent {
  type: ControlEventType;
  /** Null for changes outside any zone (admin keys, rollout freeze). */
  zoneId: string | null;
  [detail: string]: unknown;
}

/**
 * Record a change in the caller's transaction: bump the zone's version (which also locks the zone row,
 * serializing concurrent changes of one zone) and enqueue the event for the STS and Audit.
 */
export async function recordChange(tx: Tx, ctx: WriteContext, event: ChangeEvent): Promise<number | null> {
  let version: number | null = null;
  if (event.zoneId !== null) {
    const [row] = await tx.query<{ version: string }>(
      'UPDATE state_zones SET version = version + 1, updated_at = $2 WHERE id = $1 RETURNING version',
      [event.zoneId, new Date(ctx.now)],
    );
    if (!row) throw zoneNotFound(event.zoneId);
    version = Number(row.version);
  }
  await enqueue(tx, {
    owner: OUTBOX_OWNER,
    stream: CONTROL_STREAM,
    payload: { ...event, zoneVersion: version, actor: ctx.actor, at: new Date(ctx.now).toISOString() },
  });
  return version;
}

/** Lock the zone row for the rest of the transaction; 404 when it does not exist. */
export async function lockZone(tx: Queryable, zoneId: string): Promise<void> {
  const rows = await tx.query('SELECT 1 FROM state_zones WHERE id = $1 FOR UPDATE', [zoneId]);
  if (!rows.length) throw zoneNotFound(zoneId);
}

export async function assertZone(q: Queryable, zoneId: string): Promise<void> {
  const rows = await q.query('SELECT 1 FROM state_zones WHERE id = $1', [zoneId]);
  if (!rows.length) throw zoneNotFound(zoneId);
}

export function zoneNotFound(zoneId: string): CaracalError {
  return new CaracalError('zone_not_found', 404, `Zone '${zoneId}' does not exist.`);
}

export function iso(d: Date | null | undefined): string | null {
  return d ? d.toISOString() : null;
}

/** One page of a list: `next_cursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface PageRequest {
  limit?: number;
  cursor?: string;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/** Opaque cursor: the sort key of the last item of the previous page. */
export function encodeCursor(key: (string | number)[]): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** Decode a cursor made by encodeCursor with `arity` string/number parts; anything else is `invalid_cursor`. */
export function decodeCursor(cursor: string | undefined, kinds: ('string' | 'number')[]): unknown[] | null {
  if (cursor === undefined) return null;
  const bad = () => new CaracalError('invalid_cursor', 400, 'The cursor is not one this API issued.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== kinds.length) throw bad();
  parsed.forEach((v, i) => {
    if (typeof v !== kinds[i]) throw bad();
    if (typeof v === 'string' && isUnstorableText(v)) throw bad();
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw bad();
  });
  return parsed;
}

export function pageSize(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new CaracalError('validation_failed', 400, `limit must be an integer from 1 to ${MAX_PAGE_SIZE}.`);
  }
  return limit;
}

/** Rows fetched with LIMIT size+1 → the page and the cursor after its last item. */
export function toPage<R, T>(
  rows: R[],
  size: number,
  key: (r: R) => (string | number)[],
  map: (r: R) => T,
): Page<T> {
  const more = rows.length > size;
  const slice = more ? rows.slice(0, size) : rows;
  const last = slice[slice.length - 1];
  return { items: slice.map(map), next_cursor: more && last !== undefined ? encodeCursor(key(last)) : null };
}
