import { CaracalError, type Keyring } from '@caracal/core';
import type { Queryable } from '@caracal/store';
import {
  type DbOrTx,
  decodeCursor,
  inTx,
  iso,
  newId,
  newSecret,
  type Page,
  type PageRequest,
  pageSize,
  parseInput,
  recordChange,
  toPage,
  type WriteContext,
} from './internal.js';
import { createAdminKeyInput } from './schemas.js';

export const ADMIN_KEY_PURPOSE = 'admin-key';

/** An admin API key as listed: never its secret or digest. */
export interface AdminKey {
  id: string;
  name: string;
  scopes: string[];
  created_at: string;
  created_by: string;
  revoked_at: string | null;
}

interface AdminKeyRow {
  id: string;
  name: string;
  scopes: string[];
  digest: string;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
}

const COLUMNS = 'id, name, scopes, digest, created_at, created_by, revoked_at';

function toAdminKey(r: AdminKeyRow): AdminKey {
  return {
    id: r.id,
    name: r.name,
    scopes: r.scopes,
    created_at: r.created_at.toISOString(),
    created_by: r.created_by,
    revoked_at: iso(r.revoked_at),
  };
}

/** Create an admin key; the token (`<id>.<secret>`) is returned once and stored only as a digest. */
export async function createAdminKey(
  q: DbOrTx,
  ctx: WriteContext,
  input: unknown,
): Promise<{ admin_key: AdminKey; token: string }> {
  const k = parseInput(createAdminKeyInput, input, 'admin key');
  return inTx(q, async (tx) => {
    const id = newId('ak');
    const secret = newSecret('cak');
    await tx.query(
      `INSERT INTO state_admin_keys (id, name, scopes, digest, created_at, created_by) VALUES ($1, $2, $3::jsonb, $4, $5, $6)`,
      [
        id,
        k.name,
        JSON.stringify([...new Set(k.scopes)]),
        ctx.keyring.digest(secret, ADMIN_KEY_PURPOSE),
        new Date(ctx.now),
        ctx.actor,
      ],
    );
    await recordChange(tx, ctx, {
      type: 'admin_key.created',
      zoneId: null,
      adminKeyId: id,
      scopes: k.scopes,
    });
    return { admin_key: await getAdminKey(tx, id), token: `${id}.${secret}` };
  });
}

export async function getAdminKey(q: Queryable, id: string): Promise<AdminKey> {
  const [row] = await q.query<AdminKeyRow>(`SELECT ${COLUMNS} FROM state_admin_keys WHERE id = $1`, [id]);
  if (!row) throw new CaracalError('admin_key_not_found', 404, `Admin key '${id}' does not exist.`);
  return toAdminKey(row);
}

export async function listAdminKeys(q: Queryable, page: PageRequest = {}): Promise<Page<AdminKey>> {
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string']);
  const rows = await q.query<AdminKeyRow>(
    `SELECT ${COLUMNS} FROM state_admin_keys WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
    [after?.[0] ?? null, size + 1],
  );
  return toPage(rows, size, (r) => [r.id], toAdminKey);
}

/** Revoke an admin key; it stops authenticating at once. Revoking twice is a no-op. */
export async function revokeAdminKey(q: DbOrTx, ctx: WriteContext, id: string): Promise<AdminKey> {
  return inTx(q, async (tx) => {
    const rows = await tx.query(
      'UPDATE state_admin_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id',
      [id, new Date(ctx.now)],
    );
    const key = await getAdminKey(tx, id);
    if (rows.length) await recordChange(tx, ctx, { type: 'admin_key.revoked', zoneId: null, adminKeyId: id });
    return key;
  });
}

const TOKEN = /^(ak_[0-9a-f]{24})\.(cak_[A-Za-z0-9_-]{43})$/;

/** The key a presented token belongs to, when it is well formed, matches its digest and is not revoked. */
export async function authenticateAdminKey(
  q: Queryable,
  keyring: Keyring,
  token: string,
): Promise<AdminKey | null> {
  const m = TOKEN.exec(token);
  if (!m) return null;
  const [row] = await q.query<AdminKeyRow>(`SELECT ${COLUMNS} FROM state_admin_keys WHERE id = $1`, [m[1]]);
  if (!row || row.revoked_at) return null;
  return keyring.verifyDigest(m[2]!, row.digest, ADMIN_KEY_PURPOSE) ? toAdminKey(row) : null;
}

/** May a holder of `scopes` make this request? `zoneId` is the zone the route addresses, if any. */
export function scopesAllow(
  scopes: readonly string[],
  req: { method: string; zoneId?: string; globalOnly?: boolean },
): boolean {
  const read = req.method === 'GET' || req.method === 'HEAD';
  return scopes.some((s) => {
    if (s === 'admin') return true;
    if (s === 'read') return read;
    if (req.globalOnly || req.zoneId === undefined) return false;
    if (s === `zone:${req.zoneId}:admin`) return true;
    return s === `zone:${req.zoneId}:read` && read;
  });
}
