/**
 * The platform-owned decision contract: package `caracal.authz`, queried as `data.caracal.authz.result`.
 * It reads the zone's data document (app_ids, grants, confinement, restrict, risk, approval_tiers) and the
 * request as `input`; adopters may add `deny contains reason if …` rules in their own modules of the same package.
 *
 * input: { app_id, resource, scopes[], session?: { id, labels[] }, risk_score?, approval_id?, approved_tiers? }
 * data:  app_ids: { <app_id>: true }
 *        grants: { <app_id>: [{ id, resource (glob, "/" delimited), scopes[], approval_tier? }] }
 *        confinement: { <session label prefix>: [scope cap] }
 *        restrict: [{ id, resource (glob), scopes[], reason }]
 *        risk: { hold_above?: number, deny_above?: number }
 *        approval_tiers: { <tier>: { requires_approval: bool } }
 * result: { decision: "allow" | "deny" | "hold", reasons[], determining_policies[], diagnostics{} }
 */
export const AUTHZ_PACKAGE = 'caracal.authz';
export const AUTHZ_QUERY = 'data.caracal.authz.result';
export const AUTHZ_FILE = 'caracal/authz.rego';

export const AUTHZ_SOURCE = `package caracal.authz

import rego.v1

# Grants of the calling application whose resource pattern matches the requested resource.
matching_grants contains g if {
	some g in data.grants[input.app_id]
	glob.match(g.resource, ["/"], input.resource)
}

covered contains s if {
	some g in matching_grants
	some s in g.scopes
}

uncovered contains s if {
	some s in input.scopes
	not s in covered
}

deny contains "unknown_application" if not data.app_ids[input.app_id]

deny contains "no_scopes_requested" if count(input.scopes) == 0

deny contains "no_matching_grant" if {
	data.app_ids[input.app_id]
	count(matching_grants) == 0
}

deny contains "scope_not_granted" if {
	count(matching_grants) > 0
	count(uncovered) > 0
}

# A session whose label starts with a confinement prefix may use only that prefix's scopes.
confined_out contains s if {
	some label in input.session.labels
	some prefix, cap in data.confinement
	startswith(label, prefix)
	some s in input.scopes
	not s in cap
}

deny contains "session_confined" if count(confined_out) > 0

restricted contains r.id if {
	some r in data.restrict
	glob.match(r.resource, ["/"], input.resource)
	some s in input.scopes
	s in r.scopes
}

deny contains "restricted" if count(restricted) > 0

deny contains "risk_too_high" if input.risk_score > data.risk.deny_above

# Approval tiers of the grants that cover the requested scopes, not yet approved for this request.
pending_tiers contains g.approval_tier if {
	some g in matching_grants
	some s in input.scopes
	s in g.scopes
	data.approval_tiers[g.approval_tier].requires_approval
	not g.approval_tier in object.get(input, "approved_tiers", [])
}

hold contains "approval_required" if count(pending_tiers) > 0

hold contains "risk_review" if {
	input.risk_score > data.risk.hold_above
	not input.risk_score > data.risk.deny_above
}

determining contains g.id if some g in matching_grants

determining contains id if some id in restricted

default result := {
	"decision": "deny",
	"reasons": ["policy_error"],
	"determining_policies": [],
	"diagnostics": {},
}

result := {
	"decision": "deny",
	"reasons": sort([r | some r in deny]),
	"determining_policies": sort([p | some p in determining]),
	"diagnostics": {"uncovered_scopes": sort([s | some s in uncovered])},
} if {
	count(deny) > 0
} else := {
	"decision": "hold",
	"reasons": sort([r | some r in hold]),
	"determining_policies": sort([p | some p in determining]),
	"diagnostics": {"approval_tiers": sort([t | some t in pending_tiers])},
} if {
	count(hold) > 0
} else := {
	"decision": "allow",
	"reasons": [],
	"determining_policies": sort([p | some p in determining]),
	"diagnostics": {},
}
`;
