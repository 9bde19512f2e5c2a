import { CaracalError } from '@caracal/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MANDATE_TTL_CAP_SEC, type MandateDraft } from './claims.js';
import { MANDATE_ERROR_CODES } from './errors.js';
import { createKeyRing } from './key-ring.js';
import { generateSigningKey } from './keys.js';
import { createMandateSigner } from './signer.js';
import { AUDIENCE, draft, ISSUER, newClock } from './test-fixtures.js';
import { createMandateVerifier } from './verifier.js';

const CODES = new Set<string>(MANDATE_ERROR_CODES);
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const EXPECT = { use: 'resource', zoneId: 'z1', resource: 'resource://github/repos' } as const;

/** The outcome of verify: 'ok' or the stable code; anything else fails the property. */
function outcome(verify: () => unknown): string {
  try {
    verify();
    return 'ok';
  } catch (e) {
    if (!(e instanceof CaracalError)) throw new Error(`non-CaracalError thrown: ${String(e)}`);
    if (!CODES.has(e.code)) throw new Error(`unknown code ${e.code}`);
    return e.code;
  }
}

describe.each(['ES256', 'EdDSA'] as const)('verify under random input (%s)', (alg) => {
  const clock = newClock();
  const key = generateSigningKey(alg);
  const ring = createKeyRing({ zoneId: 'z1', current: key, clock });
  const verifier = createMandateVerifier({ keys: ring, issuer: ISSUER, audience: AUDIENCE, clock });
  const signer = createMandateSigner(key, { issuer: ISSUER, clock });
  const tokens = Array.from({ length: 8 }, (_, i) => signer.sign(draft({ sub: `agent-${i}` })));

  it('accepts every unmutated token', () => {
    for (const t of tokens) expect(outcome(() => verifier.verify(t, EXPECT))).toBe('ok');
  });

  it('random strings never verify and only throw stable codes', () => {
    const segment = fc.string({ unit: fc.constantFrom(...B64URL), maxLength: 120 });
    const jwsLike = fc.tuple(segment, segment, segment).map((s) => s.join('.'));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), jwsLike),
        (s) => {
          expect(outcome(() => verifier.verify(s, EXPECT))).not.toBe('ok');
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('any mutation of a valid token never verifies and only throws stable codes', () => {
    const mutation = fc.record({
      token: fc.integer({ min: 0, max: tokens.length - 1 }),
      edits: fc.array(
        fc.record({
          at: fc.nat(),
          kind: fc.constantFrom('replace', 'insert', 'delete'),
          ch: fc.oneof(
            fc.constantFrom(...B64URL, '.', '=', '+', '/', ' '),
            fc.string({ minLength: 1, maxLength: 1 }),
          ),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(mutation, ({ token, edits }) => {
        const original = tokens[token]!;
        let t = original;
        for (const { at, kind, ch } of edits) {
          const i = at % (t.length + 1);
          if (kind === 'replace') t = t.slice(0, i) + ch + t.slice(i + 1);
          else if (kind === 'insert') t = t.slice(0, i) + ch + t.slice(i);
          else t = t.slice(0, i) + t.slice(i + 1);
        }
        fc.pre(t !== original);
        expect(outcome(() => verifier.verify(t, EXPECT))).not.toBe('ok');
      }),
      { numRuns: 3000 },
    );
  });

  it('re-encoded header or payload segments (same JSON, other bytes) never verify', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: tokens.length - 1 }),
        fc.constantFrom(0, 1),
        fc.nat(40),
        (i, seg, pad) => {
          const parts = tokens[i]!.split('.');
          const json = JSON.parse(Buffer.from(parts[seg]!, 'base64url').toString());
          parts[seg] = Buffer.from(
            JSON.stringify(json, null, pad % 3) + ' '.repeat(pad % 5 === 0 ? 1 : 0),
          ).toString('base64url');
          const t = parts.join('.');
          fc.pre(t !== tokens[i]);
          expect(outcome(() => verifier.verify(t, EXPECT))).not.toBe('ok');
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('whatever the signer accepts, the verifier accepts unchanged', () => {
  const clock = newClock();
  const key = generateSigningKey();
  const ring = createKeyRing({ zoneId: 'z1', current: key, clock });
  const verifier = createMandateVerifier({ keys: ring, issuer: ISSUER, clock });
  const signer = createMandateSigner(key, { issuer: ISSUER, clock });
  const id = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
  const scopeToken = fc.string({ unit: fc.constantFrom(...'abcxyz:._-/!~'), minLength: 1, maxLength: 12 });
  const draftArb = fc
    .record({
      sub: id,
      sub_type: fc.constantFrom('application', 'agent', 'session'),
      aud: id,
      client_id: id,
      use: fc.constantFrom('resource', 'gateway', 'session'),
      resources: fc.array(
        id.map((s) => `resource://${s}`),
        { minLength: 1, maxLength: 4 },
      ),
      scope: fc.array(scopeToken, { maxLength: 5 }).map((t) => t.join(' ')),
      sid: fc.option(id, { nil: undefined }),
      did: fc.option(id, { nil: undefined }),
      ttlFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    })
    .map(({ ttlFraction, ...d }): MandateDraft => {
      const cap = MANDATE_TTL_CAP_SEC[d.use as MandateDraft['use']];
      const out = { ...d, zone_id: 'z1', ttlSec: 1 + Math.floor(ttlFraction * (cap - 1)) } as MandateDraft;
      if (out.sid === undefined) delete out.sid;
      if (out.did === undefined) delete out.did;
      return out;
    });

  it('round-trips random drafts', () => {
    fc.assert(
      fc.property(draftArb, (d) => {
        const { token, claims } = signer.mint(d);
        const got = verifier.verify(token, { use: d.use, zoneId: 'z1', resource: d.resources[0]! });
        expect(got).toEqual(claims);
      }),
      { numRuns: 300 },
    );
  });
});
