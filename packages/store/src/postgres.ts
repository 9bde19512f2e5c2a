import pg from 'pg';
import {
  type Db,
  type DbOptions,
  isConnectionError,
  mapDbError,
  TransactionAbortedError,
  type Tx,
} from './db.js';

const INT8_OID = 20;

// int8 stays a string (pg's default, lossless); set per pool so the global pg.types are untouched.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID) return (v: string) => v;
    return pg.types.getTypeParser(oid, format);
  },
};

/** Run one statement; pass params only when present so parameterless SQL uses the simple protocol. */
async function run<R>(client: pg.Pool | pg.PoolClient, sql: string, params?: unknown[]): Promise<R[]> {
  const res = params === undefined ? await client.query(sql) : await client.query(sql, params);
  return res.rows as R[];
}

/** Db over a pg Pool; every pooled connection starts with search_path set to the schema. */
export async function openPostgres(opts: DbOptions & { url: string }, schema: string): Promise<Db> {
  const max = opts.poolSize ?? 10;
  const pool = new pg.Pool({
    connectionString: opts.url,
    max,
    options: `-c search_path=${schema}`,
    application_name: opts.applicationName ?? 'caracal',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    query_timeout: opts.queryTimeoutMs === 0 ? undefined : (opts.queryTimeoutMs ?? 30_000),
    keepAlive: true,
    idleTimeoutMillis: 30_000,
    types,
  });
  // An idle client losing its server must not crash the process; the next checkout reconnects or fails.
  pool.on('error', () => {});
  let closed = false;

  const db: Db = {
    kind: 'postgres',
    schema,
    async query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> {
      try {
        return await run<R>(pool, sql, params);
      } catch (err) {
        throw mapDbError(err, 'query');
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await pool.query(sql);
      } catch (err) {
        throw mapDbError(err, 'exec');
      }
    },
    async tx<T>(fn: (q: Tx) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw mapDbError(err, 'connect');
      }
      // A checked-out client that loses its connection emits 'error'; unheard, that would crash the process.
      // The failure still reaches the caller through the pending query.
      const onClientError = () => {};
      client.on('error', onClientError);
      const release = (err?: Error | boolean) => {
        client.removeListener('error', onClientError);
        client.release(err);
      };
      let done = false;
      // The transaction handle refuses use after COMMIT/ROLLBACK: its connection belongs to someone else then.
      const live = () => {
        if (done) throw new Error('transaction already finished; use the Db, not a stale transaction handle');
      };
      const q: Tx = {
        query: async <R>(sql: string, params?: unknown[]) => {
          live();
          try {
            return await run<R>(client, sql, params);
          } catch (err) {
            throw mapDbError(err, 'tx query');
          }
        },
        exec: async (sql: string) => {
          live();
          try {
            await client.query(sql);
          } catch (err) {
            throw mapDbError(err, 'tx exec');
          }
        },
      };
      try {
        await client.query('BEGIN');
        const result = await fn(q);
        done = true;
        const commit = await client.query('COMMIT');
        // COMMIT of a transaction that hit an error (swallowed by fn) silently rolls back: never report success.
        if (commit.command === 'ROLLBACK') {
          release();
          throw new TransactionAbortedError();
        }
        release();
        return result;
      } catch (err) {
        if (err instanceof TransactionAbortedError) throw err;
        done = true;
        const mapped = mapDbError(err, 'tx');
        if (isConnectionError(err)) {
          // The connection is gone or hung: drop it; the server aborts the transaction when it notices.
          release(true);
          throw mapped;
        }
        try {
          await client.query('ROLLBACK');
          release();
        } catch (rollbackErr) {
          // A connection that cannot roll back is destroyed rather than returned to the pool.
          release(rollbackErr instanceof Error ? rollbackErr : true);
        }
        throw mapped;
      }
    },
    poolInUseRatio(): number {
      return max > 0 ? (pool.totalCount - pool.idleCount) / max : 0;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };

  try {
    await db.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  } catch (err) {
    // Two processes creating the same schema at once: the loser sees a duplicate, which is fine.
    const code = (err as { code?: string }).code;
    if (code !== '23505' && code !== '42P06') {
      await pool.end().catch(() => {});
      throw err;
    }
  }
  return db;
}
