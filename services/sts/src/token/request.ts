import { oauthError } from './errors.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The only subject token type this STS accepts: a session mandate it issued itself. */
export const SESSION_TOKEN_TYPE = 'urn:caracal:params:oauth:token-type:session-mandate';

/** A parsed, validated token-exchange request. */
export interface TokenRequest {
  zoneId: string;
  applicationId: string;
  clientSecret: string;
  subjectToken?: string;
  resources: string[];
  scopes: string[];
  ttlSeconds?: number;
  sessionId?: string;
  delegationId?: string;
  /** An approved approval from an earlier `interaction_required` answer. */
  approvalId?: string;
}

const SINGLETONS = [
  'grant_type',
  'zone_id',
  'application_id',
  'client_secret',
  'subject_token',
  'subject_token_type',
  'scope',
  'ttl_seconds',
  'session_id',
  'delegation_id',
  'approval_id',
] as const;
const ALLOWED = new Set<string>([...SINGLETONS, 'resource']);

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/; // RFC 6749 scope-token
/** resource://<name>[/<path>], no query, fragment, whitespace, dot segments or empty segments. */
export const RESOURCE = /^resource:\/\/[a-z0-9][a-z0-9._-]{0,62}(\/(?!\.\.?(\/|$))[A-Za-z0-9._~-]+)*$/;
const MAX_RESOURCES = 16;
const MAX_SCOPES = 32;

type FormBody = Record<string, string | string[]>;

/** Validate the form body of POST /oauth/2/token; every problem is an OAuth error, never a 500. */
export function parseTokenRequest(body: unknown, query: Record<string, unknown> | undefined): TokenRequest {
  if (query && Object.keys(query).length > 0) {
    throw oauthError('invalid_request', 'Parameters must be sent in the form body, not the query string.');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw oauthError('invalid_request', 'The body must be application/x-www-form-urlencoded.');
  }
  const form = body as FormBody;
  for (const key of Object.keys(form)) {
    if (!ALLOWED.has(key)) throw oauthError('invalid_request', `Unknown parameter '${truncate(key)}'.`);
  }
  const one = (name: (typeof SINGLETONS)[number]): string | undefined => {
    const v = form[name];
    if (Array.isArray(v)) throw oauthError('invalid_request', `Parameter '${name}' appears more than once.`);
    return v === undefined || v === '' ? undefined : v;
  };
  const required = (name: (typeof SINGLETONS)[number]): string => {
    const v = one(name);
    if (v === undefined) throw oauthError('invalid_request', `Parameter '${name}' is required.`);
    return v;
  };

  const grantType = required('grant_type');
  if (grantType !== TOKEN_EXCHANGE_GRANT) {
    throw oauthError('unsupported_grant_type', `Only grant_type=${TOKEN_EXCHANGE_GRANT} is supported.`);
  }
  const zoneId = required('zone_id');
  const applicationId = required('application_id');
  const clientSecret = required('client_secret');
  if (!ID.test(zoneId)) throw oauthError('invalid_request', 'zone_id is malformed.');
  if (!ID.test(applicationId)) throw oauthError('invalid_client', 'Client authentication failed.');
  if (clientSecret.length > 256) throw oauthError('invalid_client', 'Client authentication failed.');

  const subjectToken = one('subject_token');
  const subjectTokenType = one('subject_token_type');
  if ((subjectToken === undefined) !== (subjectTokenType === undefined)) {
    throw oauthError('invalid_request', 'subject_token and subject_token_type go together.');
  }
  if (subjectTokenType !== undefined && subjectTokenType !== SESSION_TOKEN_TYPE) {
    throw oauthError('invalid_request', `subject_token_type must be ${SESSION_TOKEN_TYPE}.`);
  }
  if (subjectToken !== undefined && subjectToken.length > 4096) {
    throw oauthError('invalid_grant', 'subject_token is too large.');
  }

  const rawResources =
    form.resource === undefined ? [] : Array.isArray(form.resource) ? form.resource : [form.resource];
  if (rawResources.length === 0) throw oauthError('invalid_target', 'At least one resource is required.');
  if (rawResources.length > MAX_RESOURCES)
    throw oauthError('invalid_target', `At most ${MAX_RESOURCES} resources.`);
  for (const r of rawResources) {
    if (!RESOURCE.test(r))
      throw oauthError('invalid_target', `Resource '${truncate(r)}' is not a resource:// identifier.`);
  }
  const resources = [...new Set(rawResources)];

  const scopeParam = one('scope');
  if (scopeParam === undefined) throw oauthError('invalid_scope', 'Parameter scope is required.');
  const scopes = [...new Set(scopeParam.split(' ').filter(Boolean))];
  if (scopes.length === 0 || scopes.length > MAX_SCOPES || !scopes.every((s) => SCOPE.test(s))) {
    throw oauthError('invalid_scope', 'scope must be 1 to 32 space-separated scope tokens.');
  }

  const ttl = one('ttl_seconds');
  let ttlSeconds: number | undefined;
  if (ttl !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(ttl))
      throw oauthError('invalid_request', 'ttl_seconds must be a positive integer.');
    ttlSeconds = Number(ttl);
  }
  const approvalId = one('approval_id');
  if (approvalId !== undefined && !ID.test(approvalId))
    throw oauthError('invalid_request', 'approval_id is malformed.');
  const sessionId = one('session_id');
  const delegationId = one('delegation_id');
  if (sessionId !== undefined && !ID.test(sessionId))
    throw oauthError('invalid_request', 'session_id is malformed.');
  if (delegationId !== undefined && !ID.test(delegationId)) {
    throw oauthError('invalid_request', 'delegation_id is malformed.');
  }

  return {
    zoneId,
    applicationId,
    clientSecret,
    resources,
    scopes,
    ...(subjectToken !== undefined ? { subjectToken } : {}),
    ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
    ...(sessionId !== undefined ? { sessionId } : {}),
    ...(delegationId !== undefined ? { delegationId } : {}),
    ...(approvalId !== undefined ? { approvalId } : {}),
  };
}

function truncate(s: string): string {
  const clean = s.replace(/[^\x20-\x7E]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}
