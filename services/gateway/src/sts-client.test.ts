import { createHash, createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CaracalError, createKeyring, systemClock } from '@caracal/core';
import { afterEach, describe, expect, it } from 'vitest';
import { hostAllowed } from './proxy.js';
import { createStsClient, gatewayServiceKey, serviceSignature } from './sts-client.js';

const keyring = createKeyring('k'.repeat(40));
const answer = {
  resource_mandate: 'a.b.c',
  upstream: { url: 'https://api.example.com/v1', allowed_hosts: ['api.example.com'], allow_private: false },
  credential: null,
  expires_at: 1,
};

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** A fake STS answering with `status()`, counting calls and recording signature headers. */
async function fakeSts(status: () => number, body: () => unknown = () => answer) {
  const seen: { signature: string; body: string }[] = [];
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => {
      raw += c;
    });
    req.on('end', () => {
      seen.push({ signature: String(req.headers['x-caracal-signature']), body: raw });
      res.writeHead(status(), { 'content-type': 'application/json' });
      res.end(JSON.stringify(body()));
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const client = (stsUrl: string) =>
  createStsClient({
    stsUrl,
    keyring,
    clock: systemClock,
    timeoutMs: 500,
    consecutiveFailures: 3,
    halfOpenAfterMs: 200,
  });
const req = { mandate: 'm', method: 'GET', path: '/x', resource: 'resource://a/b' };
const code = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: CaracalError) => `${e.status} ${e.code}`,
  );

describe('STS client', () => {
  it('signs t, nonce and the body hash with the service key', async () => {
    const sts = await fakeSts(() => 200);
    const c = client(sts.url);
    expect(await c.exchange(req)).toEqual(answer);
    const { signature, body } = sts.seen[0]!;
    const m = /^t=(\d+),n=([A-Za-z0-9_-]+),s=([0-9a-f]{64})$/.exec(signature)!;
    const hash = createHash('sha256').update(body).digest('hex');
    const expected = createHmac('sha256', gatewayServiceKey(keyring))
      .update(`POST\n/internal/gateway/exchange\n${m[1]}\n${m[2]}\n${hash}`)
      .digest('hex');
    expect(m[3]).toBe(expected);
    expect(serviceSignature('k', 0, '')).not.toBe(serviceSignature('k', 0, '')); // fresh nonce each time
    await c.close();
  });

  it('opens after 3 consecutive failures, refuses without calling, and closes after a good trial', async () => {
    let status = 500;
    const sts = await fakeSts(() => status);
    const c = client(sts.url);
    for (let i = 0; i < 3; i++) expect(await code(c.exchange(req))).toBe('502 sts_exchange_failed');
    expect(c.state()).toBe('open');
    expect(await code(c.exchange(req))).toBe('503 sts_circuit_open');
    expect(sts.seen.length).toBe(3);
    status = 200;
    await new Promise((r) => setTimeout(r, 250));
    expect(await code(c.exchange(req))).toBe('ok');
    expect(c.state()).toBe('closed');
    await c.close();
  });

  it("passes the STS's refusals through without counting them as failures", async () => {
    const sts = await fakeSts(
      () => 403,
      () => ({ code: 'operation_not_permitted', detail: 'no' }),
    );
    const c = client(sts.url);
    for (let i = 0; i < 5; i++) expect(await code(c.exchange(req))).toBe('403 operation_not_permitted');
    expect(c.state()).toBe('closed');
    await c.close();
  });

  it('treats an answer outside the contract as a failure', async () => {
    const sts = await fakeSts(
      () => 200,
      () => ({ resource_mandate: 'x' }),
    );
    const c = client(sts.url);
    expect(await code(c.exchange(req))).toBe('502 sts_exchange_failed');
    await c.close();
  });
});

describe('upstream host allowlist', () => {
  it.each([
    ['api.example.com', 'api.example.com', true],
    ['api.example.com', 'api.example.com:8443', true],
    ['api.example.com:8443', 'api.example.com', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'evil-example.com', false],
    ['127.0.0.1:9000', '127.0.0.1:9000', true],
  ])('%s allows %s: %s', (pattern, host, expected) => {
    expect(hostAllowed(pattern, host)).toBe(expected);
  });
});
