import { createPrivateKey, createPublicKey, type JsonWebKey } from 'node:crypto';
import type { MandateAlg } from './keys.js';

/** A public key a verifier trusts, bound to exactly one algorithm. `SigningKey` satisfies it. */
export interface VerificationKey {
  kid: string;
  alg: MandateAlg;
  publicJwk: JsonWebKey;
}

/** A public JWK as served in a JWKS document. */
export type PublicJwk = JsonWebKey & { kid: string; alg: MandateAlg; use: 'sig' };

/** A JWK Set document (`GET /.well-known/jwks.json`). */
export interface Jwks {
  keys: PublicJwk[];
}

/** Finds the key for a `kid`; `zoneId` is the zone the caller expects (from its own routing, never the token). */
export type KeyLookup = (kid: string, zoneId: string | undefined) => VerificationKey | undefined;

/** Anything that can find verification keys by `kid` (a KeyRing, a JwksCache, staticKeys). */
export interface KeySource {
  lookup: KeyLookup;
}

/** The algorithm a JWK's key type binds it to, or undefined for keys mandates never use. */
function algOfJwk(jwk: JsonWebKey): MandateAlg | undefined {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

/** Only the public members of a JWK (drops `d` and anything else), with `kid`, `alg` and `use`. */
export function toPublicJwk(key: VerificationKey): PublicJwk {
  const { kty, crv, x, y } = key.publicJwk;
  const out = { kty, crv, x } as PublicJwk;
  if (y !== undefined) out.y = y;
  out.kid = key.kid;
  out.alg = key.alg;
  out.use = 'sig';
  return out;
}

/** Validates one JWK from a JWKS (shape, curve, point on curve, `alg` agreeing with the key type). Throws on anything off. */
export function verificationKeyFromJwk(jwk: unknown): VerificationKey {
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) throw new Error('JWK is not an object');
  const j = jwk as JsonWebKey & { kid?: unknown; alg?: unknown; use?: unknown };
  if (typeof j.kid !== 'string' || j.kid.length === 0 || j.kid.length > 256)
    throw new Error('JWK kid missing');
  const alg = algOfJwk(j);
  if (!alg) throw new Error(`JWK ${j.kid} is not a P-256 or Ed25519 key`);
  if (j.alg !== undefined && j.alg !== alg)
    throw new Error(`JWK ${j.kid} alg ${String(j.alg)} disagrees with its key`);
  if (j.use !== undefined && j.use !== 'sig') throw new Error(`JWK ${j.kid} is not a signing key`);
  const key: VerificationKey = { kid: j.kid, alg, publicJwk: {} };
  key.publicJwk = toPublicJwk({ kid: j.kid, alg, publicJwk: j });
  createPublicKey({ key: key.publicJwk, format: 'jwk' }); // throws when the point is not on the curve
  return key;
}

/** SPKI PEM of a public JWK (what fast-jwt takes). */
export function publicPem(jwk: JsonWebKey): string {
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
}

/** PKCS#8 PEM of a private JWK (what fast-jwt takes). */
export function privatePem(jwk: JsonWebKey): string {
  return createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** A key source over a fixed list of keys or a JWKS document (tests, single-process setups). */
export function staticKeys(keys: readonly VerificationKey[] | Jwks): KeySource {
  const list = Array.isArray(keys) ? keys : (keys as Jwks).keys.map(verificationKeyFromJwk);
  const byKid = new Map<string, VerificationKey>();
  for (const k of list) byKid.set(k.kid, k);
  return { lookup: (kid) => byKid.get(kid) };
}
