import { CaracalError } from '@caracal/core';
import { compile } from '@caracal/rego';
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
  sha256,
  toPage,
  type WriteContext,
} from './internal.js';
import { createPolicyInput, createPolicySetInput, dataDocumentInput, rolloutFreezeInput } from './schemas.js';

// ---- policies: immutable versions, one per distinct source

export interface PolicyVersion {
  zone_id: string;
  name: string;
  version: number;
  content_hash: string;
  created_at: string;
  created_by: string;
}

export interface PolicyVersionWithSource extends PolicyVersion {
  source: string;
}

interface PolicyRow {
  zone_id: string;
  name: string;
  version: number;
  content_hash: string;
  source?: string;
  created_at: Date;
  created_by: string;
}

function toPolicy(r: PolicyRow): PolicyVersionWithSource | PolicyVersion {
  const p: PolicyVersion = {
    zone_id: r.zone_id,
    name: r.name,
    version: r.version,
    content_hash: r.content_hash,
    created_at: r.created_at.toISOString(),
    created_by: r.created_by,
  };
  return r.source === undefined ? p : { ...p, source: r.source };
}

/** Store a policy source. Same name and content as an existing version returns that version (`created: false`). */
export async function createPolicyVersion(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown,
): Promise<{ policy: PolicyVersion; created: boolean }> {
  const p = parseInput(createPolicyInput, input, 'policy');
  const hash = sha256(p.source);
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    const [existing] = await tx.query<PolicyRow>(
      `SELECT zone_id, name, version, content_hash, created_at, created_by FROM state_policies
        WHERE zone_id = $1 AND name = $2 AND content_hash = $3`,
      [zoneId, p.name, hash],
    );
    if (existing) return { policy: toPolicy(existing), created: false };
    const [row] = await tx.query<PolicyRow>(
      `INSERT INTO state_policies (zone_id, name, version, content_hash, source, created_at, created_by)
       SELECT $1, $2, COALESCE(max(version), 0) + 1, $3, $4, $5, $6 FROM state_policies WHERE zone_id = $1 AND name = $2
       RETURNING zone_id, name, version, content_hash, created_at, created_by`,
      [zoneId, p.name, hash, p.source, new Date(ctx.now), ctx.actor],
    );
    if (!row) throw new Error('policy insert returned no row');
    await recordChange(tx, ctx, {
      type: 'policy.created',
      zoneId,
      name: p.name,
      version: row.version,
      contentHash: hash,
    });
    return { policy: toPolicy(row), created: true };
  });
}

export async function getPolicyVersion(
  q: Queryable,
  zoneId: string,
  name: string,
  version: number,
): Promise<PolicyVersionWithSource> {
  const [row] = await q.query<PolicyRow>(
    `SELECT zone_id, name, version, content_hash, source, created_at, created_by FROM state_policies
      WHERE zone_id = $1 AND name = $2 AND version = $3`,
    [zoneId, name, version],
  );
  if (!row) {
    await assertZone(q, zoneId);
    throw new CaracalError(
      'policy_not_found',
      404,
      `Policy '${name}' version ${version} does not exist in zone '${zoneId}'.`,
    );
  }
  return toPolicy(row) as PolicyVersionWithSource;
}

/** Every version of every policy in the zone (without sources), by name then version. */
export async function listPolicyVersions(
  q: Queryable,
  zoneId: string,
  page: PageRequest = {},
): Promise<Page<PolicyVersion>> {
  await assertZone(q, zoneId);
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string', 'number']);
  const rows = await q.query<PolicyRow>(
    `SELECT zone_id, name, version, content_hash, created_at, created_by FROM state_policies
      WHERE zone_id = $1 AND ($2::text IS NULL OR (name, version) > ($2, $3::int))
      ORDER BY name, version LIMIT $4`,
    [zoneId, after?.[0] ?? null, after?.[1] ?? 0, size + 1],
  );
  return toPage(rows, size, (r) => [r.name, r.version], toPolicy);
}

// ---- policy sets: manifests of policy versions, deduplicated by content

export interface PolicySetModule {
  name: string;
  version: number;
}

export interface PolicySet {
  zone_id: string;
  version: number;
  content_hash: string;
  modules: PolicySetModule[];
  created_at: string;
  created_by: string;
}

interface PolicySetRow extends Omit<PolicySet, 'created_at'> {
  created_at: Date;
}

const SET_COLUMNS = 'zone_id, version, content_hash, modules, created_at, created_by';

function toSet(r: PolicySetRow): PolicySet {
  return { ...r, created_at: r.created_at.toISOString() };
}

