package audit_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/audit"
)

func TestEncodeCanonicalGolden(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		seq  int64
		ev   audit.Event
		want string
	}{
		"full event": {
			seq: 42,
			ev: audit.Event{
				// Not UTC: the encoding converts.
				Time:          time.Date(2025, 3, 4, 5, 6, 7, 120000000, time.FixedZone("CET", 3600)),
				RequestID:     "req-1",
				Operation:     "update",
				Path:          "secrets/app/db",
				ClientAddr:    "10.0.0.7",
				TokenAccessor: "acc-9",
				Policies:      []string{"default", "app"},
				Result:        "ok",
				StatusCode:    200,
				Request: map[string]any{
					"z":    1,
					"a":    map[string]any{"c": nil, "b": true},
					"html": "<&>",
					"f":    1.5,
					"big":  1e21,
					"list": []any{"x", json.Number("2.50")},
				},
			},
			want: `{"v":1,"seq":42,"time":"2025-03-04T04:06:07.12Z","request_id":"req-1","operation":"update",` +
				`"path":"secrets/app/db","client_addr":"10.0.0.7","token_accessor":"acc-9","policies":["default","app"],` +
				`"result":"ok","status_code":200,"error":"",` +
				`"request":{"a":{"b":true,"c":null},"big":1e+21,"f":1.5,"html":"<&>","list":["x",2.50],"z":1},"response":{}}`,
		},
		"zero event": {
			seq: 1,
			ev:  audit.Event{Time: time.Unix(0, 0)},
			want: `{"v":1,"seq":1,"time":"1970-01-01T00:00:00Z","request_id":"","operation":"","path":"","client_addr":"",` +
				`"token_accessor":"","policies":[],"result":"","status_code":0,"error":"","request":{},"response":{}}`,
		},
		"escapes, NUL and invalid UTF-8": {
			seq: 7,
			ev: audit.Event{
				Time:  time.Date(2025, 1, 1, 0, 0, 0, 1, time.UTC),
				Path:  "a\x00b\xffc",
				Error: "bad \"x\"\n\tü",
			},
			want: `{"v":1,"seq":7,"time":"2025-01-01T00:00:00.000000001Z","request_id":"","operation":"",` +
				`"path":"a` + "\uFFFD" + `b` + "\uFFFD" + `c","client_addr":"","token_accessor":"","policies":[],"result":"",` +
				`"status_code":0,"error":"bad \"x\"\n\tü","request":{},"response":{}}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := audit.EncodeCanonical(tc.seq, tc.ev)
			if err != nil {
				t.Fatalf("EncodeCanonical: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("EncodeCanonical:\n got %s\nwant %s", got, tc.want)
			}
			// The same event encodes to the same bytes every time (map
			// iteration order must not show).
			for range 20 {
				again, _ := audit.EncodeCanonical(tc.seq, tc.ev)
				if !bytes.Equal(again, got) {
					t.Fatalf("EncodeCanonical is not stable:\n%s\n%s", got, again)
				}
			}
			seq, ev, err := audit.DecodeCanonical(got)
			if err != nil {
				t.Fatalf("DecodeCanonical: %v", err)
			}
			if seq != tc.seq || !ev.Time.Equal(tc.ev.Time) || ev.Time.Location() != time.UTC {
				t.Errorf("DecodeCanonical = seq %d time %v, want %d %v UTC", seq, ev.Time, tc.seq, tc.ev.Time)
			}
			// Decoding and encoding again gives the same bytes.
			re, err := audit.EncodeCanonical(seq, ev)
			if err != nil || !bytes.Equal(re, got) {
				t.Errorf("round trip:\n got %s (%v)\nwant %s", re, err, got)
			}
		})
	}
}

func TestDecodeCanonicalRejects(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"not json":      `{"v":1,`,
		"wrong version": `{"v":2,"seq":1,"time":"2025-01-01T00:00:00Z"}`,
		"no version":    `{"seq":1,"time":"2025-01-01T00:00:00Z"}`,
		"bad time":      `{"v":1,"seq":1,"time":"yesterday"}`,
		"trailing data": `{"v":1,"seq":1,"time":"2025-01-01T00:00:00Z"} {}`,
		"an array":      `[1]`,
		"time not UTC":  `{"v":1,"seq":1,"time":"2025-01-01T01:00:00+01:00"}`,
		"time zeros":    `{"v":1,"seq":1,"time":"2025-01-01T00:00:00.10Z"}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := audit.DecodeCanonical([]byte(in)); !errors.Is(err, audit.ErrMalformed) {
				t.Errorf("DecodeCanonical(%s) = %v, want ErrMalformed", in, err)
			}
		})
	}
}

