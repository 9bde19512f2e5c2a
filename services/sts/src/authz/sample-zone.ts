import type { AuthzData, AuthzInput } from './reference.js';

/** Deterministic PRNG (mulberry32) so a sample zone is the same on every run. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SCOPES = ['read', 'write', 'delete', 'admin'];

/**
 * A realistic zone for tests and benchmarks: `apps` applications with `grantsPerApp` grants each over
 * resource patterns, a confinement rule, restrictions, risk thresholds and an approval tier.
 */
export function sampleZone(seed = 1, apps = 20, grantsPerApp = 10): AuthzData {
  const r = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const data: AuthzData = {
    app_ids: {},
    grants: {},
    confinement: { 'untrusted:': ['read'] },
    restrict: [],
    risk: { hold_above: 60, deny_above: 90 },
    approval_tiers: { high: { requires_approval: true }, low: { requires_approval: false } },
  };
  for (let a = 0; a < apps; a++) {
    const app = `app${String(a).padStart(2, '0')}`;
    data.app_ids[app] = true;
    data.grants[app] = Array.from({ length: grantsPerApp }, (_, g) => {
      const svc = `svc${Math.floor(r() * 8)}`;
      const exact = r() < 0.3;
      const scopes = SCOPES.filter(() => r() < 0.5);
      return {
        id: `${app}-g${g}`,
        resource: exact ? `resource://${svc}/area${g}/item` : `resource://${svc}/area${g}/*`,
        scopes: scopes.length ? scopes : ['read'],
        ...(r() < 0.25 ? { approval_tier: pick(['high', 'low']) } : {}),
      };
    });
  }
  for (let i = 0; i < 10; i++) {
    data.restrict!.push({
      id: `restrict-${i}`,
      resource: `resource://svc${i % 8}/area${i}/*`,
      scopes: [pick(SCOPES)],
      reason: 'freeze',
    });
  }
  return data;
}

/** Requests against a sample zone: mostly plausible ones, some from unknown apps or for ungranted scopes. */
export function sampleInputs(data: AuthzData, seed = 2, n = 256): AuthzInput[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const apps = Object.keys(data.app_ids);
  return Array.from({ length: n }, () => {
    const app = r() < 0.05 ? 'app-unknown' : pick(apps);
    const grant = pick(data.grants[pick(apps)]!);
    const resource = grant.resource.replace('*', r() < 0.9 ? 'item' : 'a/b');
    const input: AuthzInput = {
      app_id: app,
      resource,
      scopes:
        r() < 0.7
          ? [pick(grant.scopes)]
          : [pick(SCOPES), pick(SCOPES)].filter((s, i, xs) => xs.indexOf(s) === i),
    };
    if (r() < 0.2) input.session = { id: 's1', labels: [r() < 0.5 ? 'untrusted:web' : 'trusted:ci'] };
    if (r() < 0.3) input.risk_score = Math.floor(r() * 100);
    if (r() < 0.3) input.approved_tiers = ['high'];
    return input;
  });
}
