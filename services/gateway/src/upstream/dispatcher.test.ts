import { execFileSync } from 'node:child_process';
import type { LookupAddress } from 'node:dns';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaracalError } from '@caracal/core';
import type { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamDispatcher, type UpstreamDispatcherOptions } from './dispatcher.js';
import { startTestUpstream, type TestUpstream } from './testing.js';

let upstream: TestUpstream;
const agents: Agent[] = [];
function dispatcher(opts: UpstreamDispatcherOptions): Agent {
  const a = createUpstreamDispatcher(opts);
  agents.push(a);
  return a;
}

async function refusal(p: Promise<unknown>): Promise<CaracalError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaracalError);
  return err as CaracalError;
}

beforeAll(async () => {
  upstream = await startTestUpstream((req, res) => {
    if (req.url === '/redirect') {
      res.writeHead(302, { location: '/elsewhere' }).end();
      return;
    }
    res.end('ok');
  });
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  await upstream.close();
});

describe('upstream dispatcher (SSRF at connect time)', () => {
  it('connects to loopback by IP and by name when the resource allows private addresses', async () => {
    const d = dispatcher({ allowPrivate: true });
    for (const origin of [`http://127.0.0.1:${upstream.port}`, `http://localhost:${upstream.port}`]) {
      const res = await d.request({ origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok');
    }
  });

  it('refuses loopback literals and a host name resolving to loopback (real DNS) before any byte is sent', async () => {
    const before = upstream.seen.length;
    const d = dispatcher({});
    for (const origin of [
      `http://127.0.0.1:${upstream.port}`,
      `http://localhost:${upstream.port}`,
      `http://[::1]:${upstream.port}`,
      `http://[::ffff:127.0.0.1]:${upstream.port}`,
    ]) {
      const err = await refusal(d.request({ origin, path: '/', method: 'GET' }));
      expect(err.code, origin).toBe('upstream_address_refused');
      expect(err.status).toBe(403);
    }
    expect(upstream.seen.length).toBe(before);
  });

  it('checks every resolved address: one refused address among public ones refuses the host', async () => {
    const addresses: LookupAddress[] = [
      { address: '93.184.215.14', family: 4 },
      { address: '169.254.169.254', family: 4 },
    ];
    const d = dispatcher({ allowPrivate: true, lookup: async () => addresses });
    const err = await refusal(d.request({ origin: 'http://api.example.test', path: '/', method: 'GET' }));
    expect(err.code).toBe('upstream_address_refused');
    expect(err.extras).toMatchObject({ address: '169.254.169.254', category: 'metadata' });
  });

  it('connects to the address it checked (no second resolution), keeping the Host header', async () => {
    const lookups: string[] = [];
    // A rebinding resolver: the first answer is what gets checked, and must be what gets connected to.
    const answers = ['127.0.0.1', '10.0.0.1'];
    const d = dispatcher({
      allowPrivate: true,
      lookup: async (host) => {
        lookups.push(host);
        return [{ address: answers[lookups.length - 1] ?? '10.0.0.1', family: 4 }];
      },
    });
    const res = await d.request({ origin: `http://rebind.test:${upstream.port}`, path: '/x', method: 'GET' });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(lookups).toEqual(['rebind.test']);
    expect(upstream.seen.at(-1)?.headers.host).toBe(`rebind.test:${upstream.port}`);
  });

  it('times out a connect whose DNS never answers', async () => {
    const d = dispatcher({ connectTimeoutMs: 150, lookup: () => new Promise(() => {}) });
    const started = Date.now();
    const err = await d.request({ origin: 'http://hang.test', path: '/', method: 'GET' }).catch((e) => e);
    expect((err as { code?: string }).code).toBe('UND_ERR_CONNECT_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('does not follow redirects', async () => {
    const d = dispatcher({ allowPrivate: true });
    const before = upstream.seen.length;
    const res = await d.request({ origin: upstream.url(), path: '/redirect', method: 'GET' });
    expect(res.statusCode).toBe(302);
    await res.body.text();
    expect(upstream.seen.length).toBe(before + 1);
  });
});

describe('upstream dispatcher over TLS', () => {
  let dir: string;
  let cert: string;
  let port: number;
  let close: () => Promise<void>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'caracal-gw-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=upstream.test',
        '-addext',
        'subjectAltName=DNS:upstream.test',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) =>
      res.end(`tls ${req.headers.host}`),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    close = () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
  });
  afterAll(async () => {
    await close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects by the checked IP but sends SNI and verifies the certificate for the host name', async () => {
    const lookup = async (): Promise<LookupAddress[]> => [{ address: '127.0.0.1', family: 4 }];
    const d = dispatcher({ allowPrivate: true, ca: cert, lookup });
    const res = await d.request({ origin: `https://upstream.test:${port}`, path: '/', method: 'GET' });
    expect(await res.body.text()).toBe(`tls upstream.test:${port}`);
    // Same IP, another name: the certificate does not match, so the connection is refused.
    const err = await d
      .request({ origin: `https://other.test:${port}`, path: '/', method: 'GET' })
      .catch((e) => e);
    expect((err as { code?: string }).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
