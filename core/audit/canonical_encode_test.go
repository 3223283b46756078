package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// encodeBodyReflect is encodeBody as it was before it stopped using
// reflection: encoding/json on canonicalBody. encodeBody must write the
// same bytes, or stored chains would stop verifying against re-encodings
// and the format would change.
func encodeBodyReflect(ev Event) ([]byte, error) {
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("audit: encode event %q: time %v is outside years 0 to 9999", ev.RequestID, ev.Time)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(canonicalBody{
		Time:          ev.Time.Format(time.RFC3339Nano),
		RequestID:     ev.RequestID,
		Operation:     ev.Operation,
		Path:          ev.Path,
		ClientAddr:    ev.ClientAddr,
		TokenAccessor: ev.TokenAccessor,
		Policies:      ev.Policies,
		Result:        ev.Result,
		StatusCode:    ev.StatusCode,
		Error:         ev.Error,
		Request:       ev.Request,
		Response:      ev.Response,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: encode event %q: %w", ev.RequestID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// sameBody checks that encodeBody and encodeBodyReflect agree on ev:
// the same bytes, or both an error.
func sameBody(t *testing.T, ev Event) {
	t.Helper()
	got, gotErr := encodeBody(ev)
	want, wantErr := encodeBodyReflect(ev)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("encodeBody error %v; encoding/json error %v", gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeBody differs from encoding/json:\n got %s\nwant %s", got, want)
	}
	if gotErr != nil {
		return
	}
	for _, seq := range []int64{1, 0, -1, 42, math.MaxInt64, math.MinInt64} {
		buf, err := encodeBodyHeadroom(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canonicalInPlace(seq, buf), canonical(seq, want); !bytes.Equal(got, want) {
			t.Fatalf("canonicalInPlace(%d) differs from splicing:\n got %s\nwant %s", seq, got, want)
		}
	}
}

type textish string

type point struct {
	X, Y int
	Tag  string `json:"tag,omitempty"`
}

// every control character, the characters JSON and HTML escape, invalid
// and valid UTF-8, and the separators encoding/json always escapes.
func awkwardStrings() []string {
	var ctl strings.Builder
	for c := range 0x20 {
		ctl.WriteByte(byte(c))
	}
	ctl.WriteString("\x7f")
	return []string{
		"", "plain", ctl.String(), `"quoted" \back\slash/`, "<script>&amp;</script>",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "bad \xff\xfe utf8 \xc3", "\xe2\x80\xa8 and \xe2\x80\xa9 and \xe2\x80\xaa",
		"\xed\xa0\x80 surrogate", "nul\x00inside", "\uFFFD", strings.Repeat("long ", 200),
		HashPrefix + strings.Repeat("ab", 32),
	}
}

func TestEncodeBodyMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	deep := any("leaf")
	for range 200 {
		deep = map[string]any{"d": []any{deep}}
	}
	values := []any{
		nil, true, false, 0, -1, math.MaxInt64, math.MinInt64, int8(-8), int16(16), int32(-32), int64(64),
		uint(1), uint8(8), uint16(16), uint32(32), uint64(math.MaxUint64), uintptr(7),
		0.0, math.Copysign(0, -1), 1.5, 3.14159, 1e20, 1e21, 1e-6, 1e-7, -2.5e-300, math.MaxFloat64, float32(0.1), float32(1e21),
		math.NaN(), math.Inf(1), float32(math.Inf(-1)),
		json.Number("0"), json.Number("-1.50e+10"), json.Number("2.50"), json.Number(""), json.Number("1e"), json.Number(" 1"),
		json.Number("0x10"), json.Number(strings.Repeat("9", 400)),
		map[string]any(nil), []any(nil), map[string]any{}, []any{},
		map[string]string{"b": "x", "a": "<y>"}, map[string]string(nil), []string{"a", "\x01"}, []string(nil),
		[]int{1, 2}, []byte("bytes"), textish("named <string>"), point{X: 1, Y: -2}, &point{Tag: "t"}, (*point)(nil),
		time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), map[int]string{2: "b", 10: "a"},
		json.RawMessage(`{"b":1, "a":[ 2 ]}`), json.RawMessage(`not json`), cyclic, deep,
		make(chan int), func() {},
	}
	for _, s := range awkwardStrings() {
		values = append(values, s, map[string]any{s: s, "k" + s: []any{s, nil}})
	}
	times := []time.Time{
		time.Unix(0, 0), time.Date(2025, 3, 4, 5, 6, 7, 120000000, time.FixedZone("CET", 3600)).UTC(),
		time.Date(2025, 3, 4, 5, 6, 7, 1, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("X", -34200)),
		time.Now(), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, v := range values {
		t.Run(fmt.Sprintf("value %d %T", i, v), func(t *testing.T) {
			ev := Event{
				Time: times[i%len(times)], RequestID: "req", Operation: "update", Path: "secrets/x",
				Policies: []string{"default"}, Result: ResultOK, StatusCode: 200,
				Request:  map[string]any{"v": v, "list": []any{v, v}, "nested": map[string]any{"v": v}},
				Response: map[string]any{"v": v},
			}
			sameBody(t, ev)
			sameBody(t, normalize(ev))
		})
	}
	for i, s := range awkwardStrings() {
		t.Run(fmt.Sprintf("string %d", i), func(t *testing.T) {
			ev := Event{
				Time: times[i%len(times)], RequestID: s, Operation: s, Path: s, ClientAddr: s, TokenAccessor: s,
				Policies: []string{s, "", s}, Result: s, StatusCode: -i, Error: s,
			}
			sameBody(t, ev) // nil policies and data before normalize
			sameBody(t, normalize(ev))
			ev.Policies = nil
			sameBody(t, ev)
		})
	}
	for i, tm := range times {
		t.Run(fmt.Sprintf("time %d", i), func(t *testing.T) {
			sameBody(t, Event{Time: tm})
			sameBody(t, normalize(Event{Time: tm, StatusCode: math.MaxInt}))
		})
	}
}

// FuzzEncodeBody builds events from arbitrary strings and arbitrary JSON
// data (decoded as the HTTP layer decodes bodies, numbers as json.Number,
// and once more as float64) and checks that encodeBody writes exactly
// what encoding/json writes, plain and HMAC'd.
func FuzzEncodeBody(f *testing.F) {
	f.Add("req", "secrets/app/db", "10.0.0.1:5", []byte(`{"data":{"password":"s3cr3t","n":1.50,"list":[1,"x",null,{"b":true}]}}`), int64(1700000000123456789), 200)
	f.Add("\x00\xff", "\u2028<&>", "", []byte(`{"\u2029\ud800":"\u0000","":[]}`), int64(0), -1)
	f.Add("", "", "", []byte(`[1e400, -0, 1E-7]`), int64(-62135596800000000000/1000), 0)
	f.Add("a\"b\\c", "p", "c", []byte(`"just a string"`), int64(253402300799999999999/1000), 404)
	l, err := New(Keys{Sign: bytes.Repeat([]byte{1}, 32), HMAC: bytes.Repeat([]byte{2}, 32)}, NewMemory())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = l.Close() })
	f.Fuzz(func(t *testing.T, id, path, addr string, data []byte, nanos int64, status int) {
		var asNumber, asFloat any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&asNumber) != nil {
			asNumber = string(data)
		}
		if json.Unmarshal(data, &asFloat) != nil {
			asFloat = data
		}
		for _, d := range []any{asNumber, asFloat} {
			ev := Event{
				Time: time.Unix(0, nanos).UTC(), RequestID: id, Operation: addr + path, Path: path, ClientAddr: addr,
				TokenAccessor: id + addr, Policies: []string{path, id}, Result: addr, StatusCode: status, Error: id,
				Request:  map[string]any{"data": d, id: path, "number": json.Number(path)},
				Response: map[string]any{addr: d},
			}
			sameBody(t, ev)
			sameBody(t, normalize(ev))
			ev.Request, ev.Response = l.HMACData(ev.Request), l.HMACData(ev.Response)
			sameBody(t, normalize(ev))
		}
	})
}

// BenchmarkEncodeBody encodes a typical HMAC'd event of a KV write, with
// encodeBody and with encoding/json.
func BenchmarkEncodeBody(b *testing.B) {
	l, err := New(Keys{Sign: bytes.Repeat([]byte{1}, 32), HMAC: bytes.Repeat([]byte{2}, 32)}, NewMemory())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	ev := normalize(Event{
		Time: time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC), RequestID: "0b6c2d1e-5f3a-4c8e-9d7b-1a2b3c4d5e6f",
		Operation: "update", Path: "secrets/app/db", ClientAddr: "127.0.0.1:43210", TokenAccessor: "acc-0123456789abcdef",
		Policies: []string{"default", "app"}, Result: ResultOK, StatusCode: 200,
		Request:  l.HMACData(map[string]any{"password": "s3cr3t", "username": "app", "ttl": json.Number("3600")}),
		Response: l.HMACData(map[string]any{"version": 3, "created_time": "2025-03-04T05:06:07Z"}),
	})
	for name, enc := range map[string]func(Event) ([]byte, error){"direct": encodeBody, "encoding-json": encodeBodyReflect} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
