import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { CaracalError } from '@caracal/core';
import fc from 'fast-check';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamDispatcher } from './dispatcher.js';
import { type ForwardRequest, forward, resolveTraceparent, rewriteLocation } from './forward.js';
import { joinUpstreamPath } from './paths.js';
import { readAll, startTestUpstream, type TestUpstream } from './testing.js';

let dispatcher: Agent;
let upstream: TestUpstream;
let sse: TestUpstream;
let slow: TestUpstream;

const CREDENTIAL = { headerName: 'X-Api-Key', headerValue: 'brokered-secret' };

function request(over: Partial<ForwardRequest> & { upstreamUrl: string }): ForwardRequest {
  return {
    dispatcher,
    method: 'GET',
    path: '/',
    headers: {},
    credential: CREDENTIAL,
    requestId: 'req-1',
    clientIp: '203.0.113.7',
    ...over,
  };
}

async function failure(p: Promise<unknown>): Promise<CaracalError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaracalError);
  return err as CaracalError;
}

/** An SSE upstream: `count` events, one every `everyMs`; records when its connection closes. */
const sseClosed: number[] = [];
beforeAll(async () => {
  dispatcher = createUpstreamDispatcher({ allowPrivate: true, keepAliveTimeoutMs: 1_000 });
  upstream = await startTestUpstream((req, res, seen) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.body = Buffer.concat(chunks).toString('utf8');
      if (req.url?.startsWith('/v1/redirect')) {
        res.writeHead(302, { location: `http://127.0.0.1:${upstream.port}/v1/items/9?x=1` }).end();
        return;
      }
      if (req.url === '/v1/missing') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no such item');
        return;
      }
      res.writeHead(201, {
        'content-type': 'application/json',
        server: 'upstream/1.0',
        'x-powered-by': 'php',
        connection: 'keep-alive, x-hop',
        'x-hop': 'secret',
        'keep-alive': 'timeout=5',
        'set-cookie': ['sid=upstream-session', 'b=2'],
        'x-upstream': 'kept',
      });
      res.end(JSON.stringify({ url: req.url, body: seen.body }));
    });
  });
  sse = await startTestUpstream((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const count = Number(url.searchParams.get('n') ?? 5);
    const every = Number(url.searchParams.get('every') ?? 100);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.flushHeaders();
    let i = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return;
      res.write(`data: ${i}\n\n`);
      if (++i === count) {
        clearInterval(timer);
        res.end();
      }
    }, every);
    res.on('close', () => {
      clearInterval(timer);
      sseClosed.push(Date.now());
    });
  });
  slow = await startTestUpstream((req, res) => {
    if (req.url === '/reset-mid-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let left = 128; // 8 MiB
      const write = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return void res.once('drain', write);
        }
        res.end();
      };
      write();
      return;
    }
    if (req.url === '/stall-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      return; // never ends
    }
    setTimeout(() => {
      if (!res.destroyed) res.end('late');
    }, 3_000).unref();
  });
});
afterAll(async () => {
  await dispatcher.close();
  await Promise.all([upstream.close(), sse.close(), slow.close()]);
});

