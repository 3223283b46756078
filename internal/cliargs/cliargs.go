// Package cliargs rewrites command lines for cobra, shared by the
// secrethub and secrethub-agent binaries.
package cliargs

import "regexp"

// longFlag matches a long flag written with a single dash, such as
// -format=json or -dev.
var longFlag = regexp.MustCompile(`^-[a-zA-Z][a-zA-Z0-9-]+(=.*)?$`)

// Normalize rewrites single-dash long flags (-dev, -format=json) into the
// double-dash form cobra parses, so the Vault-style spelling that SecretHub
// documents works. Arguments after "--" are left alone.
func Normalize(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if longFlag.MatchString(a) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}
