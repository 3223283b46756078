package render_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secrethub/secrethub/agent/render"
)

// secretMark is part of every secret value in the test data, so a test can
// check that no error message carries a value.
const secretMark = "s3cr3t"

// fetcher serves fixed secrets and counts reads per path.
type fetcher struct {
	data map[string]map[string]any
	err  error // returned for every path when set

	mu    sync.Mutex
	reads map[string]int
}

func (f *fetcher) Secret(_ context.Context, path string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reads == nil {
		f.reads = make(map[string]int)
	}
	f.reads[path]++
	if f.err != nil {
		return nil, f.err
	}
	d, ok := f.data[path]
	if !ok {
		return nil, fmt.Errorf("test fetcher: %w", render.ErrNotFound)
	}
	return d, nil
}

func testFetcher() *fetcher {
	return &fetcher{data: map[string]map[string]any{
		"secrets/app/db": {
			"host":     "db.internal",
			"port":     5432.0, // JSON numbers decode as float64
			"user":     "app",
			"password": "s3cr3t-p@ss:w/rd?#%",
			"dbname":   "orders",
			"sslmode":  "verify-full",
			"nothing":  nil,
			"empty":    "",
		},
		"secrets/app/redis": {
			"host":     "redis.internal",
			"port":     "6379",
			"password": "s3cr3t-redis",
		},
		"secrets/app/api": {
			"token": "s3cr3t-token",
			"hosts": []any{"a.example", "b.example"},
			"b64":   "czNjcjN0LWJsb2I=", // base64("s3cr3t-blob")
			"json":  `{"k":"s3cr3t-json","n":[1,2]}`,
			"zeta":  "z",
			"alpha": "a",
		},
	}}
}

