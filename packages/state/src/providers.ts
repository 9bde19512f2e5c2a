import { CaracalError } from '@caracal/core';
import type { Queryable } from '@caracal/store';
import {
  assertZone,
  type DbOrTx,
  decodeCursor,
  inTx,
  lockZone,
  newId,
  type Page,
  type PageRequest,
  pageSize,
  parseInput,
  recordChange,
  toPage,
  type WriteContext,
} from './internal.js';
import { createProviderInput, type ProviderKind, providerKinds, updateProviderInput } from './schemas.js';

/** A provider connection as the API shows it: config and the names of its secret fields, never their values. */
export interface ProviderConnection {
  id: string;
  zone_id: string;
  name: string;
  kind: ProviderKind;
  config: Record<string, unknown>;
  secret_fields: string[];
  created_at: string;
  updated_at: string;
}

export interface ProviderRow {
  id: string;
  zone_id: string;
  name: string;
  kind: ProviderKind;
  config: Record<string, unknown>;
  sealed_secret: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, zone_id, name, kind, config, sealed_secret, created_at, updated_at';

/** Keyring context of a provider's sealed secret fields. */
export function providerSecretContext(providerId: string): string {
  return `provider:${providerId}`;
}

/** Secret field names come from the kind's schema; the sealed blob is never opened here. */
function toProvider(r: ProviderRow): ProviderConnection {
  const shape = providerKinds[r.kind].secret.shape as Record<string, unknown>;
  return {
    id: r.id,
    zone_id: r.zone_id,
    name: r.name,
    kind: r.kind,
    config: r.config,
    secret_fields: Object.keys(shape),
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

/** Register a provider connection; its secret fields are sealed with the keyring and never returned. */
export async function createProvider(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown,
): Promise<ProviderConnection> {
  const p = parseInput(createProviderInput, input, 'provider connection');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    const id = newId('prv');
    const at = new Date(ctx.now);
    await tx.query(
      `INSERT INTO state_providers (id, zone_id, name, kind, config, sealed_secret, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $7)`,
      [
        id,
        zoneId,
        p.name,
        p.kind,
        JSON.stringify(p.config),
        ctx.keyring.seal(JSON.stringify(p.secret), providerSecretContext(id)),
        at,
      ],
    );
    await recordChange(tx, ctx, { type: 'provider.created', zoneId, providerId: id, kind: p.kind });
    return getProvider(tx, zoneId, id);
  });
}

async function providerRow(q: Queryable, zoneId: string, id: string, lock = false): Promise<ProviderRow> {
  const [row] = await q.query<ProviderRow>(
    `SELECT ${COLUMNS} FROM state_providers WHERE zone_id = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
    [zoneId, id],
  );
  if (!row) {
    await assertZone(q, zoneId);
    throw new CaracalError(
      'provider_not_found',
      404,
      `Provider connection '${id}' does not exist in zone '${zoneId}'.`,
    );
  }
  return row;
}

export async function getProvider(q: Queryable, zoneId: string, id: string): Promise<ProviderConnection> {
  return toProvider(await providerRow(q, zoneId, id));
}

export async function listProviders(
  q: Queryable,
  zoneId: string,
  page: PageRequest = {},
): Promise<Page<ProviderConnection>> {
  await assertZone(q, zoneId);
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string']);
  const rows = await q.query<ProviderRow>(
    `SELECT ${COLUMNS} FROM state_providers WHERE zone_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3`,
    [zoneId, after?.[0] ?? null, size + 1],
  );
  return toPage(rows, size, (r) => [r.id], toProvider);
}

/** Rename, replace the config, or replace the secret fields (re-sealed) of a provider connection. */
export async function updateProvider(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  id: string,
  input: unknown,
): Promise<ProviderConnection> {
  const u = parseInput(updateProviderInput, input, 'provider update');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId); // zone before row, like every write: no lock-order deadlocks
    const row = await providerRow(tx, zoneId, id, true);
    const kind = providerKinds[row.kind];
    const config =
      u.config === undefined ? row.config : parseInput(kind.config, u.config, `${row.kind} config`);
    const sealed =
      u.secret === undefined
        ? row.sealed_secret
        : ctx.keyring.seal(
            JSON.stringify(parseInput(kind.secret, u.secret, `${row.kind} secret`)),
            providerSecretContext(id),
          );
    await tx.query(
      `UPDATE state_providers SET name = $3, config = $4::jsonb, sealed_secret = $5, updated_at = $6 WHERE zone_id = $1 AND id = $2`,
      [zoneId, id, u.name ?? row.name, JSON.stringify(config), sealed, new Date(ctx.now)],
    );
    await recordChange(tx, ctx, {
      type: 'provider.updated',
      zoneId,
      providerId: id,
      changes: Object.keys(u),
    });
    return getProvider(tx, zoneId, id);
  });
}

/** Delete a provider connection no resource is bound to (else 409 provider_in_use). */
export async function deleteProvider(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  id: string,
): Promise<void> {
  await inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    await providerRow(tx, zoneId, id, true);
    const users = await tx.query<{ identifier: string }>(
      'SELECT identifier FROM state_resources WHERE zone_id = $1 AND provider_id = $2 ORDER BY identifier LIMIT 10',
      [zoneId, id],
    );
    if (users.length) {
      throw new CaracalError(
        'provider_in_use',
        409,
        `Provider connection '${id}' is bound to resources; unbind them first.`,
        {
          resources: users.map((u) => u.identifier),
        },
      );
    }
    await tx.query('DELETE FROM state_providers WHERE zone_id = $1 AND id = $2', [zoneId, id]);
    await recordChange(tx, ctx, { type: 'provider.deleted', zoneId, providerId: id });
  });
}