func TestEncodeCanonicalRejectsFarYears(t *testing.T) {
	t.Parallel()
	for _, year := range []int{-1, 10000} {
		if _, err := audit.EncodeCanonical(1, audit.Event{Time: time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
			t.Errorf("EncodeCanonical accepted year %d, which RFC 3339 cannot hold", year)
		}
	}
}

func TestDeriveKeys(t *testing.T) {
	t.Parallel()
	root := bytes.Repeat([]byte{7}, 32)
	k1, err := audit.DeriveKeys(root)
	if err != nil {
		t.Fatalf("DeriveKeys: %v", err)
	}
	k2, _ := audit.DeriveKeys(root)
	if !bytes.Equal(k1.Sign, k2.Sign) || !bytes.Equal(k1.HMAC, k2.HMAC) {
		t.Error("DeriveKeys is not deterministic")
	}
	if bytes.Equal(k1.Sign, k1.HMAC) {
		t.Error("sign and HMAC keys are equal")
	}
	if len(k1.Sign) != 32 || len(k1.HMAC) != 32 {
		t.Errorf("key sizes %d, %d, want 32", len(k1.Sign), len(k1.HMAC))
	}
	if bytes.Contains(k1.Sign, root[:8]) || bytes.Equal(k1.Sign, root) {
		t.Error("sign key is the root key")
	}
	k3, _ := audit.DeriveKeys(bytes.Repeat([]byte{8}, 32))
	if bytes.Equal(k1.Sign, k3.Sign) || bytes.Equal(k1.HMAC, k3.HMAC) {
		t.Error("different root keys give the same audit keys")
	}
	if _, err := audit.DeriveKeys(make([]byte, 8)); !errors.Is(err, audit.ErrInvalidKeys) {
		t.Errorf("DeriveKeys(8 bytes) = %v, want ErrInvalidKeys", err)
	}
	for _, s := range []string{fmt.Sprint(k1), fmt.Sprintf("%v %+v %#v %s", k1, k1, k1, k1)} {
		if strings.Contains(s, hex.EncodeToString(k1.Sign)) || strings.Contains(s, fmt.Sprint(k1.Sign)) || !strings.Contains(s, "REDACTED") {
			t.Errorf("printing Keys shows %q", s)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	good := newKeys(t)
	tests := map[string]struct {
		keys  audit.Keys
		sinks []audit.Sink
	}{
		"no sign key":     {audit.Keys{HMAC: good.HMAC}, []audit.Sink{audit.NewMemory()}},
		"short HMAC key":  {audit.Keys{Sign: good.Sign, HMAC: []byte("short")}, []audit.Sink{audit.NewMemory()}},
		"zero keys":       {audit.Keys{}, []audit.Sink{audit.NewMemory()}},
		"no sink at all":  {good, nil},
		"empty sink list": {good, []audit.Sink{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, err := audit.New(tc.keys, tc.sinks...)
			if err == nil {
				l.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestHashValue(t *testing.T) {
	t.Parallel()
	k1, k2 := newKeys(t), newKeys(t)
	l1 := openLog(t, k1, audit.NewMemory())
	l1b := openLog(t, k1, audit.NewMemory())
	l2 := openLog(t, k2, audit.NewMemory())

	h := l1.HashValue("hunter2")
	if !strings.HasPrefix(h, audit.HashPrefix) || len(h) != len(audit.HashPrefix)+64 {
		t.Fatalf("HashValue = %q, want %s and 64 hex digits", h, audit.HashPrefix)
	}
	if _, err := hex.DecodeString(strings.TrimPrefix(h, audit.HashPrefix)); err != nil {
		t.Errorf("HashValue is not hex: %v", err)
	}
	if got := l1b.HashValue("hunter2"); got != h {
		t.Errorf("same key: %q != %q", got, h)
	}
	if got := l1.HashValue("hunter2"); got != h {
		t.Errorf("same log, second call: %q != %q", got, h)
	}
	if got := l2.HashValue("hunter2"); got == h {
		t.Error("different keys give the same hash")
	}
	if got := l1.HashValue("hunter3"); got == h {
		t.Error("different values give the same hash")
	}
	if strings.Contains(h, "hunter2") {
		t.Error("hash shows the value")
	}
}

type secretStruct struct {
	User string `json:"user"`
	Port int    `json:"port"`
}

func TestHMACData(t *testing.T) {
	t.Parallel()
	l := openLog(t, newKeys(t), audit.NewMemory())
	h := l.HashValue
	tests := map[string]struct {
		in   map[string]any
		want map[string]any
	}{
		"nil": {nil, nil},
		"flat": {
			map[string]any{"password": "s3cret", "ttl": 30, "ratio": 0.5, "renewable": true, "none": nil},
			map[string]any{"password": h("s3cret"), "ttl": 30, "ratio": 0.5, "renewable": true, "none": nil},
		},
		"nested maps and slices": {
			map[string]any{"data": map[string]any{
				"list": []any{"a", 1, map[string]any{"deep": "b"}, []any{"c"}},
			}},
			map[string]any{"data": map[string]any{
				"list": []any{h("a"), 1, map[string]any{"deep": h("b")}, []any{h("c")}},
			}},
		},
		"typed containers": {
			map[string]any{"tags": []string{"x", "y"}, "meta": map[string]string{"k": "v"}},
			map[string]any{"tags": []any{h("x"), h("y")}, "meta": map[string]any{"k": h("v")}},
		},
		"json numbers": {
			map[string]any{"n": json.Number("12.50"), "fake": json.Number("abc"), "ws": json.Number(" 1"),
				"huge": json.Number("1e999999"), "long": json.Number("1." + strings.Repeat("0", 70))},
			map[string]any{"n": json.Number("12.50"), "fake": h("abc"), "ws": h(" 1"),
				"huge": h("1e999999"), "long": h("1." + strings.Repeat("0", 70))},
		},
		"structs and bytes go through encoding/json": {
			map[string]any{"s": secretStruct{User: "root", Port: 5432}, "b": []byte("key")},
			map[string]any{"s": map[string]any{"user": h("root"), "port": json.Number("5432")}, "b": h("a2V5")},
		},
		"non-finite floats and unencodable values": {
			map[string]any{"nan": math.NaN(), "ch": make(chan int)},
			map[string]any{"nan": "NaN", "ch": "[unencodable chan int]"},
		},
		"keys are kept, made storable": {
			map[string]any{"a\x00b": "v"},
			map[string]any{"a\uFFFDb": h("v")},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := l.HMACData(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("HMACData:\n got %#v\nwant %#v", got, tc.want)
			}
		})
	}

	// The input is not changed: HMACData copies.
	in := map[string]any{"a": map[string]any{"b": "plain"}, "l": []any{"plain"}}
	_ = l.HMACData(in)
	if in["a"].(map[string]any)["b"] != "plain" || in["l"].([]any)[0] != "plain" {
		t.Errorf("HMACData changed its input: %v", in)
	}
}
