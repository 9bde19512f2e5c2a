import { randomUUID } from 'node:crypto';
import type { Clock } from '@caracal/core';
import { createSigner } from 'fast-jwt';
import {
  checkBodyClaims,
  DEFAULT_MAX_TOKEN_BYTES,
  isClaimString,
  MANDATE_TTL_CAP_SEC,
  MANDATE_TTL_DEFAULT_SEC,
  type MandateClaims,
  type MandateDraft,
} from './claims.js';
import { claimsInvalid } from './errors.js';
import { privatePem } from './jwk.js';
import type { SigningKey } from './keys.js';

/** The JOSE `typ` every mandate carries; verifiers refuse any other. */
export const MANDATE_TYP = 'caracal-mandate+jwt';

export interface MandateSignerOptions {
  /** `iss` of every mandate (the STS's issuer URL for the zone). */
  issuer: string;
  clock: Clock;
  /** Refuse to mint a token longer than this (default 4096, the verifiers' default bound). */
  maxTokenBytes?: number;
}

/** A minted mandate: the compact JWS and the claims it carries (for audit and replay bookkeeping). */
export interface MintedMandate {
  token: string;
  claims: MandateClaims;
}

export interface MandateSigner {
  readonly kid: string;
  readonly alg: SigningKey['alg'];
  /** Signs a mandate; throws `mandate_claims_invalid` (400) on bad claims or a lifetime over its cap. */
  sign(draft: MandateDraft): string;
  /** Like `sign`, also returning the claims that were signed. */
  mint(draft: MandateDraft): MintedMandate;
}

/** A synchronous mandate signer for one key (fast-jwt on node:crypto, prepared once per key). */
export function createMandateSigner(key: SigningKey, options: MandateSignerOptions): MandateSigner {
  const { issuer, clock } = options;
  const maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  if (!isClaimString(issuer)) throw claimsInvalid('issuer must be a non-empty string');
  const signJwt = createSigner({
    key: privatePem(key.privateJwk),
    algorithm: key.alg,
    kid: key.kid,
    header: { alg: key.alg, typ: MANDATE_TYP },
  });

  function mint(draft: MandateDraft): MintedMandate {
    const reason = checkBodyClaims(draft as unknown as Record<string, unknown>);
    if (reason) throw claimsInvalid(reason);
    const ttl = draft.ttlSec ?? MANDATE_TTL_DEFAULT_SEC[draft.use];
    if (!Number.isSafeInteger(ttl) || ttl <= 0) throw claimsInvalid('ttlSec must be a positive integer');
    if (ttl > MANDATE_TTL_CAP_SEC[draft.use]) {
      throw claimsInvalid(
        `ttlSec ${ttl} exceeds the ${draft.use} cap of ${MANDATE_TTL_CAP_SEC[draft.use]} s`,
      );
    }
    if (draft.jti !== undefined && !isClaimString(draft.jti))
      throw claimsInvalid('jti must be a non-empty string');
    const now = Math.floor(clock.now() / 1000);
    const claims: MandateClaims = {
      iss: issuer,
      sub: draft.sub,
      sub_type: draft.sub_type,
      aud: draft.aud,
      zone_id: draft.zone_id,
      client_id: draft.client_id,
      use: draft.use,
      resources: draft.resources.slice(),
      scope: draft.scope,
      jti: draft.jti ?? randomUUID(),
      iat: now,
      nbf: now,
      exp: now + ttl,
    };
    if (draft.sid !== undefined) claims.sid = draft.sid;
    if (draft.did !== undefined) claims.did = draft.did;
    const token = signJwt(claims);
    // A token the verifiers would refuse unread is a minting error, not something to hand out.
    if (token.length > maxTokenBytes) throw claimsInvalid(`mandate would be ${token.length} bytes`);
    return { token, claims };
  }

  return {
    kid: key.kid,
    alg: key.alg,
    mint,
    sign: (draft) => mint(draft).token,
  };
}

/** A signer that always signs with the ring's current key, preparing a new fast-jwt signer once per rotation. */
export function createKeyRingSigner(
  ring: { current(): SigningKey },
  options: MandateSignerOptions,
): MandateSigner {
  let key = ring.current();
  let signer = createMandateSigner(key, options);
  const active = () => {
    const now = ring.current();
    if (now !== key) {
      signer = createMandateSigner(now, options);
      key = now;
    }
    return signer;
  };
  return {
    get kid() {
      return active().kid;
    },
    get alg() {
      return active().alg;
    },
    mint: (draft) => active().mint(draft),
    sign: (draft) => active().mint(draft).token,
  };
}
