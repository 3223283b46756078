package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		// Literals match exactly.
		{"secrets/app/db", "secrets/app/db", true},
		{"secrets/app/db", "secrets/app/db2", false},
		{"secrets/app/db", "secrets/app", false},
		{"secrets/app/db", "secrets/app/db/x", false},
		{"secrets/app/db", "Secrets/app/db", false},
		{"secrets/app", "secrets/app/", false},

		// '*' stays within one segment and may be empty.
		{"secrets/app/*", "secrets/app/db", true},
		{"secrets/app/*", "secrets/app/", true}, // a folder list
		{"secrets/app/*", "secrets/app", false},
		{"secrets/app/*", "secrets/app/db/password", false},
		{"secrets/*/db", "secrets/app/db", true},
		{"secrets/*/db", "secrets/a/b/db", false},
		{"secrets/*/db", "secrets//db", true},
		{"secrets/app-*", "secrets/app-prod", true},
		{"secrets/app-*", "secrets/app-", true},
		{"secrets/app-*", "secrets/app", false},
		{"secrets/*-prod", "secrets/db-prod", true},
		{"secrets/*-prod", "secrets/db-prod/x", false},
		{"secrets/a*b*c", "secrets/abc", true},
		{"secrets/a*b*c", "secrets/aXbYc", true},
		{"secrets/a*b*c", "secrets/aXbYcZ", false},
		{"secrets/a*b*c", "secrets/acb", false},
		{"secrets/*a*a", "secrets/aaaa", true}, // needs backtracking
		{"secrets/*ab", "secrets/aab", true},
		{"*", "secrets", true},
		{"*", "secrets/app", false},
		{"*/*", "secrets/app", true},

		// '?' is exactly one character, never '/'.
		{"secrets/db?", "secrets/db1", true},
		{"secrets/db?", "secrets/db", false},
		{"secrets/db?", "secrets/db12", false},
		{"secrets/db?", "secrets/db/", false},
		{"secrets/?/x", "secrets/a/x", true},
		{"secrets/?/x", "secrets//x", false},
		{"secrets/db?", "secrets/dbé", true}, // one character, two bytes
		{"secrets/db??", "secrets/dbé", false},
		{"secrets/?é", "secrets/éé", true},
		{"secrets/*?", "secrets/é", true},

		// '**' matches zero or more whole segments.
		{"secrets/**", "secrets", true},
		{"secrets/**", "secrets/", true},
		{"secrets/**", "secrets/a", true},
		{"secrets/**", "secrets/a/b/c", true},
		{"secrets/**", "secretsx", false},
		{"secrets/**", "secretsx/a", false},
		{"secrets/**", "other/a", false},
		{"secrets/**/db", "secrets/db", true},
		{"secrets/**/db", "secrets/x/db", true},
		{"secrets/**/db", "secrets/x/y/db", true},
		{"secrets/**/db", "secrets/x/y/db2", false},
		{"secrets/**/db", "secrets/x/y/db/z", false},
		{"secrets/**/db", "secrets/db/db", true},
		{"**", "anything/at/all", true},
		{"**", "x", true},
		{"**/db", "db", true},
		{"**/db", "a/b/db", true},
		{"**/db", "a/b/dbx", false},
		{"a/**/**/b", "a/b", true},
		{"a/**/b/**/c", "a/x/b/y/z/c", true},
		{"a/**/b/**/c", "a/x/c/y/b", false},
		{"a/**/b/*/c", "a/b/b/x/c", true},
		{"**/*.json", "x/y/conf.json", true},
		{"**/*.json", "conf.json", true},
		{"**/*.json", "x/y/conf.yaml", false},

		// Everything else is literal, regular-expression characters too.
		{"secrets/a.b", "secrets/a.b", true},
		{"secrets/a.b", "secrets/aXb", false},
		{"secrets/[ab]", "secrets/[ab]", true},
		{"secrets/[ab]", "secrets/a", false},
		{"secrets/a+", "secrets/aa", false},
		{`secrets/a\*`, `secrets/a\x`, true},
		{"secrets/(x|y)", "secrets/(x|y)", true},
		{"secrets/^$", "secrets/^$", true},
		{"secrets/café", "secrets/café", true},
		{"secrets/café", "secrets/cafe", false},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pattern)
		if err != nil {
			t.Errorf("compileGlob(%q): %v", tt.pattern, err)
			continue
		}
		if got := g.matchString(tt.path); got != tt.want {
			t.Errorf("%q matching %q = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
		if got := refMatch(tt.pattern, tt.path); got != tt.want {
			t.Errorf("reference: %q matching %q = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func TestGlobManySegments(t *testing.T) {
	// More segments than fit on the stack still match.
	path := strings.Repeat("a/", 100) + "db"
	for pattern, want := range map[string]bool{
		"a/**/db":                       true,
		"**/a/db":                       true,
		strings.Repeat("*/", 100) + "*": true,
		strings.Repeat("*/", 99) + "*":  false,
		"a/**/x":                        false,
	} {
		g, err := compileGlob(pattern)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", pattern, err)
		}
		if got := g.matchString(path); got != want {
			t.Errorf("%q matching a 101-segment path = %v, want %v", pattern, got, want)
		}
	}
}

func TestGlobInvalid(t *testing.T) {
	tests := []struct {
		pattern string
		want    string // in the error
	}{
		{"", "empty"},
		{"/secrets/app", "start with '/'"},
		{"secrets//app", "empty segment"},
		{"secrets/app/", "empty segment"},
		{"secrets/./app", `"." segment`},
		{"secrets/../app", `".." segment`},
		{"..", `".." segment`},
		{"secrets/a**", "whole segment"},
		{"secrets/**b", "whole segment"},
		{"secrets/***", "whole segment"},
		{"secrets/a/**x/b", "whole segment"},
		{"secrets/a\x00b", "control character"},
		{"secrets/a\nb", "control character"},
		{"secrets/a\x7fb", "control character"},
		{"secrets/a\u0085b", "control character"},
		{"secrets/\xff", "UTF-8"},
		{strings.Repeat("a", MaxPathLength+1), "longer than 512"},
	}
	for _, tt := range tests {
		_, err := compileGlob(tt.pattern)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("compileGlob(%q) = %v, want an error containing %q", tt.pattern, err, tt.want)
		}
	}
	if _, err := compileGlob(strings.Repeat("a", MaxPathLength)); err != nil {
		t.Errorf("a path of exactly %d bytes: %v", MaxPathLength, err)
	}
}

// refMatch is the reference the matcher is checked against: a direct,
// recursive reading of the grammar in docs/policies.md, on runes, with no
// attempt at speed beyond memoisation.
func refMatch(pattern, path string) bool {
	p := strings.Split(pattern, "/")
	s := strings.Split(path, "/")
	memo := make(map[[2]int]bool)
	var segs func(i, j int) bool
	segs = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var ok bool
		switch {
		case i == len(p):
			ok = j == len(s)
		case p[i] == "**":
			ok = segs(i+1, j) || (j < len(s) && segs(i, j+1))
		default:
			ok = j < len(s) && refSegment([]rune(p[i]), []rune(s[j])) && segs(i+1, j+1)
		}
		memo[k] = ok
		return ok
	}
	return segs(0, 0)
}