describe('forward: request headers', () => {
  it('strips hop-by-hop, identity and X-Caracal-* headers, sets forwarding headers and injects the credential', async () => {
    const res = await forward(
      request({
        upstreamUrl: upstream.url('/v1'),
        method: 'POST',
        path: '/items',
        query: 'a=1&b=%20x',
        body: Readable.from([Buffer.from('{"n":1}')]),
        headers: {
          host: 'gateway.example:8081',
          connection: 'keep-alive, x-secret-hop',
          'x-secret-hop': 'nope',
          'keep-alive': 'timeout=5',
          'proxy-authorization': 'Basic eA==',
          'proxy-connection': 'keep-alive',
          te: 'trailers',
          trailer: 'x-t',
          upgrade: 'websocket',
          authorization: 'Bearer the-mandate',
          cookie: 'gw=1',
          forwarded: 'for=1.2.3.4',
          'x-forwarded-for': '1.2.3.4',
          'x-forwarded-host': 'evil.example',
          'x-forwarded-proto': 'https',
          'x-real-ip': '1.2.3.4',
          'x-caracal-mandate': 'm',
          'x-caracal-session': 's',
          'x-request-id': 'spoofed',
          'x-api-key': 'callers-own-key',
          traceparent: 'not-a-traceparent',
          'content-type': 'application/json',
          accept: 'application/json',
          'x-custom': 'kept',
        },
        clientProto: 'https',
      }),
    );
    expect(res.status).toBe(201);
    await readAll(res.body);
    const seen = upstream.seen.at(-1)!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/v1/items?a=1&b=%20x');
    expect(seen.body).toBe('{"n":1}');
    const h = seen.headers;
    for (const gone of [
      'x-secret-hop',
      'keep-alive',
      'proxy-authorization',
      'proxy-connection',
      'te',
      'trailer',
      'upgrade',
      'authorization',
      'cookie',
      'forwarded',
      'x-real-ip',
      'x-caracal-mandate',
      'x-caracal-session',
    ]) {
      expect(h[gone], gone).toBeUndefined();
    }
    expect(h['x-forwarded-for']).toBe('203.0.113.7');
    expect(h['x-forwarded-proto']).toBe('https');
    expect(h['x-forwarded-host']).toBe('gateway.example:8081');
    expect(h['x-request-id']).toBe('req-1');
    expect(h.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(h['x-api-key']).toBe('brokered-secret');
    expect(seen.rawHeaderNames.filter((n) => n.toLowerCase() === 'x-api-key')).toHaveLength(1);
    expect(h['x-custom']).toBe('kept');
    expect(h['content-type']).toBe('application/json');
    expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(h.traceparent).toBe(res.traceparent);
  });

  it('propagates a valid traceparent with its tracestate; forwards cookies only when told to', async () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await forward(
      request({
        upstreamUrl: upstream.url('/v1'),
        path: '/t',
        traceparent: tp,
        tracestate: 'vendor=1',
        headers: { cookie: 'a=1', authorization: 'Bearer x' },
        forwardCookies: true,
        credential: { headerName: 'Authorization', headerValue: 'Bearer upstream-token' },
      }),
    );
    await readAll(res.body);
    const h = upstream.seen.at(-1)!.headers;
    expect(h.traceparent).toBe(tp);
    expect(h.tracestate).toBe('vendor=1');
    expect(h.cookie).toBe('a=1');
    expect(h.authorization).toBe('Bearer upstream-token');
    expect(res.headers['set-cookie']).toEqual(['sid=upstream-session', 'b=2']);
  });

  it('validates traceparent per W3C', () => {
    const ok = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00';
    expect(resolveTraceparent(ok)).toEqual({ value: ok, propagated: true });
    for (const bad of [
      `${ok}-extra`,
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    ]) {
      expect(resolveTraceparent(bad).propagated, bad).toBe(false);
    }
  });
});

describe('forward: response', () => {
  it('strips hop-by-hop, Server, X-Powered-By and Set-Cookie; passes status and body through', async () => {
    const res = await forward(request({ upstreamUrl: upstream.url('/v1'), path: '/x' }));
    expect(res.status).toBe(201);
    for (const gone of ['server', 'x-powered-by', 'connection', 'x-hop', 'keep-alive', 'set-cookie']) {
      expect(res.headers[gone], gone).toBeUndefined();
    }
    expect(res.headers['x-upstream']).toBe('kept');
    expect(JSON.parse(await readAll(res.body))).toEqual({ url: '/v1/x', body: '' });

    const missing = await forward(request({ upstreamUrl: upstream.url('/v1'), path: '/missing' }));
    expect(missing.status).toBe(404);
    expect(await readAll(missing.body)).toBe('no such item');
  });

  it('passes a redirect back without following it, Location rewritten below the public path', async () => {
    const before = upstream.seen.length;
    const res = await forward(
      request({ upstreamUrl: upstream.url('/v1/'), path: '/redirect', publicBasePath: '/r/crm' }),
    );
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/r/crm/items/9?x=1');
    await readAll(res.body);
    expect(upstream.seen.length).toBe(before + 1);
  });

  it('rewrites or drops Location pointing at the upstream, keeps other origins and relative references', () => {
    const up = new URL('https://api.example.com/v1');
    expect(rewriteLocation('https://api.example.com/v1/a?b#c', up, '/v1', '/r/x')).toBe('/r/x/a?b#c');
    expect(rewriteLocation('HTTPS://API.EXAMPLE.COM:443/v1', up, '/v1', '/r/x')).toBe('/r/x');
    expect(rewriteLocation('/v1/a', up, '/v1', '')).toBe('/a');
    expect(rewriteLocation('//api.example.com/v1/a', up, '/v1', '/p')).toBe('/p/a');
    expect(rewriteLocation('https://api.example.com/admin', up, '/v1', '/r/x')).toBeUndefined();
    expect(rewriteLocation('/v10/a', up, '/v1', '/r/x')).toBeUndefined();
    expect(rewriteLocation('http://api.example.com/v1/a', up, '/v1', '/r/x')).toBe(
      'http://api.example.com/v1/a',
    );
    expect(rewriteLocation('https://login.example.org/x', up, '/v1', '/r/x')).toBe(
      'https://login.example.org/x',
    );
    expect(rewriteLocation('next?page=2', up, '/v1', '/r/x')).toBe('next?page=2');
  });
});

