import { createKeyring } from '@caracal/core';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SeededZone, seedZone, startTestSts, stsTestMigrations, type TestSts } from './testing.js';

const keyring = createKeyring('m'.repeat(40));
const logs: string[] = [];
let t: TestDb;
let sts: TestSts;
let zone: SeededZone;

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, stsTestMigrations);
  zone = await seedZone(t.db, keyring);
  sts = await startTestSts(t.db, keyring, { logs });
});

afterAll(async () => {
  await sts?.stop();
  await t?.cleanup();
});

const field = fc.constantFrom(
  'grant_type',
  'zone_id',
  'application_id',
  'client_secret',
  'resource',
  'scope',
  'ttl_seconds',
  'subject_token',
  'subject_token_type',
  'approval_id',
  'session_id',
  'x',
);

describe('token endpoint under hostile input', () => {
  it('answers any body with a 4xx OAuth error or a valid exchange, never a 500, and never logs a secret', async () => {
    const valid = zone.form;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(field, fc.oneof(fc.string(), fc.constantFrom(...Object.values(valid)))), {
          maxLength: 12,
        }),
        fc.constantFrom(
          'application/x-www-form-urlencoded',
          'application/json',
          'text/plain',
          'multipart/form-data',
        ),
        fc.boolean(),
        async (pairs, contentType, startValid) => {
          const form = new URLSearchParams(startValid ? valid : {});
          for (const [k, v] of pairs) {
            if (k === 'client_secret' && v === valid.client_secret) continue; // keep the secret out of random positions
            form.append(k, v);
          }
          const res = await fetch(`${sts.url}/oauth/2/token`, {
            method: 'POST',
            headers: { 'content-type': contentType },
            body: form.toString(),
          });
          const body = (await res.json()) as Record<string, unknown>;
          if (res.status === 200) {
            expect(typeof body.access_token).toBe('string');
            return;
          }
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(body.access_token).toBeUndefined();
          expect(typeof body.code).toBe('string');
        },
      ),
      { numRuns: 300 },
    );
    const text = logs.join('');
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain(valid.client_secret);
  }, 120_000);

  it('accepts only form bodies', async () => {
    const res = await fetch(`${sts.url}/oauth/2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(zone.form),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
  });

  it('rejects a secret sent in the query string without using it', async () => {
    const q = new URLSearchParams(zone.form).toString();
    const res = await fetch(`${sts.url}/oauth/2/token?${q}`, {
      method: 'POST',
      body: new URLSearchParams(zone.form),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
    expect(logs.join('')).not.toContain(zone.secret);
  });
});
