// The governed request (mint at the STS + request through the Gateway + audit), and the Gateway hop alone,
// beside the same upstream called directly. STS, Gateway and upstream run as separate processes on
// Postgres and Redis; the load loop runs here, on the same two cores.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKeyring } from '@caracal/core';
import { openTestDb } from '@caracal/store/testing';
import { Pool } from 'undici';
import { seedZone } from '../services/sts/src/testing.js';
import { freePort, run, runTs } from '../test/support.js';
import type { BenchResult, BenchSuite } from './harness.js';

const MASTER = 'bench-master-key-'.padEnd(40, 'x');
const CONCURRENCY = 4;
const DURATION_MS = 5_000;

/** Run `op` from `concurrency` workers for `durationMs`; throughput and latency percentiles. */
async function loop(name: string, op: () => Promise<boolean>, baseline = false): Promise<BenchResult> {
  const latencies: number[] = [];
  let failures = 0;
  const end = performance.now() + DURATION_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        if (await op()) latencies.push(performance.now() - t0);
        else failures++;
      }
    }),
  );
  if (failures > 0) throw new Error(`${name}: ${failures} failed requests`);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
  return {
    name,
    baseline,
    opsPerSec: latencies.length / (DURATION_MS / 1000),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    note: `(${CONCURRENCY} concurrent clients)`,
  };
}

export const governedSuite: BenchSuite = {
  name: 'governed',
  description: `governed request (mint + Gateway + audit) and Gateway hop vs direct upstream, ${CONCURRENCY} clients`,
  async run() {
    const t = await openTestDb('postgres');
    const data = mkdtempSync(join(tmpdir(), 'caracal-bench-governed-'));
    const children: ReturnType<typeof run>[] = [];
    try {
      const upstream = runTs('bench/fixtures/upstream.ts');
      children.push(upstream);
      const [, upstreamUrl] = await upstream.waitFor(/READY (\S+)/);
      const [stsPort, gwPort] = [await freePort(), await freePort()];
      const env = {
        CARACAL_DATABASE_URL: t.location,
        CARACAL_DATABASE_SCHEMA: t.db.schema,
        CARACAL_REDIS_URL: 'redis://127.0.0.1:6379',
        CARACAL_REDIS_KEY_PREFIX: `bench-${t.db.schema}:`,
        CARACAL_MASTER_KEY: MASTER,
        CARACAL_BUS_HMAC_KEY: 'bench-hmac-key-'.padEnd(40, 'y'),
        CARACAL_DATA: data,
        CARACAL_PORTS_STS: String(stsPort),
        CARACAL_PORTS_GATEWAY: String(gwPort),
        CARACAL_STS_MINTS_PER_MINUTE: '100000000',
        CARACAL_GATEWAY_ALLOW_PRIVATE_UPSTREAMS: 'true',
        CARACAL_LOG_LEVEL: 'warn',
      };
      const migrate = run(process.execPath, ['apps/cli/bin/caracal.mjs', 'migrate', 'up'], env);
      if ((await migrate.exited).code !== 0) throw new Error(`migrate failed: ${migrate.stderr()}`);
      const zone = await seedZone(t.db, createKeyring(MASTER), {
        zoneId: 'bench',
        upstreamUrl: `${upstreamUrl}/api`,
      });
      const form = new URLSearchParams(zone.form).toString();
      for (const service of ['sts', 'gateway']) {
        const child = run(process.execPath, ['apps/cli/bin/caracal.mjs', 'serve', service], {
          ...env,
          CARACAL_DATA: join(data, service),
        });
        children.push(child);
        await child.waitFor(new RegExp(`${service} listening on`));
      }
      const sts = new Pool(`http://127.0.0.1:${stsPort}`, { connections: CONCURRENCY });
      const gateway = new Pool(`http://127.0.0.1:${gwPort}`, { connections: CONCURRENCY });
      const direct = new Pool(upstreamUrl!, { connections: CONCURRENCY });
      const mint = async () => {
        const res = await sts.request({
          method: 'POST',
          path: '/oauth/2/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form,
        });
        const json = (await res.body.json()) as { access_token?: string };
        return res.statusCode === 200 ? json.access_token : undefined;
      };
      const viaGateway = async (token: string) => {
        const res = await gateway.request({
          method: 'GET',
          path: '/items',
          headers: { authorization: `Bearer ${token}`, 'x-caracal-resource': 'resource://crm/contacts' },
        });
        await res.body.dump();
        return res.statusCode === 200;
      };
      // Wait until the STS has the zone and the whole path answers.
      for (let i = 0; ; i++) {
        const token = await mint().catch(() => undefined);
        if (token && (await viaGateway(token).catch(() => false))) break;
        if (i > 100) throw new Error('the governed path never answered 200');
        await new Promise((r) => setTimeout(r, 100));
      }
      const results: BenchResult[] = [];
      results.push(
        await loop(
          'upstream called directly',
          async () => {
            const res = await direct.request({ method: 'GET', path: '/api/items' });
            await res.body.dump();
            return res.statusCode === 200;
          },
          true,
        ),
      );
      // Mandates are single use: mint enough for the hop-alone run first.
      const tokens: string[] = [];
      const mintEnd = performance.now() + DURATION_MS;
      await Promise.all(
        Array.from({ length: CONCURRENCY * 2 }, async () => {
          while (performance.now() < mintEnd) {
            const tk = await mint();
            if (tk) tokens.push(tk);
          }
        }),
      );
      results.push(
        await loop('gateway hop alone (pre-minted mandates)', async () => {
          const tk = tokens.pop();
          if (!tk) throw new Error('ran out of pre-minted mandates; mint longer');
          return viaGateway(tk);
        }),
      );
      results.push(
        await loop('governed request: mint + gateway', async () => {
          const tk = await mint();
          return tk !== undefined && (await viaGateway(tk));
        }),
      );
      await Promise.all([sts.close(), gateway.close(), direct.close()]);
      return results;
    } finally {
      for (const c of children) c.proc.kill('SIGKILL');
      await t.cleanup();
      rmSync(data, { recursive: true, force: true });
    }
  },
};
