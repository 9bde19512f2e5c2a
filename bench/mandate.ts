// Mandate sign/verify: ours (fast-jwt) against node:crypto's raw ES256 (the floor) and jose's WebCrypto path.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { ManualClock } from '@caracal/core';
import {
  createKeyRing,
  createMandateSigner,
  createMandateVerifier,
  generateSigningKey,
  MANDATE_TYP,
  type MandateAlg,
  type MandateDraft,
} from '@caracal/mandate';
import { importJWK, jwtVerify, SignJWT } from 'jose';
import type { BenchResult, BenchSuite } from './harness.js';

const WARMUP_MS = 300;
const MEASURE_MS = 1500;
const ISSUER = 'https://sts.caracal.bench/zones/z1';
const EXPECT = { use: 'resource', zoneId: 'z1', resource: 'resource://github/repos' } as const;

const draft = (): MandateDraft => ({
  sub: 'agent-7',
  sub_type: 'agent',
  aud: 'caracal-gateway',
  zone_id: 'z1',
  client_id: 'app-1',
  use: 'resource',
  resources: ['resource://github/repos'],
  scope: 'repo:read issues:write',
  sid: 'sess-1',
});

function summarize(
  name: string,
  lat: number[],
  elapsedMs: number,
  note?: string,
  baseline = false,
): BenchResult {
  const sorted = lat.slice().sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const us = (1000 * elapsedMs) / lat.length;
  const r: BenchResult = {
    name,
    opsPerSec: (lat.length * 1000) / elapsedMs,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    note: `(${us.toFixed(1)} µs/op${note ? `; ${note}` : ''})`,
  };
  if (baseline) r.baseline = true;
  return r;
}

/** Runs a synchronous operation for a warm-up period, then times each call for MEASURE_MS. */
function measureSync(name: string, op: () => unknown, note?: string, baseline = false): BenchResult {
  for (let end = performance.now() + WARMUP_MS; performance.now() < end; ) op();
  const lat: number[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < MEASURE_MS) {
    op();
    const t = performance.now();
    lat.push(t - now);
    now = t;
  }
  return summarize(name, lat, now - start, note, baseline);
}

/** Same for an asynchronous operation, awaited one at a time. */
async function measureAsync(name: string, op: () => Promise<unknown>, note?: string): Promise<BenchResult> {
  for (let end = performance.now() + WARMUP_MS; performance.now() < end; ) await op();
  const lat: number[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < MEASURE_MS) {
    await op();
    const t = performance.now();
    lat.push(t - now);
    now = t;
  }
  return summarize(name, lat, now - start, note);
}

function ours(alg: MandateAlg) {
  const clock = new ManualClock(Date.now());
  const key = generateSigningKey(alg);
  const ring = createKeyRing({ zoneId: 'z1', current: key, clock });
  const signer = createMandateSigner(key, { issuer: ISSUER, clock });
  const verifier = createMandateVerifier({ keys: ring, issuer: ISSUER, audience: 'caracal-gateway', clock });
  return { key, signer, verifier, token: signer.sign(draft()) };
}

export const mandateSuite: BenchSuite = {
  name: 'mandate',
  description:
    'mandate sign/verify per op: ours (fast-jwt) vs node:crypto raw ES256 (floor) and jose WebCrypto',
  async run() {
    const es = ours('ES256');
    const ed = ours('EdDSA');
    // The floor signs and verifies the very bytes a mandate signs, with keys already parsed.
    const [h, p, s] = es.token.split('.') as [string, string, string];
    const input = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s, 'base64url');
    const privateKey = createPrivateKey({ key: es.key.privateJwk, format: 'jwk' });
    const publicKey = createPublicKey({ key: es.key.publicJwk, format: 'jwk' });
    const joseSignKey = await importJWK(es.key.privateJwk as Parameters<typeof importJWK>[0], 'ES256');
    const joseVerifyKey = await importJWK(es.key.publicJwk as Parameters<typeof importJWK>[0], 'ES256');
    const claims = es.verifier.verify(es.token, EXPECT);

    const results: BenchResult[] = [];
    results.push(
      measureSync(
        'node:crypto raw ES256 sign',
        () => sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
        'signature only',
        true,
      ),
    );
    results.push(
      measureSync('mandate sign ES256 (fast-jwt)', () => es.signer.sign(draft()), 'claims + token'),
    );
    results.push(
      measureSync('mandate sign EdDSA (fast-jwt)', () => ed.signer.sign(draft()), 'claims + token'),
    );
    results.push(
      measureSync(
        'node:crypto raw ES256 verify',
        () => verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature),
        'signature only',
      ),
    );
    results.push(
      measureSync(
        'mandate verify ES256 (fast-jwt)',
        () => es.verifier.verify(es.token, EXPECT),
        'all checks',
      ),
    );
    results.push(
      measureSync(
        'mandate verify EdDSA (fast-jwt)',
        () => ed.verifier.verify(ed.token, EXPECT),
        'all checks',
      ),
    );
    results.push(
      await measureAsync(
        'jose WebCrypto sign ES256',
        () =>
          new SignJWT({ ...claims })
            .setProtectedHeader({ alg: 'ES256', typ: MANDATE_TYP, kid: es.key.kid })
            .sign(joseSignKey),
        'comparison only',
      ),
    );
    results.push(
      await measureAsync(
        'jose WebCrypto verify ES256',
        () => jwtVerify(es.token, joseVerifyKey, { issuer: ISSUER, algorithms: ['ES256'], typ: MANDATE_TYP }),
        'comparison only',
      ),
    );
    return results;
  },
};
