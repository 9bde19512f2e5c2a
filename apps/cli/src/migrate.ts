import { describeStatus, type MigrationStatus, migrate, migrationStatus } from '@caracal/store';
import type { Command } from 'commander';
import {
  describeStorage,
  type GlobalFlags,
  loadCliConfig,
  openConfiguredDb,
  productMigrations,
} from './runtime.js';

export function registerMigrateCommands(program: Command) {
  const cmd = program.command('migrate').description('database schema migrations');
  cmd
    .command('up')
    .description('apply pending migrations (safe to run from several processes at once)')
    .action(async () => {
      const config = loadCliConfig(program.opts<GlobalFlags>());
      const db = await openConfiguredDb(config, 'caracal-migrate');
      try {
        const result = await migrate(db, productMigrations);
        process.stdout.write(`${describeStorage(config)}\n`);
        if (result.applied.length === 0) process.stdout.write('schema up to date\n');
        for (const v of result.applied) {
          process.stdout.write(
            `applied ${v} ${productMigrations.find((m) => m.version === v)?.name ?? ''}\n`,
          );
        }
      } finally {
        await db.close();
      }
    });
  cmd
    .command('status')
    .description(
      'compare the migrations this build knows with those the database has; exits 1 when they differ',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const config = loadCliConfig(program.opts<GlobalFlags>());
      const db = await openConfiguredDb(config, 'caracal-migrate');
      try {
        const status = await migrationStatus(db, productMigrations);
        if (opts.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        else {
          const lines = [
            describeStorage(config),
            'VERSION  NAME                                CODE  DATABASE',
          ];
          for (const row of statusRows(status)) {
            lines.push(
              `${String(row.version).padEnd(8)} ${row.name.padEnd(35)} ${row.code.padEnd(5)} ${row.db}`,
            );
          }
          lines.push(
            status.current ? 'schema matches this build' : `schema differs: ${describeStatus(status)}`,
          );
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (!status.current) process.exitCode = 1;
      } finally {
        await db.close();
      }
    });
}

/** One row per version known to either side: the build (code) or the database. */
function statusRows(status: MigrationStatus) {
  const rows = [
    ...status.applied.map((m) => ({
      version: m.version,
      name: m.name,
      code: 'yes',
      db: `applied ${m.appliedAt.toISOString()}`,
    })),
    ...status.mismatched.map((m) => ({
      version: m.version,
      name: m.name,
      code: 'yes',
      db: 'applied, CHECKSUM MISMATCH',
    })),
    ...status.pending.map((m) => ({ version: m.version, name: m.name, code: 'yes', db: 'pending' })),
    ...status.unknown.map((m) => ({
      version: m.version,
      name: m.name,
      code: 'no',
      db: 'applied by a newer build',
    })),
  ];
  return rows.sort((a, b) => a.version - b.version);
}