/** Create a policy set from existing policy versions; an identical manifest returns the existing set. */
export async function createPolicySet(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown,
): Promise<{ policySet: PolicySet; created: boolean }> {
  const s = parseInput(createPolicySetInput, input, 'policy set');
  const modules = [...s.modules].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const hash = sha256(JSON.stringify(modules.map((m) => [m.name, m.version])));
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    const missing: PolicySetModule[] = [];
    for (const m of modules) {
      const rows = await tx.query(
        'SELECT 1 FROM state_policies WHERE zone_id = $1 AND name = $2 AND version = $3',
        [zoneId, m.name, m.version],
      );
      if (!rows.length) missing.push(m);
    }
    if (missing.length) {
      throw new CaracalError(
        'policy_not_found',
        404,
        'The policy set lists policy versions that do not exist.',
        { missing },
      );
    }
    const [existing] = await tx.query<PolicySetRow>(
      `SELECT ${SET_COLUMNS} FROM state_policy_sets WHERE zone_id = $1 AND content_hash = $2`,
      [zoneId, hash],
    );
    if (existing) return { policySet: toSet(existing), created: false };
    const [row] = await tx.query<PolicySetRow>(
      `INSERT INTO state_policy_sets (zone_id, version, content_hash, modules, created_at, created_by)
       SELECT $1, COALESCE(max(version), 0) + 1, $2, $3::jsonb, $4, $5 FROM state_policy_sets WHERE zone_id = $1
       RETURNING ${SET_COLUMNS}`,
      [zoneId, hash, JSON.stringify(modules), new Date(ctx.now), ctx.actor],
    );
    if (!row) throw new Error('policy set insert returned no row');
    await recordChange(tx, ctx, {
      type: 'policy_set.created',
      zoneId,
      version: row.version,
      contentHash: hash,
    });
    return { policySet: toSet(row), created: true };
  });
}

export async function getPolicySet(q: Queryable, zoneId: string, version: number): Promise<PolicySet> {
  const [row] = await q.query<PolicySetRow>(
    `SELECT ${SET_COLUMNS} FROM state_policy_sets WHERE zone_id = $1 AND version = $2`,
    [zoneId, version],
  );
  if (!row) {
    await assertZone(q, zoneId);
    throw new CaracalError(
      'policy_set_not_found',
      404,
      `Policy set version ${version} does not exist in zone '${zoneId}'.`,
    );
  }
  return toSet(row);
}

export async function listPolicySets(
  q: Queryable,
  zoneId: string,
  page: PageRequest = {},
): Promise<Page<PolicySet>> {
  await assertZone(q, zoneId);
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['number']);
  const rows = await q.query<PolicySetRow>(
    `SELECT ${SET_COLUMNS} FROM state_policy_sets WHERE zone_id = $1 AND version > $2 ORDER BY version LIMIT $3`,
    [zoneId, after?.[0] ?? 0, size + 1],
  );
  return toPage(rows, size, (r) => [r.version], toSet);
}

/** The module sources of a policy set, as `compile` takes them (file = policy name). */
export async function policySetSources(q: Queryable, zoneId: string, modules: PolicySetModule[]) {
  const out: { file: string; source: string }[] = [];
  for (const m of modules) {
    const p = await getPolicyVersion(q, zoneId, m.name, m.version);
    out.push({ file: p.name, source: p.source });
  }
  return out;
}

// ---- rollout freeze and activation

export interface RolloutFreeze {
  frozen: boolean;
  reason: string;
  updated_at: string | null;
  updated_by: string | null;
}

export async function getRolloutFreeze(q: Queryable): Promise<RolloutFreeze> {
  const [row] = await q.query<{ frozen: boolean; reason: string; updated_at: Date; updated_by: string }>(
    'SELECT frozen, reason, updated_at, updated_by FROM state_rollout_freeze WHERE id',
  );
  if (!row) return { frozen: false, reason: '', updated_at: null, updated_by: null }; // seeded by the migration; defensive
  return {
    frozen: row.frozen,
    reason: row.reason,
    updated_at: iso(row.updated_at),
    updated_by: row.updated_by,
  };
}

/** Hold or release policy activations (`caracal recover --freeze/--resume`). */
export async function setRolloutFreeze(q: DbOrTx, ctx: WriteContext, input: unknown): Promise<RolloutFreeze> {
  const f = parseInput(rolloutFreezeInput, input, 'rollout freeze');
  return inTx(q, async (tx) => {
    await tx.query(
      `INSERT INTO state_rollout_freeze (id, frozen, reason, updated_at, updated_by) VALUES (true, $1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET frozen = $1, reason = $2, updated_at = $3, updated_by = $4`,
      [f.frozen, f.reason ?? '', new Date(ctx.now), ctx.actor],
    );
    await recordChange(tx, ctx, {
      type: 'rollout_freeze.changed',
      zoneId: null,
      frozen: f.frozen,
      reason: f.reason ?? '',
    });
    return getRolloutFreeze(tx);
  });
}

