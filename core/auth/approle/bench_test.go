package approle_test

import (
	"testing"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/logical"
)

// BenchmarkLogin measures a successful login over inmem storage: the
// role ID index, role and secret ID reads and the rate limiter.
func BenchmarkLogin(b *testing.B) {
	v := newEnv(b, approle.Config{})
	roleID := v.role("r", `{"token_policies": "p", "token_ttl": "1h"}`)
	secret, _ := v.secretID("r", `{}`)
	data := map[string]any{"role_id": roleID, "secret_id": secret}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.do(logical.OpUpdate, "login", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoginWithUses adds the write that decrements a use count.
func BenchmarkLoginWithUses(b *testing.B) {
	v := newEnv(b, approle.Config{})
	roleID := v.role("r", `{"token_policies": "p"}`)
	secret, _ := v.secretID("r", `{"num_uses": 2147483647}`)
	data := map[string]any{"role_id": roleID, "secret_id": secret}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.do(logical.OpUpdate, "login", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoginParallel runs logins of many roles at once, to show the
// striped role locks do not serialize them.
func BenchmarkLoginParallel(b *testing.B) {
	v := newEnv(b, approle.Config{})
	type cred struct{ data map[string]any }
	var creds []cred
	for i := range 64 {
		name := "r" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		roleID := v.role(name, `{}`)
		secret, _ := v.secretID(name, `{"num_uses": 2147483647}`)
		creds = append(creds, cred{map[string]any{"role_id": roleID, "secret_id": secret}})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.do(logical.OpUpdate, "login", creds[i%len(creds)].data); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
