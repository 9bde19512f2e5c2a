import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createKeyring } from './secrets.js';

const K1 = 'a'.repeat(32);
const K2 = 'b'.repeat(40);

describe('keyring', () => {
  it('round-trips any secret and binds it to its context', () => {
    const ring = createKeyring(K1);
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), (secret, ctx) => {
        const sealed = ring.seal(secret, ctx);
        expect(ring.open(sealed, ctx).toString('utf8')).toBe(secret);
        if (secret.length >= 12)
          expect(sealed).not.toContain(Buffer.from(secret).toString('base64url').slice(0, 16));
        expect(() => ring.open(sealed, `${ctx}x`)).toThrow(/integrity/);
      }),
      { numRuns: 200 },
    );
  });

  it('detects tampering', () => {
    const ring = createKeyring(K1);
    const sealed = ring.seal('provider-api-key', 'provider:p1');
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    parts[3] = body.toString('base64url');
    expect(() => ring.open(parts.join('.'), 'provider:p1')).toThrow(/integrity/);
    expect(() => ring.open('garbage', 'provider:p1')).toThrow(/cannot be read/);
  });

  it('keeps old secrets readable and old digests valid after rotation', () => {
    const old = createKeyring(K1);
    const sealed = old.seal('s3cret', 'ctx');
    const digest = old.digest('client-secret', 'client');
    const rotated = createKeyring(K2, [K1]);
    expect(rotated.open(sealed, 'ctx').toString()).toBe('s3cret');
    expect(rotated.verifyDigest('client-secret', digest, 'client')).toBe(true);
    expect(rotated.verifyDigest('client-secretX', digest, 'client')).toBe(false);
    expect(rotated.verifyDigest('client-secret', digest, 'other-purpose')).toBe(false);
    // New material uses the new key; a ring without the old key cannot read old data.
    expect(rotated.seal('x', 'ctx').split('.')[1]).not.toBe(sealed.split('.')[1]);
    expect(() => createKeyring(K2).open(sealed, 'ctx')).toThrow(/cannot be read/);
    expect(createKeyring(K2).verifyDigest('client-secret', digest, 'client')).toBe(false);
  });
});
