import { compile } from '@caracal/rego';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AUTHZ_FILE, AUTHZ_QUERY, AUTHZ_SOURCE } from './contract.js';
import { type AuthzData, decideReference } from './reference.js';
import { sampleInputs, sampleZone } from './sample-zone.js';

const compiled = compile({ [AUTHZ_FILE]: AUTHZ_SOURCE });
if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
const policy = compiled.policy;
const decide = (input: unknown, data: unknown) => policy.decide(AUTHZ_QUERY, { input, data });

const data: AuthzData = {
  app_ids: { app1: true },
  grants: {
    app1: [
      { id: 'g1', resource: 'resource://crm/*', scopes: ['read', 'write'], approval_tier: 'high' },
      { id: 'g2', resource: 'resource://mail/inbox', scopes: ['read'] },
    ],
  },
  confinement: { 'untrusted:': ['read'] },
  restrict: [{ id: 'r1', resource: 'resource://crm/payroll', scopes: ['write'], reason: 'freeze' }],
  risk: { hold_above: 50, deny_above: 90 },
  approval_tiers: { high: { requires_approval: true } },
};

describe('caracal.authz decision contract', () => {
  it.each([
    ['allow', { app_id: 'app1', resource: 'resource://mail/inbox', scopes: ['read'] }, 'allow', []],
    [
      'unknown app',
      { app_id: 'nope', resource: 'resource://mail/inbox', scopes: ['read'] },
      'deny',
      ['unknown_application'],
    ],
    [
      'no grant',
      { app_id: 'app1', resource: 'resource://files/x', scopes: ['read'] },
      'deny',
      ['no_matching_grant'],
    ],
    [
      'scope',
      { app_id: 'app1', resource: 'resource://mail/inbox', scopes: ['write'] },
      'deny',
      ['scope_not_granted'],
    ],
    [
      'no scopes',
      { app_id: 'app1', resource: 'resource://mail/inbox', scopes: [] },
      'deny',
      ['no_scopes_requested'],
    ],
    [
      'glob stays in segment',
      { app_id: 'app1', resource: 'resource://crm/a/b', scopes: ['read'] },
      'deny',
      ['no_matching_grant'],
    ],
    [
      'restricted',
      { app_id: 'app1', resource: 'resource://crm/payroll', scopes: ['write'], approved_tiers: ['high'] },
      'deny',
      ['restricted'],
    ],
    [
      'confined',
      {
        app_id: 'app1',
        resource: 'resource://crm/x',
        scopes: ['write'],
        session: { labels: ['untrusted:web'] },
        approved_tiers: ['high'],
      },
      'deny',
      ['session_confined'],
    ],
    [
      'risk deny',
      { app_id: 'app1', resource: 'resource://mail/inbox', scopes: ['read'], risk_score: 95 },
      'deny',
      ['risk_too_high'],
    ],
    [
      'approval hold',
      { app_id: 'app1', resource: 'resource://crm/contacts', scopes: ['read'] },
      'hold',
      ['approval_required'],
    ],
    [
      'approved',
      { app_id: 'app1', resource: 'resource://crm/contacts', scopes: ['read'], approved_tiers: ['high'] },
      'allow',
      [],
    ],
    [
      'risk hold',
      { app_id: 'app1', resource: 'resource://mail/inbox', scopes: ['read'], risk_score: 60 },
      'hold',
      ['risk_review'],
    ],
  ])('%s', (_name, input, decision, reasons) => {
    const result = decide(input, data) as { decision: string; reasons: string[] };
    expect(result.decision).toBe(decision);
    expect(result.reasons).toEqual(reasons);
    expect(decideReference(input, data)).toEqual(result);
  });

  it('denies when the data document is missing entirely', () => {
    const result = decide({ app_id: 'app1', resource: 'resource://mail/inbox', scopes: ['read'] }, {}) as {
      decision: string;
    };
    expect(result.decision).toBe('deny');
  });

  it('adopter deny rules in the same package can only narrow', () => {
    const adopter = `package caracal.authz\n\nimport rego.v1\n\ndeny contains "weekend_freeze" if input.resource == "resource://mail/inbox"\n`;
    const c = compile({ [AUTHZ_FILE]: AUTHZ_SOURCE, 'adopter.rego': adopter });
    if (!c.ok) throw new Error(JSON.stringify(c.errors));
    const result = c.policy.decide(AUTHZ_QUERY, {
      input: { app_id: 'app1', resource: 'resource://mail/inbox', scopes: ['read'] },
      data,
    }) as { decision: string; reasons: string[] };
    expect(result).toMatchObject({ decision: 'deny', reasons: ['weekend_freeze'] });
  });

  it('agrees with the hand-written reference on generated zones and requests', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const zone = sampleZone(seed, 4, 6);
        for (const input of sampleInputs(zone, seed + 1, 40)) {
          expect(decide(input, zone)).toEqual(decideReference(input, zone));
        }
      }),
      { numRuns: 40 },
    );
  });
});
