import { CaracalError, type Keyring } from '@caracal/core';
import type { Queryable } from '@caracal/store';
import {
  assertZone,
  type DbOrTx,
  decodeCursor,
  inTx,
  iso,
  lockZone,
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
import { createApplicationInput, rotateSecretInput, updateApplicationInput } from './schemas.js';

/** Digest purpose of client secrets (HMAC-SHA-256 under a key derived from the master key). */
export const CLIENT_SECRET_PURPOSE = 'client-secret';
/** Default overlap during which the previous client secret keeps working after a rotation. */
export const DEFAULT_SECRET_OVERLAP_SECONDS = 86_400;

/** An application as the API shows it: never a secret or a digest. */
export interface Application {
  id: string;
  zone_id: string;
  name: string;
  status: 'active' | 'disabled';
  secret_rotated_at: string | null;
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

/** Answer of create and rotate: the only time the client secret is ever visible. */
export interface ApplicationWithSecret {
  application: Application;
  client_secret: string;
}

export interface ApplicationRow {
  id: string;
  zone_id: string;
  name: string;
  status: 'active' | 'disabled';
  secret_digest: string;
  previous_secret_digest: string | null;
  previous_secret_expires_at: Date | null;
  secret_rotated_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export const APP_COLUMNS =
  'id, zone_id, name, status, secret_digest, previous_secret_digest, previous_secret_expires_at, secret_rotated_at, created_at, updated_at';

function toApplication(r: ApplicationRow): Application {
  return {
    id: r.id,
    zone_id: r.zone_id,
    name: r.name,
    status: r.status,
    secret_rotated_at: iso(r.secret_rotated_at),
    previous_secret_expires_at: iso(r.previous_secret_expires_at),
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

/** Register an application; its 256-bit client secret is returned once and stored only as a digest. */
export async function createApplication(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown,
): Promise<ApplicationWithSecret> {
  const a = parseInput(createApplicationInput, input, 'application');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    const id = newId('app');
    const secret = newSecret('cs');
    const at = new Date(ctx.now);
    await tx.query(
      `INSERT INTO state_applications (id, zone_id, name, status, secret_digest, created_at, updated_at)
       VALUES ($1, $2, $3, 'active', $4, $5, $5)`,
      [id, zoneId, a.name, ctx.keyring.digest(secret, CLIENT_SECRET_PURPOSE), at],
    );
    await recordChange(tx, ctx, { type: 'application.created', zoneId, applicationId: id, name: a.name });
    return { application: await getApplication(tx, zoneId, id), client_secret: secret };
  });
}

async function applicationRow(
  q: Queryable,
  zoneId: string,
  appId: string,
  lock = false,
): Promise<ApplicationRow> {
  const [row] = await q.query<ApplicationRow>(
    `SELECT ${APP_COLUMNS} FROM state_applications WHERE zone_id = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
    [zoneId, appId],
  );
  if (!row) {
    await assertZone(q, zoneId);
    throw new CaracalError(
      'application_not_found',
      404,
      `Application '${appId}' does not exist in zone '${zoneId}'.`,
    );
  }
  return row;
}

export async function getApplication(q: Queryable, zoneId: string, appId: string): Promise<Application> {
  return toApplication(await applicationRow(q, zoneId, appId));
}

export async function listApplications(
  q: Queryable,
  zoneId: string,
  page: PageRequest = {},
): Promise<Page<Application>> {
  await assertZone(q, zoneId);
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string']);
  const rows = await q.query<ApplicationRow>(
    `SELECT ${APP_COLUMNS} FROM state_applications WHERE zone_id = $1 AND ($2::text IS NULL OR id > $2)
      ORDER BY id LIMIT $3`,
    [zoneId, after?.[0] ?? null, size + 1],
  );
  return toPage(rows, size, (r) => [r.id], toApplication);
}

/** Rename or enable/disable an application. */
export async function updateApplication(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  appId: string,
  input: unknown,
): Promise<Application> {
  const u = parseInput(updateApplicationInput, input, 'application update');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId); // zone before row, like every write: no lock-order deadlocks
    const row = await applicationRow(tx, zoneId, appId, true);
    await tx.query(
      'UPDATE state_applications SET name = $3, status = $4, updated_at = $5 WHERE zone_id = $1 AND id = $2',
      [zoneId, appId, u.name ?? row.name, u.status ?? row.status, new Date(ctx.now)],
    );
    await recordChange(tx, ctx, {
      type: 'application.updated',
      zoneId,
      applicationId: appId,
      changes: Object.keys(u),
    });
    return getApplication(tx, zoneId, appId);
  });
}

/**
 * New client secret, shown once. The previous secret keeps verifying for `overlap_seconds` (default 24 h;
 * 0 revokes it at once); a secret from two rotations ago stops at this rotation.
 */
export async function rotateApplicationSecret(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  appId: string,
  input: unknown = {},
): Promise<ApplicationWithSecret> {
  const r = parseInput(rotateSecretInput, input, 'secret rotation');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId); // zone before row, like every write: no lock-order deadlocks
    const row = await applicationRow(tx, zoneId, appId, true);
    const overlap = r.overlap_seconds ?? DEFAULT_SECRET_OVERLAP_SECONDS;
    const secret = newSecret('cs');
    const at = new Date(ctx.now);
    const expires = overlap > 0 ? new Date(ctx.now + overlap * 1000) : null;
    await tx.query(
      `UPDATE state_applications SET secret_digest = $3, previous_secret_digest = $4, previous_secret_expires_at = $5,
              secret_rotated_at = $6, updated_at = $6 WHERE zone_id = $1 AND id = $2`,
      [
        zoneId,
        appId,
        ctx.keyring.digest(secret, CLIENT_SECRET_PURPOSE),
        expires ? row.secret_digest : null,
        expires,
        at,
      ],
    );
    await recordChange(tx, ctx, {
      type: 'application.secret_rotated',
      zoneId,
      applicationId: appId,
      previousSecretExpiresAt: iso(expires),
    });
    return { application: await getApplication(tx, zoneId, appId), client_secret: secret };
  });
}

/** What verifying a client secret needs; the snapshot's applications carry exactly this. */
export interface ClientSecretDigests {
  status: 'active' | 'disabled';
  secret_digest: string;
  previous_secret_digest: string | null;
  /** Milliseconds since the epoch, or null. */
  previous_secret_expires_at: number | null;
}

/** Timing-safe check of a presented client secret: the current one, or the previous one within its overlap. */
export function verifyClientSecret(
  keyring: Keyring,
  app: ClientSecretDigests,
  secret: string,
  now: number,
): boolean {
  if (app.status !== 'active') return false;
  const current = keyring.verifyDigest(secret, app.secret_digest, CLIENT_SECRET_PURPOSE);
  const previous =
    app.previous_secret_digest !== null &&
    app.previous_secret_expires_at !== null &&
    now < app.previous_secret_expires_at &&
    keyring.verifyDigest(secret, app.previous_secret_digest, CLIENT_SECRET_PURPOSE);
  return current || previous;
}

/** Load an application's digests and check a secret against them; false for unknown apps. */
export async function authenticateApplication(
  q: Queryable,
  keyring: Keyring,
  zoneId: string,
  appId: string,
  secret: string,
  now: number,
): Promise<boolean> {
  const [row] = await q.query<ApplicationRow>(
    `SELECT ${APP_COLUMNS} FROM state_applications WHERE zone_id = $1 AND id = $2`,
    [zoneId, appId],
  );
  if (!row) return false;
  return verifyClientSecret(keyring, toDigests(row), secret, now);
}

export function toDigests(r: ApplicationRow): ClientSecretDigests {
  return {
    status: r.status,
    secret_digest: r.secret_digest,
    previous_secret_digest: r.previous_secret_digest,
    previous_secret_expires_at: r.previous_secret_expires_at ? r.previous_secret_expires_at.getTime() : null,
  };
}
