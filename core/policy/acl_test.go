package policy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, name, doc string) *Policy {
	t.Helper()
	p, err := Parse(name, []byte(doc))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return p
}

// noon is a Wednesday, 12:00 UTC.
var noon = time.Date(2025, time.January, 15, 12, 0, 0, 0, time.UTC)

func TestEvaluate(t *testing.T) {
	appRead := mustParse(t, "app-read", `
rules:
  - path: secrets/app/*
    capabilities: [read, list]
  - path: secrets/shared/**
    capabilities: [read]
`)
	lockdown := mustParse(t, "lockdown", `
rules:
  - path: secrets/public/*
    capabilities: [read]
  - path: secrets/app/readonly
    capabilities: [update, delete]
    effect: deny
  - path: secrets/**
    capabilities: [deny]
    conditions: {source_ip: [203.0.113.0/24]}
  - path: secrets/app/blocked
    capabilities: [deny]
`)
	writer := mustParse(t, "writer", `
rules:
  - path: secrets/app/*
    capabilities: [create, update, delete]
  - path: sys/mounts
    capabilities: [sudo, read]
`)
	inside := netip.MustParseAddr("10.0.0.1")
	outside := netip.MustParseAddr("203.0.113.5")

	tests := []struct {
		desc     string
		policies []*Policy
		req      Request
		allowed  bool
		policy   string
		rule     int
		reason   string
	}{
		{"allowed", []*Policy{appRead}, Request{Path: "secrets/app/db", Capability: Read},
			true, "app-read", 0, "allowed by policy app-read rule 0 (secrets/app/*)"},
		{"list a folder", []*Policy{appRead}, Request{Path: "secrets/app/", Capability: List},
			true, "app-read", 0, "allowed by policy app-read rule 0 (secrets/app/*)"},
		{"capability not granted", []*Policy{appRead}, Request{Path: "secrets/app/db", Capability: Update},
			false, "", -1, "no rule grants update on secrets/app/db"},
		{"no rule matches", []*Policy{appRead}, Request{Path: "secrets/x", Capability: Update},
			false, "", -1, "no rule grants update on secrets/x"},
		{"no policies", nil, Request{Path: "secrets/app/db", Capability: Read},
			false, "", -1, "no rule grants read on secrets/app/db"},
		{"star stays in one segment", []*Policy{appRead}, Request{Path: "secrets/app/db/password", Capability: Read},
			false, "", -1, "no rule grants read on secrets/app/db/password"},
		{"double star", []*Policy{appRead}, Request{Path: "secrets/shared/a/b/c", Capability: Read},
			true, "app-read", 1, "allowed by policy app-read rule 1 (secrets/shared/**)"},
		{"second policy grants", []*Policy{appRead, writer}, Request{Path: "secrets/app/db", Capability: Update},
			true, "writer", 0, "allowed by policy writer rule 0 (secrets/app/*)"},
		{"sudo", []*Policy{writer}, Request{Path: "sys/mounts", Capability: Sudo},
			true, "writer", 1, "allowed by policy writer rule 1 (sys/mounts)"},
		{"deny capability denies all", []*Policy{appRead, lockdown}, Request{Path: "secrets/app/blocked", Capability: Read, ClientAddr: inside},
			false, "lockdown", 3, "denied by policy lockdown rule 3 (secrets/app/blocked)"},
		{"deny wins whatever the order", []*Policy{lockdown, appRead, writer}, Request{Path: "secrets/app/blocked", Capability: Create, ClientAddr: inside},
			false, "lockdown", 3, "denied by policy lockdown rule 3 (secrets/app/blocked)"},
		{"effect deny covers its capabilities", []*Policy{writer, lockdown}, Request{Path: "secrets/app/readonly", Capability: Update},
			false, "lockdown", 1, "denied by policy lockdown rule 1 (secrets/app/readonly)"},
		{"effect deny does not cover others", []*Policy{writer, appRead, lockdown}, Request{Path: "secrets/app/readonly", Capability: Read, ClientAddr: inside},
			true, "app-read", 0, "allowed by policy app-read rule 0 (secrets/app/*)"},
		{"deny condition false: does not apply", []*Policy{appRead, lockdown}, Request{Path: "secrets/app/db", Capability: Read, ClientAddr: inside},
			true, "app-read", 0, "allowed by policy app-read rule 0 (secrets/app/*)"},
		{"deny condition true: applies", []*Policy{appRead, lockdown}, Request{Path: "secrets/app/db", Capability: Read, ClientAddr: outside},
			false, "lockdown", 2, "denied by policy lockdown rule 2 (secrets/**)"},
		{"deny condition unknown: applies", []*Policy{appRead, lockdown}, Request{Path: "secrets/app/db", Capability: Read},
			false, "lockdown", 2, "condition source_ip of policy lockdown rule 2 cannot be evaluated: client address unknown"},
		{"a deny with no allow", []*Policy{lockdown}, Request{Path: "secrets/app/db", Capability: Read, ClientAddr: outside},
			false, "lockdown", 2, "denied by policy lockdown rule 2 (secrets/**)"},
		{"first deny is reported", []*Policy{lockdown}, Request{Path: "secrets/app/blocked", Capability: Read, ClientAddr: outside},
			false, "lockdown", 2, "denied by policy lockdown rule 2 (secrets/**)"},
		{"root allows", []*Policy{RootPolicy()}, Request{Path: "anything/at/all", Capability: Sudo},
			true, "root", 0, "allowed by policy root (the root policy allows everything)"},
		{"root cannot be denied", []*Policy{lockdown, RootPolicy()}, Request{Path: "secrets/app/blocked", Capability: Delete, ClientAddr: outside},
			true, "root", 0, "allowed by policy root (the root policy allows everything)"},
		{"a policy merely named root is not root", []*Policy{{Name: RootPolicyName}}, Request{Path: "x", Capability: Read},
			false, "", -1, "no rule grants read on x"},
		{"deny is not a requested capability", []*Policy{RootPolicy()}, Request{Path: "x", Capability: Deny},
			false, "", -1, `unknown capability "deny" requested`},
		{"unknown capability", []*Policy{appRead}, Request{Path: "secrets/app/db", Capability: "raed"},
			false, "", -1, `unknown capability "raed" requested`},
		{"empty path", []*Policy{appRead}, Request{Path: "", Capability: Read},
			false, "", -1, `invalid request path "": empty`},
		{"leading slash", []*Policy{appRead}, Request{Path: "/secrets/app/db", Capability: Read},
			false, "", -1, `invalid request path "/secrets/app/db": starts with '/'`},
		{"dot dot", []*Policy{appRead}, Request{Path: "secrets/app/../x", Capability: Read},
			false, "", -1, `invalid request path "secrets/app/../x": has a ".." segment`},
		{"empty segment", []*Policy{appRead}, Request{Path: "secrets//db", Capability: Read},
			false, "", -1, `invalid request path "secrets//db": has an empty segment`},
		{"control character", []*Policy{appRead}, Request{Path: "secrets/app/a\nb", Capability: Read},
			false, "", -1, `invalid request path "secrets/app/a\nb": contains a control character`},
		{"invalid UTF-8", []*Policy{appRead}, Request{Path: "secrets/app/\xff", Capability: Read},
			false, "", -1, `invalid request path "secrets/app/\xff": not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			tt.req.Time = noon
			acl := NewACL(tt.policies...)
			d := acl.Evaluate(tt.req)
			if d.Allowed != tt.allowed || d.Policy != tt.policy || d.RuleIndex != tt.rule || d.Reason != tt.reason {
				t.Errorf("Evaluate = %+v\nwant allowed=%v policy=%q rule=%d reason=%q", d, tt.allowed, tt.policy, tt.rule, tt.reason)
			}
			if d.Trace != nil {
				t.Errorf("Evaluate filled the trace")
			}
			e := acl.Explain(tt.req)
			if e.Trace == nil && len(tt.policies) > 0 && d.RuleIndex >= 0 {
				t.Errorf("Explain did not fill the trace")
			}
			e.Trace = nil
			if !reflect.DeepEqual(e, d) {
				t.Errorf("Explain = %+v, Evaluate = %+v", e, d)
			}
		})
	}
}

func TestConditions(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	const (
		office = `rules: [{path: s, capabilities: [read], conditions: {time_of_day: {start: "08:00", end: "18:00", time_zone: Europe/Paris}}}]`
		night  = `rules: [{path: s, capabilities: [read], conditions: {time_of_day: {start: "22:00", end: "06:00"}}}]`
		// Saturdays in Tokyo, and Saturdays in UTC.
		satTokyo = `rules: [{path: s, capabilities: [read], conditions: {days_of_week: [saturday], time_zone: Asia/Tokyo}}]`
		satUTC   = `rules: [{path: s, capabilities: [read], conditions: {days_of_week: [sat]}}]`
		// Weekdays 09:00-17:00 in Tokyo: both conditions in the rule's zone.
		tokyoWork = `rules: [{path: s, capabilities: [read], conditions: {days_of_week: [mon, tue, wed, thu, fri], time_of_day: {start: "09:00", end: "17:00", time_zone: Asia/Tokyo}}}]`
		network   = `rules: [{path: s, capabilities: [read], conditions: {source_ip: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32", "::1"]}}]`
		shortTTL  = `rules: [{path: s, capabilities: [read], conditions: {ttl_max: 1h}}]`
	)
	tests := []struct {
		desc    string
		doc     string
		time    time.Time
		addr    string
		ttl     time.Duration
		allowed bool
		failed  string // Decision.FailedCondition
		reason  string // in Decision.Reason
	}{
		// time_of_day, in the rule's zone: the window is [start, end).
		{"in office hours, summer", office, time.Date(2025, 7, 1, 6, 30, 0, 0, time.UTC), "", 0, true, "", ""}, // 08:30 CEST
		{"before office hours, winter", office, time.Date(2025, 1, 7, 6, 30, 0, 0, time.UTC), "", 0, false, "time_of_day", "07:30 in Europe/Paris is outside 08:00-18:00"},
		{"at start", office, time.Date(2025, 1, 7, 8, 0, 0, 0, paris), "", 0, true, "", ""},
		{"last minute", office, time.Date(2025, 1, 7, 17, 59, 59, 0, paris), "", 0, true, "", ""},
		{"at end", office, time.Date(2025, 1, 7, 18, 0, 0, 0, paris), "", 0, false, "time_of_day", "outside"},
		{"given in another zone", office, time.Date(2025, 1, 7, 16, 0, 0, 0, tokyo), "", 0, true, "", ""}, // 08:00 Paris
		{"window wraps: late", night, time.Date(2025, 1, 7, 23, 30, 0, 0, time.UTC), "", 0, true, "", ""},
		{"window wraps: early", night, time.Date(2025, 1, 7, 5, 59, 0, 0, time.UTC), "", 0, true, "", ""},
		{"window wraps: at start", night, time.Date(2025, 1, 7, 22, 0, 0, 0, time.UTC), "", 0, true, "", ""},
		{"window wraps: at end", night, time.Date(2025, 1, 7, 6, 0, 0, 0, time.UTC), "", 0, false, "time_of_day", "06:00 in UTC is outside 22:00-06:00"},
		{"window wraps: noon", night, noon, "", 0, false, "time_of_day", "outside"},
		{"no zone is UTC", night, time.Date(2025, 1, 7, 23, 30, 0, 0, paris), "", 0, true, "", ""}, // 22:30 UTC
		{"time unknown", night, time.Time{}, "", 0, false, "time_of_day", "condition time_of_day of policy p rule 0 cannot be evaluated: request time unknown"},

		// days_of_week, at the day boundary: Friday 23:30 UTC is Saturday 08:30 in Tokyo.
		{"saturday in Tokyo", satTokyo, time.Date(2025, 1, 10, 23, 30, 0, 0, time.UTC), "", 0, true, "", ""},
		{"still friday in UTC", satUTC, time.Date(2025, 1, 10, 23, 30, 0, 0, time.UTC), "", 0, false, "days_of_week", "fri in UTC is not one of sat"},
		{"saturday in UTC", satUTC, time.Date(2025, 1, 11, 0, 30, 0, 0, time.UTC), "", 0, true, "", ""},
		{"already sunday in Tokyo", satTokyo, time.Date(2025, 1, 11, 15, 30, 0, 0, time.UTC), "", 0, false, "days_of_week", "sun in Asia/Tokyo is not one of sat"},
		{"days: time unknown", satUTC, time.Time{}, "", 0, false, "days_of_week", "request time unknown"},
		{"weekday office hours in Tokyo", tokyoWork, time.Date(2025, 1, 13, 1, 0, 0, 0, time.UTC), "", 0, true, "", ""}, // Mon 10:00 JST
		{"sunday night UTC is monday morning in Tokyo", tokyoWork, time.Date(2025, 1, 12, 23, 0, 0, 0, time.UTC), "", 0, false, "time_of_day", "08:00 in Asia/Tokyo"},
		{"saturday office hours in Tokyo", tokyoWork, time.Date(2025, 1, 18, 1, 0, 0, 0, time.UTC), "", 0, false, "days_of_week", "sat in Asia/Tokyo"},

		// source_ip
		{"IPv4 in network", network, noon, "10.20.30.40", 0, true, "", ""},
		{"IPv4 exact host", network, noon, "192.168.1.7", 0, true, "", ""},
		{"IPv4 next host", network, noon, "192.168.1.8", 0, false, "source_ip", "192.168.1.8 is in none of 10.0.0.0/8, 192.168.1.7/32, 2001:db8::/32, ::1/128"},
		{"IPv4-mapped IPv6", network, noon, "::ffff:10.1.2.3", 0, true, "", ""},
		{"IPv6 in network", network, noon, "2001:db8:1::5", 0, true, "", ""},
		{"IPv6 loopback", network, noon, "::1", 0, true, "", ""},
		{"IPv6 with a zone", network, noon, "2001:db8::1%eth0", 0, true, "", ""},
		{"IPv6 outside", network, noon, "2001:db9::1", 0, false, "source_ip", "not"},
		{"address unknown", network, noon, "", 0, false, "source_ip", "condition source_ip of policy p rule 0 cannot be evaluated: client address unknown"},

		// ttl_max
		{"no TTL requested", shortTTL, noon, "", 0, true, "", ""},
		{"TTL at the limit", shortTTL, noon, "", time.Hour, true, "", ""},
		{"TTL under", shortTTL, noon, "", time.Minute, true, "", ""},
		{"TTL over", shortTTL, noon, "", time.Hour + time.Second, false, "ttl_max", "requested TTL 1h0m1s exceeds 1h0m0s"},
		{"TTL negative", shortTTL, noon, "", -time.Second, false, "ttl_max", "cannot be evaluated: requested TTL is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			req := Request{Path: "s", Capability: Read, Time: tt.time, TTL: tt.ttl}
			if tt.addr != "" {
				req.ClientAddr = netip.MustParseAddr(tt.addr)
			}
			d := NewACL(mustParse(t, "p", tt.doc)).Evaluate(req)
			if d.Allowed != tt.allowed || d.FailedCondition != tt.failed || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Evaluate = %+v\nwant allowed=%v failed=%q reason containing %q", d, tt.allowed, tt.failed, tt.reason)
			}
		})
	}
}

func TestUnevaluableConditionDeniesEvenIfAnotherRuleAllows(t *testing.T) {
	open := mustParse(t, "open", `rules: [{path: "secrets/**", capabilities: [read, update]}]`)
	fenced := mustParse(t, "fenced", `
rules:
  - path: secrets/other
    capabilities: [read]
  - path: secrets/app/*
    capabilities: [read]
    conditions: {source_ip: [10.0.0.0/8]}
`)
	acl := NewACL(open, fenced)

	d := acl.Evaluate(Request{Path: "secrets/app/db", Capability: Read, Time: noon})
	want := "condition source_ip of policy fenced rule 1 cannot be evaluated: client address unknown"
	if d.Allowed || d.Reason != want || d.FailedCondition != CondSourceIP || d.Policy != "fenced" || d.RuleIndex != 1 || d.RulePath != "secrets/app/*" {
		t.Errorf("Evaluate = %+v, want denied: %q", d, want)
	}
	// With the address known but outside, the fenced rule just does not
	// apply, and the open policy grants.
	d = acl.Evaluate(Request{Path: "secrets/app/db", Capability: Read, Time: noon, ClientAddr: netip.MustParseAddr("192.0.2.1")})
	if !d.Allowed || d.Policy != "open" {
		t.Errorf("address outside: %+v, want allowed by open", d)
	}
	// A rule that does not name the capability is not consulted.
	d = acl.Evaluate(Request{Path: "secrets/app/db", Capability: Update, Time: noon})
	if !d.Allowed || d.Policy != "open" {
		t.Errorf("update: %+v, want allowed by open", d)
	}
}

func TestZoneThatDoesNotLoadDenies(t *testing.T) {
	// A stored policy may name a zone this server's database lacks.
	mars, err := parse("mars", []byte(`
rules:
  - path: secrets/**
    capabilities: [read]
  - path: secrets/app/*
    capabilities: [read]
    conditions: {time_of_day: {start: "08:00", end: "18:00", time_zone: Mars/Base}}
  - path: secrets/deny/*
    capabilities: [deny]
    conditions: {days_of_week: [mon], time_zone: Mars/Base}
`), parseOptions{keepUnknownZones: true})
	if err != nil {
		t.Fatal(err)
	}
	acl := NewACL(mars)
	for path, want := range map[string]string{
		"secrets/app/db":  `condition time_of_day of policy mars rule 1 cannot be evaluated: time zone "Mars/Base" cannot be loaded`,
		"secrets/deny/db": `condition days_of_week of policy mars rule 2 cannot be evaluated: time zone "Mars/Base" cannot be loaded`,
	} {
		d := acl.Evaluate(Request{Path: path, Capability: Read, Time: noon})
		if d.Allowed || d.Reason != want {
			t.Errorf("%s: %+v, want denied: %q", path, d, want)
		}
	}
	if d := acl.Evaluate(Request{Path: "secrets/other", Capability: Read, Time: noon}); !d.Allowed {
		t.Errorf("secrets/other: %+v, want allowed", d)
	}
}

func TestNoRuleGrantsNamesTheFailedCondition(t *testing.T) {
	p := mustParse(t, "p", `rules: [{path: s, capabilities: [read], conditions: {ttl_max: 1h, source_ip: [10.0.0.0/8]}}]`)
	d := NewACL(p).Evaluate(Request{Path: "s", Capability: Read, Time: noon, ClientAddr: netip.MustParseAddr("10.0.0.1"), TTL: 2 * time.Hour})
	want := "no rule grants read on s (policy p rule 0 (s) would, but condition ttl_max is not met: requested TTL 2h0m0s exceeds 1h0m0s)"
	if d.Allowed || d.Reason != want || d.FailedCondition != CondTTLMax || d.RuleIndex != -1 {
		t.Errorf("Evaluate = %+v\nwant reason %q", d, want)
	}
}

func TestExplainTrace(t *testing.T) {
	a := mustParse(t, "a", `
rules:
  - path: secrets/app/*
    capabilities: [read]
    conditions: {source_ip: [10.0.0.0/8], ttl_max: 1h}
  - path: other/*
    capabilities: [read]
  - path: secrets/**
    capabilities: [list]
`)
	b := mustParse(t, "b", `
rules:
  - path: secrets/app/db
    capabilities: [update]
    effect: deny
    conditions: {time_of_day: {start: "09:00", end: "10:00"}}
`)
	d := NewACL(a, b).Explain(Request{Path: "secrets/app/db", Capability: Read, Time: noon, ClientAddr: netip.MustParseAddr("10.1.1.1"), TTL: 2 * time.Hour})
	want := []RuleResult{
		{Policy: "a", RuleIndex: 0, Path: "secrets/app/*", Matched: true, Effect: EffectAllow, Capabilities: []Capability{Read},
			Conditions: []ConditionResult{
				{Name: "source_ip", OK: true, Why: "10.1.1.1 is in 10.0.0.0/8"},
				{Name: "ttl_max", OK: false, Why: "requested TTL 2h0m0s exceeds 1h0m0s"},
			}, Outcome: OutcomeConditionNotMet},
		{Policy: "a", RuleIndex: 1, Path: "other/*", Effect: EffectAllow, Capabilities: []Capability{Read}, Outcome: OutcomeNoMatch},
		{Policy: "a", RuleIndex: 2, Path: "secrets/**", Matched: true, Effect: EffectAllow, Capabilities: []Capability{List}, Outcome: OutcomeNotCovered},
		{Policy: "b", RuleIndex: 0, Path: "secrets/app/db", Matched: true, Effect: EffectDeny, Capabilities: []Capability{Update}, Outcome: OutcomeNotCovered},
	}
	if !reflect.DeepEqual(d.Trace, want) {
		t.Errorf("Trace =\n%+v\nwant\n%+v", d.Trace, want)
	}
	if d.Allowed {
		t.Errorf("allowed: %+v", d)
	}

	// The trace goes on past a deny, and records conditions that cannot be
	// evaluated as unknown.
	d = NewACL(b, a).Explain(Request{Path: "secrets/app/db", Capability: Update, Time: noon.Add(-150 * time.Minute)})
	if len(d.Trace) != 4 || d.Trace[0].Outcome != OutcomeDenies || d.Trace[1].Outcome != OutcomeNotCovered {
		t.Fatalf("Trace = %+v", d.Trace)
	}
	if got := d.Trace[0].Conditions; !reflect.DeepEqual(got, []ConditionResult{{Name: "time_of_day", OK: true, Why: "09:30 in UTC is within 09:00-10:00"}}) {
		t.Errorf("deny rule conditions = %+v", got)
	}
	d = NewACL(a).Explain(Request{Path: "secrets/app/db", Capability: Read, Time: noon})
	if got := d.Trace[0]; got.Outcome != OutcomeUnevaluable || !got.Conditions[0].Unknown || got.Conditions[0].OK || got.Conditions[0].Why != "client address unknown" ||
		!got.Conditions[1].OK || got.Conditions[1].Why != "no TTL requested" {
		t.Errorf("unknown address: %+v", got)
	}

	// Root has one synthetic rule.
	d = NewACL(a, RootPolicy()).Explain(Request{Path: "x", Capability: Read})
	if len(d.Trace) != 1 || d.Trace[0].Policy != RootPolicyName || d.Trace[0].Outcome != OutcomeAllows {
		t.Errorf("root trace = %+v", d.Trace)
	}
}

func TestCapabilities(t *testing.T) {
	p := mustParse(t, "p", `
rules:
  - path: secrets/app/*
    capabilities: [read, list, update]
  - path: secrets/app/*
    capabilities: [create]
    conditions: {source_ip: [10.0.0.0/8]}
  - path: secrets/app/locked
    capabilities: [update]
    effect: deny
  - path: secrets/app/office
    capabilities: [delete]
    conditions: {time_of_day: {start: "09:00", end: "17:00"}}
`)
	acl := NewACL(p)
	in := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		path string
		at   time.Time
		addr netip.Addr
		want []string
	}{
		{"secrets/app/db", noon, in, []string{"create", "list", "read", "update"}},
		{"secrets/app/db", noon, netip.MustParseAddr("192.0.2.1"), []string{"list", "read", "update"}},
		// The create rule's condition cannot be evaluated: create is denied,
		// the others do not depend on it.
		{"secrets/app/db", noon, netip.Addr{}, []string{"list", "read", "update"}},
		{"secrets/app/locked", noon, in, []string{"create", "list", "read"}},
		{"secrets/app/office", noon, in, []string{"create", "delete", "list", "read", "update"}},
		{"secrets/app/office", noon.Add(6 * time.Hour), in, []string{"create", "list", "read", "update"}},
		{"secrets/other", noon, in, []string{"deny"}},
		{"", noon, in, []string{"deny"}},
	}
	for _, tt := range tests {
		if got := acl.Capabilities(tt.path, tt.at, tt.addr); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Capabilities(%q, %v, %v) = %q, want %q", tt.path, tt.at, tt.addr, got, tt.want)
		}
	}
	if got := NewACL(p, RootPolicy()).Capabilities("x", noon, in); !reflect.DeepEqual(got, []string{"root"}) {
		t.Errorf("root: %q", got)
	}
	if got := NewACL().Capabilities("x", noon, in); !reflect.DeepEqual(got, []string{"deny"}) {
		t.Errorf("empty ACL: %q", got)
	}
}

