import { createLocalJWKSet, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { staticKeys } from './jwk.js';
import { createKeyRing } from './key-ring.js';
import { generateSigningKey } from './keys.js';
import { createKeyRingSigner, createMandateSigner, MANDATE_TYP } from './signer.js';
import { AUDIENCE, draft, ISSUER, newClock } from './test-fixtures.js';
import { createMandateVerifier } from './verifier.js';

const RESOURCE = { use: 'resource', zoneId: 'z1', resource: 'resource://github/repos' } as const;

describe('KeyRing rotation', () => {
  it('keeps a rotated-out key verifiable until its last mandate can have expired, then drops it', () => {
    const clock = newClock();
    const first = generateSigningKey();
    const ring = createKeyRing({ zoneId: 'z1', current: first, clock });
    const verifier = createMandateVerifier({ keys: ring, issuer: ISSUER, audience: AUDIENCE, clock });
    const oldToken = createMandateSigner(first, { issuer: ISSUER, clock }).sign(
      draft({ use: 'session', resources: [], ttlSec: 3600 }),
    );

    clock.advance(10_000);
    const second = ring.rotate();
    expect(ring.current()).toBe(second);
    expect(ring.jwks().keys.map((k) => k.kid)).toEqual([second.kid, first.kid]);
    const newToken = createMandateSigner(second, { issuer: ISSUER, clock }).sign(draft());
    expect(verifier.verify(newToken, RESOURCE).sub).toBe('agent-7');
    expect(verifier.verify(oldToken, { use: 'session', zoneId: 'z1' }).sub).toBe('agent-7');

    // retireAfter = rotation time + max TTL (60 min) + skew (5 s).
    const { previous } = ring.state();
    expect(previous).toHaveLength(1);
    expect(previous[0]!.retireAfter).toBe(clock.now() + 3600_000 + 5_000);
    expect(previous[0]!.key).not.toHaveProperty('privateJwk');

    clock.advance(3600_000 + 4_999);
    expect(ring.lookup(first.kid, 'z1')).toBeDefined();
    clock.advance(1);
    expect(ring.lookup(first.kid, 'z1')).toBeUndefined();
    expect(ring.jwks().keys.map((k) => k.kid)).toEqual([second.kid]);
    expect(() => verifier.verify(oldToken, { use: 'session', zoneId: 'z1' })).toThrowError(
      expect.objectContaining({ code: 'mandate_unknown_key' }),
    );
  });

  it('a ring signer follows rotations', () => {
    const clock = newClock();
    const ring = createKeyRing({ zoneId: 'z1', current: generateSigningKey(), clock });
    const signer = createKeyRingSigner(ring, { issuer: ISSUER, clock });
    const verifier = createMandateVerifier({ keys: ring, issuer: ISSUER, clock });
    const before = signer.sign(draft());
    const next = ring.rotate(generateSigningKey('EdDSA'));
    expect([signer.kid, signer.alg]).toEqual([next.kid, 'EdDSA']);
    const after = signer.sign(draft());
    const kidOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()).kid;
    expect(kidOf(after)).toBe(next.kid);
    expect(kidOf(before)).not.toBe(next.kid);
    for (const t of [before, after]) expect(verifier.verify(t, RESOURCE).sub).toBe('agent-7');
  });

  it('serves only public key material and refuses lookups for another zone', () => {
    const clock = newClock();
    const ring = createKeyRing({ zoneId: 'z1', current: generateSigningKey('EdDSA'), clock });
    ring.rotate(generateSigningKey('ES256'));
    for (const k of ring.jwks().keys) {
      expect(k).not.toHaveProperty('d');
      expect(k.use).toBe('sig');
    }
    const kid = ring.current().kid;
    expect(ring.lookup(kid, 'z1')).toBeDefined();
    expect(ring.lookup(kid, undefined)).toBeDefined();
    expect(ring.lookup(kid, 'z2')).toBeUndefined();
    expect(() => ring.rotate(ring.current())).toThrow();
  });

  it('a verifier built from the served JWKS accepts the ring’s mandates', () => {
    const clock = newClock();
    const key = generateSigningKey();
    const ring = createKeyRing({ zoneId: 'z1', current: key, clock });
    const served = JSON.parse(JSON.stringify(ring.jwks()));
    const v = createMandateVerifier({ keys: staticKeys(served), issuer: ISSUER, clock });
    const t = createMandateSigner(key, { issuer: ISSUER, clock }).sign(draft());
    expect(v.verify(t, RESOURCE).zone_id).toBe('z1');
  });
});

describe.each(['ES256', 'EdDSA'] as const)('jose interop (%s)', (alg) => {
  it("jose's jwtVerify with createLocalJWKSet(jwks) accepts our mandates", async () => {
    const clock = newClock();
    const key = generateSigningKey(alg);
    const ring = createKeyRing({ zoneId: 'z1', current: generateSigningKey(alg), clock });
    ring.rotate(key);
    const jwks = createLocalJWKSet(JSON.parse(JSON.stringify(ring.jwks())));
    const { token, claims } = createMandateSigner(key, { issuer: ISSUER, clock }).mint(draft());
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: [alg],
      typ: MANDATE_TYP,
      currentDate: new Date(clock.now()),
    });
    expect(payload).toEqual(claims);
    expect(protectedHeader).toEqual({ alg, typ: MANDATE_TYP, kid: key.kid });
  });

  it('jose imports every served JWK with its declared algorithm', async () => {
    const ring = createKeyRing({ zoneId: 'z1', current: generateSigningKey(alg), clock: newClock() });
    for (const jwk of ring.jwks().keys) await expect(importJWK(jwk, jwk.alg)).resolves.toBeDefined();
  });
});
