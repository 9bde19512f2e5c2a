/** Who a mandate speaks for. */
export type SubjectType = 'application' | 'agent' | 'session';

/** What a mandate may be presented for; each class has its own lifetime cap. */
export type MandateUse = 'session' | 'gateway' | 'resource';

/** The signed claims of a mandate (times are seconds since the epoch). */
export interface MandateClaims {
  iss: string;
  sub: string;
  sub_type: SubjectType;
  aud: string;
  zone_id: string;
  client_id: string;
  use: MandateUse;
  /** `resource://…` identifiers the mandate is bound to. */
  resources: string[];
  /** Space-delimited scope tokens (RFC 6749 §3.3). */
  scope: string;
  sid?: string;
  did?: string;
  jti: string;
  iat: number;
  nbf: number;
  exp: number;
}

/** What a caller supplies to mint a mandate; the signer adds `iss`, `jti` (unless given) and the times. */
export type MandateDraft = Omit<MandateClaims, 'iss' | 'jti' | 'iat' | 'nbf' | 'exp'> & {
  jti?: string;
  /** Lifetime in seconds; defaults per use class and may not exceed its cap. */
  ttlSec?: number;
};

/** Longest lifetime a mandate of each use class may have, in seconds. */
export const MANDATE_TTL_CAP_SEC: Readonly<Record<MandateUse, number>> = Object.freeze({
  resource: 15 * 60,
  gateway: 15 * 60,
  session: 60 * 60,
});

/** Lifetime given when the caller asks for none, in seconds. */
export const MANDATE_TTL_DEFAULT_SEC: Readonly<Record<MandateUse, number>> = Object.freeze({
  resource: 60,
  gateway: 120,
  session: 15 * 60,
});

/** Longest lifetime of any mandate: how long a rotated-out key must stay verifiable. */
export const MANDATE_MAX_TTL_SEC = Math.max(...Object.values(MANDATE_TTL_CAP_SEC));

/** Default bound on a token's length: verifiers refuse longer tokens before parsing, signers refuse to mint them. */
export const DEFAULT_MAX_TOKEN_BYTES = 4096;

/** Most resources one mandate may name; keeps tokens under the size bound. */
export const MAX_RESOURCES = 32;

const RESOURCE_PREFIX = 'resource://';
const MAX_STRING = 512;
// RFC 6749 §3.3 scope-token characters, single spaces between tokens; the empty scope is allowed.
const SCOPE_RE = /^(?:[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*)?$/;

const isUse = (v: unknown): v is MandateUse => v === 'resource' || v === 'gateway' || v === 'session';
const isSubType = (v: unknown): v is SubjectType => v === 'agent' || v === 'application' || v === 'session';
/** A non-empty string claim of bounded length (ids, issuer, audience). */
export const isClaimString = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= MAX_STRING;
const isId = isClaimString;
const isTime = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Why the non-time claims are unacceptable, or null when they are fine. Hand-written: it is on the hot path. */
export function checkBodyClaims(c: Record<string, unknown>): string | null {
  if (!isId(c.sub)) return 'sub must be a non-empty string';
  if (!isSubType(c.sub_type)) return 'sub_type must be application, agent or session';
  if (!isId(c.aud)) return 'aud must be a non-empty string';
  if (!isId(c.zone_id)) return 'zone_id must be a non-empty string';
  if (!isId(c.client_id)) return 'client_id must be a non-empty string';
  if (!isUse(c.use)) return 'use must be session, gateway or resource';
  const resources = c.resources;
  if (!Array.isArray(resources) || resources.length > MAX_RESOURCES) {
    return `resources must be an array of at most ${MAX_RESOURCES} entries`;
  }
  for (const r of resources) {
    if (typeof r !== 'string' || r.length <= RESOURCE_PREFIX.length || r.length > MAX_STRING) {
      return 'each resource must be a resource:// identifier';
    }
    if (!r.startsWith(RESOURCE_PREFIX)) return 'each resource must be a resource:// identifier';
  }
  if (c.use === 'resource' && resources.length === 0) return 'a resource mandate must name a resource';
  if (typeof c.scope !== 'string' || c.scope.length > 4 * MAX_STRING || !SCOPE_RE.test(c.scope)) {
    return 'scope must be space-delimited scope tokens';
  }
  if (c.sid !== undefined && !isId(c.sid)) return 'sid must be a non-empty string when present';
  if (c.did !== undefined && !isId(c.did)) return 'did must be a non-empty string when present';
  return null;
}

/** Why a whole claims set is unacceptable (shape, times and lifetime cap), or null when it is fine. */
export function checkClaims(c: Record<string, unknown>): string | null {
  if (!isId(c.iss)) return 'iss must be a non-empty string';
  if (!isId(c.jti)) return 'jti must be a non-empty string';
  const body = checkBodyClaims(c);
  if (body) return body;
  if (!isTime(c.iat) || !isTime(c.nbf) || !isTime(c.exp)) return 'iat, nbf and exp must be integer seconds';
  if (c.exp <= c.nbf || c.nbf < c.iat) return 'times must satisfy iat <= nbf < exp';
  if (c.exp - c.iat > MANDATE_TTL_CAP_SEC[c.use as MandateUse]) return 'lifetime exceeds the use class cap';
  return null;
}

/** A fresh claims object holding only the known claims (drops anything else the payload carried). */
export function pickClaims(c: Record<string, unknown>): MandateClaims {
  const out: MandateClaims = {
    iss: c.iss as string,
    sub: c.sub as string,
    sub_type: c.sub_type as SubjectType,
    aud: c.aud as string,
    zone_id: c.zone_id as string,
    client_id: c.client_id as string,
    use: c.use as MandateUse,
    resources: (c.resources as string[]).slice(),
    scope: c.scope as string,
    jti: c.jti as string,
    iat: c.iat as number,
    nbf: c.nbf as number,
    exp: c.exp as number,
  };
  if (c.sid !== undefined) out.sid = c.sid as string;
  if (c.did !== undefined) out.did = c.did as string;
  return out;
}
