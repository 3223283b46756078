package controllers

import (
	"regexp"
	"strings"
	"testing"
)

func TestCoreName(t *testing.T) {
	long := strings.Repeat("a", 253)
	tests := map[string]struct {
		ns, name, want string
	}{
		"short":            {"team-a", "app", "k8s_team-a_app"},
		"dots in the name": {"team-a", "app.v1", "k8s_team-a_app.v1"},
		// "a-b"/"c" and "a"/"b-c" would collide with '-' as separator.
		"dash left":  {"a-b", "c", "k8s_a-b_c"},
		"dash right": {"a", "b-c", "k8s_a_b-c"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := CoreName(tc.ns, tc.name); got != tc.want {
				t.Fatalf("CoreName(%q, %q) = %q, want %q", tc.ns, tc.name, got, tc.want)
			}
		})
	}
	// Long names are shortened, stay within every limit of the core, and
	// still differ.
	valid := regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]{0,63}$`)
	a, b := CoreName("ns", long), CoreName("ns", long[:252])
	for _, n := range []string{a, b, Segment("ns", long)} {
		if len(n) > MaxCoreNameLen || !valid.MatchString(n) {
			t.Fatalf("shortened name %q (%d bytes) is not a valid core name", n, len(n))
		}
	}
	if a == b || CoreName("ns1", long) == CoreName("ns2", long) {
		t.Fatal("shortened names collide")
	}
	if Segment("ns", "app") != "app" || Segment("ns1", long) == Segment("ns2", long) {
		t.Fatal("Segment")
	}
}
