package controllers

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/api/v1alpha1"
)

func TestSecretData(t *testing.T) {
	core := map[string]any{
		"user": "app", "port": json.Number("5432"), "tls": true,
		"opts": map[string]any{"a": json.Number("1")}, "bad key": "x",
	}
	tests := []struct {
		name    string
		keys    map[string]v1alpha1.SecretKey
		want    map[string]string
		wantErr error
		msg     string
	}{
		{name: "every key, invalid Secret key", wantErr: errInvalidSpec, msg: `"bad key"`},
		{name: "mapped", keys: map[string]v1alpha1.SecretKey{"user": "DB_USER", "port": "DB_PORT", "tls": "TLS", "opts": "OPTS", "bad key": "GOOD"},
			want: map[string]string{"DB_USER": "app", "DB_PORT": "5432", "TLS": "true", "OPTS": `{"a":1}`, "GOOD": "x"}},
		{name: "missing key", keys: map[string]v1alpha1.SecretKey{"nope": "X"}, wantErr: errDependency, msg: `"nope"`},
		{name: "two keys to one", keys: map[string]v1alpha1.SecretKey{"user": "X", "port": "X"}, wantErr: errInvalidSpec, msg: `"X"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := secretData("secrets/ns/app", core, tc.keys)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v: want %v naming %s", err, tc.wantErr, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			str := map[string]string{}
			for k, v := range got {
				str[k] = string(v)
			}
			if !reflect.DeepEqual(str, tc.want) {
				t.Fatalf("got %v, want %v", str, tc.want)
			}
		})
	}
}

func TestDataHash(t *testing.T) {
	a := dataHash(map[string][]byte{"a": []byte("bc"), "d": []byte("e")})
	tests := []struct {
		name string
		data map[string][]byte
		same bool
	}{
		{"equal data", map[string][]byte{"d": []byte("e"), "a": []byte("bc")}, true},
		{"value changed", map[string][]byte{"a": []byte("bX"), "d": []byte("e")}, false},
		{"boundary moved", map[string][]byte{"ab": []byte("c"), "d": []byte("e")}, false},
		{"key removed", map[string][]byte{"a": []byte("bc")}, false},
	}
	for _, tc := range tests {
		if got := dataHash(tc.data); (got == a) != tc.same {
			t.Errorf("%s: hash %s vs %s, want same=%v", tc.name, got, a, tc.same)
		}
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Errorf("hash %q: want sha256: and 64 hex digits", a)
	}
}
