import { generateKeyPairSync, type JsonWebKey, randomBytes } from 'node:crypto';

/** Mandate signing algorithms: ES256 (default, fastest here) and EdDSA (Ed25519). */
export type MandateAlg = 'ES256' | 'EdDSA';

/** A zone signing key. The private JWK is sealed at rest by its owner; only the public JWK is ever served. */
export interface SigningKey {
  kid: string;
  alg: MandateAlg;
  privateJwk: JsonWebKey;
  publicJwk: JsonWebKey;
}

/** New signing key with a random, URL-safe `kid`. */
export function generateSigningKey(alg: MandateAlg = 'ES256'): SigningKey {
  const pair =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const kid = randomBytes(12).toString('base64url');
  const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } as JsonWebKey;
  const privateJwk = { ...pair.privateKey.export({ format: 'jwk' }), kid, alg } as JsonWebKey;
  return { kid, alg, privateJwk, publicJwk };
}
