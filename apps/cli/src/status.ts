import { SERVICE_NAMES } from '@caracal/core';
import type { Command } from 'commander';
import { type GlobalFlags, loadCliConfig } from './runtime.js';

interface Row {
  service: string;
  url: string;
  ready: boolean;
  detail: string;
}

async function probe(service: string, url: string): Promise<Row> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as {
      ready?: boolean;
      checks?: Record<string, { ok: boolean; detail?: string }>;
    };
    const failing = Object.entries(body.checks ?? {})
      .filter(([, c]) => !c.ok)
      .map(([name, c]) => `${name}: ${c.detail ?? 'failing'}`);
    return {
      service,
      url,
      ready: res.status === 200 && body.ready === true,
      detail: failing.join('; ') || 'ok',
    };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    return {
      service,
      url,
      ready: false,
      detail: cause === 'ECONNREFUSED' ? 'not running' : `unreachable (${cause})`,
    };
  }
}

export function registerStatusCommand(program: Command) {
  program
    .command('status')
    .description('readiness of every service; exits 1 when any is not ready')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const config = loadCliConfig(program.opts<GlobalFlags>());
      const rows = await Promise.all(
        SERVICE_NAMES.map((s) => probe(s, `http://${config.host}:${config.ports[s]}`)),
      );
      if (opts.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      else {
        const lines = rows.map(
          (r) =>
            `${r.service.padEnd(12)} ${(r.ready ? 'ready' : 'NOT READY').padEnd(10)} ${r.url.padEnd(24)} ${r.detail}`,
        );
        process.stdout.write(
          `${'SERVICE'.padEnd(12)} ${'STATUS'.padEnd(10)} ${'URL'.padEnd(24)} DETAIL\n${lines.join('\n')}\n`,
        );
      }
      if (rows.some((r) => !r.ready)) process.exitCode = 1;
    });
}
