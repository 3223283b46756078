package field_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

func TestTypeName(t *testing.T) {
	for v, want := range map[any]string{
		nil:               "null",
		"x":               "a string",
		true:              "a boolean",
		1.5:               "a number",
		json.Number("1"):  "a number",
		int32(1):          "a number",
		uint64(1):         "a number",
		int8(1):           "int8",
		struct{ A int }{}: "struct { A int }",
	} {
		if got := field.TypeName(v); got != want {
			t.Errorf("TypeName(%#v) = %q, want %q", v, got, want)
		}
	}
	for name, tc := range map[string]struct {
		v    any
		want string
	}{
		"any list":    {[]any{1}, "a list"},
		"string list": {[]string{"a"}, "a list"},
		"object":      {map[string]any{}, "an object"},
		"string map":  {map[string]string{}, "an object"},
	} {
		if got := field.TypeName(tc.v); got != tc.want {
			t.Errorf("%s: TypeName = %q, want %q", name, got, tc.want)
		}
	}
}

func TestSingle(t *testing.T) {
	for name, tc := range map[string]struct{ in, want any }{
		"one string":     {[]string{"a"}, "a"},
		"one any":        {[]any{json.Number("2")}, json.Number("2")},
		"two strings":    {[]string{"a", "b"}, []string{"a", "b"}},
		"empty list":     {[]any{}, []any{}},
		"scalar":         {"a", "a"},
		"nil":            {nil, nil},
		"list of a list": {[]any{[]any{"x"}}, []any{"x"}}, // one level only
	} {
		if got := field.Single(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Single = %#v, want %#v", name, got, tc.want)
		}
	}
}

