import { describe, expect, it } from 'vitest';
import type { Jwks } from './jwk.js';
import { createJwksCache } from './jwks-cache.js';
import { createKeyRing } from './key-ring.js';
import { generateSigningKey } from './keys.js';
import { createMandateSigner } from './signer.js';
import { draft, ISSUER, newClock } from './test-fixtures.js';
import { createMandateVerifier } from './verifier.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function harness() {
  const clock = newClock();
  const ring = createKeyRing({ zoneId: 'z1', current: generateSigningKey(), clock });
  const calls: string[] = [];
  let respond: (zoneId: string) => Promise<unknown> = async () => JSON.parse(JSON.stringify(ring.jwks()));
  const cache = createJwksCache({
    fetchJwks: (zoneId) => {
      calls.push(zoneId);
      return respond(zoneId);
    },
    clock,
    ttlMs: 300_000,
    minRefreshIntervalMs: 30_000,
  });
  return { clock, ring, cache, calls, setRespond: (f: typeof respond) => (respond = f) };
}

describe('JwksCache', () => {
  it('concurrent misses share one fetch, and misses inside the interval fetch nothing', async () => {
    const { ring, cache, calls, setRespond, clock } = harness();
    const gate = deferred<Jwks>();
    setRespond(() => gate.promise);
    const kid = ring.current().kid;
    const lookups = Array.from({ length: 50 }, (_, i) => cache.resolve('z1', i % 2 ? kid : `ghost-${i}`));
    gate.resolve(ring.jwks());
    const found = await Promise.all(lookups);
    expect(calls).toEqual(['z1']);
    expect(found.filter(Boolean)).toHaveLength(25);
    expect(cache.lookup(kid, 'z1')).toBe(found[1]);

    // Unknown kids keep coming: no fetch until the interval has passed.
    setRespond(async () => ring.jwks());
    await cache.resolve('z1', 'ghost-x');
    await cache.refreshFor('ghost-y', 'z1');
    expect(calls).toHaveLength(1);
    clock.advance(30_000);
    await Promise.all([cache.resolve('z1', 'ghost-x'), cache.refreshFor('ghost-y', 'z1')]);
    expect(calls).toHaveLength(2);
  });

  it('a key rotated in at the STS is found on the next allowed refresh', async () => {
    const { ring, cache, clock } = harness();
    await cache.load('z1');
    const next = ring.rotate();
    expect(await cache.resolve('z1', next.kid)).toBeUndefined(); // load() just happened: rate-limited
    clock.advance(30_000);
    expect((await cache.resolve('z1', next.kid))?.kid).toBe(next.kid);
  });

  it('a failed fetch keeps the previous keys and reports their age', async () => {
    const { ring, cache, clock, setRespond } = harness();
    await cache.load('z1');
    const kid = ring.current().kid;
    const before = cache.lookup(kid, 'z1');
    clock.advance(600_000);
    setRespond(async () => {
      throw new Error('connect ECONNREFUSED');
    });
    await cache.refreshFor('ghost', 'z1');
    expect(cache.lookup(kid, 'z1')).toBe(before);
    expect(cache.status('z1')).toMatchObject({
      keyCount: 1,
      ageMs: 600_000,
      lastError: 'connect ECONNREFUSED',
    });

    for (const bad of [{ keys: [] }, { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }, 'nope', null]) {
      clock.advance(30_000);
      setRespond(async () => bad);
      await cache.refreshFor('ghost', 'z1');
      expect(cache.lookup(kid, 'z1')).toBe(before);
    }
    expect(cache.status('z1')?.lastError).toBeDefined();
    clock.advance(30_000);
    setRespond(async () => ring.jwks());
    await cache.refreshFor('ghost', 'z1');
    expect(cache.status('z1')).toMatchObject({ ageMs: 0, keyCount: 1 });
    expect(cache.status('z1')?.lastError).toBeUndefined();
  });

  it('skips unusable keys, refuses alg mismatches, and refreshes a stale set in the background', async () => {
    const { ring, cache, clock, calls, setRespond } = harness();
    const good = ring.jwks().keys[0]!;
    const ed = generateSigningKey('EdDSA');
    setRespond(async () => ({
      keys: [
        good,
        { ...good, kid: 'lying', alg: 'EdDSA' },
        { ...good, kid: 'off-curve', x: good.y },
        { ...ed.publicJwk, kid: 'enc', use: 'enc' },
        { ...good, kid: good.kid, x: 'dup' },
      ],
    }));
    await cache.load('z1');
    expect(cache.status('z1')).toMatchObject({ keyCount: 1, skippedKeys: 4 });
    expect(cache.lookup('lying', 'z1')).toBeUndefined();
    expect(cache.lookup(good.kid, undefined)).toBeUndefined(); // no zone, no lookup
    clock.advance(300_000);
    expect(cache.lookup(good.kid, 'z1')).toBeDefined(); // still served while the refresh runs
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toHaveLength(2);
  });

  it('drives a Gateway verifier: unknown kid → one refresh → verified', async () => {
    const { ring, cache, clock, calls } = harness();
    const verifier = createMandateVerifier({
      keys: cache,
      issuer: ISSUER,
      clock,
      onUnknownKey: cache.refreshFor,
    });
    const t = createMandateSigner(ring.current(), { issuer: ISSUER, clock }).sign(draft());
    const expect_ = { use: 'resource', zoneId: 'z1' } as const;
    const [a, b] = await Promise.all([verifier.verifyAsync(t, expect_), verifier.verifyAsync(t, expect_)]);
    expect(a.jti).toBe(b.jti);
    expect(calls).toEqual(['z1']);
  });

  it('never fetches for a zone the caller did not name', async () => {
    const { cache, calls } = harness();
    await cache.refreshFor('kid', undefined);
    expect(calls).toEqual([]);
  });
});
