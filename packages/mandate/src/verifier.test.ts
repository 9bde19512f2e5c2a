import { CaracalError } from '@caracal/core';
import { describe, expect, it } from 'vitest';
import { staticKeys } from './jwk.js';
import { createKeyRing } from './key-ring.js';
import { generateSigningKey, type MandateAlg, type SigningKey } from './keys.js';
import { createMandateSigner } from './signer.js';
import {
  AUDIENCE,
  b64,
  claimsAt,
  craft,
  craftHs256,
  draft,
  headerFor,
  ISSUER,
  newClock,
  signInput,
} from './test-fixtures.js';
import { createMandateVerifier, type MandateExpectation } from './verifier.js';

const expectCode = (fn: () => unknown, code: string) => {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected ${code}`).toBeInstanceOf(CaracalError);
  expect((thrown as CaracalError).code).toBe(code);
  return thrown as CaracalError;
};

const RESOURCE: MandateExpectation = { use: 'resource', zoneId: 'z1', resource: 'resource://github/repos' };

function setup(alg: MandateAlg = 'ES256') {
  const clock = newClock();
  const key = generateSigningKey(alg);
  const ring = createKeyRing({ zoneId: 'z1', current: key, clock });
  const signer = createMandateSigner(key, { issuer: ISSUER, clock });
  const verifier = createMandateVerifier({ keys: ring, issuer: ISSUER, audience: AUDIENCE, clock });
  const nowSec = Math.floor(clock.now() / 1000);
  return { clock, key, ring, signer, verifier, nowSec };
}

describe.each(['ES256', 'EdDSA'] as const)('mandate round trip (%s)', (alg) => {
  it('verifies what it signs and returns exactly the signed claims', () => {
    const { signer, verifier, key } = setup(alg);
    const { token, claims } = signer.mint(draft({ sid: 'sess-1', did: 'del-1' }));
    const [h] = token.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({
      alg,
      typ: 'caracal-mandate+jwt',
      kid: key.kid,
    });
    expect(verifier.verify(token, RESOURCE)).toEqual(claims);
    expect(claims.exp - claims.iat).toBe(60);
  });

  it('applies the default lifetime of each use class', () => {
    const { signer } = setup(alg);
    expect(signer.mint(draft({ use: 'gateway' })).claims.exp - signer.mint(draft()).claims.iat).toBe(120);
    const s = signer.mint(draft({ use: 'session', resources: [] })).claims;
    expect(s.exp - s.iat).toBe(15 * 60);
  });
});

describe('minting refuses bad claims', () => {
  const { signer } = setup();
  it.each([
    ['ttl over the resource cap', draft({ ttlSec: 15 * 60 + 1 })],
    ['ttl over the session cap', draft({ use: 'session', ttlSec: 3601 })],
    ['ttl zero', draft({ ttlSec: 0 })],
    ['ttl fractional', draft({ ttlSec: 1.5 })],
    ['bad sub_type', draft({ sub_type: 'robot' as never })],
    ['bad use', draft({ use: 'any' as never })],
    ['resource without resource:// prefix', draft({ resources: ['https://x'] })],
    ['resource mandate with no resource', draft({ resources: [] })],
    ['scope with a double space', draft({ scope: 'a  b' })],
    ['empty sub', draft({ sub: '' })],
  ])('%s', (_name, d) => {
    expect(() => signer.sign(d)).toThrowError(expect.objectContaining({ code: 'mandate_claims_invalid' }));
  });

  it('accepts the caps themselves', () => {
    expect(() => signer.sign(draft({ ttlSec: 900 }))).not.toThrow();
    expect(() => signer.sign(draft({ use: 'session', ttlSec: 3600 }))).not.toThrow();
  });
});

describe('verification failures carry stable codes', () => {
  it('mandate_alg_not_allowed: alg none (with and without a signature)', () => {
    const { key, verifier, nowSec } = setup();
    expectCode(
      () => verifier.verify(craft(headerFor(key, { alg: 'none' }), claimsAt(nowSec)), RESOURCE),
      'mandate_alg_not_allowed',
    );
    const unsigned = craft(headerFor(key, { alg: 'none' }), claimsAt(nowSec));
    expectCode(() => verifier.verify(`${unsigned}${'A'.repeat(86)}`, RESOURCE), 'mandate_alg_not_allowed');
  });

  it('mandate_alg_not_allowed: HS256 signed with the public key bytes (key confusion)', () => {
    const { key, verifier, nowSec } = setup();
    for (const secret of [JSON.stringify(key.publicJwk), String(key.publicJwk.x)]) {
      const t = craftHs256(headerFor(key, { alg: 'HS256' }), claimsAt(nowSec), secret);
      expectCode(() => verifier.verify(t, RESOURCE), 'mandate_alg_not_allowed');
    }
  });

  it("mandate_alg_not_allowed: an allowed alg that is not the key's own", () => {
    const { key, verifier, nowSec } = setup('ES256');
    const t = craft(headerFor(key, { alg: 'EdDSA' }), claimsAt(nowSec), key);
    expectCode(() => verifier.verify(t, RESOURCE), 'mandate_alg_not_allowed');
  });

  it('mandate_alg_not_allowed: alg outside a pinned subset', () => {
    const { clock } = setup();
    const ed = generateSigningKey('EdDSA');
    const v = createMandateVerifier({ keys: staticKeys([ed]), issuer: ISSUER, clock, algorithms: ['ES256'] });
    const t = createMandateSigner(ed, { issuer: ISSUER, clock }).sign(draft());
    expectCode(() => v.verify(t, RESOURCE), 'mandate_alg_not_allowed');
  });

  it('mandate_kid_missing', () => {
    const { key, verifier, nowSec } = setup();
    const { kid: _k, ...noKid } = headerFor(key);
    expectCode(() => verifier.verify(craft(noKid, claimsAt(nowSec), key), RESOURCE), 'mandate_kid_missing');
    expectCode(
      () => verifier.verify(craft(headerFor(key, { kid: 7 }), claimsAt(nowSec), key), RESOURCE),
      'mandate_kid_missing',
    );
  });

  it("mandate_unknown_key: a kid of another zone's key, and a kid nobody knows", () => {
    const { clock, ring, verifier, nowSec } = setup();
    const other = generateSigningKey();
    const otherRing = createKeyRing({ zoneId: 'z2', current: other, clock });
    // A Gateway serving both zones: the zone from its own routing picks the key ring.
    const rings = new Map([
      ['z1', ring],
      ['z2', otherRing],
    ]);
    const gateway = createMandateVerifier({
      keys: (kid, zone) => (zone === undefined ? undefined : rings.get(zone)?.lookup(kid, zone)),
      issuer: ISSUER,
      clock,
    });
    const t = craft(headerFor(other), claimsAt(nowSec), other); // claims zone z1, signed by z2's key
    const err = expectCode(() => gateway.verify(t, RESOURCE), 'mandate_unknown_key');
    expect(err.extras).toEqual({ kid: other.kid });
    expectCode(() => verifier.verify(t, RESOURCE), 'mandate_unknown_key');
    expectCode(
      () => verifier.verify(craft(headerFor(other, { kid: 'nobody' }), claimsAt(nowSec), other), RESOURCE),
      'mandate_unknown_key',
    );
  });

  it('mandate_bad_signature: signed by another key under our kid, truncated, or non-canonical', () => {
    const { key, signer, verifier, nowSec } = setup();
    const impostor = { ...generateSigningKey(), kid: key.kid };
    expectCode(
      () => verifier.verify(craft(headerFor(key), claimsAt(nowSec), impostor), RESOURCE),
      'mandate_bad_signature',
    );
    const good = signer.sign(draft());
    expectCode(() => verifier.verify(good.slice(0, -2), RESOURCE), 'mandate_bad_signature');
    expectCode(
      () => verifier.verify(good.slice(0, good.lastIndexOf('.') + 1), RESOURCE),
      'mandate_bad_signature',
    );
    // Same 64 signature bytes, different spare bits in the last character.
    const last = good.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) + 1]!;
    expect(Buffer.from(good.slice(-86, -1) + twin, 'base64url')).toEqual(
      Buffer.from(good.slice(-86), 'base64url'),
    );
    expectCode(() => verifier.verify(good.slice(0, -1) + twin, RESOURCE), 'mandate_bad_signature');
    // A payload changed after signing.
    const [h, , s] = good.split('.');
    const forged = `${h}.${b64(claimsAt(nowSec, { scope: 'admin' }))}.${s}`;
    expectCode(() => verifier.verify(forged, RESOURCE), 'mandate_bad_signature');
  });

  it('mandate_expired and mandate_not_yet_valid, with the clock skew allowance', () => {
    const { clock, signer, verifier } = setup();
    const t = signer.sign(draft({ ttlSec: 60 }));
    clock.advance(64_999);
    expect(verifier.verify(t, RESOURCE).sub).toBe('agent-7');
    clock.advance(1);
    expectCode(() => verifier.verify(t, RESOURCE), 'mandate_expired');
    const { key, verifier: v2, nowSec, clock: c2 } = setup();
    const future = craft(headerFor(key), claimsAt(nowSec, { nbf: nowSec + 30, exp: nowSec + 60 }), key);
    expectCode(() => v2.verify(future, RESOURCE), 'mandate_not_yet_valid');
    c2.advance(25_000);
    expect(v2.verify(future, RESOURCE).nbf).toBe(nowSec + 30);
    const issuedLater = craft(headerFor(key), claimsAt(nowSec + 40), key);
    expectCode(() => v2.verify(issuedLater, RESOURCE), 'mandate_not_yet_valid');
  });

  it('mandate_wrong_use, mandate_wrong_audience, mandate_wrong_zone, mandate_wrong_resource, mandate_wrong_issuer', () => {
    const { clock, key, ring, signer, verifier } = setup();
    const t = signer.sign(draft());
    expectCode(() => verifier.verify(t, { ...RESOURCE, use: 'gateway' }), 'mandate_wrong_use');
    expectCode(
      () => verifier.verify(t, { ...RESOURCE, resource: 'resource://github/admin' }),
      'mandate_wrong_resource',
    );
    const otherAud = createMandateVerifier({ keys: ring, issuer: ISSUER, audience: ['a', 'b'], clock });
    expectCode(() => otherAud.verify(t, RESOURCE), 'mandate_wrong_audience');
    // The zone claim is checked even when the key lookup ignores zones.
    const anyZone = createMandateVerifier({ keys: staticKeys([key]), issuer: ISSUER, clock });
    const err = expectCode(() => anyZone.verify(t, { ...RESOURCE, zoneId: 'z2' }), 'mandate_wrong_zone');
    expect(err.status).toBe(403);
    const otherIss = createMandateVerifier({ keys: ring, issuer: 'https://elsewhere', clock });
    expectCode(() => otherIss.verify(t, RESOURCE), 'mandate_wrong_issuer');
  });

  it('mandate_too_large is checked before any parsing', () => {
    const { verifier, signer } = setup();
    expectCode(() => verifier.verify('x'.repeat(4097), RESOURCE), 'mandate_too_large');
    const resources = Array.from({ length: 32 }, (_, i) => `resource://r/${'x'.repeat(100)}${i}`);
    expect(() => signer.sign(draft({ resources }))).toThrowError(
      expect.objectContaining({ code: 'mandate_claims_invalid' }),
    );
    const { clock, key, ring } = setup();
    const big = createMandateSigner(key, { issuer: ISSUER, clock, maxTokenBytes: 8192 }).sign(
      draft({ resources }),
    );
    expect(big.length).toBeGreaterThan(4096);
    const v = createMandateVerifier({ keys: ring, issuer: ISSUER, clock });
    expectCode(() => v.verify(big, RESOURCE), 'mandate_too_large');
    const roomy = createMandateVerifier({ keys: ring, issuer: ISSUER, clock, maxTokenBytes: 8192 });
    expect(roomy.verify(big, { use: 'resource', zoneId: 'z1' }).resources).toHaveLength(32);
  });

  it('mandate_malformed: garbage segments, bad base64, JSON that is not an object, bad claims', () => {
    const { key, verifier, nowSec } = setup();
    const h = b64(headerFor(key));
    const p = b64(claimsAt(nowSec));
    const sig = 'A'.repeat(86);
    const cases: unknown[] = [
      undefined,
      42,
      '',
      'abc',
      'a.b',
      `${h}.${p}.${sig}.extra`,
      `${h}..${sig}`,
      `.${p}.${sig}`,
      `${h}.${p}+/.${sig}`,
      `${h}=.${p}.${sig}`,
      `${h}.${p}.${sig}=`,
      `${b64('not json')}.${p}.${sig}`,
      `${b64('[1,2]')}.${p}.${sig}`,
      `${b64('null')}.${p}.${sig}`,
      `${b64('"str"')}.${p}.${sig}`,
      `${b64({ ...headerFor(key), typ: 'JWT' })}.${p}.${sig}`,
      `${b64({ ...headerFor(key), jku: 'https://evil/jwks' })}.${p}.${sig}`,
      `${b64({ ...headerFor(key), alg: 7 })}.${p}.${sig}`,
    ];
    for (const t of cases) expectCode(() => verifier.verify(t, RESOURCE), 'mandate_malformed');
    // Validly signed, but the payload is not a JSON object.
    for (const payload of ['[1,2]', '"x"', '7', 'null', 'nope']) {
      expectCode(
        () => verifier.verify(signInput(key, `${h}.${b64(payload)}`), RESOURCE),
        'mandate_malformed',
      );
    }
    const missingJti = craft(headerFor(key), claimsAt(nowSec, { jti: undefined }), key);
    expectCode(() => verifier.verify(missingJti, RESOURCE), 'mandate_malformed');
    const tooLong = craft(headerFor(key), claimsAt(nowSec, { exp: nowSec + 901 }), key);
    expectCode(() => verifier.verify(tooLong, RESOURCE), 'mandate_malformed');
  });

  it('verifyAsync refreshes once on an unknown kid, then retries', async () => {
    const { clock } = setup();
    const key = generateSigningKey();
    let known: SigningKey | undefined;
    let refreshes = 0;
    const v = createMandateVerifier({
      keys: (kid) => (known?.kid === kid ? known : undefined),
      issuer: ISSUER,
      clock,
      onUnknownKey: async (kid, zone) => {
        refreshes++;
        expect([kid, zone]).toEqual([key.kid, 'z1']);
        known = key;
      },
    });
    const t = createMandateSigner(key, { issuer: ISSUER, clock }).sign(draft());
    expectCode(() => v.verify(t, RESOURCE), 'mandate_unknown_key');
    await expect(v.verifyAsync(t, RESOURCE)).resolves.toMatchObject({ sub: 'agent-7' });
    expect(refreshes).toBe(1);
    await expect(v.verifyAsync('bad', RESOURCE)).rejects.toMatchObject({ code: 'mandate_malformed' });
    expect(refreshes).toBe(1);
  });
});