func TestTruncateHasControl(t *testing.T) {
	if got := field.Truncate("abcdef", 3); got != "abc" {
		t.Errorf("Truncate = %q", got)
	}
	if got := field.Truncate("ab", 3); got != "ab" {
		t.Errorf("Truncate short = %q", got)
	}
	for s, want := range map[string]bool{"plain text": false, "tab\there": true, "nl\n": true, "del\x7f": true, "é ü": false, "": false} {
		if got := field.HasControl(s); got != want {
			t.Errorf("HasControl(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestString(t *testing.T) {
	for name, tc := range map[string]struct {
		in      any
		want    string
		wantErr string
	}{
		"string":        {in: " a ", want: " a "}, // not trimmed
		"query form":    {in: []string{"q"}, want: "q"},
		"number":        {in: json.Number("1"), wantErr: "want a string, got a number"},
		"two values":    {in: []string{"a", "b"}, wantErr: "want a string, got a list"},
		"list of other": {in: []any{1.0}, wantErr: "want a string, got a list"}, // names the value as given
		"null":          {in: nil, wantErr: "want a string, got null"},
		"bad utf8":      {in: "\xff", wantErr: "not valid UTF-8"},
	} {
		got, err := field.String(tc.in)
		check(t, name, got, err, tc.want, tc.wantErr)
	}
}

func TestBool(t *testing.T) {
	for name, tc := range map[string]struct {
		in      any
		want    bool
		wantErr string
	}{
		"true":       {in: true, want: true},
		"false":      {in: false, want: false},
		"string":     {in: " true ", want: true},
		"digit":      {in: "0", want: false},
		"query form": {in: []string{"1"}, want: true},
		"word":       {in: "yes", wantErr: `want true or false, got "yes"`},
		"long word":  {in: strings.Repeat("y", 40), wantErr: `got "` + strings.Repeat("y", 32) + `"`},
		"number":     {in: 1.0, wantErr: "want a boolean, got a number"},
		"null":       {in: nil, wantErr: "want a boolean, got null"},
	} {
		got, err := field.Bool(tc.in)
		check(t, name, got, err, tc.want, tc.wantErr)
	}
}

func TestWhole(t *testing.T) {
	for name, tc := range map[string]struct {
		in      any
		want    float64
		wantErr string
	}{
		"float":          {in: 3.0, want: 3},
		"negative":       {in: -2.0, want: -2}, // bounds are the caller's
		"int32":          {in: int32(7), want: 7},
		"json number":    {in: json.Number("12"), want: 12},
		"digits":         {in: " 42 ", want: 42},
		"query form":     {in: []string{"5"}, want: 5},
		"fraction":       {in: 1.5, wantErr: "want a whole number"},
		"infinite":       {in: math.Inf(1), wantErr: "want a whole number"},
		"json fraction":  {in: json.Number("1.5"), wantErr: `"1.5" is not a whole number`},
		"word":           {in: "many", wantErr: `"many" is not a whole number`},
		"bool":           {in: true, wantErr: "want a number, got a boolean"},
		"list of a bool": {in: []any{true}, wantErr: "want a number, got a list"},
	} {
		got, err := field.Whole(tc.in)
		check(t, name, got, err, tc.want, tc.wantErr)
	}
}

func TestDuration(t *testing.T) {
	const max = 10 * time.Hour
	// seconds stands in for a caller's whole-number parser.
	seconds := func(v any) (int64, error) {
		switch x := v.(type) {
		case float64:
			if x < 0 {
				return 0, errors.New("negative")
			}
			return int64(x), nil
		case json.Number:
			return x.Int64()
		}
		return 0, fmt.Errorf("unexpected %T", v)
	}
	for name, tc := range map[string]struct {
		in      any
		want    time.Duration
		wantErr string
	}{
		"seconds":            {in: 90.0, want: 90 * time.Second},
		"json number":        {in: json.Number("60"), want: time.Minute},
		"number error":       {in: -1.0, wantErr: "seconds: negative"},
		"go form":            {in: "1h30m", want: 90 * time.Minute},
		"digit string":       {in: "30", want: 30 * time.Second},
		"days":               {in: []string{"0d"}, want: 0},
		"empty":              {in: "  ", want: 0},
		"negative string":    {in: "-5s", wantErr: "must not be negative"},
		"over max":           {in: "11h", wantErr: "must be at most 36000 seconds"},
		"fraction of second": {in: "1500ms", wantErr: "must be a whole number of seconds"},
		"garbage":            {in: "soon", wantErr: `"soon" is not a duration`},
		"bool":               {in: true, wantErr: "want a duration, got a boolean"},
		"null":               {in: nil, wantErr: "want a duration, got null"},
	} {
		got, err := field.Duration(tc.in, max, seconds)
		check(t, name, got, err, tc.want, tc.wantErr)
	}
}

func TestStrings(t *testing.T) {
	for name, tc := range map[string]struct {
		in      any
		want    []string
		wantErr string
	}{
		"null":            {in: nil, want: nil},
		"comma string":    {in: " a, ,c", want: []string{"a", "c"}},
		"empties count":   {in: "a,,,", wantErr: "more than 3 elements"},
		"json list":       {in: []any{"a", " ", "b "}, want: []string{"a", "b"}},
		"query one":       {in: []string{"a,b"}, want: []string{"a", "b"}},
		"query many":      {in: []string{"a,b", "c"}, want: []string{"a,b", "c"}},
		"empty string":    {in: "", want: []string{}},
		"bad element":     {in: []any{"a", 2.0}, wantErr: "element 1: want a string, got a number"},
		"too many":        {in: "a,b,c,d", wantErr: "more than 3 elements"},
		"element too big": {in: "abcdefghi", wantErr: `element "abcdefghi": not valid UTF-8 or longer than 8 bytes`},
		"bad utf8":        {in: "\xff", wantErr: "not valid UTF-8"},
		"control":         {in: "a\x01b", wantErr: "contains a control character"},
		"object":          {in: map[string]any{}, wantErr: "want a list of strings, got an object"},
	} {
		got, err := field.Strings(tc.in, 3, 8)
		check(t, name, got, err, tc.want, tc.wantErr)
	}
}

func TestUnknownAndCheckFields(t *testing.T) {
	for name, tc := range map[string]struct {
		data        map[string]any
		wantUnknown []string
		wantField   string // "" when CheckFields must pass
	}{
		"none":     {data: map[string]any{"a": 1, "b": nil}},
		"empty":    {data: nil},
		"sorted":   {data: map[string]any{"a": 1, "z": 1, "m": 1}, wantUnknown: []string{"m", "z"}, wantField: "m"},
		"quoted":   {data: map[string]any{"x\n": 1}, wantUnknown: []string{"x\n"}, wantField: `"x\n"`},
		"long":     {data: map[string]any{strings.Repeat("k", 70): 1}, wantUnknown: []string{strings.Repeat("k", 70)}, wantField: `"` + strings.Repeat("k", 64) + `"`},
		"bad utf8": {data: map[string]any{"\xff": 1}, wantUnknown: []string{"\xff"}, wantField: `"\xff"`},
	} {
		if got := field.Unknown(tc.data, "a", "b"); !reflect.DeepEqual(got, tc.wantUnknown) {
			t.Errorf("%s: Unknown = %q, want %q", name, got, tc.wantUnknown)
		}
		err := field.CheckFields(tc.data, "a", "b")
		if tc.wantField == "" {
			if err != nil {
				t.Errorf("%s: CheckFields = %v", name, err)
			}
			continue
		}
		var ire *logical.InvalidRequestError
		if !errors.As(err, &ire) {
			t.Fatalf("%s: CheckFields = %v (%T), want an InvalidRequestError", name, err, err)
		}
		if ire.Field != tc.wantField || ire.Reason != "unknown field; accepted: a, b" {
			t.Errorf("%s: CheckFields = field %q reason %q", name, ire.Field, ire.Reason)
		}
	}
}

func TestGet(t *testing.T) {
	data := map[string]any{"s": "x", "n": 1.0, "null": nil}
	for name, tc := range map[string]struct {
		get       func(map[string]any, string, func(any) (string, error)) (string, bool, error)
		key       string
		want      string
		wantOK    bool
		wantError string // the reason of the InvalidRequestError on key
	}{
		"get present":         {get: field.Get[string], key: "s", want: "x", wantOK: true},
		"get absent":          {get: field.Get[string], key: "missing"},
		"get null is present": {get: field.Get[string], key: "null", wantOK: true, wantError: "want a string, got null"},
		"get bad":             {get: field.Get[string], key: "n", wantOK: true, wantError: "want a string, got a number"},
		"nonnull present":     {get: field.GetNonNull[string], key: "s", want: "x", wantOK: true},
		"nonnull null":        {get: field.GetNonNull[string], key: "null"},
		"nonnull absent":      {get: field.GetNonNull[string], key: "missing"},
		"nonnull bad":         {get: field.GetNonNull[string], key: "n", wantOK: true, wantError: "want a string, got a number"},
	} {
		got, ok, err := tc.get(data, tc.key, field.String)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: got %q, %v; want %q, %v", name, got, ok, tc.want, tc.wantOK)
		}
		if tc.wantError == "" {
			if err != nil {
				t.Errorf("%s: error %v", name, err)
			}
			continue
		}
		var ire *logical.InvalidRequestError
		if !errors.As(err, &ire) || ire.Field != tc.key || ire.Reason != tc.wantError {
			t.Errorf("%s: error %#v, want field %q reason %q", name, err, tc.key, tc.wantError)
		}
	}
}

func check[T any](t *testing.T, name string, got T, err error, want T, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want one containing %q", name, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: error %v", name, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", name, got, want)
	}
}

// FuzzParsers feeds query-style strings to every parser: none may panic,
// and what they accept must keep their promises.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"", "a,b", "true", "90", "1h30m", "7d", "-1s", "\xff", "a\x00", "9999999999999999999s"} {
		f.Add(s)
	}
	seconds := func(v any) (int64, error) { return json.Number(fmt.Sprint(v)).Int64() }
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, []string{s}, []any{s}} {
			if got, err := field.String(v); err == nil && got != s {
				t.Fatalf("String(%q) = %q", s, got)
			}
			_, _ = field.Bool(v)
			if f, err := field.Whole(v); err == nil && f != math.Trunc(f) {
				t.Fatalf("Whole(%q) = %v", s, f)
			}
			if d, err := field.Duration(v, time.Hour, seconds); err == nil && (d < 0 || d > time.Hour || d%time.Second != 0) {
				t.Fatalf("Duration(%q) = %v", s, d)
			}
			if ss, err := field.Strings(v, 8, 16); err == nil {
				for _, e := range ss {
					if e == "" || len(e) > 16 || !utf8.ValidString(e) || field.HasControl(e) {
						t.Fatalf("Strings(%q) gave %q", s, e)
					}
				}
			}
			if err := field.CheckFields(map[string]any{s: v}, "a"); s != "a" {
				var ire *logical.InvalidRequestError
				if !errors.As(err, &ire) || !utf8.ValidString(ire.Field) || field.HasControl(ire.Field) {
					t.Fatalf("CheckFields(%q) = %v", s, err)
				}
			}
		}
	})
}

