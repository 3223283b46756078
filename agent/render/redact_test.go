package render

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestWrapRedacts checks the last line of defence: whatever an underlying
// error says, secret strings read during the render do not reach the
// message, while the sentinel still matches.
func TestWrapRedacts(t *testing.T) {
	st := &state{ctx: context.Background(), fetched: map[string]fetched{
		"a": {data: map[string]any{
			"password": "hunter2-long",
			"nested":   map[string]any{"list": []any{"tok-value-1", "x"}},
			"short":    "abc", // below minRedactLen: kept so messages stay readable
		}},
		"b": {err: ErrNotFound},
	}}
	inner := errors.New("range can't iterate over hunter2-long and tok-value-1 near abc")
	err := st.wrap("t", st.paths(), errors.Join(inner, ErrNotFound))
	msg := err.Error()
	for _, v := range []string{"hunter2-long", "tok-value-1"} {
		if strings.Contains(msg, v) {
			t.Errorf("message %q contains %q", msg, v)
		}
	}
	if want := `render: template "t": range can't iterate over [redacted] and [redacted] near abc`; !strings.HasPrefix(msg, want) {
		t.Errorf("message %q, want prefix %q", msg, want)
	}
	if !strings.HasSuffix(msg, "(secrets read: a, b)") {
		t.Errorf("message %q does not list the secrets read", msg)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Error("sentinel lost")
	}
	if errors.Unwrap(err) != nil {
		t.Error("the unredacted error is reachable through Unwrap")
	}
}
