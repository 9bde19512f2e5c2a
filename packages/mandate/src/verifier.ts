import type { Clock } from '@caracal/core';
import { createVerifier } from 'fast-jwt';
import {
  checkClaims,
  DEFAULT_MAX_TOKEN_BYTES,
  type MandateClaims,
  type MandateUse,
  pickClaims,
} from './claims.js';
import { mandateError } from './errors.js';
import { type KeyLookup, type KeySource, publicPem, type VerificationKey } from './jwk.js';
import type { MandateAlg } from './keys.js';
import { MANDATE_TYP } from './signer.js';

export interface MandateVerifierOptions {
  /**
   * Where trusted public keys come from: a lookup function or a source (KeyRing, JwksCache, staticKeys).
   * Return the same object for a key across calls: the prepared fast-jwt verifier is cached per key object.
   */
  keys: KeyLookup | KeySource;
  /** The only `iss` accepted. */
  issuer: string;
  /** Accepted `aud` values; when absent `aud` is not compared (the caller must then check it). */
  audience?: string | readonly string[];
  clock: Clock;
  /** Tolerated clock difference on `exp`, `nbf` and `iat`, in seconds (default 5). */
  clockSkewSec?: number;
  /** Algorithms accepted, a subset of ES256 and EdDSA (default both); a key still only verifies its own. */
  algorithms?: readonly MandateAlg[];
  /** Longest token accepted, in bytes (default 4096). */
  maxTokenBytes?: number;
  /** Called by `verifyAsync` on an unknown `kid` (e.g. JwksCache.refreshFor); the verify is then retried once. */
  onUnknownKey?: (kid: string, zoneId: string | undefined) => Promise<unknown>;
}

/** What the caller expects of this mandate. */
export interface MandateExpectation {
  use: MandateUse;
  /** Zone the caller's own routing says this request belongs to; also scopes the key lookup. */
  zoneId?: string;
  /** Resource the request targets; must be one of the mandate's `resources` (exact match). */
  resource?: string;
}

export interface MandateVerifier {
  /** Verifies a mandate synchronously; returns its claims or throws CaracalError with a stable `mandate_*` code. */
  verify(token: unknown, expect: MandateExpectation): MandateClaims;
  /** Like `verify`, but on an unknown `kid` awaits `onUnknownKey` once and retries. */
  verifyAsync(token: unknown, expect: MandateExpectation): Promise<MandateClaims>;
}

type JwtVerify = (token: string) => Record<string, unknown>;

const ALL_ALGS: readonly MandateAlg[] = ['ES256', 'EdDSA'];
const SEGMENT_RE = /^[A-Za-z0-9_-]+$/;
const SIGNATURE_RE = /^[A-Za-z0-9_-]*$/;
// Both algorithms sign 64 bytes: 86 base64url characters whose last one carries 2 bits, its 4 spare bits zero.
// Requiring the canonical form stops a token whose signature differs only in spare bits from verifying.
const SIGNATURE_LENGTH = 86;
const CANONICAL_LAST = new Set(['A', 'Q', 'g', 'w']);
// Header members that would point a verifier at keys of the token's own choosing: never honoured, so refused.
const REFUSED_HEADERS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'] as const;

const FAST_JWT_SIGNATURE_CODES = new Set([
  'FAST_JWT_INVALID_SIGNATURE',
  'FAST_JWT_VERIFY_ERROR',
  'FAST_JWT_MISSING_SIGNATURE',
]);

function parseSegment(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch (e) {
    throw mandateError('mandate_malformed', `Mandate ${what} is not base64url JSON.`, {}, e);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw mandateError('mandate_malformed', `Mandate ${what} is not a JSON object.`);
  }
  return value as Record<string, unknown>;
}

