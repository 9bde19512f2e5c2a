import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { runTs } from './support.js';

describe('graceful shutdown', () => {
  it('finishes in-flight requests on SIGTERM, refuses new ones, flushes and exits 0', async () => {
    const child = runTs('test/fixtures/slow-service.ts');
    const [, url] = await child.waitFor(/READY (\S+)/);
    const inFlight = Array.from({ length: 5 }, () =>
      request(`${url}/slow`).then(async (r) => [r.statusCode, await r.body.json()]),
    );
    await new Promise((r) => setTimeout(r, 150));
    child.proc.kill('SIGTERM');
    const results = await Promise.all(inFlight);
    expect(results).toEqual(Array.from({ length: 5 }, () => [200, { done: true }]));
    const { code } = await child.exited;
    expect(code).toBe(0);
    expect(child.stdout()).toContain('STOPPED flushed=true');
    await expect(request(`${url}/health`)).rejects.toThrow();
  });
});