export interface Activation {
  zone_id: string;
  policy_set: number;
  activated_at: string;
  activated_by: string;
}

/**
 * Make a policy set the zone's active one. Refused while the rollout is frozen (409 rollout_frozen) and when
 * its modules do not compile (422 policy_compile_failed with every compiler error); either way the previous
 * activation stays in force.
 */
export async function activatePolicySet(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  version: number,
): Promise<Activation> {
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    // Read under a share lock so a concurrent freeze commits before or after this activation, never during.
    const [freeze] = await tx.query<{ frozen: boolean; reason: string }>(
      'SELECT frozen, reason FROM state_rollout_freeze WHERE id FOR SHARE',
    );
    if (freeze?.frozen) {
      throw new CaracalError('rollout_frozen', 409, `Policy activations are frozen: ${freeze.reason}`, {
        reason: freeze.reason,
      });
    }
    const set = await getPolicySet(tx, zoneId, version);
    const errors = compileErrors(await policySetSources(tx, zoneId, set.modules));
    if (errors.length) {
      throw new CaracalError(
        'policy_compile_failed',
        422,
        `Policy set version ${version} does not compile.`,
        { errors },
      );
    }
    await tx.query(
      `UPDATE state_zones SET active_policy_set = $2, policy_activated_at = $3, policy_activated_by = $4 WHERE id = $1`,
      [zoneId, version, new Date(ctx.now), ctx.actor],
    );
    await recordChange(tx, ctx, { type: 'policy_set.activated', zoneId, version });
    return {
      zone_id: zoneId,
      policy_set: version,
      activated_at: new Date(ctx.now).toISOString(),
      activated_by: ctx.actor,
    };
  });
}

export interface PolicyCompileError {
  code: string;
  message: string;
  /** `file:line:col`, or null when the compiler gave no location. */
  location: string | null;
}

/** The compiler's errors for these modules (empty when they compile); a compiler crash refuses too. */
export function compileErrors(modules: { file: string; source: string }[]): PolicyCompileError[] {
  let result: ReturnType<typeof compile>;
  try {
    result = compile(modules);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return [{ code: 'rego_internal_error', message: `compiler failed: ${message}`, location: null }];
  }
  if (result.ok) return [];
  return result.errors.map((e) => ({
    code: e.code,
    message: e.message,
    location: e.location ? `${e.location.file}:${e.location.line}:${e.location.col}` : null,
  }));
}

// ---- data documents: what the zone policy reads under `data`, versioned

export interface DataDocument {
  zone_id: string;
  version: number;
  content_hash: string;
  document: Record<string, unknown>;
  created_at: string;
  created_by: string;
}

interface DataRow extends Omit<DataDocument, 'created_at'> {
  created_at: Date;
}

const DATA_COLUMNS = 'zone_id, version, content_hash, document, created_at, created_by';

/** Replace the zone's data document; the same content as the current version changes nothing. */
export async function putDataDocument(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  input: unknown,
): Promise<{ data: DataDocument; created: boolean }> {
  const d = parseInput(dataDocumentInput, input, 'data document');
  const hash = sha256(canonical(d.document));
  return inTx(q, async (tx) => {
    await lockZone(tx, zoneId);
    const current = await latestData(tx, zoneId);
    if (current?.content_hash === hash) return { data: current, created: false };
    const [row] = await tx.query<DataRow>(
      `INSERT INTO state_data_documents (zone_id, version, content_hash, document, created_at, created_by)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING ${DATA_COLUMNS}`,
      [zoneId, (current?.version ?? 0) + 1, hash, JSON.stringify(d.document), new Date(ctx.now), ctx.actor],
    );
    if (!row) throw new Error('data document insert returned no row');
    await recordChange(tx, ctx, { type: 'data.updated', zoneId, version: row.version, contentHash: hash });
    return { data: { ...row, created_at: row.created_at.toISOString() }, created: true };
  });
}

async function latestData(q: Queryable | Tx, zoneId: string): Promise<DataDocument | null> {
  const [row] = await q.query<DataRow>(
    `SELECT ${DATA_COLUMNS} FROM state_data_documents WHERE zone_id = $1 ORDER BY version DESC LIMIT 1`,
    [zoneId],
  );
  return row ? { ...row, created_at: row.created_at.toISOString() } : null;
}

/** The zone's current data document, or null when none was written. */
export async function getDataDocument(q: Queryable, zoneId: string): Promise<DataDocument | null> {
  await assertZone(q, zoneId);
  return latestData(q, zoneId);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
