// Policy decision time for the STS zone policy (200 grants): our Rego engine beside the hand-written
// TypeScript of the same logic (the floor) and Cedar (wasm) on an equivalent policy (the peer).
import { isDeepStrictEqual } from 'node:util';
import { compile } from '@caracal/rego';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { AUTHZ_FILE, AUTHZ_QUERY, AUTHZ_SOURCE } from '../services/sts/src/authz/contract.js';
import { type AuthzData, type AuthzInput, decideReference } from '../services/sts/src/authz/reference.js';
import { sampleInputs, sampleZone } from '../services/sts/src/authz/sample-zone.js';
import type { BenchResult, BenchSuite } from './harness.js';

/** Decisions per second of fn over the inputs, after a warm-up; ~durationMs of measurement. */
function measure(
  name: string,
  inputs: AuthzInput[],
  fn: (i: AuthzInput) => unknown,
  durationMs = 1500,
): BenchResult {
  for (let i = 0; i < 20_000; i++) fn(inputs[i % inputs.length]!);
  let n = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    for (let i = 0; i < 1000; i++) fn(inputs[(n + i) % inputs.length]!);
    n += 1000;
    elapsed = performance.now() - t0;
  }
  const us = (elapsed * 1000) / n;
  return { name, opsPerSec: (n / elapsed) * 1000, note: `${us.toFixed(2)} µs/decision` };
}

/**
 * The same zone in Cedar: one permit per (grant, scope), forbids for restrictions, confinement and
 * un-approved tiers. Cedar has no prefix match or "hold", so those arrive as context flags; a request
 * for several scopes is one Cedar call per scope (Cedar authorizes one action at a time).
 */
function cedarPolicies(data: AuthzData): string {
  const out: string[] = [];
  for (const [app, grants] of Object.entries(data.grants)) {
    for (const g of grants) {
      const like = g.resource.replaceAll('*', '*');
      for (const s of g.scopes) {
        out.push(
          `permit(principal == App::"${app}", action == Action::"${s}", resource) when { resource.path like "${like}" };`,
        );
        if (g.approval_tier && data.approval_tiers?.[g.approval_tier]?.requires_approval) {
          out.push(
            `forbid(principal == App::"${app}", action == Action::"${s}", resource) when { resource.path like "${like}" } unless { context.approved_tiers.contains("${g.approval_tier}") };`,
          );
        }
      }
    }
  }
  for (const r of data.restrict ?? []) {
    for (const s of r.scopes)
      out.push(
        `forbid(principal, action == Action::"${s}", resource) when { resource.path like "${r.resource}" };`,
      );
  }
  out.push('forbid(principal, action, resource) when { context.confined && !context.read_only };');
  out.push(`forbid(principal, action, resource) when { context.risk > ${data.risk?.deny_above ?? 1000} };`);
  return out.join('\n');
}

export const policySuite: BenchSuite = {
  name: 'policy',
  description: 'STS zone policy decision (20 apps × 10 grants, restrictions, confinement, approval tiers)',
  async run() {
    const data = sampleZone(7, 20, 10);
    const inputs = sampleInputs(data, 8, 512);
    const compiled = compile({ [AUTHZ_FILE]: AUTHZ_SOURCE });
    if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
    const policy = compiled.policy;
    // The comparison is only meaningful if both give the same answers.
    for (const input of inputs) {
      const a = policy.decide(AUTHZ_QUERY, { input, data });
      const b = decideReference(input, data);
      if (!isDeepStrictEqual(a, b)) {
        throw new Error(
          `rego and reference disagree on ${JSON.stringify(input)}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`,
        );
      }
    }
    const parsed = cedar.preparsePolicySet('zone', { staticPolicies: cedarPolicies(data) });
    if (parsed.type !== 'success') throw new Error(`cedar policy: ${JSON.stringify(parsed)}`);
    const cedarDecide = (input: AuthzInput) => {
      const entities = [
        { uid: { type: 'Resource', id: input.resource }, attrs: { path: input.resource }, parents: [] },
      ];
      const confined = (input.session?.labels ?? []).some((l) => l.startsWith('untrusted:'));
      let allowed = input.scopes.length > 0;
      for (const s of input.scopes) {
        const answer = cedar.statefulIsAuthorized({
          principal: { type: 'App', id: input.app_id },
          action: { type: 'Action', id: s },
          resource: { type: 'Resource', id: input.resource },
          context: {
            approved_tiers: input.approved_tiers ?? [],
            confined,
            read_only: input.scopes.every((x) => x === 'read'),
            risk: input.risk_score ?? 0,
          },
          preparsedPolicySetId: 'zone',
          entities,
        });
        if (answer.type !== 'success' || answer.response.decision !== 'allow') allowed = false;
      }
      return allowed;
    };
    const compileStart = performance.now();
    const bigModules: Record<string, string> = {};
    for (let m = 0; m < 10; m++) {
      const rules = Array.from(
        { length: 100 },
        (_, i) =>
          `allow_${i} if {\n\tinput.app_id == "app${i}"\n\tsome g in data.grants[input.app_id]\n\tglob.match(g.resource, ["/"], input.resource)\n}`,
      );
      bigModules[`m${m}.rego`] = `package bundle.m${m}\n\nimport rego.v1\n\n${rules.join('\n\n')}\n`;
    }
    const big = compile(bigModules);
    const compileMs = performance.now() - compileStart;
    if (!big.ok) throw new Error(JSON.stringify(big.errors));
    return [
      { ...measure('hand-written TypeScript', inputs, (i) => decideReference(i, data)), baseline: true },
      measure('caracal rego engine (compiled)', inputs, (i) =>
        policy.decide(AUTHZ_QUERY, { input: i, data }),
      ),
      measure('cedar-wasm (peer, approx. equivalent)', inputs, cedarDecide),
      { name: 'compile 1,000-rule bundle', opsPerSec: 1000 / compileMs, note: `${compileMs.toFixed(0)} ms` },
    ];
  },
};
