// Mint throughput and latency: one `caracal serve sts` process on real Postgres and Redis under autocannon,
// beside a bare Fastify route that parses the same form and signs the same claims with fast-jwt (the floor).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKeyring } from '@caracal/core';
import { migrate } from '@caracal/store';
import { openTestDb } from '@caracal/store/testing';
import autocannon from 'autocannon';
import { seedZone, stsTestMigrations } from '../services/sts/src/testing.js';
import { freePort, run, runTs } from '../test/support.js';
import type { BenchResult, BenchSuite } from './harness.js';

const MASTER = 'bench-master-key-'.padEnd(40, 'x');
const CONNECTIONS = 16;
const DURATION_S = 6;

async function load(url: string, body: string, name: string, baseline = false): Promise<BenchResult> {
  const opts = {
    url: `${url}/oauth/2/token`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
    connections: CONNECTIONS,
  };
  await autocannon({ ...opts, duration: 1 }); // warm-up
  const r = await autocannon({ ...opts, duration: DURATION_S });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return {
    name,
    baseline,
    opsPerSec: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    note: `(${CONNECTIONS} connections, ${(r.requests.average / 2).toFixed(0)}/s per core)`,
  };
}

export const mintSuite: BenchSuite = {
  name: 'mint',
  description: `token exchange, one process, autocannon ${CONNECTIONS} connections (floor: bare Fastify + fast-jwt)`,
  async run() {
    const t = await openTestDb('postgres');
    const data = mkdtempSync(join(tmpdir(), 'caracal-bench-mint-'));
    const children: ReturnType<typeof run>[] = [];
    try {
      await migrate(t.db, stsTestMigrations);
      const zone = await seedZone(t.db, createKeyring(MASTER), { zoneId: 'bench' });
      const body = new URLSearchParams(zone.form).toString();

      const floor = runTs('bench/fixtures/mint-floor.ts');
      children.push(floor);
      const [, floorUrl] = await floor.waitFor(/READY (\S+)/);
      const port = await freePort();
      const sts = run(process.execPath, ['apps/cli/bin/caracal.mjs', 'serve', 'sts'], {
        CARACAL_DATABASE_URL: t.location,
        CARACAL_DATABASE_SCHEMA: t.db.schema,
        CARACAL_REDIS_URL: 'redis://127.0.0.1:6379',
        CARACAL_REDIS_KEY_PREFIX: `bench-${t.db.schema}:`,
        CARACAL_MASTER_KEY: MASTER,
        CARACAL_BUS_HMAC_KEY: 'bench-hmac-key-'.padEnd(40, 'y'),
        CARACAL_DATA: data,
        CARACAL_PORTS_STS: String(port),
        CARACAL_STS_MINTS_PER_MINUTE: '100000000',
        CARACAL_LOG_LEVEL: 'warn',
      });
      children.push(sts);
      await sts.waitFor(/sts listening on/);
      const stsUrl = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 100; i++) {
        const res = await fetch(`${stsUrl}/oauth/2/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body,
        });
        if (res.status === 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return [
        await load(floorUrl!, body, 'floor: Fastify form parse + fast-jwt sign', true),
        await load(stsUrl, body, 'caracal sts: full exchange'),
      ];
    } finally {
      for (const c of children) c.proc.kill('SIGKILL');
      await t.cleanup();
      rmSync(data, { recursive: true, force: true });
    }
  },
};