/** A mandate verifier: algorithms pinned, `kid` required, one fast-jwt verifier cached per key, claims checked here. */
export function createMandateVerifier(options: MandateVerifierOptions): MandateVerifier {
  const { issuer, clock } = options;
  const lookup: KeyLookup =
    typeof options.keys === 'function' ? options.keys : options.keys.lookup.bind(options.keys);
  const skewMs = (options.clockSkewSec ?? 5) * 1000;
  const maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const algorithms = new Set<string>(options.algorithms ?? ALL_ALGS);
  for (const alg of algorithms) {
    if (!ALL_ALGS.includes(alg as MandateAlg)) throw new Error(`algorithm ${alg} is not a mandate algorithm`);
  }
  const audiences =
    options.audience === undefined
      ? undefined
      : new Set(typeof options.audience === 'string' ? [options.audience] : options.audience);
  if (!(skewMs >= 0 && skewMs <= 300_000)) throw new Error('clockSkewSec must be between 0 and 300');
  if (!issuer) throw new Error('issuer is required');

  // Weak: a key object dropped by its ring or cache takes its prepared verifier with it.
  const prepared = new WeakMap<VerificationKey, JwtVerify>();

  function verifierFor(key: VerificationKey): JwtVerify {
    let v = prepared.get(key);
    if (!v) {
      let pem: string;
      try {
        pem = publicPem(key.publicJwk);
      } catch (e) {
        throw mandateError('mandate_unknown_key', 'Mandate key cannot be used.', { kid: key.kid }, e);
      }
      // Expiry and not-before are ours to check (with the injected clock); no result cache.
      v = createVerifier({
        key: pem,
        algorithms: [key.alg],
        ignoreExpiration: true,
        ignoreNotBefore: true,
        cache: false,
      }) as JwtVerify;
      prepared.set(key, v);
    }
    return v;
  }

  function verify(token: unknown, expect: MandateExpectation): MandateClaims {
    if (typeof token !== 'string') throw mandateError('mandate_malformed', 'Mandate is not a string.');
    // Length in UTF-16 units: equal to bytes for any base64url token; anything else is refused as malformed.
    if (token.length > maxTokenBytes) {
      throw mandateError('mandate_too_large', `Mandate is longer than ${maxTokenBytes} bytes.`);
    }
    const dot1 = token.indexOf('.');
    const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
    if (dot2 < 0 || token.indexOf('.', dot2 + 1) !== -1) {
      throw mandateError('mandate_malformed', 'Mandate is not a compact JWS of three segments.');
    }
    const headerSegment = token.slice(0, dot1);
    const payloadSegment = token.slice(dot1 + 1, dot2);
    const signature = token.slice(dot2 + 1);
    if (
      !SEGMENT_RE.test(headerSegment) ||
      !SEGMENT_RE.test(payloadSegment) ||
      !SIGNATURE_RE.test(signature)
    ) {
      throw mandateError('mandate_malformed', 'Mandate segments are not base64url.');
    }

    const header = parseSegment(headerSegment, 'header');
    const alg = header.alg;
    if (typeof alg !== 'string') throw mandateError('mandate_malformed', 'Mandate header has no alg.');
    if (!algorithms.has(alg)) {
      throw mandateError('mandate_alg_not_allowed', `Mandate algorithm ${alg.slice(0, 16)} is not allowed.`);
    }
    if (header.typ !== MANDATE_TYP)
      throw mandateError('mandate_malformed', `Mandate typ is not ${MANDATE_TYP}.`);
    for (const name of REFUSED_HEADERS) {
      if (header[name] !== undefined) {
        throw mandateError('mandate_malformed', `Mandate header member ${name} is not accepted.`);
      }
    }
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0) {
      throw mandateError('mandate_kid_missing', 'Mandate header has no kid.');
    }
    const key = lookup(kid, expect.zoneId);
    if (!key) throw mandateError('mandate_unknown_key', 'Mandate key is not known.', { kid });
    if (key.alg !== alg) {
      throw mandateError('mandate_alg_not_allowed', `Mandate algorithm ${alg} is not the key's algorithm.`);
    }
    if (signature.length !== SIGNATURE_LENGTH || !CANONICAL_LAST.has(signature[SIGNATURE_LENGTH - 1]!)) {
      throw mandateError('mandate_bad_signature', 'Mandate signature is invalid.');
    }

    let payload: Record<string, unknown>;
    try {
      payload = verifierFor(key)(token);
    } catch (e) {
      if (e instanceof Error && 'code' in e && typeof e.code === 'string') {
        if (e.code.startsWith('mandate_')) throw e;
        if (FAST_JWT_SIGNATURE_CODES.has(e.code)) {
          throw mandateError('mandate_bad_signature', 'Mandate signature is invalid.', {}, e);
        }
        if (e.code === 'FAST_JWT_INVALID_ALGORITHM') {
          throw mandateError('mandate_alg_not_allowed', 'Mandate algorithm is not allowed.', {}, e);
        }
      }
      throw mandateError('mandate_malformed', 'Mandate could not be decoded.', {}, e);
    }

    const reason = checkClaims(payload);
    if (reason) throw mandateError('mandate_malformed', `Mandate claims are invalid: ${reason}.`);
    if (payload.iss !== issuer)
      throw mandateError('mandate_wrong_issuer', 'Mandate issuer is not trusted here.');
    const now = clock.now();
    if (now >= (payload.exp as number) * 1000 + skewMs) {
      throw mandateError('mandate_expired', 'Mandate has expired.');
    }
    if (now + skewMs < (payload.nbf as number) * 1000 || now + skewMs < (payload.iat as number) * 1000) {
      throw mandateError('mandate_not_yet_valid', 'Mandate is not valid yet.');
    }
    if (payload.use !== expect.use) {
      throw mandateError('mandate_wrong_use', `Mandate is for ${String(payload.use)}, not ${expect.use}.`);
    }
    if (audiences && !audiences.has(payload.aud as string)) {
      throw mandateError('mandate_wrong_audience', 'Mandate audience is not this service.');
    }
    if (expect.zoneId !== undefined && payload.zone_id !== expect.zoneId) {
      throw mandateError('mandate_wrong_zone', 'Mandate belongs to another zone.');
    }
    if (expect.resource !== undefined && !(payload.resources as string[]).includes(expect.resource)) {
      throw mandateError('mandate_wrong_resource', 'Mandate is not bound to this resource.');
    }
    return pickClaims(payload);
  }

  async function verifyAsync(token: unknown, expect: MandateExpectation): Promise<MandateClaims> {
    try {
      return verify(token, expect);
    } catch (e) {
      const kid = (e as { code?: unknown; extras?: { kid?: unknown } }).extras?.kid;
      if (!options.onUnknownKey || (e as { code?: unknown }).code !== 'mandate_unknown_key') throw e;
      if (typeof kid !== 'string') throw e;
      try {
        await options.onUnknownKey(kid, expect.zoneId);
      } catch {
        throw e; // a failed refresh changes nothing: the key is still unknown
      }
      return verify(token, expect);
    }
  }

  return { verify, verifyAsync };
}
