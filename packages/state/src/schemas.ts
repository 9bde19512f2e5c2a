import { z } from 'zod';

/** Input schemas of the control plane, shared by the domain functions and the HTTP routes. */

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** `resource://host.name/path/segments`: lower-case DNS-style authority, unreserved path characters only. */
export const RESOURCE_ID = new RegExp(`^resource://${LABEL}(?:\\.${LABEL})*(?:/[A-Za-z0-9._~-]+)*$`);

export const resourceIdentifier = z
  .string()
  .max(255, 'must be at most 255 characters')
  .regex(
    RESOURCE_ID,
    'must look like resource://host.name/optional/path (lower-case host, no query, no trailing /)',
  )
  .refine(
    (s) =>
      !s
        .slice('resource://'.length)
        .split('/')
        .slice(1)
        .some((seg) => seg === '.' || seg === '..'),
    {
      message: 'must not contain . or .. path segments',
    },
  );

export const zoneId = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'must be 1–63 lower-case letters, digits or hyphens, starting with a letter or digit',
  );

const name = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

export const signingAlg = z.enum(['ES256', 'EdDSA']);

export const createZoneInput = z.strictObject({
  id: zoneId,
  name,
  signing_alg: signingAlg.optional(),
});

export const createApplicationInput = z.strictObject({ name });
export const updateApplicationInput = z.strictObject({
  name: name.optional(),
  status: z.enum(['active', 'disabled']).optional(),
});

const MAX_OVERLAP_SECONDS = 30 * 86_400;
export const rotateSecretInput = z.strictObject({
  /** How long the previous secret keeps working; default 24 h, 0 revokes it at once. */
  overlap_seconds: z.number().int().min(0).max(MAX_OVERLAP_SECONDS).optional(),
});

export const scope = z
  .string()
  .regex(/^[A-Za-z0-9_.:/-]{1,128}$/, 'must be 1–128 characters of letters, digits and _ . : / -');

const hostPattern = z
  .string()
  .regex(
    /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$/,
    'must be a lower-case host name, optionally *.-prefixed and with :port',
  );

const httpUrl = z
  .string()
  .max(2048)
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        return (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password && !u.hash;
      } catch {
        return false;
      }
    },
    { message: 'must be an http(s) URL without credentials or fragment' },
  );

const PATH_PATTERN =
  /^\/(?:(?:[A-Za-z0-9._~-]+|:[A-Za-z_][A-Za-z0-9_]*)(?:\/(?:[A-Za-z0-9._~-]+|:[A-Za-z_][A-Za-z0-9_]*))*)?(?:\/\*)?$/;
export const operation = z.strictObject({
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']),
  /** `/v1/items/:id`, `/v1/files/*` (trailing wildcard), `/` */
  path: z
    .string()
    .max(512)
    .regex(PATH_PATTERN, 'must be /literal/:param segments with an optional trailing /*'),
  scope,
});

const resourceFields = {
  name: name.optional(),
  scopes: z.array(scope).min(1, 'must declare at least one scope').max(100),
  upstream_url: httpUrl,
  allowed_hosts: z.array(hostPattern).min(1).max(50).optional(),
  operations: z.array(operation).max(500).optional(),
  provider_id: z.string().max(64).nullable().optional(),
  max_mandate_ttl_seconds: z.number().int().min(1).max(3600).optional(),
  /** Let the Gateway connect to a loopback/private upstream for this resource (metadata stays refused). */
  allow_private_upstream: z.boolean().optional(),
};

/** Cross-field checks: operations use declared scopes, the upstream host is allowlisted, no duplicates. */
function checkResource(
  r: {
    scopes: string[];
    upstream_url: string;
    allowed_hosts?: string[] | undefined;
    operations?: { method: string; path: string; scope: string }[] | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const declared = new Set(r.scopes);
  if (declared.size !== r.scopes.length)
    ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'must not repeat a scope' });
  r.operations?.forEach((op, i) => {
    if (!declared.has(op.scope)) {
      ctx.addIssue({
        code: 'custom',
        path: ['operations', i, 'scope'],
        message: `scope '${op.scope}' is not declared in scopes`,
      });
    }
  });
  const seen = new Set<string>();
  r.operations?.forEach((op, i) => {
    const k = `${op.method} ${op.path}`;
    if (seen.has(k))
      ctx.addIssue({ code: 'custom', path: ['operations', i], message: `duplicate operation ${k}` });
    seen.add(k);
  });
  if (r.allowed_hosts) {
    let host: string | undefined;
    try {
      host = new URL(r.upstream_url).host;
    } catch {
      return; // reported by upstream_url itself
    }
    if (!r.allowed_hosts.some((p) => hostMatches(p, host))) {
      ctx.addIssue({
        code: 'custom',
        path: ['allowed_hosts'],
        message: `must allow the upstream host '${host}'`,
      });
    }
  }
}

/** Does allowlist entry `pattern` (`host`, `host:port`, `*.domain`) match `host` (URL.host form)? */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    const h = pattern.includes(':') ? host : host.replace(/:\d+$/, '');
    return h.endsWith(suffix) && h.length > suffix.length;
  }
  return pattern.includes(':') ? pattern === host : pattern === host.replace(/:\d+$/, '');
}

