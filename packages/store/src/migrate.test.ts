import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { concurrentMigrations } from './fixtures/concurrent-migrations.js';
import {
  type Migration,
  mergeMigrations,
  migrate,
  migrationChecksum,
  migrationStatus,
  schemaCheck,
} from './migrate.js';
import { storeMigrations } from './migrations/index.js';
import { openTestDb, type TestDb } from './testing.js';

const v1: Migration = { version: 1, name: 'create_widget', sql: 'CREATE TABLE widget (id int PRIMARY KEY);' };
const v2: Migration = {
  version: 2,
  name: 'widget_name',
  sql: 'ALTER TABLE widget ADD COLUMN name text;\nCREATE INDEX widget_name ON widget (name);',
};
const v3: Migration = { version: 3, name: 'gadget', sql: 'CREATE TABLE gadget (id int);' };

describe.each(['postgres', 'pglite'] as const)('migrations on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(kind);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.reset();
  });

  it('applies pending migrations once and records version, name, checksum', async () => {
    expect(await migrate(t.db, [v1, v2])).toEqual({ applied: [1, 2] });
    expect(await migrate(t.db, [v1, v2])).toEqual({ applied: [] });
    const rows = await t.db.query<{ version: number; name: string; checksum: string; applied_at: Date }>(
      'SELECT * FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => [r.version, r.name, r.checksum])).toEqual([
      [1, 'create_widget', migrationChecksum(v1.sql)],
      [2, 'widget_name', migrationChecksum(v2.sql)],
    ]);
    expect(rows[0]?.applied_at).toBeInstanceOf(Date);
    await t.db.query(`INSERT INTO widget VALUES (1, 'a')`);
  });

  it('ships the store migrations, which apply cleanly', async () => {
    expect((await migrate(t.db, storeMigrations)).applied).toEqual([1001, 1002]);
    expect(await schemaCheck(t.db, storeMigrations)).toEqual({
      ok: true,
      detail: 'schema current at version 1002 (store_idempotency_receipts).',
    });
  });

  it('reports a database behind the code with the pending versions', async () => {
    const fresh = await schemaCheck(t.db, [v1]);
    expect(fresh.ok).toBe(false);
    expect(fresh.detail).toContain('behind');
    await migrate(t.db, [v1]);
    const status = await migrationStatus(t.db, [v1, v2, v3]);
    expect(status.pending.map((m) => m.version)).toEqual([2, 3]);
    expect(status.current).toBe(false);
    const check = await schemaCheck(t.db, [v1, v2, v3]);
    expect(check).toEqual({
      ok: false,
      detail:
        'schema is behind the code: pending 2 (widget_name), 3 (gadget); run `caracal migrate` before starting this version.',
    });
  });

  it('reports a database ahead of the code and refuses to migrate it', async () => {
    await migrate(t.db, [v1, v2, v3]);
    const status = await migrationStatus(t.db, [v1]);
    expect(status.unknown.map((m) => m.version)).toEqual([2, 3]);
    const check = await schemaCheck(t.db, [v1]);
    expect(check.ok).toBe(false);
    expect(check.detail).toContain('ahead of the code: applied 2 (widget_name), 3 (gadget)');
    await expect(migrate(t.db, [v1])).rejects.toMatchObject({ code: 'schema_ahead' });
  });

  it('detects a tampered applied migration by checksum and refuses to migrate', async () => {
    await migrate(t.db, [v1, v2]);
    const edited = { ...v2, sql: v2.sql.replace('text', 'varchar(10)') };
    const status = await migrationStatus(t.db, [v1, edited, v3]);
    expect(status.mismatched).toEqual([
      {
        version: 2,
        name: 'widget_name',
        expected: migrationChecksum(edited.sql),
        actual: migrationChecksum(v2.sql),
      },
    ]);
    const check = await schemaCheck(t.db, [v1, edited]);
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/^checksum mismatch.*2 \(widget_name\)/);
    await expect(migrate(t.db, [v1, edited, v3])).rejects.toMatchObject({
      code: 'migration_checksum_mismatch',
    });
    expect((await migrationStatus(t.db, [v1, v2, v3])).pending.map((m) => m.version)).toEqual([3]);

    // Tampering in the database (the recorded checksum changed) is caught the same way.
    await t.db.query(`UPDATE schema_migrations SET checksum = 'x' WHERE version = 1`);
    expect((await schemaCheck(t.db, [v1, v2])).detail).toContain('1 (create_widget)');
  });

  it('treats CRLF and LF copies of a migration as the same', async () => {
    await migrate(t.db, [v1, v2]);
    const crlf = { ...v2, sql: v2.sql.replace(/\n/g, '\r\n') };
    expect((await schemaCheck(t.db, [v1, crlf])).ok).toBe(true);
  });

  it('applies nothing when one pending migration fails', async () => {
    const broken: Migration = {
      version: 3,
      name: 'broken',
      sql: 'CREATE TABLE nope (id int); SELECT missing_column FROM widget;',
    };
    await expect(migrate(t.db, [v1, v2, broken])).rejects.toMatchObject({ code: 'migration_failed' });
    expect((await migrationStatus(t.db, [v1, v2, broken])).applied).toEqual([]);
    expect(await t.db.query(`SELECT to_regclass('widget')::text AS t`)).toEqual([{ t: null }]);
  });

  it('applies a lower pending version from another package list after higher ones', async () => {
    await migrate(t.db, [v1, v3]);
    expect(await migrate(t.db, [v1, v2, v3])).toEqual({ applied: [2] });
  });

  it('serializes concurrent migrate calls in one process', async () => {
    const results = await Promise.all([
      migrate(t.db, concurrentMigrations),
      migrate(t.db, concurrentMigrations),
    ]);
    expect(results.flatMap((r) => r.applied).sort()).toEqual([1, 2, 3]);
    expect(await t.db.query('SELECT version FROM apply_log ORDER BY version')).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
    ]);
  });
});

