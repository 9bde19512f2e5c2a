import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CaracalError } from '@caracal/core';
import { PGlite, TransactionAbortedError as PgliteAbortedError, types } from '@electric-sql/pglite';
import { type Db, mapDbError, TransactionAbortedError, type Tx } from './db.js';

const LOCK_FILE = 'caracal.lock';

/** Marks async work running inside one of this Db's transactions (PGlite has one connection). */
type TxMark = { db: object };

/**
 * Db over PGlite. PGlite is one connection: its own mutex queues queries behind an open transaction,
 * so a query on the Db from inside `tx` would wait forever; that case is detected and thrown instead.
 */
export async function openPglite(dataDir: string, schema: string): Promise<Db> {
  const memory = dataDir.startsWith('memory://');
  const dir = memory ? dataDir : resolve(dataDir);
  // PGlite's NodeFS creates only the last path segment, and nothing stops two processes opening one data dir.
  const releaseLock = memory ? () => {} : lockDataDir(dir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dir, {
      // int8 as string, the same as pg: lossless above 2^53.
      parsers: { [types.INT8]: (v: string) => v },
    });
    await pglite.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path TO ${schema};`);
  } catch (err) {
    releaseLock();
    throw new CaracalError(
      'db_unavailable',
      503,
      `PGlite at ${dir} could not be opened: ${(err as Error).message}`,
      {},
      err,
    );
  }

  const inTx = new AsyncLocalStorage<TxMark>();
  let active = 0;
  let closed = false;
  const self = {};

  async function track<T>(where: string, work: () => Promise<T>): Promise<T> {
    if (closed)
      throw new CaracalError('db_unavailable', 503, `Database unavailable (${where}): PGlite is closed.`);
    if (inTx.getStore()?.db === self) {
      throw new Error(
        `db.${where} called inside db.tx on PGlite would deadlock; use the transaction's Queryable`,
      );
    }
    active++;
    try {
      return await work();
    } catch (err) {
      throw mapDbError(err, where);
    } finally {
      active--;
    }
  }

  function runTx<T>(fn: (q: Tx) => Promise<T>): Promise<T> {
    return pglite.transaction(async (t) => {
      let done = false;
      const live = () => {
        if (done) throw new Error('transaction already finished; use the Db, not a stale transaction handle');
      };
      const q: Tx = {
        query: async <R>(sql: string, params?: unknown[]) => {
          live();
          return (await t.query<R>(sql, params)).rows;
        },
        exec: async (sql: string) => {
          live();
          await t.exec(sql);
        },
      };
      try {
        return await inTx.run({ db: self }, () => fn(q));
      } finally {
        done = true;
      }
    });
  }

  return {
    kind: 'pglite',
    schema,
    query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> {
      return track('query', async () => (await pglite.query<R>(sql, params)).rows);
    },
    exec(sql: string): Promise<void> {
      return track('exec', async () => {
        await pglite.exec(sql);
      });
    },
    tx<T>(fn: (q: Tx) => Promise<T>): Promise<T> {
      return track('tx', async () => {
        try {
          return await runTx(fn);
        } catch (err) {
          // PGlite reports a swallowed error at COMMIT its own way; give callers one error type for both kinds.
          if (err instanceof PgliteAbortedError) throw new TransactionAbortedError(err);
          throw err;
        }
      });
    },
    poolInUseRatio(): number {
      return active > 0 ? 1 : 0;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        await pglite.close();
      } finally {
        releaseLock();
      }
    },
  };
}

/** Exclusive lock file in the data dir; a lock left by a dead process is taken over. */
function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  let holder = Number.NaN;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(holder) && (holder === process.pid || alive(holder))) break;
      rmSync(path, { force: true }); // left by a process that no longer runs
    }
  }
  throw new CaracalError(
    'db_unavailable',
    503,
    `PGlite data dir ${dir} is already open (process ${holder}, lock ${path}); PGlite allows one open per data dir.`,
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