export const createResourceInput = z
  .strictObject({ identifier: resourceIdentifier, ...resourceFields })
  .superRefine(checkResource);
export const updateResourceInput = z.strictObject(resourceFields).superRefine(checkResource);

const tokenUrl = z.string().refine(
  (s) => {
    try {
      const u = new URL(s);
      const local = u.hostname === 'localhost' || u.hostname === '127.0.0.1' || u.hostname === '[::1]';
      return (
        (u.protocol === 'https:' || (u.protocol === 'http:' && local)) &&
        !u.username &&
        !u.password &&
        !u.hash
      );
    } catch {
      return false;
    }
  },
  { message: 'must be an https URL (http only for localhost), without credentials or fragment' },
);
const secretValue = z.string().min(1, 'must not be empty').max(8192);
const clientId = z.string().min(1).max(512);

export const providerKinds = {
  static_api_key: {
    config: z.strictObject({
      header_name: z
        .string()
        .regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an HTTP header name')
        .default('authorization'),
      value_prefix: z.string().max(64).default(''),
    }),
    secret: z.strictObject({ api_key: secretValue }),
  },
  oauth2_client_credentials: {
    config: z.strictObject({
      token_url: tokenUrl,
      client_id: clientId,
      scopes: z.array(scope).max(100).default([]),
      audience: z.string().max(512).optional(),
    }),
    secret: z.strictObject({ client_secret: secretValue }),
  },
  oauth2_refresh_token: {
    config: z.strictObject({
      token_url: tokenUrl,
      client_id: clientId,
      scopes: z.array(scope).max(100).default([]),
    }),
    secret: z.strictObject({ refresh_token: secretValue, client_secret: secretValue.optional() }),
  },
} as const;

export type ProviderKind = keyof typeof providerKinds;

export const createProviderInput = z.discriminatedUnion('kind', [
  z.strictObject({
    name,
    kind: z.literal('static_api_key'),
    config: providerKinds.static_api_key.config.default({ header_name: 'authorization', value_prefix: '' }),
    secret: providerKinds.static_api_key.secret,
  }),
  z.strictObject({
    name,
    kind: z.literal('oauth2_client_credentials'),
    config: providerKinds.oauth2_client_credentials.config,
    secret: providerKinds.oauth2_client_credentials.secret,
  }),
  z.strictObject({
    name,
    kind: z.literal('oauth2_refresh_token'),
    config: providerKinds.oauth2_refresh_token.config,
    secret: providerKinds.oauth2_refresh_token.secret,
  }),
]);

/** Config and secret are each replaced whole and checked against the provider's kind. */
export const updateProviderInput = z.strictObject({
  name: name.optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  secret: z.record(z.string(), z.unknown()).optional(),
});

export const policyName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be 1–128 letters, digits or _ . - (e.g. zone.rego)');

export const createPolicyInput = z.strictObject({
  name: policyName,
  source: z
    .string()
    .min(1, 'must not be empty')
    .max(512 * 1024),
});

export const createPolicySetInput = z.strictObject({
  modules: z
    .array(z.strictObject({ name: policyName, version: z.number().int().min(1).max(2_147_483_647) }))
    .min(1, 'must list at least one policy version')
    .max(100)
    .superRefine((mods, ctx) => {
      const seen = new Set<string>();
      mods.forEach((m, i) => {
        if (seen.has(m.name))
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `policy '${m.name}' listed twice` });
        seen.add(m.name);
      });
    }),
});

const MAX_DEPTH = 32;
function depth(v: unknown, d = 0): number {
  if (d > MAX_DEPTH) return d;
  if (Array.isArray(v)) return Math.max(d, ...v.map((x) => depth(x, d + 1)));
  if (v && typeof v === 'object') return Math.max(d, ...Object.values(v).map((x) => depth(x, d + 1)));
  return d;
}

/** The zone's data document (what the policy reads under `data`): a JSON object, nested at most 32 deep. */
export const dataDocumentInput = z.strictObject({
  document: z
    .record(z.string(), z.unknown())
    .refine((v) => depth(v) <= MAX_DEPTH, { message: `must nest at most ${MAX_DEPTH} levels` }),
});

export const rotateSigningKeyInput = z.strictObject({
  alg: signingAlg.optional(),
  /** How long the previous key stays listed (verifiers accept it); default 24 h. */
  retire_after_seconds: z.number().int().min(0).max(MAX_OVERLAP_SECONDS).optional(),
});

export const adminScope = z
  .string()
  .regex(
    /^(?:admin|read|zone:[a-z0-9][a-z0-9-]{0,62}:(?:admin|read))$/,
    "must be 'admin', 'read', 'zone:<id>:admin' or 'zone:<id>:read'",
  );

export const createAdminKeyInput = z.strictObject({
  name,
  scopes: z.array(adminScope).min(1, 'must grant at least one scope').max(50),
});

export const rolloutFreezeInput = z
  .strictObject({ frozen: z.boolean(), reason: z.string().trim().max(500).optional() })
  .refine((v) => !v.frozen || (v.reason !== undefined && v.reason.length > 0), {
    path: ['reason'],
    message: 'is required when freezing',
  });
