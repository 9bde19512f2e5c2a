import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { systemClock } from './clock.js';
import { configSchema, loadConfig } from './config.js';
import { CaracalError } from './errors.js';
import { createLogger } from './logger.js';
import { createServiceBase, type ServiceBase } from './service.js';

const sink = new Writable({ write: (_c, _e, cb) => cb() });

function makeService(bodyLimitBytes = 1024): ServiceBase {
  const config = loadConfig(configSchema, { env: {}, flags: { http: { bodyLimitBytes } } });
  const logger = createLogger({ service: 'test', destination: sink });
  const svc = createServiceBase({
    name: 'test',
    port: 0,
    ctx: { config, logger, clock: systemClock, processMetrics: false },
  });
  svc.app.post(
    '/things',
    { schema: { body: z.object({ name: z.string().min(1), count: z.number().int().positive() }) } },
    async (req) => ({ created: req.body.name, count: req.body.count }),
  );
  svc.app.get('/boom', async () => {
    throw new Error('secret database password in message');
  });
  svc.app.get('/denied', async () => {
    throw new CaracalError('policy_denied', 403, 'Policy denied the request.', { decisionId: 'd-1' });
  });
  return svc;
}

let svc: ServiceBase | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
});

describe('HTTP server factory', () => {
  it('answers unknown routes with problem+json', async () => {
    svc = makeService();
    const res = await svc.app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({
      status: 404,
      code: 'route_not_found',
      title: 'Not Found',
      instance: '/nope',
    });
  });

  it('validates bodies with zod and lists every issue', async () => {
    svc = makeService();
    const res = await svc.app.inject({ method: 'POST', url: '/things', payload: { name: '', count: -1 } });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.code).toBe('validation_failed');
    expect(body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['count', 'name']);
  });

  it('passes valid bodies through typed', async () => {
    svc = makeService();
    const res = await svc.app.inject({ method: 'POST', url: '/things', payload: { name: 'a', count: 2 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ created: 'a', count: 2 });
  });

  it('rejects malformed JSON, oversize bodies and unknown media types with stable codes', async () => {
    svc = makeService(1024);
    const bad = await svc.app.inject({
      method: 'POST',
      url: '/things',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('malformed_body');
    const big = await svc.app.inject({
      method: 'POST',
      url: '/things',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x'.repeat(5000), count: 1 }),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().code).toBe('body_too_large');
    const media = await svc.app.inject({
      method: 'POST',
      url: '/things',
      headers: { 'content-type': 'text/xml' },
      payload: '<a/>',
    });
    expect(media.statusCode).toBe(415);
    expect(media.json().code).toBe('unsupported_media_type');
    expect(media.headers['content-type']).toMatch(/problem\+json/);
  });

  it('never leaks internal error messages', async () => {
    svc = makeService();
    const res = await svc.app.inject({ method: 'GET', url: '/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.json().code).toBe('internal_error');
    expect(res.body).not.toContain('password');
  });

  it('maps CaracalError with extras', async () => {
    svc = makeService();
    const res = await svc.app.inject({ method: 'GET', url: '/denied' });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({
      code: 'policy_denied',
      decisionId: 'd-1',
      detail: 'Policy denied the request.',
    });
  });

  it('echoes a sane request id and replaces an unsafe one', async () => {
    svc = makeService();
    const ok = await svc.app.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(ok.headers['x-request-id']).toBe('abc-123');
    const bad = await svc.app.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'a b\u0001' },
    });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves /ready per check with budgets, 503 when any fails, and counts transitions', async () => {
    svc = makeService();
    let dbUp = true;
    let age = 10;
    svc.checks.add({
      name: 'db',
      check: () => (dbUp ? { ok: true } : { ok: false, detail: 'connection refused' }),
    });
    svc.checks.add({ name: 'snapshot', budgetMs: 100, check: () => ({ ok: true, ageMs: age }) });
    svc.checks.add({
      name: 'slow',
      timeoutMs: 50,
      check: () => new Promise((r) => setTimeout(() => r({ ok: true }), 5)),
    });

    let res = await svc.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json().checks.snapshot).toMatchObject({ ok: true, ageMs: 10, budgetMs: 100 });

    dbUp = false;
    age = 500;
    res = await svc.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(503);
    const body = res.json();
    expect(body.ready).toBe(false);
    expect(body.checks.db).toMatchObject({ ok: false, detail: 'connection refused' });
    expect(body.checks.snapshot.ok).toBe(false);
    expect(body.checks.snapshot.detail).toMatch(/exceeds budget/);
    expect(body.checks.slow.ok).toBe(true);

    dbUp = true;
    age = 1;
    await svc.app.inject({ method: 'GET', url: '/ready' });
    await new Promise((r) => setImmediate(r));
    const metrics = (await svc.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/caracal_readiness_transitions_total\{service="test"\} 2/);
    expect(metrics).toMatch(
      /caracal_http_request_duration_seconds_count\{[^}]*route="\/ready",method="GET",status="200"\} 2/,
    );
    expect(metrics).toMatch(
      /caracal_http_request_duration_seconds_count\{[^}]*route="\/ready",method="GET",status="503"\} 1/,
    );
  });

  it('fails a check that does not answer in time', async () => {
    svc = makeService();
    svc.checks.add({ name: 'hang', timeoutMs: 30, check: () => new Promise(() => {}) });
    const res = await svc.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks.hang.detail).toMatch(/no answer within 30 ms/);
  });

  it('parses form bodies (token endpoint) and keeps repeated keys visible', async () => {
    svc = makeService();
    svc.app.post('/form', async (req) => req.body);
    const res = await svc.app.inject({
      method: 'POST',
      url: '/form',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'a=1&b=x%20y&a=2',
    });
    expect(res.json()).toEqual({ a: ['1', '2'], b: 'x y' });
  });
});
