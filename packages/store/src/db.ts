/** Something that runs parameterized SQL: the database or one transaction. */
export interface Queryable {
  /** Run one statement with $1..$n parameters; returns the rows. */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

/** The one database access layer, over real PostgreSQL (pg Pool) or PGlite. */
export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Schema every statement runs in (search_path). */
  readonly schema: string;
  /** Run fn in one transaction; commits when it resolves, rolls back when it throws. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
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
}
