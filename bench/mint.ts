// Mint throughput and latency: one `caracal serve sts` process on real Postgres and Redis under autocannon,
// beside a bare Fastify route that parses the same form and signs the same claims with fast-jwt (the floor).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busMigrations } from '@caracal/bus';
import { createKeyring } from '@caracal/core';
import {
  activatePolicySet,
  createApplication,
  createPolicySet,
  createPolicyVersion,
  createResource,
  createZone,
  putDataDocument,
  stateMigrations,
} from '@caracal/state';
import { mergeMigrations, migrate, storeMigrations } from '@caracal/store';
import { openTestDb } from '@caracal/store/testing';
import autocannon from 'autocannon';
import { TOKEN_EXCHANGE_GRANT } from '../services/sts/src/index.js';
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
      await migrate(t.db, mergeMigrations(storeMigrations, busMigrations, stateMigrations));
      const ctx = { keyring: createKeyring(MASTER), now: Date.now(), actor: 'bench' };
      await createZone(t.db, ctx, { id: 'bench', name: 'Bench' });
      const app = await createApplication(t.db, ctx, 'bench', { name: 'agent' });
      await createResource(t.db, ctx, 'bench', {
        identifier: 'resource://crm/contacts',
        scopes: ['read'],
        upstream_url: 'https://crm.example.com',
      });
      const id = app.application.id;
      await putDataDocument(t.db, ctx, 'bench', {
        document: {
          app_ids: { [id]: true },
          grants: { [id]: [{ id: 'g', resource: 'resource://crm/*', scopes: ['read'] }] },
        },
      });
      const { policy } = await createPolicyVersion(t.db, ctx, 'bench', {
        name: 'p',
        source: 'package caracal.authz\n',
      });
      const { policySet } = await createPolicySet(t.db, ctx, 'bench', {
        modules: [{ name: 'p', version: policy.version }],
      });
      await activatePolicySet(t.db, ctx, 'bench', policySet.version);
      const body = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        zone_id: 'bench',
        application_id: id,
        client_secret: app.client_secret,
        resource: 'resource://crm/contacts',
        scope: 'read',
      }).toString();

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