func refSegment(p, s []rune) bool {
	memo := make(map[[2]int]bool)
	var m func(i, j int) bool
	m = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var ok bool
		switch {
		case i == len(p):
			ok = j == len(s)
		case p[i] == '*':
			ok = m(i+1, j) || (j < len(s) && m(i, j+1))
		case p[i] == '?':
			ok = j < len(s) && m(i+1, j+1)
		default:
			ok = j < len(s) && s[j] == p[i] && m(i+1, j+1)
		}
		memo[k] = ok
		return ok
	}
	return m(0, 0)
}

// refValid is the reference for which patterns are valid.
func refValid(pattern string) bool {
	if pattern == "" || len(pattern) > MaxPathLength || !utf8.ValidString(pattern) {
		return false
	}
	for _, r := range pattern {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "" || seg == "." || seg == ".." || (seg != "**" && strings.Contains(seg, "**")) {
			return false
		}
	}
	return true
}

func FuzzGlobMatch(f *testing.F) {
	seeds := [][2]string{
		{"secrets/app/*", "secrets/app/db"},
		{"secrets/**", "secrets"},
		{"secrets/**/db", "secrets/x/y/db"},
		{"a/*b*c?/**", "a/xbyc1/z"},
		{"**/*.json", "x/conf.json"},
		{"secrets/db?", "secrets/dbé"},
		{"*a*a*a", "aaaaaaab"},
		{"a//b", "a//b"},
		{"/a", "/a"},
		{"a/**x", "a/x"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		g, err := compileGlob(pattern)
		if valid := refValid(pattern); (err == nil) != valid {
			t.Fatalf("compileGlob(%q) error = %v, but the reference says valid = %v", pattern, err, valid)
		}
		if err != nil || !utf8.ValidString(path) {
			return
		}
		if got, want := g.matchString(path), refMatch(pattern, path); got != want {
			t.Fatalf("%q matching %q = %v, reference says %v", pattern, path, got, want)
		}
	})
}