describe('forward: path joining', () => {
  const traversals = [
    '/../admin',
    '/a/../../admin',
    '/./a',
    '/%2e%2e/admin',
    '/%2E%2e/admin',
    '/.%2e/admin',
    '/%252e%252e/admin',
    '/a%2fb',
    '/a%2F..%2Fb',
    '/a\\..\\b',
    '/a%5c..%5cb',
    '//evil.example/x',
    '/a//b',
    '/..;/admin',
    '/;..;..', // found by the property below
    '/a;..',
    '/a/%00',
    '/a b',
    '/%c0%ae%c0%ae/admin',
    '/é',
    '/a#frag',
    '/a?b',
  ];

  it('refuses traversal in every spelling without reaching the upstream', async () => {
    const before = upstream.seen.length;
    for (const path of traversals) {
      const err = await failure(forward(request({ upstreamUrl: upstream.url('/v1'), path })));
      expect(err.code, path).toBe('path_traversal_refused');
      expect(err.status).toBe(400);
    }
    expect((await failure(forward(request({ upstreamUrl: upstream.url('/v1'), query: 'a=#' })))).code).toBe(
      'query_invalid',
    );
    expect(
      (await failure(forward(request({ upstreamUrl: upstream.url('/v1'), method: 'TRACE' })))).code,
    ).toBe('method_not_allowed');
    expect(upstream.seen.length).toBe(before);
  });

  it('joins below the base path', () => {
    expect(joinUpstreamPath('/v1', '/a/b')).toBe('/v1/a/b');
    expect(joinUpstreamPath('/v1/', '/a/')).toBe('/v1/a/');
    expect(joinUpstreamPath('/', '/a')).toBe('/a');
    expect(joinUpstreamPath('/v1', '')).toBe('/v1');
    expect(joinUpstreamPath('/v1', '/')).toBe('/v1/');
    expect(joinUpstreamPath('/v1', '/a%20b/file.tar.gz')).toBe('/v1/a%20b/file.tar.gz');
  });

  it('property: an accepted path, however an upstream decodes it, never leaves the base path', () => {
    const piece = fc.constantFrom(
      'a',
      '.',
      '..',
      '%2e',
      '%2E',
      '%2f',
      '%5c',
      '%25',
      '2e',
      ';',
      '/',
      '\\',
      'b%20c',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (parts) => {
        const path = `/${parts.join('')}`;
        let joined: string;
        try {
          joined = joinUpstreamPath('/base', path);
        } catch (err) {
          expect((err as CaracalError).code).toBe('path_traversal_refused');
          return;
        }
        // Decode up to three times, as stacked proxies and frameworks might, then resolve dot segments.
        let decoded = joined;
        for (let i = 0; i < 3; i++) {
          decoded = decoded.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) =>
            String.fromCharCode(Number.parseInt(h, 16)),
          );
          const resolved = new URL(decoded.replaceAll('\\', '/').replaceAll(';', '/'), 'http://u').pathname;
          expect(resolved === '/base' || resolved.startsWith('/base/'), `${path} → ${resolved}`).toBe(true);
        }
      }),
      { numRuns: 3_000 },
    );
  });
});

