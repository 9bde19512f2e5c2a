package caracal.authz

import rego.v1

# An adopter rule: deny writes to the CRM outside office hours (UTC).
deny contains "outside_office_hours" if {
	"write" in input.scopes
	startswith(input.resource, "resource://crm/")
	[hour, _, _] := time.clock([time.now_ns(), "UTC"])
	not office_hour(hour)
}

office_hour(h) if {
	h >= 8
	h < 18
}
