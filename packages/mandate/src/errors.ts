import { CaracalError } from '@caracal/core';

/** Every code `verify` can throw; stable, documented, mapped to problem+json by the caller. */
export const MANDATE_ERROR_CODES = [
  'mandate_malformed',
  'mandate_too_large',
  'mandate_kid_missing',
  'mandate_unknown_key',
  'mandate_alg_not_allowed',
  'mandate_bad_signature',
  'mandate_expired',
  'mandate_not_yet_valid',
  'mandate_wrong_issuer',
  'mandate_wrong_use',
  'mandate_wrong_audience',
  'mandate_wrong_zone',
  'mandate_wrong_resource',
] as const;

/** One of the stable verification failure codes. */
export type MandateErrorCode = (typeof MANDATE_ERROR_CODES)[number];

// The token is not acceptable at all (401) versus valid but not for this request (403).
const FORBIDDEN: ReadonlySet<MandateErrorCode> = new Set([
  'mandate_wrong_use',
  'mandate_wrong_zone',
  'mandate_wrong_resource',
]);

/** A verification failure as the product's single error type. */
export function mandateError(
  code: MandateErrorCode,
  detail: string,
  extras: Record<string, unknown> = {},
  cause?: unknown,
): CaracalError {
  return new CaracalError(code, FORBIDDEN.has(code) ? 403 : 401, detail, extras, cause);
}

/** A minting request the signer refuses (bad claims, lifetime over its cap). */
export function claimsInvalid(detail: string): CaracalError {
  return new CaracalError('mandate_claims_invalid', 400, `Mandate claims are invalid: ${detail}.`);
}
