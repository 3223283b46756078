package http

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/wire"
)

// FuzzDecodeAgentMessage feeds arbitrary frames to the decoder of agent
// messages, which reads untrusted input. It never panics; what it accepts
// has a type and a short ID and survives a round trip; what it refuses is
// refused with a short message that does not echo the frame.
func FuzzDecodeAgentMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","id":"1","name":"web-1","version":"0.1.0","heartbeat_seconds":30}`,
		`{"type":"read","id":"2","path":"secrets/app/db"}`,
		`{"type":"unwatch","id":"3","path":"secrets/app/db"}`,
		`{"type":"renew_token","id":"4","increment":3600}`,
		`{"type":"read","id":"` + strings.Repeat("x", 65) + `"}`,
		`{"type":"x","unknown":{"a":[1,2,3]},"response":{"data":{"k":"v"}}}`,
		`{"type":"read","heartbeat_seconds":1e400}`, `{"type":1}`, `{}`, `null`, `[]`, `"hello"`,
		`{"type":"read"} {"type":"read"}`, `{"type":"read"`, "\x00\xff", `{"type":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeAgentMessage(data)
		if err != nil {
			msg := err.Error()
			if len(msg) > 200 || !utf8.ValidString(msg) {
				t.Fatalf("error message %q", msg)
			}
			if len(data) >= 16 && strings.Contains(msg, string(data)) {
				t.Fatalf("error %q echoes the frame", msg)
			}
			return
		}
		if m.Type == "" || len(m.ID) > agentMaxID {
			t.Fatalf("accepted %+v", m)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		m2, err := decodeAgentMessage(again)
		if err != nil {
			t.Fatalf("round trip of %s: %v", again, err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(m2)) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}

// normalize makes a decoded message comparable after a JSON round trip
// (numbers in a response's data come back as float64 either way).
func normalize(m wire.AgentMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}
