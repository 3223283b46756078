package policy

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/storage/inmem"
)

// benchPolicies is 50 rules over 5 policies, of every kind: literal paths,
// '*', '?', '**', deny rules and conditions.
func benchPolicies(b *testing.B) []*Policy {
	b.Helper()
	var out []*Policy
	for p := range 5 {
		var doc strings.Builder
		doc.WriteString("rules:\n")
		for r := range 10 {
			switch r % 5 {
			case 0:
				fmt.Fprintf(&doc, "  - {path: secrets/team%d/app%d/config, capabilities: [read]}\n", p, r)
			case 1:
				fmt.Fprintf(&doc, "  - {path: secrets/team%d/app%d/*, capabilities: [read, list]}\n", p, r)
			case 2:
				fmt.Fprintf(&doc, "  - {path: \"secrets/team%d/**/db-?\", capabilities: [update], conditions: {source_ip: [10.0.0.0/8, \"2001:db8::/32\"], ttl_max: 1h}}\n", p)
			case 3:
				fmt.Fprintf(&doc, "  - {path: secrets/team%d/app%d/admin/**, capabilities: [deny]}\n", p, r)
			case 4:
				fmt.Fprintf(&doc, "  - {path: sys/team%d/*, capabilities: [read], conditions: {time_of_day: {start: \"08:00\", end: \"18:00\", time_zone: Europe/Paris}, days_of_week: [mon, tue, wed, thu, fri]}}\n", p)
			}
		}
		out = append(out, mustParse(b, fmt.Sprint("team", p), doc.String()))
	}
	return out
}

func BenchmarkEvaluate(b *testing.B) {
	acl := NewACL(benchPolicies(b)...)
	addr := netip.MustParseAddr("10.1.2.3")
	at := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	reqs := map[string]Request{
		"allowed-last-policy": {Path: "secrets/team4/app1/db", Capability: Read, Time: at, ClientAddr: addr},
		"denied-no-match":     {Path: "secrets/other/app/db", Capability: Read, Time: at, ClientAddr: addr},
		"conditions":          {Path: "secrets/team3/x/y/db-1", Capability: Update, Time: at, ClientAddr: addr, TTL: time.Minute},
		"deny-rule":           {Path: "secrets/team2/app3/admin/keys", Capability: Read, Time: at, ClientAddr: addr},
		"time-window":         {Path: "sys/team4/status", Capability: Read, Time: at, ClientAddr: addr},
	}
	for name, req := range reqs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				acl.Evaluate(req)
			}
		})
	}
}

func BenchmarkExplain(b *testing.B) {
	acl := NewACL(benchPolicies(b)...)
	req := Request{Path: "secrets/team3/x/y/db-1", Capability: Update, Time: time.Now(), ClientAddr: netip.MustParseAddr("10.1.2.3")}
	b.ReportAllocs()
	for b.Loop() {
		acl.Explain(req)
	}
}

func BenchmarkStoreACLCached(b *testing.B) {
	ctx := context.Background()
	s := NewStore(inmem.New())
	for _, p := range benchPolicies(b) {
		if _, err := s.Put(ctx, p.Name, p.Canonical()); err != nil {
			b.Fatal(err)
		}
	}
	names := []string{"team0", "team1", "team2", "team3", "team4", "default"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ACL(ctx, names); err != nil {
			b.Fatal(err)
		}
	}
}
