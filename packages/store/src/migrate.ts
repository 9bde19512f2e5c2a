import { createHash } from 'node:crypto';
import { CaracalError } from '@caracal/core';
import type { Db, Queryable } from './db.js';

/** One forward-only migration; never edited after it lands (its checksum is recorded when applied). */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** A row of schema_migrations. */
export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  appliedAt: Date;
}

export interface ChecksumMismatch {
  version: number;
  name: string;
  /** Checksum of the SQL in the code. */
  expected: string;
  /** Checksum recorded when it was applied. */
  actual: string;
}

/** Both sides compared: the code's migration list and what the database recorded. */
export interface MigrationStatus {
  /** Applied and identical to the code. */
  applied: AppliedMigration[];
  /** In the code, not yet applied (the database is behind). */
  pending: Migration[];
  /** Applied, but unknown to this code (the database is ahead). */
  unknown: AppliedMigration[];
  /** Applied with SQL that differs from the code's (an edited or tampered migration). */
  mismatched: ChecksumMismatch[];
  /** True when nothing is pending, unknown or mismatched. */
  current: boolean;
}

export interface MigrateResult {
  /** Versions applied by this call, in order (empty when already current). */
  applied: number[];
}

// Arbitrary first key of the two-key advisory lock; the second is the schema, so schemas do not block each other.
const LOCK_NAMESPACE = 0x43524d47; // 'CRMG'

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/** sha256 (hex) of a migration's SQL, line endings normalized so a CRLF checkout does not look tampered. */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n'), 'utf8').digest('hex');
}

/** Merge lists owned by different packages into one ordered list; duplicate or invalid versions throw. */
export function mergeMigrations(...lists: readonly (readonly Migration[])[]): Migration[] {
  const byVersion = new Map<number, Migration>();
  for (const m of lists.flat()) {
    validate(m);
    const prior = byVersion.get(m.version);
    if (prior) {
      throw new CaracalError(
        'migration_version_duplicate',
        500,
        `Migration version ${m.version} is defined twice: '${prior.name}' and '${m.name}'.`,
      );
    }
    byVersion.set(m.version, m);
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}

function validate(m: Migration): void {
  if (!Number.isSafeInteger(m.version) || m.version <= 0 || m.version > 2_147_483_647) {
    throw new CaracalError(
      'migration_invalid',
      500,
      `Migration version ${m.version} must be a positive int4.`,
    );
  }
  if (!m.name.trim()) throw new CaracalError('migration_invalid', 500, `Migration ${m.version} has no name.`);
  if (!m.sql.trim()) throw new CaracalError('migration_invalid', 500, `Migration ${m.version} has no SQL.`);
}

async function readApplied(q: Queryable): Promise<AppliedMigration[] | undefined> {
  const [exists] = await q.query<{ t: string | null }>(`SELECT to_regclass('schema_migrations')::text AS t`);
  if (!exists?.t) return undefined;
  const rows = await q.query<{ version: number; name: string; checksum: string; applied_at: Date }>(
    'SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version',
  );
  return rows.map((r) => ({
    version: r.version,
    name: r.name,
    checksum: r.checksum,
    appliedAt: r.applied_at,
  }));
}

function compare(migrations: readonly Migration[], applied: readonly AppliedMigration[]): MigrationStatus {
  const code = new Map(mergeMigrations(migrations).map((m) => [m.version, m]));
  const done = new Map(applied.map((a) => [a.version, a]));
  const status: MigrationStatus = { applied: [], pending: [], unknown: [], mismatched: [], current: false };
  for (const a of applied) {
    const m = code.get(a.version);
    if (!m) status.unknown.push(a);
    else {
      const expected = migrationChecksum(m.sql);
      if (expected === a.checksum) status.applied.push(a);
      else status.mismatched.push({ version: a.version, name: m.name, expected, actual: a.checksum });
    }
  }
  for (const m of code.values()) if (!done.has(m.version)) status.pending.push(m);
  status.current = !status.pending.length && !status.unknown.length && !status.mismatched.length;
  return status;
}

/** Compare the code's migrations with the database's schema_migrations. */
export async function migrationStatus(
  db: Queryable,
  migrations: readonly Migration[],
): Promise<MigrationStatus> {
  return compare(migrations, (await readApplied(db)) ?? []);
}

/**
 * Apply every pending migration in one transaction, under an advisory lock keyed on the schema, so
 * concurrent replicas serialize and each migration is applied exactly once. Refuses (and applies nothing)
 * when an applied migration's checksum differs or the database has versions this code does not know.
 * Pending versions below the highest applied one are applied too: lists owned by different packages interleave.
 */
export async function migrate(db: Db, migrations: readonly Migration[]): Promise<MigrateResult> {
  const ordered = mergeMigrations(migrations);
  return db.tx(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))', [LOCK_NAMESPACE]);
    await q.exec(CREATE_TABLE);
    const status = compare(ordered, (await readApplied(q)) ?? []);
    if (status.mismatched.length) {
      throw new CaracalError('migration_checksum_mismatch', 500, describeMismatch(status.mismatched), {
        versions: status.mismatched.map((m) => m.version),
      });
    }
    if (status.unknown.length) {
      throw new CaracalError('schema_ahead', 500, describeAhead(status.unknown), {
        versions: status.unknown.map((m) => m.version),
      });
    }
    for (const m of status.pending) {
      try {
        await q.exec(m.sql);
      } catch (err) {
        throw new CaracalError(
          'migration_failed',
          500,
          `Migration ${m.version} (${m.name}) failed: ${(err as Error).message}`,
          { version: m.version },
          err,
        );
      }
      await q.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        migrationChecksum(m.sql),
      ]);
    }
    return { applied: status.pending.map((m) => m.version) };
  });
}

/** Readiness check: ok only when the schema matches the code exactly; the detail names the versions that differ. */
export async function schemaCheck(
  db: Queryable,
  migrations: readonly Migration[],
): Promise<{ ok: boolean; detail: string }> {
  let status: MigrationStatus;
  try {
    status = await migrationStatus(db, migrations);
  } catch (err) {
    return { ok: false, detail: `cannot read schema_migrations: ${(err as Error).message}` };
  }
  return { ok: status.current, detail: describeStatus(status) };
}

/** One human line per problem, or a confirmation naming the current version. */
export function describeStatus(status: MigrationStatus): string {
  const problems: string[] = [];
  if (status.mismatched.length) problems.push(describeMismatch(status.mismatched));
  if (status.unknown.length) problems.push(describeAhead(status.unknown));
  if (status.pending.length) {
    problems.push(
      `schema is behind the code: pending ${list(status.pending)}; run \`caracal migrate\` before starting this version.`,
    );
  }
  if (problems.length) return problems.join(' ');
  const last = status.applied.at(-1);
  return last
    ? `schema current at version ${last.version} (${last.name}).`
    : 'schema current (no migrations).';
}

function describeMismatch(mismatched: readonly ChecksumMismatch[]): string {
  const items = mismatched.map(
    (m) => `${m.version} (${m.name}): applied ${m.actual.slice(0, 12)}, code ${m.expected.slice(0, 12)}`,
  );
  return `checksum mismatch, an applied migration was edited or tampered with: ${items.join('; ')}.`;
}

function describeAhead(unknown: readonly AppliedMigration[]): string {
  return `schema is ahead of the code: applied ${list(unknown)} unknown to this version; deploy the newer code.`;
}

function list(ms: readonly { version: number; name: string }[]): string {
  return ms.map((m) => `${m.version} (${m.name})`).join(', ');
}
