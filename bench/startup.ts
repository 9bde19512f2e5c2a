// Cold start: `caracal up` to all services ready, against a bare Fastify server's start in a fresh Node process.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeServicePorts } from '../test/support.js';
import type { BenchResult, BenchSuite } from './harness.js';

const BARE = `
import Fastify from 'fastify';
const app = Fastify();
app.get('/ready', async () => ({ ok: true }));
await app.listen({ port: 0, host: '127.0.0.1' });
console.log('READY');
await app.close();
`;

function timeUntil(args: string[], re: RegExp, env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      if (re.test(out)) {
        const ms = performance.now() - t0;
        p.kill('SIGTERM');
        p.once('exit', () => resolve(ms));
      }
    });
    p.once('exit', (code) => {
      if (!re.test(out)) reject(new Error(`exited ${code} before ready:\n${out}`));
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const startupSuite: BenchSuite = {
  name: 'startup',
  description: 'process start to all services ready (ms; ops/s = 1000/ms)',
  async run() {
    const runs = 3;
    const bare: number[] = [];
    const fresh: number[] = [];
    const warm: number[] = [];
    const env = { ...(await freeServicePorts()), CARACAL_LOG_LEVEL: 'warn' };
    for (let i = 0; i < runs; i++) {
      bare.push(await timeUntil(['--input-type=module', '-e', BARE], /READY/));
      const data = mkdtempSync(join(tmpdir(), 'caracal-bench-'));
      fresh.push(
        await timeUntil(['apps/cli/bin/caracal.mjs', '--data', data, 'up'], /All services ready/, env),
      );
      warm.push(
        await timeUntil(['apps/cli/bin/caracal.mjs', '--data', data, 'up'], /All services ready/, env),
      );
      rmSync(data, { recursive: true, force: true });
    }
    const row = (name: string, xs: number[], baseline = false): BenchResult => ({
      name,
      opsPerSec: 1000 / median(xs),
      baseline,
      note: `median ${median(xs).toFixed(0)} ms of ${runs} (${xs.map((x) => x.toFixed(0)).join(', ')})`,
    });
    return [
      row('bare Fastify server, new process', bare, true),
      row('caracal up, new data dir', fresh),
      row('caracal up, existing data dir', warm),
    ];
  },
};