func TestTextAndGetOr(t *testing.T) {
	for _, tc := range []struct {
		v       any
		want    string
		wantErr string
	}{
		{" ab ", "ab", ""},
		{[]any{"x"}, "x", ""},
		{"abcde", "", "longer than 4 bytes"},
		{"a\nb", "", "control character"},
		{7, "", "want a string"},
	} {
		got, err := field.Text(tc.v, 4)
		if tc.wantErr == "" && (err != nil || got != tc.want) {
			t.Errorf("Text(%#v) = %q, %v; want %q", tc.v, got, err, tc.want)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Text(%#v) error = %v, want %q", tc.v, err, tc.wantErr)
		}
	}
	parse := func(v any) (string, error) { return field.Text(v, 10) }
	data := map[string]any{"set": "v", "null": nil, "bad": 3}
	if got, err := field.GetOr(data, "set", parse, "def"); got != "v" || err != nil {
		t.Errorf("set: %q, %v", got, err)
	}
	for _, k := range []string{"null", "absent"} {
		if got, err := field.GetOr(data, k, parse, "def"); got != "def" || err != nil {
			t.Errorf("%s: %q, %v", k, got, err)
		}
	}
	if _, err := field.GetOr(data, "bad", parse, "def"); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("bad: %v, want an error naming the field", err)
	}
}
