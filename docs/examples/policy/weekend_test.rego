package caracal.authz_test

import rego.v1

test_night_write_denied if {
	"outside_office_hours" in data.caracal.authz.deny with input as {"scopes": ["write"], "resource": "resource://crm/contacts"}
		with time.now_ns as 1767232800000000000
}

test_day_write_allowed if {
	not "outside_office_hours" in data.caracal.authz.deny with input as {"scopes": ["write"], "resource": "resource://crm/contacts"}
		with time.now_ns as 1767258000000000000
}

test_read_never_denied if {
	not "outside_office_hours" in data.caracal.authz.deny with input as {"scopes": ["read"], "resource": "resource://crm/contacts"}
		with time.now_ns as 1767232800000000000
}
