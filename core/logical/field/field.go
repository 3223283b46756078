// Package field reads the fields of a decoded request body: the
// map[string]any the HTTP layer builds from a JSON body (numbers as
// json.Number or float64), from query parameters (strings, or one-element
// lists of strings), or that an in-process caller fills with Go values.
//
// The parsers accept those forms and answer anything else with an error
// that describes the value's type but never echoes a whole value: a body
// may hold a secret. Get and GetNonNull turn such an error into a
// *logical.InvalidRequestError naming the field.
//
// The package holds only what the engines share; limits and
// engine-specific checks stay with the engines, passed in as arguments.
package field

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-secure-stdlib/parseutil"

	"github.com/secrethub/secrethub/core/logical"
)

// TypeName describes a decoded value's type for an error message: "null",
// "a string", "a boolean", "a number", "a list", "an object", or the Go
// type of anything else.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, json.Number, int, int64, int32, uint, uint64, uint32:
		return "a number"
	case []any, []string:
		return "a list"
	case map[string]any, map[string]string:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// Single unwraps a one-element list, the form query parameters take; it
// returns any other value as it is.
func Single(v any) any {
	switch x := v.(type) {
	case []string:
		if len(x) == 1 {
			return x[0]
		}
	case []any:
		if len(x) == 1 {
			return x[0]
		}
	}
	return v
}

// Truncate returns at most the first n bytes of s, for quoting part of a
// value in an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// HasControl reports whether s holds an ASCII control character (below
// 0x20, or DEL).
func HasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// String reads a string (or a one-element list of one) that is valid
// UTF-8. It neither trims nor bounds the string.
func String(v any) (string, error) {
	s, ok := Single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", TypeName(v))
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("not valid UTF-8")
	}
	return s, nil
}

// Text reads a one-line string field (see String) of at most max bytes,
// without control characters, trimmed of surrounding spaces.
func Text(v any, max int) (string, error) {
	s, err := String(v)
	if err != nil {
		return "", err
	}
	switch {
	case len(s) > max:
		return "", fmt.Errorf("longer than %d bytes", max)
	case HasControl(s):
		return "", fmt.Errorf("contains a control character")
	}
	return strings.TrimSpace(s), nil
}

// Bool reads a boolean, given as a JSON boolean or as a string
// strconv.ParseBool accepts (surrounding spaces ignored).
func Bool(v any) (bool, error) {
	switch x := Single(v).(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("want true or false, got %q", Truncate(x, 32))
		}
		return b, nil
	}
	return false, fmt.Errorf("want a boolean, got %s", TypeName(v))
}

// Whole reads a whole number: a Go number, a json.Number or a string of
// digits (surrounding spaces ignored), or a one-element list of one. It
// returns the number as a float64, whole and finite, for the caller to
// check against its own bounds.
func Whole(v any) (float64, error) {
	var f float64
	switch x := Single(v).(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case json.Number:
		return Whole(string(x))
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", Truncate(x, 32))
		}
		f = float64(n)
	default:
		return 0, fmt.Errorf("want a number, got %s", TypeName(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, fmt.Errorf("want a whole number")
	}
	return f, nil
}

// Duration reads a duration: a number of seconds, or a string as Vault
// accepts it ("90s", "30m", "1h", "7d", "2160h0m0s", or digits meaning
// seconds). An empty string is zero. The result must be whole seconds,
// non-negative and at most max.
//
// A number (JSON number or Go number) is read by seconds, the caller's
// parser of whole numbers, which must refuse anything above max in
// seconds; its error is prefixed with "seconds: ".
func Duration(v any, max time.Duration, seconds func(any) (int64, error)) (time.Duration, error) {
	var d time.Duration
	switch x := Single(v).(type) {
	case float64, float32, int, int64, int32, json.Number:
		n, err := seconds(x)
		if err != nil {
			return 0, fmt.Errorf("seconds: %w", err)
		}
		d = time.Duration(n) * time.Second
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, nil
		}
		var err error
		if d, err = parseutil.ParseDurationSecond(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (use seconds or a form like 90s, 30m, 1h, 7d)", Truncate(s, 32))
		}
	default:
		return 0, fmt.Errorf("want a duration, got %s", TypeName(v))
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("must not be negative")
	case d > max:
		return 0, fmt.Errorf("must be at most %d seconds", int64(max/time.Second))
	case d%time.Second != 0:
		return 0, fmt.Errorf("must be a whole number of seconds")
	}
	return d, nil
}

// Strings reads a list of strings, given as a JSON list or as one
// comma-separated string (as Vault accepts). Elements are trimmed and
// empty ones dropped; there may be at most maxLen of them before
// dropping, each valid UTF-8 of at most maxElemLen bytes without control
// characters. Null reads as a nil list.
func Strings(v any, maxLen, maxElemLen int) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		raw = strings.Split(x, ",")
	case []string:
		raw = x
		if len(x) == 1 {
			raw = strings.Split(x[0], ",")
		}
	case []any:
		raw = make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d: want a string, got %s", i, TypeName(e))
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("want a list of strings, got %s", TypeName(v))
	}
	if len(raw) > maxLen {
		return nil, fmt.Errorf("more than %d elements", maxLen)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !utf8.ValidString(s) || len(s) > maxElemLen {
			return nil, fmt.Errorf("element %q: not valid UTF-8 or longer than %d bytes", Truncate(s, 32), maxElemLen)
		}
		if HasControl(s) {
			return nil, fmt.Errorf("element %q: contains a control character", Truncate(s, 32))
		}
		out = append(out, s)
	}
	return out, nil
}

// Unknown returns, sorted, the keys of data that are not in allowed.
func Unknown(data map[string]any, allowed ...string) []string {
	var out []string
	for k := range data {
		if !slices.Contains(allowed, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// CheckFields refuses fields of data that are not in allowed, with an
// InvalidRequestError naming the first unknown one in sorted order (so
// the message does not vary) and listing the accepted ones. A name that
// is not short, printable UTF-8 is quoted.
func CheckFields(data map[string]any, allowed ...string) error {
	unknown := Unknown(data, allowed...)
	if len(unknown) == 0 {
		return nil
	}
	name := unknown[0]
	if !utf8.ValidString(name) || len(name) > 64 || HasControl(name) {
		name = strconv.QuoteToASCII(Truncate(name, 64))
	}
	return logical.Invalid(name, "unknown field; accepted: %s", strings.Join(allowed, ", "))
}

// Get runs parse on data[name] when the key is present (even when its
// value is null), turning parse's error into an InvalidRequestError naming
// the field. ok reports whether the key was present.
func Get[T any](data map[string]any, name string, parse func(any) (T, error)) (t T, ok bool, err error) {
	v, ok := data[name]
	if !ok {
		return t, false, nil
	}
	return run(name, v, parse)
}

// GetNonNull is Get for which a null value counts as absent: parse never
// sees nil.
func GetNonNull[T any](data map[string]any, name string, parse func(any) (T, error)) (t T, ok bool, err error) {
	v := data[name]
	if v == nil {
		return t, false, nil
	}
	return run(name, v, parse)
}

// GetOr is GetNonNull with def for an absent or null field.
func GetOr[T any](data map[string]any, name string, parse func(any) (T, error), def T) (T, error) {
	t, ok, err := GetNonNull(data, name, parse)
	if err != nil || !ok {
		return def, err
	}
	return t, nil
}

func run[T any](name string, v any, parse func(any) (T, error)) (T, bool, error) {
	t, err := parse(v)
	if err != nil {
		var zero T
		return zero, true, logical.Invalid(name, "%v", err)
	}
	return t, true, nil
}
