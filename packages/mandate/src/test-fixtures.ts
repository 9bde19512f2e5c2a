// Shared by this package's tests only (not exported from index.ts).
import { createHmac, createPrivateKey, sign } from 'node:crypto';
import { ManualClock } from '@caracal/core';
import type { MandateDraft } from './claims.js';
import type { SigningKey } from './keys.js';
import { MANDATE_TYP } from './signer.js';

export const ISSUER = 'https://sts.caracal.test/zones/z1';
export const AUDIENCE = 'caracal-gateway';

export const newClock = () => new ManualClock(Date.UTC(2026, 10, 23, 12, 0, 0));

export function draft(over: Partial<MandateDraft> = {}): MandateDraft {
  return {
    sub: 'agent-7',
    sub_type: 'agent',
    aud: AUDIENCE,
    zone_id: 'z1',
    client_id: 'app-1',
    use: 'resource',
    resources: ['resource://github/repos'],
    scope: 'repo:read issues:write',
    ...over,
  };
}

export const b64 = (v: unknown) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** The compact JWS of an exact signing input, signed with the key's real private key. */
export function signInput(key: SigningKey, input: string): string {
  const pk = createPrivateKey({ key: key.privateJwk, format: 'jwk' });
  const sig =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: pk, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), pk);
  return `${input}.${sig.toString('base64url')}`;
}

/** A compact JWS with any header and payload, signed with the key (or left unsigned). */
export function craft(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key?: SigningKey,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return key ? signInput(key, input) : `${input}.`;
}

/** HS256 over the input with an arbitrary secret (the classic key-confusion forgery). */
export function craftHs256(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: string,
) {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Claims as our signer would produce them at `nowSec`. */
export function claimsAt(nowSec: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const { ttlSec: _t, ...body } = draft();
  return { iss: ISSUER, ...body, jti: 'jti-1', iat: nowSec, nbf: nowSec, exp: nowSec + 60, ...over };
}

export const headerFor = (key: SigningKey, over: Record<string, unknown> = {}) => ({
  alg: key.alg,
  typ: MANDATE_TYP,
  kid: key.kid,
  ...over,
});
