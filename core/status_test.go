package core

import (
	"errors"
	"fmt"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
)

func TestStatusAndPublicMessage(t *testing.T) {
	upstream := fmt.Errorf("redis 127.0.0.1:1: dial tcp: connection refused: %w", logical.ErrUpstream)
	tests := []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"upstream names its target", upstream, 502, upstream.Error()},
		{"invalid input wins over upstream", errors.Join(logical.Invalid("key_patterns", "bad"), logical.ErrUpstream), 400, ""},
		{"internal errors stay hidden", errors.New("pq: password=hunter2"), 500, "internal error; see the server log"},
		{"denied says nothing more", fmt.Errorf("policy x: %w", logical.ErrPermissionDenied), 403, "permission denied"},
		{"sealed", ErrSealed, 503, "SecretHub is sealed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := StatusOf(tc.err); got != tc.status {
				t.Errorf("StatusOf = %d, want %d", got, tc.status)
			}
			if tc.msg != "" {
				if got := PublicMessage(tc.err); got != tc.msg {
					t.Errorf("PublicMessage = %q, want %q", got, tc.msg)
				}
			}
		})
	}
}