func TestRender(t *testing.T) {
	cases := map[string]struct {
		text string
		opts render.Options
		// want is the output when the render succeeds.
		want string
		// errIs, when set, is a sentinel the error must match.
		errIs error
		// errHas are substrings the error must contain; any entry makes
		// the case an error case.
		errHas []string
	}{
		// secret and secretKey.
		"secret with":     {text: `{{ with secret "secrets/app/db" }}{{ .user }}{{ end }}`, want: "app"},
		"secret chain":    {text: `{{ (secret "secrets/app/db").user }}`, want: "app"},
		"secret variable": {text: `{{ $db := secret "secrets/app/db" }}{{ $db.dbname }}`, want: "orders"},
		"secretKey":       {text: `{{ secretKey "secrets/app/db" "user" }}`, want: "app"},
		"number prints":   {text: `{{ secretKey "secrets/app/db" "port" }}`, want: "5432"},
		"null prints empty": {
			text: `[{{ (secret "secrets/app/db").nothing }}]`, want: "[]",
		},
		"missing secret": {
			text:  `{{ secret "secrets/app/none" }}`,
			errIs: render.ErrNotFound, errHas: []string{`"t.tmpl"`, `"secrets/app/none"`},
		},
		"missing secret zero": {
			text: `{{ with secret "secrets/app/none" }}x{{ else }}none{{ end }}`,
			opts: render.Options{MissingKey: render.MissingKeyZero}, want: "none",
		},
		"missing secret zero field": {
			text: `[{{ (secret "secrets/app/none").password }}]`,
			opts: render.Options{MissingKey: render.MissingKeyZero}, want: "[]",
		},
		"secretKey missing key": {
			text:  `{{ secretKey "secrets/app/db" "nope" }}`,
			errIs: render.ErrMissingKey, errHas: []string{`"t.tmpl"`, `"secrets/app/db"`, `"nope"`},
		},
		"secretKey missing secret": {
			text:  `{{ secretKey "secrets/app/none" "password" }}`,
			errIs: render.ErrNotFound, errHas: []string{`"t.tmpl"`, `"secrets/app/none"`, `"password"`},
		},
		"secretKey missing zero": {
			text: `[{{ secretKey "secrets/app/db" "nope" }}{{ secretKey "secrets/app/none" "x" }}]`,
			opts: render.Options{MissingKey: render.MissingKeyZero}, want: "[]",
		},
		"field missing key": {
			text:  `{{ with secret "secrets/app/db" }}{{ .nope }}{{ end }}`,
			errIs: render.ErrMissingKey, errHas: []string{`"t.tmpl"`, "t.tmpl:1:", `"nope"`, "secrets/app/db"},
		},
		"field missing key zero": {
			text: `[{{ with secret "secrets/app/db" }}{{ .nope }}{{ end }}]`,
			opts: render.Options{MissingKey: "zero"}, want: "[]",
		},
		"empty path": {text: `{{ secret "" }}`, errHas: []string{"empty secret path"}},

		// default and required.
		"default optional key": {text: `{{ default "x" (index (secret "secrets/app/db") "maybe") }}`, want: "x"},
		"default empty string": {text: `{{ default "x" (secret "secrets/app/db").empty }}`, want: "x"},
		"default null":         {text: `{{ default "x" (secret "secrets/app/db").nothing }}`, want: "x"},
		"default present":      {text: `{{ default "x" (secret "secrets/app/db").user }}`, want: "app"},
		"default piped":        {text: `{{ "" | default "d" }}{{ 0 | default 5 }}{{ false | default true }}`, want: "d5true"},
		"default no value":     {text: `{{ default "d" }}`, want: "d"},
		"required present":     {text: `{{ required "need user" (secret "secrets/app/db").user }}`, want: "app"},
		"required null": {
			text: `{{ required "db password unset" (secret "secrets/app/db").nothing }}`, errHas: []string{"db password unset", `"t.tmpl"`},
		},
		"required empty": {
			text: `{{ (secret "secrets/app/db").empty | required "need it" }}`, errHas: []string{"required: need it"},
		},

		// Encoding and strings.
		"base64Encode": {text: `{{ base64Encode "hello" }}`, want: "aGVsbG8="},
		"base64 round": {text: `{{ (secret "secrets/app/api").token | base64Encode | base64Decode }}`, want: "s3cr3t-token"},
		"base64Decode": {text: `{{ base64Decode (secret "secrets/app/api").b64 }}`, want: "s3cr3t-blob"},
		"base64Decode invalid": {
			text: `{{ base64Decode (secret "secrets/app/api").token }}`, errHas: []string{"base64Decode", "illegal base64 data at input byte"},
		},
		"unknown function": {
			text: `{{ toJSON (list) }}`, errHas: []string{`function "list" not defined`},
		},
		"toJSON sorted no html escape": {text: `{{ toJSON (dict "b" 1 "a" "<x&y>") }}`, want: `{"a":"<x&y>","b":1}`},
		"toJSON secret": {
			text: `{{ toJSON (secret "secrets/app/api").hosts }}`, want: `["a.example","b.example"]`,
		},
		"toJSONPretty": {text: `{{ toJSONPretty (dict "b" 1 "a" 2) }}`, want: "{\n  \"a\": 2,\n  \"b\": 1\n}"},
		"fromJSON": {
			text: `{{ $j := fromJSON (secret "secrets/app/api").json }}{{ $j.k }} {{ index $j.n 1 }}`, want: "s3cr3t-json 2",
		},
		"fromJSON invalid": {
			text: `{{ fromJSON (secret "secrets/app/api").token }}`, errHas: []string{"fromJSON: invalid JSON at byte offset 1"},
		},
		"fromJSON trailing": {text: `{{ fromJSON "{} x" }}`, errHas: []string{"fromJSON: invalid JSON"}},
		"join secret list":  {text: `{{ (secret "secrets/app/api").hosts | join "," }}`, want: "a.example,b.example"},
		"split join":        {text: `{{ split "," "a,b,c" | join "-" }}`, want: "a-b-c"},
		"split empty":       {text: `{{ len (split "," "") }}`, want: "0"},
		"join bad type":     {text: `{{ join "," 5 }}`, errHas: []string{"join: cannot join a int"}},
		"trimSpace":         {text: `[{{ trimSpace "  a b \n" }}]`, want: "[a b]"},
		"upper lower":       {text: `{{ upper "aBc" }}{{ lower "aBc" }}`, want: "ABCabc"},
		"quote":             {text: `{{ quote "a\"b\n" }}`, want: `"a\"b\n"`},
		"dict odd":          {text: `{{ dict "a" }}`, errHas: []string{"dict: odd number of arguments"}},
		"dict key type":     {text: `{{ dict 1 2 }}`, errHas: []string{"dict: key 0 is a int"}},
		"printf builtin":    {text: `{{ printf "%s-%d" "a" 1 }}{{ print "b" }}{{ urlquery "a b" }}{{ html "<" }}{{ js "'" }}`, want: `a-1ba+b&lt;\'`},

		// Connection strings.
		"pgURL": {
			text: `{{ pgURL (dict "host" "db" "port" 5432 "user" "app" "password" "pw" "dbname" "orders") }}`,
			want: "postgres://app:pw@db:5432/orders",
		},
		"pgURL secret sslmode": {
			text: `{{ pgURL (secret "secrets/app/db") }}`,
			want: "postgres://app:s3cr3t-p%40ss%3Aw%2Frd%3F%23%25@db.internal:5432/orders?sslmode=verify-full",
		},
		"pgURL username alias ipv6": {
			text: `{{ pgURL (dict "host" "::1" "port" "5432" "username" "v-app-1" "password" "" "dbname" "a b") }}`,
			want: "postgres://v-app-1:@[::1]:5432/a%20b",
		},
		"pgURL missing host": {
			text:  `{{ pgURL (dict "port" 5432 "user" "app" "password" "pw" "dbname" "d") }}`,
			errIs: render.ErrMissingKey, errHas: []string{`pgURL: missing key "host"`},
		},
		"pgURL missing port": {
			text: `{{ pgURL (dict "host" "h" "user" "app" "password" "pw" "dbname" "d") }}`, errHas: []string{`missing key "port"`},
		},
		"pgURL missing user": {
			text: `{{ pgURL (dict "host" "h" "port" 1 "password" "pw" "dbname" "d") }}`, errHas: []string{`missing key "user"`},
		},
		"pgURL missing password": {
			text: `{{ pgURL (dict "host" "h" "port" 1 "user" "u" "dbname" "d") }}`, errHas: []string{`missing key "password"`},
		},
		"pgURL missing dbname": {
			text: `{{ pgURL (dict "host" "h" "port" 1 "user" "u" "password" "pw") }}`, errHas: []string{`missing key "dbname"`},
		},
		"pgURL bad port": {
			text: `{{ pgURL (dict "host" "h" "port" 70000 "user" "u" "password" "pw" "dbname" "d") }}`, errHas: []string{`"port" is not a port number`},
		},
		"pgURL not a map": {text: `{{ pgURL "pw" }}`, errHas: []string{"pgURL: argument is a string, not a map"}},
		"redisURL": {
			text: `{{ redisURL (secret "secrets/app/redis") }}`, want: "redis://:s3cr3t-redis@redis.internal:6379",
		},
		"redisURL full": {
			text: `{{ redisURL (dict "host" "r" "port" 6380 "password" "p@ss" "username" "app" "db" 2 "tls" true) }}`,
			want: "rediss://app:p%40ss@r:6380/2",
		},
		"redisURL missing password": {
			text: `{{ redisURL (dict "host" "r" "port" 6379) }}`, errIs: render.ErrMissingKey, errHas: []string{`redisURL: missing key "password"`},
		},
		"redisURL missing host": {
			text: `{{ redisURL (dict "port" 6379 "password" "pw") }}`, errHas: []string{`redisURL: missing key "host"`},
		},
		"redisURL bad db": {
			text: `{{ redisURL (dict "host" "r" "port" 6379 "password" "pw" "db" "x") }}`, errHas: []string{`"db" is not a database number`},
		},

		// Determinism: maps range in key order.
		"map range sorted": {
			text: `{{ range $k, $v := secret "secrets/app/api" }}{{ if eq $k "alpha" "zeta" }}{{ $k }}={{ $v }};{{ end }}{{ end }}`,
			want: "alpha=a;zeta=z;",
		},

		// Errors never print the value they are about.
		"range over secret string": {
			text: `{{ range (secret "secrets/app/db").password }}{{ end }}`, errHas: []string{"range can't iterate over a value of type string"},
		},
		"slice secret string": {text: `{{ slice (secret "secrets/app/db").password 1 999 }}`, errHas: []string{"index out of range: 999"}},
		"field on string":     {text: `{{ (secret "secrets/app/db").password.x }}`, errHas: []string{"can't evaluate field x"}},
		"compare secret":      {text: `{{ lt (secret "secrets/app/db").password 1 }}`, errHas: []string{"incompatible types for comparison"}},

		// Limits.
		"output limit": {
			text: `{{ range 100 }}x{{ end }}`, opts: render.Options{MaxOutputBytes: 50}, errIs: render.ErrOutputTooLarge,
		},
		"output at limit": {text: `{{ range 5 }}x{{ end }}`, opts: render.Options{MaxOutputBytes: 5}, want: "xxxxx"},
		"value limit": {
			text: `{{ $x := printf "%0100d" 1 }}`, opts: render.Options{MaxOutputBytes: 99}, errIs: render.ErrOutputTooLarge,
		},
		"step limit": {
			text: `{{ range 11 }}{{ end }}`, opts: render.Options{MaxSteps: 10}, errIs: render.ErrTooComplex,
		},
		"huge range": {text: `{{ range 1000000000000 }}{{ end }}`, errIs: render.ErrTooComplex},
		"recursion": {
			text: `{{ define "a" }}{{ template "a" . }}{{ end }}{{ template "a" }}`, errIs: render.ErrTooComplex,
			errHas: []string{"nested deeper than"},
		},
		"exponential recursion": {
			text: `{{ define "a" }}{{ if lt (len .) 40 }}{{ template "a" (printf "%sx" .) }}{{ template "a" (printf "%sx" .) }}{{ end }}{{ end }}{{ template "a" "" }}`,
			opts: render.Options{MaxSteps: 1000}, errIs: render.ErrTooComplex,
		},
		"work limit": {
			text:  `{{ range 100 }}{{ $x := printf "%050d" 1 }}{{ end }}`,
			opts:  render.Options{MaxOutputBytes: 100},
			errIs: render.ErrTooComplex, errHas: []string{"helpers built more than 800 bytes"},
		},

		"work limit split": {
			text:  `{{ $b := printf "%0100d" 1 }}{{ range 100 }}{{ $x := split "" $b }}{{ end }}`,
			opts:  render.Options{MaxOutputBytes: 100},
			errIs: render.ErrTooComplex,
		},

		// Other.
		"empty template": {text: ``, want: ""},
		"break continue": {text: `{{ range 10 }}{{ if eq . 3 }}{{ continue }}{{ end }}{{ if eq . 5 }}{{ break }}{{ end }}{{ . }}{{ end }}`, want: "0124"},
		"delims": {
			text: `{{x}} <% (secret "secrets/app/db").user %>`, opts: render.Options{LeftDelim: "<%", RightDelim: "%>"}, want: "{{x}} app",
		},
		"block": {text: `{{ block "b" . }}in block{{ end }}`, want: "in block"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tmpl, err := render.Compile("t.tmpl", tc.text, tc.opts)
			if err != nil {
				if len(tc.errHas) > 0 && containsAll(err.Error(), tc.errHas) {
					return // a compile error was the expectation
				}
				t.Fatalf("Compile: %v", err)
			}
			out, _, err := tmpl.Render(context.Background(), testFetcher())
			if tc.errIs == nil && len(tc.errHas) == 0 {
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				if string(out) != tc.want {
					t.Fatalf("output = %q, want %q", out, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Render = %q, want an error", out)
			}
			if out != nil {
				t.Errorf("output on error = %q, want nil", out)
			}
			msg := err.Error()
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("error %q does not match %v", msg, tc.errIs)
			}
			if !containsAll(msg, tc.errHas) {
				t.Errorf("error %q lacks one of %q", msg, tc.errHas)
			}
			if !strings.Contains(msg, `"t.tmpl"`) {
				t.Errorf("error %q does not name the template", msg)
			}
			if strings.Contains(msg, secretMark) {
				t.Errorf("error %q contains a secret value", msg)
			}
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestCompileErrors(t *testing.T) {
	cases := map[string]struct {
		text   string
		opts   render.Options
		errHas []string
	}{
		"syntax names line":  {text: "a\nb\n{{ .x ", errHas: []string{`"app.conf"`, "app.conf:3"}},
		"unclosed if":        {text: "{{ if true }}\nx", errHas: []string{`"app.conf"`, "unexpected EOF"}},
		"env not provided":   {text: `{{ env "HOME" }}`, errHas: []string{`"app.conf"`, `function "env" not defined`}},
		"unknown missingkey": {opts: render.Options{MissingKey: "default"}, errHas: []string{`missing key mode "default"`}},
		"negative limit":     {opts: render.Options{MaxOutputBytes: -1}, errHas: []string{"must not be negative"}},
		"one delimiter":      {opts: render.Options{LeftDelim: "<%"}, errHas: []string{"both delimiters"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := render.Compile("app.conf", tc.text, tc.opts)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			if !containsAll(err.Error(), tc.errHas) {
				t.Fatalf("error %q lacks one of %q", err, tc.errHas)
			}
		})
	}
}

func TestPathsRead(t *testing.T) {
	cases := map[string]struct {
		text  string
		opts  render.Options
		paths []string
		fails bool
	}{
		"none":   {text: `static`, paths: []string{}},
		"sorted": {text: `{{ (secret "secrets/b").x }}{{ secretKey "secrets/a" "x" }}`, paths: []string{"secrets/a", "secrets/b"}},
		"deduplicated": {
			text: `{{ (secret "secrets/a").x }}{{ (secret "secrets/a").x }}{{ secretKey "secrets/a" "x" }}`, paths: []string{"secrets/a"},
		},
		"only executed branches": {text: `{{ if false }}{{ secret "secrets/b" }}{{ end }}{{ (secret "secrets/a").x }}`, paths: []string{"secrets/a"}},
		"missing kept for watching": {
			text: `{{ (secret "secrets/a").x }}{{ secret "secrets/none" }}`, paths: []string{"secrets/a", "secrets/none"}, fails: true,
		},
		"missing kept under zero": {
			text: `{{ (secret "secrets/none").x }}`, opts: render.Options{MissingKey: render.MissingKeyZero}, paths: []string{"secrets/none"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := &fetcher{data: map[string]map[string]any{
				"secrets/a": {"x": "1"},
				"secrets/b": {"x": "2"},
			}}
			tmpl, err := render.Compile("p", tc.text, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, paths, err := tmpl.Render(context.Background(), f)
			if (err != nil) != tc.fails {
				t.Fatalf("Render error = %v, want failure %v", err, tc.fails)
			}
			if strings.Join(paths, "|") != strings.Join(tc.paths, "|") {
				t.Fatalf("paths = %q, want %q", paths, tc.paths)
			}
			for p, n := range f.reads {
				if n != 1 {
					t.Errorf("%s fetched %d times in one render, want 1", p, n)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	text := `{{ range $k, $v := secret "secrets/app/api" }}{{ $k }}={{ $v }}
{{ end }}{{ toJSON (secret "secrets/app/db") }}`
	tmpl, err := render.Compile("d", text, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := tmpl.Render(context.Background(), testFetcher())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(first), "alpha=a\nb64=") {
		t.Fatalf("map keys not in order: %q", first)
	}
	for range 20 {
		out, _, err := tmpl.Render(context.Background(), testFetcher())
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(first) {
			t.Fatalf("render differs:\n%s\n--\n%s", out, first)
		}
	}
}

// cancelFetcher cancels the render's context on its first read.
type cancelFetcher struct{ cancel context.CancelFunc }

func (c cancelFetcher) Secret(context.Context, string) (map[string]any, error) {
	c.cancel()
	return map[string]any{"x": "1"}, nil
}

func TestContext(t *testing.T) {
	tmpl, err := render.Compile("c", `{{ (secret "a").x }}{{ range 1000 }}.{{ end }}`, render.Options{})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := tmpl.Render(ctx, testFetcher()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before start: err = %v, want context.Canceled", err)
	}

	// Cancelled mid-render: the next step stops the loop.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := tmpl.Render(ctx, cancelFetcher{cancel}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during render: err = %v, want context.Canceled", err)
	}
}

func TestFetcherFailure(t *testing.T) {
	unreachable := errors.New("core unreachable")
	for _, mode := range []string{render.MissingKeyError, render.MissingKeyZero} {
		t.Run(mode, func(t *testing.T) {
			tmpl, err := render.Compile("f", `{{ secretKey "secrets/a" "x" }}`, render.Options{MissingKey: mode})
			if err != nil {
				t.Fatal(err)
			}
			// Only "not found" is softened by MissingKeyZero: an
			// unreachable core must never render an empty value.
			_, paths, err := tmpl.Render(context.Background(), &fetcher{err: unreachable})
			if !errors.Is(err, unreachable) {
				t.Fatalf("err = %v, want %v", err, unreachable)
			}
			if len(paths) != 1 || paths[0] != "secrets/a" {
				t.Fatalf("paths = %q", paths)
			}
		})
	}
	tmpl, err := render.Compile("f", `x`, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tmpl.Render(context.Background(), nil); err == nil {
		t.Fatal("nil fetcher accepted")
	}
}

// TestPgURLEscaping parses the rendered URL with pgx, the driver the
// workload is likely to use, and checks every field survives.
func TestPgURLEscaping(t *testing.T) {
	cases := map[string]struct{ user, password, db string }{
		"plain":       {"app", "pw", "orders"},
		"reserved":    {"a@b:c", "p@ss:w/rd?#%&=+$,;", "orders"},
		"space utf8":  {"ü ser", "pä ss wörd", "my db"},
		"slash in db": {"app", "x", "a/b"},
		"empty pass":  {"app", "", "orders"},
	}
	tmpl, err := render.Compile("pg", `{{ pgURL (secret "db") }}`, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := &fetcher{data: map[string]map[string]any{"db": {
				"host": "db.internal", "port": 5433.0, "user": tc.user, "password": tc.password, "dbname": tc.db, "sslmode": "disable",
			}}}
			out, _, err := tmpl.Render(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(string(out))
			if err != nil {
				t.Fatalf("url.Parse(%q): %v", out, err)
			}
			if pw, _ := u.User.Password(); u.User.Username() != tc.user || pw != tc.password {
				t.Errorf("url user/password = %q/%q", u.User.Username(), pw)
			}
			cfg, err := pgconn.ParseConfig(string(out))
			if err != nil {
				t.Fatalf("pgconn.ParseConfig(%q): %v", out, err)
			}
			if cfg.User != tc.user || cfg.Password != tc.password || cfg.Database != tc.db || cfg.Host != "db.internal" || cfg.Port != 5433 {
				t.Errorf("pgx config = %q %q %q %q %d", cfg.User, cfg.Password, cfg.Database, cfg.Host, cfg.Port)
			}
			if cfg.TLSConfig != nil {
				t.Errorf("sslmode=disable not applied")
			}
		})
	}
}

func TestConcurrentRender(t *testing.T) {
	tmpl, err := render.Compile("c", `{{ with secret "secrets/app/db" }}{{ .user }}:{{ .dbname }}{{ end }}{{ range 50 }}.{{ end }}`, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range 20 {
				out, _, err := tmpl.Render(context.Background(), testFetcher())
				if err != nil {
					errs <- err
					return
				}
				if !strings.HasPrefix(string(out), "app:orders.") {
					errs <- fmt.Errorf("output %q", out)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func FuzzCompileRender(f *testing.F) {
	seeds := []string{
		`{{ with secret "secrets/app/db" }}{{ .password }}{{ end }}`,
		`{{ (secret "secrets/app/db").password | base64Encode | base64Decode }}`,
		`{{ pgURL (secret "secrets/app/db") }}{{ redisURL (secret "secrets/app/redis") }}`,
		`{{ range $k, $v := secret "secrets/app/api" }}{{ $k }}={{ toJSON $v }}{{ end }}`,
		`{{ range 1000000 }}{{ end }}`,
		`{{ define "a" }}{{ template "a" . }}{{ end }}{{ template "a" }}`,
		`{{ $x := "a" }}{{ range 40 }}{{ $x = printf "%s%s" $x $x }}{{ end }}`,
		`{{ fromJSON (secret "secrets/app/api").json | toJSONPretty }}`,
		`{{ secretKey "secrets/app/none" "x" | default "d" | quote | upper }}`,
		`{{ split "," "a,b" | join ";" | trimSpace | lower }}{{ required "r" "" }}`,
		`{{ range (secret "secrets/app/db").password }}{{ end }}`,
		`{{ printf "%999999d" 1 }}`,
		`{{`, `}}`, `{{ else }}`, `{{ break }}`,
	}
	for _, s := range seeds {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, text string, zero bool) {
		opts := render.Options{MaxOutputBytes: 4096, MaxSteps: 1000}
		if zero {
			opts.MissingKey = render.MissingKeyZero
		}
		tmpl, err := render.Compile("fuzz", text, opts)
		if err != nil {
			return
		}
		out, paths, err := tmpl.Render(context.Background(), testFetcher())
		if err != nil {
			if out != nil {
				t.Fatalf("output with error")
			}
			if !strings.Contains(err.Error(), `"fuzz"`) {
				t.Fatalf("error does not name the template: %v", err)
			}
			// A value may appear in an error only if the template text
			// itself spells it out.
			for _, v := range []string{"s3cr3t-p@ss", "s3cr3t-redis", "s3cr3t-token", "s3cr3t-blob", "s3cr3t-json"} {
				if strings.Contains(err.Error(), v) && !strings.Contains(text, v) {
					t.Fatalf("error leaks %q: %v", v, err)
				}
			}
			return
		}
		if len(out) > opts.MaxOutputBytes {
			t.Fatalf("output %d bytes > limit %d", len(out), opts.MaxOutputBytes)
		}
		again, paths2, err := tmpl.Render(context.Background(), testFetcher())
		if err != nil || string(again) != string(out) || strings.Join(paths, "|") != strings.Join(paths2, "|") {
			t.Fatalf("second render differs: err=%v", err)
		}
	})
}
