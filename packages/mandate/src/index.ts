// @caracal/mandate: mandate claims, signing (fast-jwt, hot path), verification, key rings, JWKS, the Gateway's JWKS cache.

/** Claim types, lifetime caps/defaults per use class, size bounds, and the claims validator. */
export {
  checkClaims,
  DEFAULT_MAX_TOKEN_BYTES,
  MANDATE_MAX_TTL_SEC,
  MANDATE_TTL_CAP_SEC,
  MANDATE_TTL_DEFAULT_SEC,
  MAX_RESOURCES,
  type MandateClaims,
  type MandateDraft,
  type MandateUse,
  type SubjectType,
} from './claims.js';
/** The stable `mandate_*` codes verification throws (as CaracalError). */
export { MANDATE_ERROR_CODES, type MandateErrorCode } from './errors.js';
/** JWKS types, public-JWK export, JWK validation, and a static key source. */
export {
  type Jwks,
  type KeyLookup,
  type KeySource,
  type PublicJwk,
  staticKeys,
  toPublicJwk,
  type VerificationKey,
  verificationKeyFromJwk,
} from './jwk.js';
/** The Gateway's cache of remote zone JWKS: rate-limited refresh, no stampede, last good set kept on failure. */
export { createJwksCache, type JwksCache, type JwksCacheOptions, type JwksZoneStatus } from './jwks-cache.js';
/** A zone's current signing key plus rotated-out keys until their last mandate expires; serves the JWKS. */
export {
  createKeyRing,
  type KeyRing,
  type KeyRingOptions,
  type KeyRingState,
  type RetiringKey,
} from './key-ring.js';
/** Signing keys: `generateSigningKey`, `SigningKey`, `MandateAlg`. */
export * from './keys.js';
/** Synchronous mandate signing with fast-jwt, prepared once per key (or once per rotation of a ring). */
export {
  createKeyRingSigner,
  createMandateSigner,
  MANDATE_TYP,
  type MandateSigner,
  type MandateSignerOptions,
  type MintedMandate,
} from './signer.js';
/** Synchronous mandate verification: size bound, pinned algorithms, kid required, claims checked by us. */
export {
  createMandateVerifier,
  type MandateExpectation,
  type MandateVerifier,
  type MandateVerifierOptions,
} from './verifier.js';
