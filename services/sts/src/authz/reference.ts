/**
 * The decision contract written by hand in TypeScript: the oracle the Rego contract is tested against
 * and the floor the policy benchmark measures it against. Keep it in step with contract.ts.
 */
export interface AuthzGrant {
  id: string;
  resource: string;
  scopes: string[];
  approval_tier?: string;
}

export interface AuthzData {
  app_ids: Record<string, boolean>;
  grants: Record<string, AuthzGrant[]>;
  confinement?: Record<string, string[]>;
  restrict?: { id: string; resource: string; scopes: string[]; reason?: string }[];
  risk?: { hold_above?: number; deny_above?: number };
  approval_tiers?: Record<string, { requires_approval: boolean }>;
}

export interface AuthzInput {
  app_id: string;
  resource: string;
  scopes: string[];
  session?: { id?: string; labels?: string[] };
  risk_score?: number;
  approved_tiers?: string[];
}

export interface AuthzResult {
  decision: 'allow' | 'deny' | 'hold';
  reasons: string[];
  determining_policies: string[];
  diagnostics: Record<string, string[]>;
}

const globCache = new Map<string, RegExp>();

/** OPA's glob.match with delimiter "/": `*` stays within a segment, `**` crosses segments, `?` one char. */
export function globMatch(pattern: string, value: string): boolean {
  let re = globCache.get(pattern);
  if (!re) {
    let src = '';
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i]!;
      if (c === '*' && pattern[i + 1] === '*') {
        src += '.*';
        i++;
      } else if (c === '*') src += '[^/]*';
      else if (c === '?') src += '[^/]';
      else src += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    re = new RegExp(`^${src}$`);
    globCache.set(pattern, re);
  }
  return re.test(value);
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

export function decideReference(input: AuthzInput, data: AuthzData): AuthzResult {
  const matching = (data.grants[input.app_id] ?? []).filter((g) => globMatch(g.resource, input.resource));
  const covered = new Set(matching.flatMap((g) => g.scopes));
  const uncovered = input.scopes.filter((s) => !covered.has(s));
  const deny: string[] = [];
  const known = data.app_ids[input.app_id] === true;
  if (!known) deny.push('unknown_application');
  if (input.scopes.length === 0) deny.push('no_scopes_requested');
  if (known && matching.length === 0) deny.push('no_matching_grant');
  if (matching.length > 0 && uncovered.length > 0) deny.push('scope_not_granted');
  const labels = input.session?.labels ?? [];
  const confined = Object.entries(data.confinement ?? {}).some(([prefix, cap]) =>
    labels.some((l) => l.startsWith(prefix) && input.scopes.some((s) => !cap.includes(s))),
  );
  if (confined) deny.push('session_confined');
  const restricted = (data.restrict ?? [])
    .filter((r) => globMatch(r.resource, input.resource) && input.scopes.some((s) => r.scopes.includes(s)))
    .map((r) => r.id);
  if (restricted.length > 0) deny.push('restricted');
  const risk = input.risk_score;
  const denyAbove = data.risk?.deny_above;
  const holdAbove = data.risk?.hold_above;
  if (risk !== undefined && denyAbove !== undefined && risk > denyAbove) deny.push('risk_too_high');
  const determining = sorted([...matching.map((g) => g.id), ...restricted]);
  if (deny.length > 0) {
    return {
      decision: 'deny',
      reasons: sorted(deny),
      determining_policies: determining,
      diagnostics: { uncovered_scopes: sorted(uncovered) },
    };
  }
  const approved = input.approved_tiers ?? [];
  const pending = matching
    .filter(
      (g) =>
        g.approval_tier !== undefined &&
        input.scopes.some((s) => g.scopes.includes(s)) &&
        data.approval_tiers?.[g.approval_tier]?.requires_approval === true &&
        !approved.includes(g.approval_tier),
    )
    .map((g) => g.approval_tier!);
  const hold: string[] = [];
  if (pending.length > 0) hold.push('approval_required');
  if (risk !== undefined && holdAbove !== undefined && risk > holdAbove) hold.push('risk_review');
  if (hold.length > 0) {
    return {
      decision: 'hold',
      reasons: sorted(hold),
      determining_policies: determining,
      diagnostics: { approval_tiers: sorted(pending) },
    };
  }
  return { decision: 'allow', reasons: [], determining_policies: determining, diagnostics: {} };
}