describe('concurrent migrate from two processes (real server)', () => {
  let t: TestDb;
  beforeEach(async () => {
    t = await openTestDb('postgres');
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('applies each migration exactly once', async () => {
    const child = fileURLToPath(new URL('./fixtures/migrate-child.ts', import.meta.url));
    const procs = [0, 1].map(() =>
      spawn(process.execPath, ['--import', 'tsx', child, t.location, t.db.schema], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    const outputs = procs.map((p) => collect(p));
    // Barrier: both processes are connected before either starts, so their migrate calls overlap.
    await Promise.all(outputs.map((o) => o.ready));
    for (const p of procs) p.stdin.write('go\n');
    const results = await Promise.all(outputs.map((o) => o.done));
    const applied = results.map((r) => (JSON.parse(r.split('\n')[1] ?? '') as { applied: number[] }).applied);
    expect(applied.flat().sort()).toEqual([1, 2, 3]);
    expect(await t.db.query('SELECT version FROM apply_log ORDER BY version')).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
    ]);
    expect((await migrationStatus(t.db, concurrentMigrations)).current).toBe(true);
  }, 30_000);
});

describe('mergeMigrations', () => {
  it('orders by version and rejects duplicates and invalid versions', () => {
    expect(mergeMigrations([v3, v1], [v2]).map((m) => m.version)).toEqual([1, 2, 3]);
    expect(() => mergeMigrations([v1], [{ ...v1, name: 'other' }])).toThrow(
      /1 is defined twice: 'create_widget' and 'other'/,
    );
    expect(() => mergeMigrations([{ ...v1, version: 0 }])).toThrow(/positive/);
    expect(() => mergeMigrations([{ ...v1, version: 1.5 }])).toThrow(/positive/);
    expect(() => mergeMigrations([{ ...v1, sql: ' ' }])).toThrow(/no SQL/);
  });
});

/** Stdout of a child: `ready` resolves on its first line, `done` with all output once it exits 0. */
function collect(p: ChildProcessByStdio<Writable, Readable, null>): {
  ready: Promise<void>;
  done: Promise<string>;
} {
  let out = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  p.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('\n')) markReady();
  });
  const done = new Promise<string>((resolve, reject) => {
    p.once('error', reject);
    p.once('exit', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}: ${out}`)),
    );
  });
  return { ready: Promise.race([ready, done.then(() => {})]), done };
}
