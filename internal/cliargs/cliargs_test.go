package cliargs

import (
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"agent", "-config", "f", "-init"}, []string{"agent", "--config", "f", "--init"}},
		{[]string{"kv", "get", "-format=json", "x"}, []string{"kv", "get", "--format=json", "x"}},
		{[]string{"--dev", "-h"}, []string{"--dev", "-h"}},
		{[]string{"put", "x", "--", "-value"}, []string{"put", "x", "--", "-value"}},
		{[]string{"-", "-1"}, []string{"-", "-1"}},
	}
	for _, tc := range tests {
		if got := Normalize(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
