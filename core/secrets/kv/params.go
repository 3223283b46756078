package kv

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Limits on custom metadata, the same as Vault's.
const (
	maxCustomMetadataKeys        = 64
	maxCustomMetadataKeyLength   = 128
	maxCustomMetadataValueLength = 512
)

// maxVersionNumber bounds version numbers, cas and max_versions, so that
// every value fits an int on every platform and in a storage key.
const maxVersionNumber = math.MaxInt32

// Request parameters arrive as whatever the HTTP layer decoded: json.Number
// or float64 from a JSON body, strings from a query string, Go integers from
// in-process callers. The parsers below accept all of them and answer
// anything else with an InvalidRequestError naming the field. They never echo
// the value: a body may hold a secret.

// parseInt parses v as an integer in [lo, hi].
func parseInt(field string, v any, lo, hi int64) (int64, error) {
	bad := func() error { return logical.Invalid(field, "must be an integer from %d to %d", lo, hi) }
	var n int64
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			f, ferr := x.Float64()
			if ferr != nil || !integral(f) {
				return 0, bad()
			}
			i = int64(f)
		}
		n = i
	case float64:
		if !integral(x) {
			return 0, bad()
		}
		n = int64(x)
	case float32:
		if !integral(float64(x)) {
			return 0, bad()
		}
		n = int64(x)
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, bad()
		}
		n = i
	case int:
		n = int64(x)
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, bad()
		}
		n = int64(x)
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		n = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return 0, bad()
		}
		n = int64(x)
	default:
		return 0, bad()
	}
	if n < lo || n > hi {
		return 0, bad()
	}
	return n, nil
}

// integral reports whether f is a whole number that fits an int64.
func integral(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0) && f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64
}

// parseVersion parses a version number; 0 means the latest.
func parseVersion(field string, v any) (int, error) {
	n, err := parseInt(field, v, 0, maxVersionNumber)
	return int(n), err
}

// parseVersions parses a non-empty list of version numbers: a JSON array of
// numbers or numeric strings (the Vault client sends both), a
// comma-separated string ("1,2,3", as a query parameter carries it), or a
// single number. The result is sorted and free of duplicates.
func parseVersions(field string, v any) ([]int, error) {
	var items []any
	switch x := v.(type) {
	case nil:
		return nil, logical.Invalid(field, "no version number provided")
	case []any:
		items = x
	case []string:
		for _, s := range x {
			items = append(items, s)
		}
	case []int:
		for _, n := range x {
			items = append(items, n)
		}
	case []int64:
		for _, n := range x {
			items = append(items, n)
		}
	case []float64:
		for _, n := range x {
			items = append(items, n)
		}
	case []json.Number:
		for _, n := range x {
			items = append(items, n)
		}
	case string:
		for s := range strings.SplitSeq(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	default:
		items = []any{x}
	}
	if len(items) == 0 {
		return nil, logical.Invalid(field, "no version number provided")
	}
	out := make([]int, 0, len(items))
	for _, it := range items {
		n, err := parseInt(field, it, 1, maxVersionNumber)
		if err != nil {
			return nil, logical.Invalid(field, "each version must be an integer from 1 to %d", maxVersionNumber)
		}
		out = append(out, int(n))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseBool parses a boolean, or a string strconv.ParseBool accepts (see
// field.Bool). Unlike field.Bool, it takes no one-element list.
func parseBool(name string, v any) (bool, error) {
	switch v.(type) {
	case bool, string:
		if b, err := field.Bool(v); err == nil {
			return b, nil
		}
	}
	return false, logical.Invalid(name, "must be true or false")
}

// parseDuration parses a non-negative duration the way Vault does: a Go
// duration string ("1h30m"), a number of days ("7d"), or a number of
// seconds (a JSON number or a numeric string).
func parseDuration(field string, v any) (time.Duration, error) {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64/int64(time.Second))) {
		return 0, logical.Invalid(field, "must be a duration such as \"1h30m\" or a number of seconds")
	}
	d, err := parseutil.ParseDurationSecond(v)
	if err != nil {
		return 0, logical.Invalid(field, "must be a duration such as \"1h30m\" or a number of seconds")
	}
	if d < 0 {
		return 0, logical.Invalid(field, "must not be negative")
	}
	return d, nil
}

// parseCustomMetadata parses custom_metadata: an object of string values,
// or null for none. The limits are Vault's.
func parseCustomMetadata(field string, v any) (map[string]string, error) {
	var in map[string]any
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		in = x
	case map[string]string:
		in = make(map[string]any, len(x))
		for k, s := range x {
			in[k] = s
		}
	default:
		return nil, logical.Invalid(field, "must be an object of string values")
	}
	if len(in) > maxCustomMetadataKeys {
		return nil, logical.Invalid(field, "more than %d keys", maxCustomMetadataKeys)
	}
	out := make(map[string]string, len(in))
	for k, val := range in {
		if k == "" || len(k) > maxCustomMetadataKeyLength {
			return nil, logical.Invalid(field, "keys must be 1 to %d bytes long", maxCustomMetadataKeyLength)
		}
		s, ok := val.(string)
		if !ok {
			return nil, logical.Invalid(field, "values must be strings")
		}
		if len(s) > maxCustomMetadataValueLength {
			return nil, logical.Invalid(field, "values must be at most %d bytes long", maxCustomMetadataValueLength)
		}
		out[k] = s
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// parseCAS parses a check-and-set option, absent when v is nil.
func parseCAS(field string, v any) (*int, error) {
	if v == nil {
		return nil, nil
	}
	n, err := parseInt(field, v, 0, maxVersionNumber)
	if err != nil {
		return nil, err
	}
	cas := int(n)
	return &cas, nil
}

// ignoredWarning is the warning for parameters an endpoint ignores, as
// Vault words it. Parameter names are not secret; values never appear.
func ignoredWarning(keys []string) []string {
	if len(keys) == 0 {
		return nil
	}
	return []string{"Endpoint ignored these unrecognized parameters: [" + strings.Join(keys, " ") + "]"}
}
