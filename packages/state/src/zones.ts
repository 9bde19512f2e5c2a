import type { JsonWebKey } from 'node:crypto';
import { CaracalError } from '@caracal/core';
import { generateSigningKey, type MandateAlg } from '@caracal/mandate';
import type { Queryable, Tx } from '@caracal/store';
import {
  assertZone,
  type DbOrTx,
  decodeCursor,
  inTx,
  iso,
  lockZone,
  type Page,
  type PageRequest,
  pageSize,
  parseInput,
  recordChange,
  toPage,
  type WriteContext,
  zoneNotFound,
} from './internal.js';
import { createZoneInput, rotateSigningKeyInput } from './schemas.js';

export interface Zone {
  id: string;
  name: string;
  version: number;
  active_policy_set: number | null;
  policy_activated_at: string | null;
  created_at: string;
  updated_at: string;
}

interface ZoneRow {
  id: string;
  name: string;
  version: string;
  active_policy_set: number | null;
  policy_activated_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const ZONE_COLUMNS = 'id, name, version, active_policy_set, policy_activated_at, created_at, updated_at';

function toZone(r: ZoneRow): Zone {
  return {
    id: r.id,
    name: r.name,
    version: Number(r.version),
    active_policy_set: r.active_policy_set,
    policy_activated_at: iso(r.policy_activated_at),
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

/** Default overlap of a rotated-out signing key. */
export const DEFAULT_KEY_RETIRE_AFTER_SECONDS = 86_400;

/** Create a zone with its first signing key. */
export async function createZone(q: DbOrTx, ctx: WriteContext, input: unknown): Promise<Zone> {
  const z = parseInput(createZoneInput, input, 'zone');
  return inTx(q, async (tx) => {
    const at = new Date(ctx.now);
    const inserted = await tx.query<ZoneRow>(
      `INSERT INTO state_zones (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (id) DO NOTHING RETURNING ${ZONE_COLUMNS}`,
      [z.id, z.name, at],
    );
    if (!inserted.length) throw new CaracalError('zone_exists', 409, `Zone '${z.id}' already exists.`);
    const key = await insertSigningKey(tx, ctx, z.id, z.signing_alg ?? 'ES256');
    await recordChange(tx, ctx, { type: 'zone.created', zoneId: z.id, name: z.name, kid: key.kid });
    return getZone(tx, z.id);
  });
}

export async function getZone(q: Queryable, zoneId: string): Promise<Zone> {
  const [row] = await q.query<ZoneRow>(`SELECT ${ZONE_COLUMNS} FROM state_zones WHERE id = $1`, [zoneId]);
  if (!row) throw zoneNotFound(zoneId);
  return toZone(row);
}

export async function listZones(q: Queryable, page: PageRequest = {}): Promise<Page<Zone>> {
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string']);
  const rows = await q.query<ZoneRow>(
    `SELECT ${ZONE_COLUMNS} FROM state_zones WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
    [after?.[0] ?? null, size + 1],
  );
  return toPage(rows, size, (r) => [r.id], toZone);
}

/** Every zone id, for the STS's initial load. */
export async function listZoneIds(q: Queryable): Promise<string[]> {
  const rows = await q.query<{ id: string }>('SELECT id FROM state_zones ORDER BY id');
  return rows.map((r) => r.id);
}

/** Per-zone monotonic versions (bumped on every change of the zone), for cheap staleness polls. */
export async function zoneVersions(q: Queryable): Promise<Map<string, number>> {
  const rows = await q.query<{ id: string; version: string }>('SELECT id, version FROM state_zones');
  return new Map(rows.map((r) => [r.id, Number(r.version)]));
}

// ---- signing keys

/** A zone signing key as the API shows it: public half only. */
export interface SigningKeyInfo {
  kid: string;
  alg: MandateAlg;
  status: 'current' | 'previous';
  public_jwk: JsonWebKey;
  created_at: string;
  retire_after: string | null;
}

interface KeyRow {
  kid: string;
  alg: MandateAlg;
  status: 'current' | 'previous';
  public_jwk: JsonWebKey;
  sealed_private_jwk: string;
  created_at: Date;
  retire_after: Date | null;
}

export function signingKeyContext(zoneId: string, kid: string): string {
  return `signing-key:${zoneId}:${kid}`;
}

async function insertSigningKey(tx: Tx, ctx: WriteContext, zoneId: string, alg: MandateAlg) {
  const key = generateSigningKey(alg);
  const sealed = ctx.keyring.seal(JSON.stringify(key.privateJwk), signingKeyContext(zoneId, key.kid));
  await tx.query(
    `INSERT INTO state_signing_keys (zone_id, kid, alg, status, public_jwk, sealed_private_jwk, created_at)
     VALUES ($1, $2, $3, 'current', $4::jsonb, $5, $6)`,
    [zoneId, key.kid, alg, JSON.stringify(key.publicJwk), sealed, new Date(ctx.now)],
  );
  return key;
}

function toKeyInfo(r: KeyRow): SigningKeyInfo {
  return {
    kid: r.kid,
    alg: r.alg,
    status: r.status,
    public_jwk: r.public_jwk,
    created_at: r.created_at.toISOString(),
    retire_after: iso(r.retire_after),
  };
}

/** The current key and the previous keys not yet past `retire_after` (at `now`), newest first. */
export async function listSigningKeys(q: Queryable, zoneId: string, now: number): Promise<SigningKeyInfo[]> {
  return (await liveKeyRows(q, zoneId, now)).map(toKeyInfo);
}

export async function liveKeyRows(q: Queryable, zoneId: string, now: number): Promise<KeyRow[]> {
  await assertZone(q, zoneId);
  return q.query<KeyRow>(
    `SELECT kid, alg, status, public_jwk, sealed_private_jwk, created_at, retire_after FROM state_signing_keys
      WHERE zone_id = $1 AND (status = 'current' OR retire_after > $2)
      ORDER BY (status = 'current') DESC, created_at DESC, kid`,
    [zoneId, new Date(now)],
  );
}

/** Make a new current key; the old current stays listed as previous until `retire_after`. */
export async function rotateSigningKey(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown = {},
): Promise<SigningKeyInfo[]> {
  const r = parseInput(rotateSigningKeyInput, input, 'signing key rotation');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId); // zone before row, like every write: no lock-order deadlocks
    const [current] = await tx.query<{ kid: string; alg: MandateAlg }>(
      `SELECT kid, alg FROM state_signing_keys WHERE zone_id = $1 AND status = 'current' FOR UPDATE`,
      [zoneId],
    );
    if (!current) {
      throw new CaracalError('signing_key_missing', 500, `Zone '${zoneId}' has no current signing key.`);
    }
    const retireAfter = new Date(
      ctx.now + (r.retire_after_seconds ?? DEFAULT_KEY_RETIRE_AFTER_SECONDS) * 1000,
    );
    await tx.query(
      `UPDATE state_signing_keys SET status = 'previous', retire_after = $3 WHERE zone_id = $1 AND kid = $2`,
      [zoneId, current.kid, retireAfter],
    );
    const key = await insertSigningKey(tx, ctx, zoneId, r.alg ?? current.alg);
    await recordChange(tx, ctx, {
      type: 'signing_key.rotated',
      zoneId,
      kid: key.kid,
      previousKid: current.kid,
      retireAfter: retireAfter.toISOString(),
    });
    return listSigningKeys(tx, zoneId, ctx.now);
  });
}
