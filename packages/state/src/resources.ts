import { CaracalError } from '@caracal/core';
import type { Queryable, Tx } from '@caracal/store';
import {
  assertZone,
  type DbOrTx,
  decodeCursor,
  inTx,
  lockZone,
  type Page,
  type PageRequest,
  pageSize,
  parseInput,
  recordChange,
  toPage,
  type WriteContext,
} from './internal.js';
import { createResourceInput, updateResourceInput } from './schemas.js';

export interface ResourceOperation {
  method: string;
  path: string;
  scope: string;
}

/** A protected resource: what an agent may ask a mandate for, and where the Gateway may forward it. */
export interface Resource {
  zone_id: string;
  identifier: string;
  name: string;
  scopes: string[];
  upstream_url: string;
  allowed_hosts: string[];
  operations: ResourceOperation[] | null;
  provider_id: string | null;
  max_mandate_ttl_seconds: number;
  /** The Gateway may connect to a loopback/private address for this upstream (never metadata/link-local). */
  allow_private_upstream: boolean;
  created_at: string;
  updated_at: string;
}

interface ResourceRow extends Omit<Resource, 'created_at' | 'updated_at'> {
  created_at: Date;
  updated_at: Date;
}

export const DEFAULT_MANDATE_TTL_SECONDS = 300;
export const RESOURCE_COLUMNS =
  'zone_id, identifier, name, scopes, upstream_url, allowed_hosts, operations, provider_id, max_mandate_ttl_seconds, allow_private_upstream, created_at, updated_at';

export function toResource(r: ResourceRow): Resource {
  return { ...r, created_at: r.created_at.toISOString(), updated_at: r.updated_at.toISOString() };
}

async function checkProvider(tx: Tx, zoneId: string, providerId: string | null | undefined): Promise<void> {
  if (!providerId) return;
  const rows = await tx.query('SELECT 1 FROM state_providers WHERE zone_id = $1 AND id = $2', [
    zoneId,
    providerId,
  ]);
  if (!rows.length) {
    throw new CaracalError(
      'provider_not_found',
      404,
      `Provider connection '${providerId}' does not exist in zone '${zoneId}'.`,
    );
  }
}

function defaultHost(upstreamUrl: string): string[] {
  return [new URL(upstreamUrl).host];
}

/** Declare a resource; `allowed_hosts` defaults to the upstream URL's host. */
export async function createResource(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown,
): Promise<Resource> {
  const r = parseInput(createResourceInput, input, 'resource');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    await checkProvider(tx, zoneId, r.provider_id);
    const at = new Date(ctx.now);
    const inserted = await tx.query(
      `INSERT INTO state_resources (zone_id, identifier, name, scopes, upstream_url, allowed_hosts, operations, provider_id,
              max_mandate_ttl_seconds, allow_private_upstream, created_at, updated_at)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb, $8, $9, $11, $10, $10)
       ON CONFLICT (zone_id, identifier) DO NOTHING RETURNING 1`,
      [
        zoneId,
        r.identifier,
        r.name ?? r.identifier,
        JSON.stringify(r.scopes),
        r.upstream_url,
        JSON.stringify(r.allowed_hosts ?? defaultHost(r.upstream_url)),
        r.operations ? JSON.stringify(r.operations) : null,
        r.provider_id ?? null,
        r.max_mandate_ttl_seconds ?? DEFAULT_MANDATE_TTL_SECONDS,
        at,
        r.allow_private_upstream ?? false,
      ],
    );
    if (!inserted.length) {
      throw new CaracalError(
        'resource_exists',
        409,
        `Resource '${r.identifier}' already exists in zone '${zoneId}'.`,
      );
    }
    await recordChange(tx, ctx, { type: 'resource.created', zoneId, resource: r.identifier });
    return getResource(tx, zoneId, r.identifier);
  });
}

export async function getResource(q: Queryable, zoneId: string, identifier: string): Promise<Resource> {
  const [row] = await q.query<ResourceRow>(
    `SELECT ${RESOURCE_COLUMNS} FROM state_resources WHERE zone_id = $1 AND identifier = $2`,
    [zoneId, identifier],
  );
  if (!row) {
    await assertZone(q, zoneId);
    throw new CaracalError(
      'resource_not_found',
      404,
      `Resource '${identifier}' does not exist in zone '${zoneId}'.`,
    );
  }
  return toResource(row);
}

export async function listResources(
  q: Queryable,
  zoneId: string,
  page: PageRequest = {},
): Promise<Page<Resource>> {
  await assertZone(q, zoneId);
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string']);
  const rows = await q.query<ResourceRow>(
    `SELECT ${RESOURCE_COLUMNS} FROM state_resources WHERE zone_id = $1 AND ($2::text IS NULL OR identifier > $2)
      ORDER BY identifier LIMIT $3`,
    [zoneId, after?.[0] ?? null, size + 1],
  );
  return toPage(rows, size, (r) => [r.identifier], toResource);
}

/** Replace a resource's definition (everything but its identifier). */
export async function replaceResource(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  identifier: string,
  input: unknown,
): Promise<Resource> {
  const r = parseInput(updateResourceInput, input, 'resource');
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    await getResource(tx, zoneId, identifier);
    await checkProvider(tx, zoneId, r.provider_id);
    await tx.query(
      `UPDATE state_resources SET name = $3, scopes = $4::jsonb, upstream_url = $5, allowed_hosts = $6::jsonb,
              operations = $7::jsonb, provider_id = $8, max_mandate_ttl_seconds = $9, updated_at = $10,
              allow_private_upstream = $11
        WHERE zone_id = $1 AND identifier = $2`,
      [
        zoneId,
        identifier,
        r.name ?? identifier,
        JSON.stringify(r.scopes),
        r.upstream_url,
        JSON.stringify(r.allowed_hosts ?? defaultHost(r.upstream_url)),
        r.operations ? JSON.stringify(r.operations) : null,
        r.provider_id ?? null,
        r.max_mandate_ttl_seconds ?? DEFAULT_MANDATE_TTL_SECONDS,
        new Date(ctx.now),
        r.allow_private_upstream ?? false,
      ],
    );
    await recordChange(tx, ctx, { type: 'resource.updated', zoneId, resource: identifier });
    return getResource(tx, zoneId, identifier);
  });
}

export async function deleteResource(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  identifier: string,
): Promise<void> {
  await inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    await getResource(tx, zoneId, identifier);
    await tx.query('DELETE FROM state_resources WHERE zone_id = $1 AND identifier = $2', [
      zoneId,
      identifier,
    ]);
    await recordChange(tx, ctx, { type: 'resource.deleted', zoneId, resource: identifier });
  });
}
