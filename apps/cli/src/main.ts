import { ConfigError } from '@caracal/core';
import { registerPolicyCommands } from '@caracal/rego/cli';
import { Command, Option } from 'commander';
import { registerDemoCommand } from './demo.js';
import { registerMigrateCommands } from './migrate.js';
import { registerServeCommands } from './serve.js';
import { registerStatusCommand } from './status.js';

const program = new Command('caracal')
  .description('Caracal: authorization and evidence plane between AI agents and the APIs they call.')
  .option('--data <dir>', 'data directory for the embedded default (default ~/.caracal)')
  .option('--postgres <url>', 'use this PostgreSQL server instead of embedded PGlite')
  .option('--redis <url>', 'use Redis Streams instead of the embedded Postgres stream')
  .option('--host <host>', 'address services listen on and status connects to')
  .option('--config <file>', 'JSON config file (also CARACAL_CONFIG)')
  .addOption(
    new Option('--log-level <level>', 'log level').choices([
      'fatal',
      'error',
      'warn',
      'info',
      'debug',
      'trace',
      'silent',
    ]),
  )
  .showHelpAfterError()
  .enablePositionalOptions();

registerServeCommands(program);
registerStatusCommand(program);
registerMigrateCommands(program);
registerPolicyCommands(program);
registerDemoCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`caracal: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`caracal: ${(err as Error).message}\n`);
  process.exit(1);
}
