import type {
  ClientAuthMethod,
  OAuth2ClientCredentialsConfig,
  OAuth2RefreshTokenConfig,
  RefreshFailureReason,
} from './types.js';

/** A token endpoint answered with an error, or not at all. Message and code carry no secret. */
export class TokenEndpointError extends Error {
  constructor(
    readonly reason: RefreshFailureReason,
    /** Classified code: the OAuth `error` value, `http_<status>`, `timeout`, `network`, `malformed_response`. */
    readonly code: string,
    readonly httpStatus?: number,
  ) {
    super(`token endpoint failed: ${code}`);
    this.name = 'TokenEndpointError';
  }
}

/** The token as stored (sealed) and cached. */
export interface TokenSet {
  accessToken: string;
  tokenType: string;
  refreshToken?: string;
}

export interface TokenGrant {
  token: TokenSet;
  /** Seconds, as the endpoint said; undefined when it did not say. */
  expiresIn?: number;
}

export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
) => Promise<{ status: number; text(): Promise<string> }>;

const REVOKED_ERRORS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client']);
// Only registered codes are repeated: a server may echo anything (our secret included) in `error`.
const KNOWN_OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'access_denied',
  'server_error',
  'temporarily_unavailable',
  'slow_down',
]);
const MAX_BODY = 64 * 1024;

// RFC 6749 §2.3.1: client id and secret are form-urlencoded before base64.
const formEncode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');

/** Call the token endpoint once (client credentials or refresh grant), with a hard timeout. */
export async function requestToken(
  fetchFn: FetchLike,
  config: OAuth2ClientCredentialsConfig | OAuth2RefreshTokenConfig,
  refreshToken: string | undefined,
  timeoutMs: number,
): Promise<TokenGrant> {
  const form = new URLSearchParams();
  if (config.kind === 'oauth2_client_credentials') {
    form.set('grant_type', 'client_credentials');
    if (config.audience) form.set('audience', config.audience);
  } else {
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', refreshToken ?? config.refreshToken);
  }
  if (config.scope) form.set('scope', config.scope);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  const method: ClientAuthMethod = config.authMethod ?? 'basic';
  if (config.clientSecret !== undefined && method === 'basic') {
    const pair = `${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  } else {
    form.set('client_id', config.clientId);
    if (config.clientSecret !== undefined) form.set('client_secret', config.clientSecret);
  }

  const signal = AbortSignal.timeout(timeoutMs);
  let status: number;
  let text: string;
  try {
    const res = await fetchFn(config.tokenUrl, { method: 'POST', headers, body: form.toString(), signal });
    status = res.status;
    text = await res.text();
  } catch (err) {
    // Never rethrow the cause: undici errors can echo the request.
    const timedOut = signal.aborted || (err as Error)?.name === 'TimeoutError';
    throw new TokenEndpointError('transient', timedOut ? 'timeout' : 'network');
  }
  if (text.length > MAX_BODY) throw new TokenEndpointError('transient', 'malformed_response', status);

  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      body = parsed as Record<string, unknown>;
  } catch {
    body = undefined;
  }

  if (status < 200 || status >= 300) {
    const oauthError =
      typeof body?.error === 'string' && KNOWN_OAUTH_ERRORS.has(body.error) ? body.error : undefined;
    if (status >= 400 && status < 500) {
      if (oauthError && REVOKED_ERRORS.has(oauthError))
        throw new TokenEndpointError('revoked', oauthError, status);
      // 408 and 429 are the endpoint asking us to come back later, not a configuration problem.
      const reason = status === 408 || status === 429 ? 'transient' : 'rejected';
      throw new TokenEndpointError(reason, oauthError ?? `http_${status}`, status);
    }
    throw new TokenEndpointError('transient', `http_${status}`, status);
  }

  const accessToken = body?.access_token;
  if (typeof accessToken !== 'string' || accessToken.length === 0) {
    throw new TokenEndpointError('transient', 'malformed_response', status);
  }
  const rawType = typeof body?.token_type === 'string' ? body.token_type : 'Bearer';
  const tokenType = rawType.toLowerCase() === 'bearer' ? 'Bearer' : rawType;
  const expiresIn = Number(body?.expires_in);
  const token: TokenSet = { accessToken, tokenType };
  if (typeof body?.refresh_token === 'string' && body.refresh_token) token.refreshToken = body.refresh_token;
  return { token, expiresIn: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : undefined };
}
