import type { Migration } from '@caracal/store';

/**
 * Brokered provider tokens, one row per provider: the current token (sealed), its expiry, and the lease that
 * lets exactly one replica at a time call the provider's token endpoint.
 */
export const stsProviderTokensMigration: Migration = {
  version: 3001,
  name: 'sts_provider_tokens',
  sql: `
CREATE TABLE sts_provider_tokens (
  provider_id text PRIMARY KEY,
  -- keyed digest of the provider config the token was obtained with; a changed config ignores the row
  config_digest text,
  -- keyring.seal(JSON {accessToken, tokenType, refreshToken?}, 'provider-token:<id>'); never plaintext
  sealed_token text,
  expires_at timestamptz,
  -- bumped on every stored token, so a claim can tell that another replica refreshed in the meantime
  generation bigint NOT NULL DEFAULT 0,
  lease_owner text,
  lease_until timestamptz NOT NULL DEFAULT 'epoch',
  -- classified error code only (e.g. invalid_grant, http_503, timeout), never a response body
  last_error text,
  last_error_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
};
