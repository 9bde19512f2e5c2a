import { installShutdown, SERVICE_NAMES, type ServiceName } from '@caracal/core';
import { Argument, type Command } from 'commander';
import { describeStorage, type GlobalFlags, loadCliConfig, openStack } from './runtime.js';

async function waitReady(
  services: { checks: { report(): Promise<{ ready: boolean }> } }[],
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reports = await Promise.all(services.map((s) => s.checks.report()));
    if (reports.every((r) => r.ready)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function runServices(
  program: Command,
  names: readonly ServiceName[],
  migrate: boolean,
  banner: boolean,
) {
  const config = loadCliConfig(program.opts<GlobalFlags>());
  const stack = await openStack(config, names, { migrate });
  installShutdown({ logger: stack.logger, graceMs: config.shutdownGraceMs, stop: () => stack.stop() });
  const urls = await stack.start();
  const ready = await waitReady(stack.services, 10_000);
  const sinceStart = Math.round(performance.now());
  if (banner) {
    const out = [
      `Caracal is ${ready ? 'up' : 'started, NOT ready'} (${describeStorage(config)})`,
      ...urls.map(({ name, url }) => `  ${name.padEnd(12)} ${url}`),
      `Admin token: ${stack.secrets.adminToken}`,
      ready
        ? `All services ready ${sinceStart} ms after start.`
        : 'Some services are not ready: run `caracal status`.',
      'Stop with Ctrl-C.',
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } else {
    process.stdout.write(`${urls.map(({ name, url }) => `${name} listening on ${url}`).join('\n')}\n`);
  }
}

export function registerServeCommands(program: Command) {
  program
    .command('up')
    .description('run every service in one process on the embedded default (migrates first)')
    .action(() => runServices(program, SERVICE_NAMES, true, true));
  program
    .command('serve')
    .description('run one service in this process (production: one service per process)')
    .addArgument(new Argument('<service>', 'service to run').choices(SERVICE_NAMES))
    .option('--migrate', 'apply pending migrations before starting', false)
    .action((service: ServiceName, opts: { migrate: boolean }) => {
      const config = loadCliConfig(program.opts<GlobalFlags>());
      if (!config.databaseUrl) {
        throw new Error(
          'serve needs a shared PostgreSQL (--postgres or CARACAL_DATABASE_URL); use `caracal up` for the embedded default',
        );
      }
      return runServices(program, [service], opts.migrate, false);
    });
}
