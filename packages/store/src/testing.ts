import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { type Db, openDb } from './db.js';

export type TestDbKind = 'postgres' | 'pglite';

/** A Db in a schema (postgres) or data dir (pglite) of its own; `cleanup` closes it and removes both. */
export interface TestDb {
  db: Db;
  /** The URL (postgres) or data dir (pglite) the Db was opened on, for opening a second handle. */
  location: string;
  /** Drop and recreate the schema: an empty database again, much cheaper than a new PGlite per test. */
  reset(): Promise<void>;
  cleanup(): Promise<void>;
}

export const TEST_DB_KINDS: readonly TestDbKind[] = ['postgres', 'pglite'];

/** URL of the real test server: CARACAL_TEST_DATABASE_URL, else the local trust-auth server. */
export function testDatabaseUrl(): string {
  return process.env.CARACAL_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

/** Fresh, unique schema name, so test files can run in parallel against one server. */
export function uniqueSchemaName(prefix = 't'): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(5).toString('hex')}`;
}

/** Open a Db for one test: a fresh schema on the real server, or a PGlite in a fresh temp dir. */
export async function openTestDb(kind: TestDbKind, opts: { poolSize?: number } = {}): Promise<TestDb> {
  if (kind === 'postgres') {
    const url = testDatabaseUrl();
    const schema = uniqueSchemaName();
    const db = await openDb({ url, schema, poolSize: opts.poolSize ?? 5, applicationName: 'caracal-test' });
    return {
      db,
      location: url,
      reset: () => resetSchema(db),
      async cleanup() {
        await db.close();
        await dropSchema(url, schema);
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'caracal-pglite-'));
  const dataDir = join(dir, 'data');
  cpSync(await pgliteTemplate(), dataDir, { recursive: true });
  const db = await openDb({ dataDir, schema: 'caracal' });
  return {
    db,
    location: dataDir,
    reset: () => resetSchema(db),
    async cleanup() {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function resetSchema(db: Db): Promise<void> {
  await db.exec(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE; CREATE SCHEMA ${db.schema};`);
}

/** Drop a test schema with its own short-lived connection (the Db under test may be closed or broken). */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll('"', '""')}" CASCADE`);
  } finally {
    await client.end();
  }
}

let template: Promise<string> | undefined;

/**
 * An initdb'd PGlite data dir, built once per machine and PGlite version and copied per test:
 * initdb costs seconds, a copy well under one.
 */
function pgliteTemplate(): Promise<string> {
  template ??= (async () => {
    const require = createRequire(import.meta.url);
    const pkg = require(join(dirname(require.resolve('@electric-sql/pglite')), '..', 'package.json')) as {
      version: string;
    };
    const path = join(tmpdir(), `caracal-pglite-template-${pkg.version}`);
    if (existsSync(join(path, 'PG_VERSION'))) return path;
    const building = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    const db = await openDb({ dataDir: building, schema: 'caracal' });
    await db.close();
    try {
      renameSync(building, path); // atomic: concurrent builders race, one wins, the others discard theirs
    } catch {
      rmSync(building, { recursive: true, force: true });
    }
    return path;
  })();
  return template;
}
