package core

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// parseDuration reads a duration given as seconds (a JSON number or a
// string of digits) or as a Go duration string ("90s", "1h30m").
func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		return parseDuration(string(x))
	case float64:
		if x < 0 || x > math.MaxInt64/float64(time.Second) || x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not a whole, non-negative number of seconds", x)
		}
		return time.Duration(x) * time.Second, nil
	case int:
		return parseDuration(float64(x))
	case int64:
		return parseDuration(float64(x))
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return parseDuration(float64(n))
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q is not a duration (use seconds or a form like 90s, 15m, 2h)", s)
		}
		return d, nil
	}
	return 0, fmt.Errorf("want a duration, got %T", v)
}

// fieldDuration reads an optional duration field of data.
func fieldDuration(data map[string]any, name string) (time.Duration, error) {
	d, err := parseDuration(data[name])
	if err != nil {
		return 0, logical.Invalid(name, "%v", err)
	}
	return d, nil
}

// fieldString reads an optional string field of data.
func fieldString(data map[string]any, name string) (string, error) {
	switch x := data[name].(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	}
	return "", logical.Invalid(name, "want a string, got %s", jsonType(data[name]))
}

// fieldBool reads an optional boolean field of data (true/false, or their
// string forms from a query).
func fieldBool(data map[string]any, name string, def bool) (bool, error) {
	switch x := data[name].(type) {
	case nil:
		return def, nil
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, logical.Invalid(name, "want true or false, got %q", x)
		}
		return b, nil
	}
	return false, logical.Invalid(name, "want a boolean, got %s", jsonType(data[name]))
}

// fieldStrings reads an optional list of strings, given as a JSON array
// or a comma-separated string.
func fieldStrings(data map[string]any, name string) ([]string, error) {
	switch x := data[name].(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, nil
		}
		parts := strings.Split(x, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, logical.Invalid(fmt.Sprintf("%s[%d]", name, i), "want a string, got %s", jsonType(e))
			}
			out[i] = s
		}
		return out, nil
	case []string:
		return x, nil
	}
	return nil, logical.Invalid(name, "want a list of strings, got %s", jsonType(data[name]))
}

// fieldStringMap reads an optional object of strings.
func fieldStringMap(data map[string]any, name string) (map[string]string, error) {
	switch x := data[name].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, v := range x {
			s, ok := v.(string)
			if !ok {
				return nil, logical.Invalid(name+"."+k, "want a string, got %s", jsonType(v))
			}
			out[k] = s
		}
		return out, nil
	case map[string]string:
		return x, nil
	}
	return nil, logical.Invalid(name, "want an object of strings, got %s", jsonType(data[name]))
}

// checkFields refuses fields of data outside allowed, naming the first in
// sorted order. Unlike field.CheckFields, the message does not list the
// accepted fields.
func checkFields(data map[string]any, allowed ...string) error {
	if unknown := field.Unknown(data, allowed...); len(unknown) > 0 {
		return logical.Invalid(unknown[0], "unknown field")
	}
	return nil
}

// jsonType is field.TypeName for what encoding/json decodes, with this
// API's wording ("an array"); other Go types are named as such.
func jsonType(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case nil, string, bool, float64, json.Number, int, int64, map[string]any:
		return field.TypeName(v)
	}
	return fmt.Sprintf("%T", v)
}
