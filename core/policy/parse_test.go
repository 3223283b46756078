package policy

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // zones the tests name load whatever the machine has
)

const fullYAML = `
name: app-read
rules:
  - path: "secrets/app/*"
    capabilities: [read, list, read]
    conditions:
      time_of_day: {start: "08:00", end: "18:00", time_zone: "Europe/Paris"}
      days_of_week: [mon, tuesday, wed, thu, fri, mon]
      source_ip: ["10.0.0.0/8", "192.168.1.7", "::1/128", "10.1.2.3/16", "::ffff:172.16.0.0/108"]
      ttl_max: "1h"
  - path: secrets/app/admin/**
    capabilities: [update, create, sudo]
    effect: deny
  - path: "secrets/**"
    capabilities: [deny, read]
`

func TestParseFull(t *testing.T) {
	p, err := Parse("app-read", []byte(fullYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Policy{
		Name: "app-read",
		Rules: []Rule{
			{
				Path:         "secrets/app/*",
				Capabilities: []Capability{Read, List},
				Effect:       EffectAllow,
				Conditions: Conditions{
					TimeOfDay:  &TimeOfDay{Start: 8 * 60, End: 18 * 60},
					DaysOfWeek: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
					TimeZone:   "Europe/Paris",
					SourceIP: []netip.Prefix{
						netip.MustParsePrefix("10.0.0.0/8"),
						netip.MustParsePrefix("192.168.1.7/32"),
						netip.MustParsePrefix("::1/128"),
						netip.MustParsePrefix("10.1.0.0/16"),
						netip.MustParsePrefix("172.16.0.0/12"),
					},
					TTLMax: time.Hour,
				},
			},
			{Path: "secrets/app/admin/**", Capabilities: []Capability{Create, Update, Sudo}, Effect: EffectDeny},
			{Path: "secrets/**", Capabilities: []Capability{Deny}, Effect: EffectDeny},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Parse =\n%#v\nwant\n%#v", p, want)
	}
	if !p.Rules[2].DeniesAll() || p.Rules[1].DeniesAll() {
		t.Errorf("DeniesAll: rule 2 = %v (want true), rule 1 = %v (want false)", p.Rules[2].DeniesAll(), p.Rules[1].DeniesAll())
	}
}

func TestParseJSONAndYAMLAgree(t *testing.T) {
	y := `
rules:
  - path: secrets/x
    capabilities: [read]
    conditions: {ttl_max: 90m, time_zone: Asia/Tokyo, days_of_week: [saturday, sun]}
`
	j := `{"rules": [{"path": "secrets/x", "capabilities": ["read"],
	  "conditions": {"ttl_max": "90m", "time_zone": "Asia/Tokyo", "days_of_week": ["saturday", "sun"]}}]}`
	py, err := Parse("p", []byte(y))
	if err != nil {
		t.Fatalf("Parse YAML: %v", err)
	}
	pj, err := Parse("p", []byte(j))
	if err != nil {
		t.Fatalf("Parse JSON: %v", err)
	}
	if !py.Equal(pj) {
		t.Errorf("YAML and JSON differ:\n%s\n%s", py.Canonical(), pj.Canonical())
	}
	if got := py.Rules[0].Conditions; got.TTLMax != 90*time.Minute || got.TimeZone != "Asia/Tokyo" ||
		!reflect.DeepEqual(got.DaysOfWeek, []time.Weekday{time.Saturday, time.Sunday}) {
		t.Errorf("conditions = %+v", got)
	}
	// An unquoted YAML time is a string, not a number.
	p, err := Parse("p", []byte("rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: 22:00, end: 06:00}}}]"))
	if err != nil {
		t.Fatalf("Parse unquoted times: %v", err)
	}
	if got := *p.Rules[0].Conditions.TimeOfDay; got != (TimeOfDay{Start: 22 * 60, End: 6 * 60}) {
		t.Errorf("time_of_day = %+v", got)
	}
}

func TestParseNames(t *testing.T) {
	doc := func(name string) []byte {
		s := "rules: [{path: a, capabilities: [read]}]\n"
		if name != "" {
			s = "name: " + name + "\n" + s
		}
		return []byte(s)
	}
	tests := []struct {
		name    string // given to Parse
		docName string // in the document
		want    string // the policy's name, or "" for an error on field "name"
	}{
		{"app", "", "app"},
		{"", "app", "app"},
		{"app", "app", "app"},
		{"app", "other", ""},
		{"", "", ""},
		{"root", "", ""},
		{"", "root", ""},
		{"App", "", ""},
		{"a b", "", ""},
		{"a/b", "", ""},
		{"..", "", ""},
		{"a.b-c_9", "", "a.b-c_9"},
		{strings.Repeat("a", 128), "", strings.Repeat("a", 128)},
		{strings.Repeat("a", 129), "", ""},
	}
	for _, tt := range tests {
		p, err := Parse(tt.name, doc(tt.docName))
		if tt.want == "" {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "name" {
				t.Errorf("Parse(%q) with document name %q: error %v, want a ValidationError on name", tt.name, tt.docName, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q) with document name %q: %v", tt.name, tt.docName, err)
			continue
		}
		if p.Name != tt.want {
			t.Errorf("Parse(%q) with document name %q: name %q, want %q", tt.name, tt.docName, p.Name, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(s string) string { return "rules:\n  - path: a\n    capabilities: [read]\n" + s }
	tests := []struct {
		desc      string
		doc       string
		field     string
		reasonHas string
	}{
		{"bad capability", "rules:\n- {path: a, capabilities: [read]}\n- {path: b, capabilities: [read]}\n- {path: c, capabilities: [read, raed]}",
			"rules[2].capabilities[1]", `unknown capability "raed"`},
		{"capability case", "rules: [{path: a, capabilities: [Read]}]", "rules[0].capabilities[0]", `unknown capability "Read"`},
		{"no capabilities", "rules: [{path: a}]", "rules[0].capabilities", "at least one capability"},
		{"empty capabilities", "rules: [{path: a, capabilities: []}]", "rules[0].capabilities", "at least one capability"},
		{"capabilities not a list", "rules: [{path: a, capabilities: read}]", "rules[0].capabilities", "expected a list"},
		{"bad effect", "rules: [{path: a, capabilities: [read], effect: maybe}]", "rules[0].effect", `unknown effect "maybe"`},
		{"no path", "rules: [{capabilities: [read]}]", "rules[0].path", "empty"},
		{"bad glob", rule("  - {path: 'secrets/a**', capabilities: [read]}"), "rules[1].path", "whole segment"},
		{"leading slash", rule("  - {path: /secrets, capabilities: [read]}"), "rules[1].path", "start with '/'"},
		{"empty segment", "rules: [{path: 'a//b', capabilities: [read]}]", "rules[0].path", "empty segment"},
		{"dot dot", "rules: [{path: 'a/../b', capabilities: [read]}]", "rules[0].path", `".." segment`},
		{"control char", `{"rules": [{"path": "a\u0007b", "capabilities": ["read"]}]}`, "rules[0].path", "control character"},
		{"long path", "rules: [{path: " + strings.Repeat("a", 513) + ", capabilities: [read]}]", "rules[0].path", "longer than 512"},
		{"bad CIDR", "rules: [{path: a, capabilities: [read], conditions: {source_ip: [10.0.0.0/8, 10.0.0/33]}}]",
			"rules[0].conditions.source_ip[1]", `invalid CIDR "10.0.0/33"`},
		{"zoned address", "rules: [{path: a, capabilities: [read], conditions: {source_ip: ['fe80::1%eth0']}}]",
			"rules[0].conditions.source_ip[0]", "invalid CIDR"},
		{"empty source_ip", "rules: [{path: a, capabilities: [read], conditions: {source_ip: []}}]",
			"rules[0].conditions.source_ip", "never apply"},
		{"bad time", "rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '8am', end: '18:00'}}}]",
			"rules[0].conditions.time_of_day.start", `invalid time "8am"`},
		{"hour 24", "rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '08:00', end: '24:00'}}}]",
			"rules[0].conditions.time_of_day.end", "00-23"},
		{"missing end", "rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '08:00'}}}]",
			"rules[0].conditions.time_of_day.end", "invalid time"},
		{"start equals end", "rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '08:00', end: '08:00'}}}]",
			"rules[0].conditions.time_of_day", "empty"},
		{"bad zone", "rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '08:00', end: '09:00', time_zone: Mars/Base}}}]",
			"rules[0].conditions.time_of_day.time_zone", `unknown time zone "Mars/Base"`},
		{"local zone", "rules: [{path: a, capabilities: [read], conditions: {time_zone: Local, days_of_week: [mon]}}]",
			"rules[0].conditions.time_zone", "depends on the server"},
		{"zones disagree", "rules: [{path: a, capabilities: [read], conditions: {time_zone: UTC, time_of_day: {start: '08:00', end: '09:00', time_zone: Europe/Paris}}}]",
			"rules[0].conditions.time_of_day.time_zone", "differs"},
		{"bad day", "rules: [{path: a, capabilities: [read], conditions: {days_of_week: [mon, funday]}}]",
			"rules[0].conditions.days_of_week[1]", `unknown day "funday"`},
		{"day case", "rules: [{path: a, capabilities: [read], conditions: {days_of_week: [Mon]}}]",
			"rules[0].conditions.days_of_week[0]", `unknown day "Mon"`},
		{"empty days", "rules: [{path: a, capabilities: [read], conditions: {days_of_week: []}}]",
			"rules[0].conditions.days_of_week", "never apply"},
		{"bad ttl", "rules: [{path: a, capabilities: [read], conditions: {ttl_max: forever}}]",
			"rules[0].conditions.ttl_max", `invalid duration "forever"`},
		{"negative ttl", "rules: [{path: a, capabilities: [read], conditions: {ttl_max: -1h}}]",
			"rules[0].conditions.ttl_max", "positive"},
		{"unknown top field", "rules: [{path: a, capabilities: [read]}]\npolicy: x", "policy", "unknown field"},
		{"unknown rule field", "rules: [{path: a, capabilities: [read], capability: [list]}]", "rules[0].capability", "unknown field"},
		{"field case", "rules: [{Path: a, capabilities: [read]}]", "rules[0].Path", "unknown field"},
		{"unknown condition", "rules: [{path: a, capabilities: [read], conditions: {source_ips: [1.2.3.4]}}]",
			"rules[0].conditions.source_ips", "unknown field"},
		{"unknown time_of_day field", "rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '01:00', end: '02:00', zone: UTC}}}]",
			"rules[0].conditions.time_of_day.zone", "unknown field"},
		{"empty rules", "rules: []", "rules", "at least one rule"},
		{"no rules", "name: p", "rules", "at least one rule"},
		{"empty document", "", "rules", "at least one rule"},
		{"rules not a list", "rules: {path: a}", "rules", "expected a list"},
		{"rule not an object", "rules: [a]", "rules[0]", "expected an object"},
		{"document not an object", "[1, 2]", "", "expected an object"},
		{"path not a string", "rules: [{path: [a], capabilities: [read]}]", "rules[0].path", "expected a string"},
		{"duplicate key", "rules: [{path: a, path: b, capabilities: [read]}]", "", "already set"},
		{"not YAML", "rules: [", "", "not a valid YAML or JSON document"},
		{"too many rules", "rules:\n" + strings.Repeat("- {path: a, capabilities: [read]}\n", MaxRules+1), "rules", "more than the 1000"},
		{"too large", "# " + strings.Repeat("x", MaxDocumentSize), "", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := Parse("p", []byte(tt.doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T), want a *ValidationError", err, err)
			}
			if ve.Field != tt.field || !strings.Contains(ve.Reason, tt.reasonHas) {
				t.Errorf("error on %q: %q; want on %q, containing %q", ve.Field, ve.Reason, tt.field, tt.reasonHas)
			}
			if !strings.HasPrefix(err.Error(), tt.field) {
				t.Errorf("Error() = %q does not start with the field %q", err, tt.field)
			}
		})
	}
}

func TestParseErrorsExact(t *testing.T) {
	// The messages the HTTP layer shows, word for word.
	for doc, want := range map[string]string{
		"rules:\n- {path: a, capabilities: [read]}\n- {path: b, capabilities: [read]}\n- {path: c, capabilities: [read, raed]}":     `rules[2].capabilities[1]: unknown capability "raed" (create, read, update, delete, list, sudo or deny)`,
		"rules: [{path: a, capabilities: [read], conditions: {source_ip: [10.0.0.0/8, 10.0.0/33]}}]":                                `rules[0].conditions.source_ip[1]: invalid CIDR "10.0.0/33"`,
		"rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '08:00', end: '09:00', time_zone: Mars/Base}}}]": `rules[0].conditions.time_of_day.time_zone: unknown time zone "Mars/Base"`,
	} {
		_, err := Parse("p", []byte(doc))
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %q", doc, err, want)
		}
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	doc := `
rules:
  - path: /a
    capabilities: [raed]
  - path: b
    capabilities: [read]
    conditions: {ttl_max: soon}
`
	_, err := Parse("p", []byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *ValidationError", err)
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"rules[0].path", "rules[0].capabilities[0]", "rules[1].conditions.ttl_max"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("problems on %q, want %q", fields, want)
	}
	for _, f := range want {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Error() = %q does not name %s", err, f)
		}
	}

	// Past the cap, the rest are counted.
	_, err = Parse("p", []byte("rules:\n"+strings.Repeat("- {path: a, capabilities: [bad]}\n", 50)))
	if !errors.As(err, &ve) || len(ve.Problems) != maxProblems+1 || !strings.Contains(err.Error(), "and 30 more problems") {
		t.Errorf("50 problems: %v", err)
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	for _, doc := range []string{fullYAML, DefaultPolicyDocument,
		"rules: [{path: a, capabilities: [read], conditions: {time_zone: Asia/Tokyo}}]",
		"rules: [{path: a, capabilities: [read], conditions: {days_of_week: [sunday], time_zone: America/New_York}}]",
		"rules: [{path: a, capabilities: [read], conditions: {}}]",
	} {
		p, err := Parse("p", []byte(doc))
		if err != nil {
			// fullYAML and the default policy name themselves.
			p, err = Parse("", []byte(doc))
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		c := p.Canonical()
		q, err := Parse("", c)
		if err != nil {
			t.Fatalf("Parse(Canonical()) of %q: %v\n%s", doc, err, c)
		}
		if !reflect.DeepEqual(p, q) {
			t.Errorf("Parse(Canonical()) differs:\n%#v\n%#v", p, q)
		}
		if c2 := q.Canonical(); string(c2) != string(c) {
			t.Errorf("Canonical is not stable:\n%s\n%s", c, c2)
		}
	}
}

func TestKeepUnknownZones(t *testing.T) {
	doc := []byte("rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: '08:00', end: '09:00', time_zone: Mars/Base}}}]")
	if _, err := Parse("p", doc); err == nil {
		t.Fatal("Parse accepted an unknown zone")
	}
	p, err := parse("p", doc, parseOptions{keepUnknownZones: true})
	if err != nil {
		t.Fatalf("parse keeping unknown zones: %v", err)
	}
	if p.Rules[0].Conditions.TimeZone != "Mars/Base" {
		t.Errorf("zone = %q", p.Rules[0].Conditions.TimeZone)
	}
}

func TestBuiltins(t *testing.T) {
	d := DefaultPolicy()
	if d.Name != DefaultPolicyName || len(d.Rules) != 11 || d.IsRoot() {
		t.Errorf("DefaultPolicy() = %+v", d)
	}
	if DefaultPolicy() == d {
		t.Error("DefaultPolicy returns a shared value")
	}
	r := RootPolicy()
	if !r.IsRoot() || r.Name != RootPolicyName {
		t.Errorf("RootPolicy() = %+v", r)
	}
	if (&Policy{Name: RootPolicyName}).IsRoot() {
		t.Error("a hand-made policy named root is root")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		fullYAML, DefaultPolicyDocument,
		`{"name":"fuzz","rules":[{"path":"a/*","capabilities":["read"],"effect":"deny"}]}`,
		"rules: [{path: a, capabilities: [read], conditions: {time_of_day: {start: 22:00, end: 06:00, time_zone: UTC}}}]",
		"rules: [{path: '**/x?', capabilities: [deny], conditions: {source_ip: ['::1', 10.0.0.1/8], ttl_max: 1h30m}}]",
		"rules: [{path: a, capabilities: [sudo], conditions: {days_of_week: [saturday, sun], time_zone: Asia/Tokyo}}]",
		"rules: [", "[]", "name: root", "rules: [{path: a, path: b}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse("fuzz", doc)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error %v is a %T, not a *ValidationError", err, err)
			}
			return
		}
		c := p.Canonical()
		q, err := Parse("fuzz", c)
		if err != nil {
			t.Fatalf("Parse(Canonical()) = %v\ndocument: %q\ncanonical: %s", err, doc, c)
		}
		if !reflect.DeepEqual(p, q) || !p.Equal(q) {
			t.Fatalf("Parse(Canonical()) differs\ndocument: %q\ncanonical: %s\nfirst: %#v\nsecond: %#v", doc, c, p, q)
		}
		// Whatever parses compiles and evaluates without panicking.
		NewACL(p).Explain(Request{Path: "secrets/a", Capability: Read, Time: time.Unix(0, 0)})
	})
}
