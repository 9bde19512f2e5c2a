import { CaracalError } from '@caracal/core';

/** OAuth 2.0 error codes the token endpoint answers with (RFC 6749 §5.2, RFC 8693 §2.2.2). */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'invalid_target'
  | 'invalid_scope'
  | 'access_denied'
  | 'interaction_required'
  | 'temporarily_unavailable';

const STATUS: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unsupported_grant_type: 400,
  invalid_target: 400,
  invalid_scope: 400,
  access_denied: 403,
  interaction_required: 403,
  temporarily_unavailable: 503,
};

/**
 * An OAuth error as problem+json: `code` and the OAuth members `error` / `error_description` carry
 * the same value, so OAuth clients and problem+json clients both read it.
 */
export function oauthError(
  error: OAuthErrorCode,
  description: string,
  extras: Record<string, unknown> = {},
  status: number = STATUS[error],
) {
  return new CaracalError(error, status, description, {
    error,
    error_description: description,
    ...extras,
  });
}
