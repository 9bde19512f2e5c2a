import { createLogger, ManualClock, Registry } from '@caracal/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { PolicyBundles, type PolicySetSource } from './bundles.js';

const silent = createLogger({ level: 'silent' });
const data = {
  app_ids: { app1: true },
  grants: { app1: [{ id: 'g1', resource: 'resource://crm/*', scopes: ['read'] }] },
};
const request = { app_id: 'app1', resource: 'resource://crm/contacts', scopes: ['read'] };

function source(version: string, modules: Record<string, string> = {}): PolicySetSource {
  return { zoneId: 'z1', version, modules, data, activatedAt: 1 };
}

let clock: ManualClock;
let registry: Registry;
let bundles: PolicyBundles;
beforeEach(() => {
  clock = new ManualClock();
  registry = new Registry();
  bundles = new PolicyBundles({ clock, logger: silent, registry });
});

async function metric(name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((sum, v) => sum + Number(v.value), 0);
}

describe('policy bundles', () => {
  it('denies everything in a zone whose policy never loaded', () => {
    expect(() => bundles.decide('z1', request)).toThrow(/No policy is loaded/);
    expect(bundles.status('z1')).toEqual({ zoneId: 'z1', loaded: false });
  });

  it('decides with the loaded bundle', () => {
    expect(bundles.apply(source('v1'))).toEqual({ ok: true, changed: true });
    expect(bundles.decide('z1', request)).toMatchObject({ decision: 'allow', policyVersion: 'v1' });
    expect(bundles.decide('z1', { ...request, scopes: ['write'] })).toMatchObject({ decision: 'deny' });
  });

  it('keeps the last good bundle when a new version fails to compile, and reports why', async () => {
    bundles.apply(source('v1'));
    const broken = {
      'adopter.rego':
        'package caracal.authz\n\nimport rego.v1\n\ndeny contains "x" if {\n\tinput.app_id ==\n}\n',
    };
    const outcome = bundles.apply(source('v2', broken));
    expect(outcome.ok).toBe(false);
    if (!outcome.ok)
      expect(outcome.errors[0]).toMatchObject({
        code: 'rego_parse_error',
        location: expect.stringMatching(/^adopter\.rego:\d+:\d+$/),
      });
    expect(bundles.decide('z1', request)).toMatchObject({ decision: 'allow', policyVersion: 'v1' });
    const status = bundles.status('z1');
    expect(status.version).toBe('v1');
    expect(status.rejected?.version).toBe('v2');
    expect(await metric('caracal_sts_opa_compile_errors_total')).toBe(1);

    // A later good version loads and clears the rejection.
    const narrowing = {
      'adopter.rego':
        'package caracal.authz\n\nimport rego.v1\n\ndeny contains "frozen" if input.resource == "resource://crm/contacts"\n',
    };
    expect(bundles.apply(source('v3', narrowing)).ok).toBe(true);
    expect(bundles.decide('z1', request)).toMatchObject({
      decision: 'deny',
      reasons: ['frozen'],
      policyVersion: 'v3',
    });
    expect(bundles.status('z1').rejected).toBeUndefined();
  });

  it('a broken first bundle leaves the zone denying', () => {
    const outcome = bundles.apply(source('v1', { 'a.rego': 'package caracal.authz\n\nallow if {' }));
    expect(outcome.ok).toBe(false);
    expect(() => bundles.decide('z1', request)).toThrow(/No policy is loaded/);
  });

  it('reports the age since the control plane last confirmed each bundle', async () => {
    bundles.apply(source('v1'));
    clock.advance(400_000);
    expect(await metric('caracal_sts_opa_max_policy_age_seconds')).toBe(400);
    bundles.markSynced('z1');
    expect(await metric('caracal_sts_opa_max_policy_age_seconds')).toBe(0);
    clock.advance(10_000);
    bundles.apply(source('v1'));
    expect(bundles.status('z1').ageSeconds).toBe(0);
  });

  it('denies, counting the error, when evaluation runs out of budget', async () => {
    registry = new Registry();
    const b = new PolicyBundles({ clock, logger: silent, registry, maxSteps: 50 });
    const heavy = {
      'heavy.rego':
        'package caracal.authz\n\nimport rego.v1\n\ndeny contains "never" if {\n\tsome i in numbers.range(1, 100000)\n\ti < 0\n}\n',
    };
    expect(b.apply(source('v1', heavy)).ok).toBe(true);
    expect(b.decide('z1', request)).toMatchObject({ decision: 'deny', reasons: ['policy_error'] });
    expect(await metric('caracal_sts_policy_eval_errors_total')).toBe(1);
  });
});
