import { CaracalError } from '@caracal/core';

/** Something that runs parameterized SQL: the database or one transaction. */
export interface Queryable {
  /** Run one statement with $1..$n parameters; returns the rows. */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

/** The handle a transaction callback gets: statements on the transaction's one connection. */
export interface Tx extends Queryable {
  /** Run several statements separated by semicolons, without parameters, inside the transaction. */
  exec(sql: string): Promise<void>;
}

/**
 * The one database access layer, over real PostgreSQL (pg Pool) or PGlite. Values come back the same on
 * both: int8/bigint/bigserial (and count(*)) as decimal strings, lossless; cast with ::int where a number
 * is wanted. int4 → number, numeric → string, json/jsonb → parsed, timestamptz → Date.
 */
export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Schema every statement runs in (search_path). */
  readonly schema: string;
  /** Run fn in one transaction; commits when it resolves, rolls back when it throws. */
  tx<T>(fn: (q: Tx) => Promise<T>): Promise<T>;
  /** Run several statements separated by semicolons, without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** Share of pool connections in use, 0..1 (PGlite: 1 while a statement runs, else 0). */
  poolInUseRatio(): number;
  close(): Promise<void>;
}

export interface DbOptions {
  /** postgres://… for a real server; absent means PGlite at `dataDir`. */
  url?: string;
  /** PGlite data directory; 'memory://' only in unit tests that need no durability. */
  dataDir?: string;
  /** Schema to create (if missing) and use; default 'caracal'. */
  schema?: string;
  /** pg pool size; default 10. */
  poolSize?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
  /**
   * pg: a statement with no answer after this long fails as db_unavailable and its connection is dropped,
   * so a dead network cannot hang callers or fill the pool; default 30 s, 0 disables (long migrations).
   */
  queryTimeoutMs?: number;
  /** pg: how long to wait for a new connection before failing as db_unavailable; default 5 s. */
  connectTimeoutMs?: number;
}

/** The transaction hit an error that its callback swallowed, so COMMIT rolled it back; nothing was written. */
export class TransactionAbortedError extends Error {
  constructor(cause?: unknown) {
    super('transaction was aborted by an earlier error and rolled back at COMMIT', { cause });
    this.name = 'TransactionAbortedError';
  }
}

/** Open the database named by `opts`: pg Pool for a postgres:// URL, PGlite at `dataDir` otherwise. */
export async function openDb(opts: DbOptions): Promise<Db> {
  const schema = checkSchemaName(opts.schema ?? 'caracal');
  if (opts.url !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(opts.url)) {
      throw new CaracalError(
        'db_config_invalid',
        500,
        'Database URL must start with postgres:// or postgresql://.',
      );
    }
    const { openPostgres } = await import('./postgres.js');
    return openPostgres({ ...opts, url: opts.url }, schema);
  }
  if (!opts.dataDir)
    throw new CaracalError(
      'db_config_invalid',
      500,
      'Either a database URL or a PGlite dataDir is required.',
    );
  const { openPglite } = await import('./pglite.js');
  return openPglite(opts.dataDir, schema);
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Schema names go into search_path and DDL unquoted, so only plain lower-case identifiers are allowed. */
export function checkSchemaName(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new CaracalError(
      'db_config_invalid',
      500,
      `Schema name '${schema}' must match ${IDENTIFIER.source}.`,
    );
  }
  return schema;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);

const CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Cannot use a pool after calling end',
  'Client was closed',
  'PGlite is closed',
  'Database is closed',
  'Query read timeout',
  'Connection terminated due to connection timeout',
];

/** True when `err` means the database cannot be reached (as opposed to a SQL error). */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof CaracalError) return err.code === 'db_unavailable';
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  if (err instanceof AggregateError && err.errors.some(isConnectionError)) return true;
  return CONNECTION_MESSAGES.some((m) => err.message.includes(m));
}

/** Connection failures become `db_unavailable` (503) so callers fail closed; SQL errors pass through. */
export function mapDbError(err: unknown, where: string): unknown {
  if (err instanceof CaracalError || !isConnectionError(err)) return err;
  const reason =
    err instanceof Error ? err.message || (err as { code?: string }).code || err.name : String(err);
  return new CaracalError('db_unavailable', 503, `Database unavailable (${where}): ${reason}`, {}, err);
}
