import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { type Child, freeServicePorts, run } from './support.js';

const CLI = 'apps/cli/bin/caracal.mjs';
const cleanup: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe('a new user: caracal up, caracal demo, the printed curl', () => {
  it('gets a mandate that jose verifies against the JWKS, and a write is denied', async () => {
    const data = mkdtempSync(join(tmpdir(), 'caracal-demo-'));
    cleanup.push(() => rmSync(data, { recursive: true, force: true }));
    const env = { ...(await freeServicePorts()), CARACAL_LOG_LEVEL: 'warn' };
    const up: Child = run(process.execPath, [CLI, '--data', data, 'up'], env);
    cleanup.push(async () => {
      up.proc.kill('SIGTERM');
      await up.exited;
    });
    await up.waitFor(/All services ready/, 60_000);

    const demo = run(process.execPath, [CLI, '--data', data, 'demo', '--no-upstream'], env);
    expect((await demo.exited).code).toBe(0);
    const out = demo.stdout();
    const curl = out.slice(out.indexOf('curl -s'), out.indexOf('scope=read') + 'scope=read'.length);
    const url = curl.match(/curl -s (\S+)/)![1]!;
    const form = new URLSearchParams();
    for (const m of curl.matchAll(/-d (\S+?)=(\S+)/g)) form.append(m[1]!, m[2]!);

    const res = await fetch(url, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const { access_token } = (await res.json()) as { access_token: string };
    const jwksUrl = out.match(/Verify it against (\S+)\./)![1]!;
    const jwks = (await (await fetch(jwksUrl)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(access_token, createLocalJWKSet(jwks));
    expect(payload).toMatchObject({
      zone_id: 'demo',
      resources: ['resource://demo/echo'],
      scope: 'read',
      use: 'gateway',
    });

    form.set('scope', 'write');
    const denied = await fetch(url, { method: 'POST', body: form });
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ error: 'access_denied', reasons: ['demo_read_only'] });
  }, 120_000);
});