describe('forward: streaming and failures', () => {
  it('streams SSE chunk by chunk as the upstream writes', async () => {
    const started = Date.now();
    const res = await forward(request({ upstreamUrl: sse.url('/'), path: '/', query: 'n=5&every=150' }));
    expect(res.headers['content-type']).toBe('text/event-stream');
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of res.body) {
      arrivals.push(Date.now() - started);
      text += String(chunk);
    }
    expect(text).toBe('data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n');
    expect(arrivals.length).toBe(5);
    // The first event arrives long before the last is written (~750 ms), and events keep their spacing.
    expect(arrivals[0]!).toBeLessThan(500);
    expect(arrivals[4]! - arrivals[0]!).toBeGreaterThan(400);
  });

  it('streams a request body to the upstream', async () => {
    const body = Readable.from(
      (async function* () {
        for (let i = 0; i < 3; i++) {
          yield Buffer.from(`part${i};`);
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
    );
    const res = await forward(
      request({ upstreamUrl: upstream.url('/v1'), method: 'PUT', path: '/up', body }),
    );
    expect(JSON.parse(await readAll(res.body)).body).toBe('part0;part1;part2;');
  });

  it('cuts the stream when onChunk says so: the caller sees stream_cut, the upstream connection closes', async () => {
    let chunks = 0;
    const closedBefore = sseClosed.length;
    const res = await forward(
      request({
        upstreamUrl: sse.url('/'),
        path: '/',
        query: 'n=50&every=30',
        onChunk: () => ++chunks <= 2,
      }),
    );
    let text = '';
    const err = await (async () => {
      for await (const c of res.body) text += String(c);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as CaracalError).code).toBe('stream_cut');
    expect(text).toBe('data: 0\n\ndata: 1\n\nevent: caracal_error\ndata: {"code":"stream_cut"}\n\n');
    await expect.poll(() => sseClosed.length, { timeout: 2_000 }).toBeGreaterThan(closedBefore);
  });

  it('aborts the upstream when the consumer destroys the body', async () => {
    const closedBefore = sseClosed.length;
    const res = await forward(request({ upstreamUrl: sse.url('/'), path: '/', query: 'n=50&every=30' }));
    res.body.destroy();
    await expect.poll(() => sseClosed.length, { timeout: 2_000 }).toBeGreaterThan(closedBefore);
  });

  it('maps an upstream that is down to 502 upstream_unavailable', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const err = await failure(forward(request({ upstreamUrl: `http://127.0.0.1:${port}/` })));
    expect(err.code).toBe('upstream_unavailable');
    expect(err.status).toBe(502);
  });

  it('maps a slow upstream to 504 upstream_timeout, and a stalled body to an upstream_timeout stream error', async () => {
    const started = Date.now();
    const err = await failure(
      forward(request({ upstreamUrl: slow.url('/'), path: '/slow', timeouts: { headersMs: 200 } })),
    );
    expect(err.code).toBe('upstream_timeout');
    expect(err.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(2_000);

    const res = await forward(
      request({ upstreamUrl: slow.url('/'), path: '/stall-body', timeouts: { bodyMs: 200 } }),
    );
    expect(res.status).toBe(200);
    const bodyErr = await readAll(res.body).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((bodyErr as CaracalError).code).toBe('upstream_timeout');
  });

  it('fails the body with upstream_unavailable when the upstream breaks off mid-body', async () => {
    const res = await forward(request({ upstreamUrl: slow.url('/'), path: '/reset-mid-body' }));
    expect(res.status).toBe(200);
    const err = await readAll(res.body).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as CaracalError).code).toBe('upstream_unavailable');
  });

  it('streams a large body with backpressure: an idle consumer holds the upstream back', async () => {
    const res = await forward(request({ upstreamUrl: slow.url('/'), path: '/big' }));
    await new Promise((r) => setTimeout(r, 300));
    // Without backpressure all 8 MiB would be buffered by now; paused upstream reads keep it near one chunk.
    expect(res.body.readableLength).toBeLessThan(256 * 1024);
    let bytes = 0;
    for await (const c of res.body) bytes += (c as Buffer).length;
    expect(bytes).toBe(8 * 1024 * 1024);
  });

  it('refuses a loopback upstream when the resource does not allow private addresses', async () => {
    const strict = createUpstreamDispatcher({});
    const before = upstream.seen.length;
    try {
      const err = await failure(
        forward(request({ dispatcher: strict, upstreamUrl: `http://localhost:${upstream.port}/v1` })),
      );
      expect(err.code).toBe('upstream_address_refused');
      expect(err.status).toBe(403);
    } finally {
      await strict.close();
    }
    expect(upstream.seen.length).toBe(before);
  });

  it('rejects with client_closed_request when the caller aborts', async () => {
    const ac = new AbortController();
    const p = forward(request({ upstreamUrl: slow.url('/'), path: '/slow', signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    expect((await failure(p)).code).toBe('client_closed_request');
  });
});
