import { ManualClock } from '@caracal/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, MessageSealer, MessageSigner, openMessage } from './signing.js';

const KEY = 'k'.repeat(32);

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: undefined, w: null }], c: 'é' } })).toBe(
      '{"a":{"c":"é","d":[1,{"w":null,"y":2}]},"b":1}',
    );
  });

  it('refuses values JSON cannot carry faithfully', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow();
    expect(() => canonicalJson({ f: () => 1 })).toThrow();
  });

  it('is independent of key insertion order and round-trips through JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = canonicalJson(v);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        const reversed = JSON.parse(JSON.stringify(v), (_k, val) =>
          val && typeof val === 'object' && !Array.isArray(val)
            ? Object.fromEntries(Object.entries(val).reverse())
            : val,
        );
        expect(canonicalJson(reversed)).toBe(text);
      }),
    );
  });
});

describe('message signing', () => {
  it('needs a key of at least 32 characters', () => {
    expect(() => new MessageSigner('short')).toThrow(/at least 32/);
    expect(() => new MessageSigner(KEY, ['short'])).toThrow(/at least 32/);
  });

  it('binds the stream and every byte of the body', () => {
    const signer = new MessageSigner(KEY);
    const sealer = new MessageSealer('p1', signer, new ManualClock());
    const s = sealer.seal('audit', { type: 'audit.decision', payload: { allow: false } });
    expect(openMessage(signer, 'audit', s.body, s.sig)?.payload).toEqual({ allow: false });
    expect(openMessage(signer, 'revocations', s.body, s.sig)).toBeUndefined();
    expect(openMessage(signer, 'audit', s.body.replace('false', 'true '), s.sig)).toBeUndefined();
    expect(openMessage(signer, 'audit', s.body, undefined)).toBeUndefined();
    expect(openMessage(signer, 'audit', s.body, s.sig.toUpperCase())).toBeUndefined();
    expect(openMessage(new MessageSigner('x'.repeat(32)), 'audit', s.body, s.sig)).toBeUndefined();
  });

  it('verifies with a previous key during rotation', () => {
    const old = new MessageSigner(KEY);
    const s = new MessageSealer('p1', old, new ManualClock()).seal('audit', { type: 't', payload: 1 });
    expect(openMessage(new MessageSigner('n'.repeat(32), [KEY]), 'audit', s.body, s.sig)).toBeDefined();
  });

  it('stamps producer, epoch, per-stream sequence, time and a uuid', () => {
    const clock = new ManualClock(1000);
    const sealer = new MessageSealer('gw-1', new MessageSigner(KEY), clock);
    clock.advance(5);
    const a1 = JSON.parse(sealer.seal('a', { type: 't', payload: null }).body);
    const a2 = JSON.parse(sealer.seal('a', { type: 't', payload: null }).body);
    const b1 = JSON.parse(sealer.seal('b', { type: 't', payload: null }).body);
    expect([a1.seq, a2.seq, b1.seq]).toEqual([1, 2, 1]);
    expect(a1).toMatchObject({ v: 1, producerId: 'gw-1', producerEpoch: 1000, at: 1005, type: 't' });
    expect(a1.eventId).toMatch(/^[0-9a-f-]{36}$/);
    expect(a1.eventId).not.toBe(a2.eventId);
    // A payload that cannot be encoded leaves no gap in the sequence.
    expect(() => sealer.seal('a', { type: 't', payload: Number.POSITIVE_INFINITY })).toThrow();
    expect(JSON.parse(sealer.seal('a', { type: 't', payload: 1 }).body).seq).toBe(3);
  });
});
