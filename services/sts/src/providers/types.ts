/** How the broker authenticates to a token endpoint (RFC 6749 §2.3.1). */
export type ClientAuthMethod = 'basic' | 'post';

/** A fixed API key injected as a header; never refreshed, never calls anything. */
export interface StaticApiKeyConfig {
  kind: 'static_api_key';
  apiKey: string;
  /** Header carrying the key; default `authorization`. */
  headerName?: string;
  /** Prefix before the key, e.g. `Bearer`; none by default. */
  scheme?: string;
}

/** OAuth 2 client credentials grant (RFC 6749 §4.4). */
export interface OAuth2ClientCredentialsConfig {
  kind: 'oauth2_client_credentials';
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  scope?: string;
  /** Sent as `audience` (Auth0, Okta style) when set. */
  audience?: string;
  /** Default `basic`. */
  authMethod?: ClientAuthMethod;
}

/** OAuth 2 refresh token grant (RFC 6749 §6); a rotated refresh token is persisted (sealed) and used next. */
export interface OAuth2RefreshTokenConfig {
  kind: 'oauth2_refresh_token';
  tokenUrl: string;
  clientId: string;
  /** Absent for a public client: only `client_id` is sent. */
  clientSecret?: string;
  /** The refresh token granted at consent; replaced by the stored one once the provider rotates it. */
  refreshToken: string;
  scope?: string;
  /** Default `basic` when there is a secret. */
  authMethod?: ClientAuthMethod;
}

/** A provider's credential configuration, as the control plane stores it (sealed) and the lead maps it. */
export type ProviderConfig = StaticApiKeyConfig | OAuth2ClientCredentialsConfig | OAuth2RefreshTokenConfig;

export type ProviderKind = ProviderConfig['kind'];

/** What the Gateway injects upstream: one header. `expiresAt` (ms epoch) is absent for static keys. */
export interface ProviderCredential {
  kind: ProviderKind;
  headerName: string;
  headerValue: string;
  expiresAt?: number;
}

export type CircuitStateName = 'closed' | 'open' | 'half-open';

/** One provider's health, for /ready and `caracal recover`; no secrets. */
export interface ProviderStatus {
  providerId: string;
  kind: ProviderKind;
  state: CircuitStateName;
  /** Expiry (ms epoch) of the cached token, when one is cached. */
  expiresAt?: number;
  /** The last failed refresh: classified code (e.g. `invalid_grant`, `http_503`, `timeout`) and when. */
  lastError?: { code: string; reason: RefreshFailureReason; at: number };
}

/**
 * `revoked`: the endpoint rejected the credential itself (invalid_grant, invalid_client, unauthorized_client);
 * `rejected`: any other 4xx (misconfiguration); `transient`: 5xx, timeout, network, malformed answer.
 */
export type RefreshFailureReason = 'revoked' | 'rejected' | 'transient';