func TestDefaultPolicyGrants(t *testing.T) {
	acl := NewACL(DefaultPolicy())
	for _, tt := range []struct {
		path string
		cap  Capability
		want bool
	}{
		{"auth/token/lookup-self", Read, true},
		{"auth/token/lookup-self", Update, false},
		{"auth/token/renew-self", Update, true},
		{"auth/token/revoke-self", Update, true},
		{"sys/capabilities-self", Update, true},
		{"sys/policies/explain-self", Update, true},
		{"auth/token/lookup", Read, false},
		{"secrets/anything", Read, false},
		{"sys/capabilities-self", Sudo, false},
	} {
		if d := acl.Evaluate(Request{Path: tt.path, Capability: tt.cap, Time: noon}); d.Allowed != tt.want {
			t.Errorf("%s %s: %+v, want allowed=%v", tt.cap, tt.path, d, tt.want)
		}
	}
}

func TestHandBuiltInvalidRuleFailsClosed(t *testing.T) {
	open := mustParse(t, "open", `rules: [{path: "**", capabilities: [read]}]`)
	for _, r := range []Rule{
		{Path: "/bad", Capabilities: []Capability{Read}, Effect: EffectAllow},
		{Path: "ok", Capabilities: []Capability{"raed"}, Effect: EffectAllow},
		{Path: "ok", Capabilities: nil, Effect: EffectAllow},
		{Path: "ok", Capabilities: []Capability{Read}, Effect: "maybe"},
	} {
		bad := &Policy{Name: "bad", Rules: []Rule{r}}
		d := NewACL(open, bad).Evaluate(Request{Path: "secrets/x", Capability: Read, Time: noon})
		if d.Allowed || d.Policy != "bad" || !strings.Contains(d.Reason, "the rule is invalid") {
			t.Errorf("rule %+v: %+v, want denied as invalid", r, d)
		}
	}
	// A hand-built valid rule works without Parse.
	good := &Policy{Name: "good", Rules: []Rule{{Path: "secrets/*", Capabilities: []Capability{Read}, Effect: EffectAllow}}}
	if d := NewACL(good).Evaluate(Request{Path: "secrets/x", Capability: Read}); !d.Allowed {
		t.Errorf("hand-built valid rule: %+v", d)
	}
}
