package database

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Limits on what a request may carry.
const (
	maxListLen     = 64                     // allowed_roles, statements of one kind
	maxStringLen   = 2048                   // connection_url, username, one list element
	maxTTL         = 100 * 8766 * time.Hour // ~100 years
	maxConnections = 1000                   // max_open_connections
	// minRotationPeriod is the shortest rotation_period of a static role
	// (as in Vault).
	minRotationPeriod = 5 * time.Second
)

// nameRE is what a config, role or static role name may be.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,127}$`)

// parseString reads a one-line string field of at most maxStringLen
// bytes (see field.Text).
func parseString(v any) (string, error) { return field.Text(v, maxStringLen) }

// parseSecretString reads a password: a string of at most maxStringLen
// bytes, kept as it is. Its errors never quote it.
func parseSecretString(v any) (string, error) {
	s, ok := field.Single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", field.TypeName(v))
	}
	if len(s) > maxStringLen || strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("longer than %d bytes or contains a NUL byte", maxStringLen)
	}
	return s, nil
}

// parseNames reads a list of names (allowed_roles), as a JSON list or a
// comma-separated string.
func parseNames(v any) ([]string, error) {
	ss, err := field.Strings(v, maxListLen, maxStringLen)
	if ss == nil && err == nil {
		ss = []string{}
	}
	return ss, err
}

// parseStatements reads statement templates: one string (which may hold
// several statements separated by ';'), or a list of such strings. Unlike
// other lists a single string is not split on commas: SQL has commas.
func parseStatements(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case nil:
		return []string{}, nil
	case string:
		raw = []string{x}
	case []string:
		raw = x
	case []any:
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d: want a string, got %s", i, field.TypeName(e))
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("want a string or a list of strings, got %s", field.TypeName(v))
	}
	if len(raw) > maxListLen {
		return nil, fmt.Errorf("more than %d elements", maxListLen)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// statementsField reads a statements field and checks that its templates
// parse with the given placeholders.
func statementsField(data map[string]any, name string, def []string, placeholders ...string) ([]string, error) {
	ss, err := field.GetOr(data, name, parseStatements, def)
	if err != nil {
		return nil, err
	}
	if _, err := parseTemplates(ss, placeholders...); err != nil {
		return nil, logical.Invalid(name, "%v", err)
	}
	return ss, nil
}

// parseInt reads a whole number in [lo, hi].
func parseInt(lo, hi int64) func(any) (int64, error) {
	return func(v any) (int64, error) {
		if x, ok := field.Single(v).(json.Number); ok {
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("want a whole number")
			}
			v = n
		}
		f, err := field.Whole(v)
		if err != nil {
			return 0, err
		}
		if f < float64(lo) || f > float64(hi) {
			return 0, fmt.Errorf("must be from %d to %d", lo, hi)
		}
		return int64(f), nil
	}
}

// parseTTL reads a duration: seconds or a string like "1h".
func parseTTL(v any) (time.Duration, error) {
	return field.Duration(v, maxTTL, parseInt(0, int64(maxTTL/time.Second)))
}

// seconds returns d in whole seconds, as Vault shows durations.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// checkName checks the name in a path.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return logical.Invalid("name", "a name is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.'")
	}
	return nil
}
