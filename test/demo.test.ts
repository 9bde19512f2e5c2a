import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { type Child, freePort, freeServicePorts, run } from './support.js';

const CLI = 'apps/cli/bin/caracal.mjs';
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** `caracal up` on free ports in a fresh data dir; stopped after the file. */
async function startCaracal(): Promise<{ data: string; env: Record<string, string> }> {
  const data = mkdtempSync(join(tmpdir(), 'caracal-demo-'));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  const env = { ...(await freeServicePorts()), CARACAL_LOG_LEVEL: 'warn' };
  const up: Child = run(process.execPath, [CLI, '--data', data, 'up'], env);
  cleanup.push(async () => {
    up.proc.kill('SIGTERM');
    await up.exited;
  });
  await up.waitFor(/All services ready/, 60_000);
  return { data, env };
}

/** The claims of a JWT, unverified. */
const claimsOf = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));

describe('a new user: caracal up, caracal demo, the printed curl', () => {
  it('gets a mandate that jose verifies against the JWKS, and a write is denied', async () => {
    const { data, env } = await startCaracal();
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

  it('calls the echo upstream through the Gateway with the printed commands, once per mandate', async () => {
    const { data, env } = await startCaracal();
    const port = await freePort();
    const demo = run(process.execPath, [CLI, '--data', data, 'demo', '--upstream-port', String(port)], env);
    cleanup.push(async () => {
      demo.proc.kill('SIGTERM');
      await demo.exited;
    });
    await demo.waitFor(/Echo upstream listening/, 60_000);
    const out = demo.stdout();

    // The mint inside TOKEN=$(...), then the Gateway call, exactly as printed.
    const mint = out.slice(out.indexOf('TOKEN=$('), out.indexOf('| sed -E'));
    const stsUrl = mint.match(/curl -s (\S+)/)![1]!;
    const form = new URLSearchParams();
    for (const m of mint.matchAll(/-d (\S+?)=(\S+)/g)) form.append(m[1]!, m[2]!);
    expect(out).toContain(`sed -E 's/.*"access_token":"([^"]+)".*/\\1/'`);
    const call = out.match(/curl -s (\S+) -H "Authorization: Bearer \$TOKEN" -H "X-Caracal-Resource: (\S+)"/);
    expect(call).not.toBeNull();
    const [, gatewayUrl, resource] = call!;
    expect(gatewayUrl).toBe(`http://127.0.0.1:${env.CARACAL_PORTS_GATEWAY}/hello`);

    const minted = await fetch(stsUrl, { method: 'POST', body: form });
    expect(minted.status).toBe(200);
    const token = ((await minted.json()) as { access_token: string }).access_token;
    const send = () =>
      fetch(gatewayUrl!, {
        headers: { authorization: `Bearer ${token}`, 'x-caracal-resource': resource! },
      });

    const res = await send();
    expect(res.status).toBe(200);
    const echo = (await res.json()) as { method: string; url: string; headers: Record<string, string> };
    expect(echo).toMatchObject({ method: 'GET', url: '/echo/hello' });
    // The upstream never sees the caller's mandate: the Gateway injects a resource mandate in its place.
    expect(echo.headers.authorization).toMatch(/^Bearer /);
    expect(echo.headers.authorization).not.toContain(token);
    expect(claimsOf(echo.headers.authorization!.slice('Bearer '.length))).toMatchObject({
      use: 'resource',
      aud: 'resource://demo/echo',
      resources: ['resource://demo/echo'],
      zone_id: 'demo',
    });
    expect(echo.headers['x-caracal-resource']).toBeUndefined();

    const again = await send();
    expect(again.status).toBe(401);
    expect(await again.json()).toMatchObject({ code: 'mandate_replayed' });
  }, 120_000);
});
