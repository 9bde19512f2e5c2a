export { createProviderBroker, type ProviderBroker, type ProviderBrokerOptions } from './broker.js';
export { type FetchLike, TokenEndpointError } from './token-endpoint.js';
export { readProviderTokenHealth, type StoredProviderHealth } from './token-store.js';
export type {
  CircuitStateName,
  ClientAuthMethod,
  OAuth2ClientCredentialsConfig,
  OAuth2RefreshTokenConfig,
  ProviderConfig,
  ProviderCredential,
  ProviderKind,
  ProviderStatus,
  RefreshFailureReason,
  StaticApiKeyConfig,
} from './types.js';
