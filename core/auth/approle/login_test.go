package approle_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// genericLoginError is the only message a refused login may carry.
const genericLoginError = "approle: login: permission denied: invalid role_id or secret_id"

func TestLoginSuccess(t *testing.T) {
	v := newEnv(t, approle.Config{})
	roleID := v.role("web", `{"token_policies": ["app-read", "app-write"], "token_ttl": "20m",
		"token_max_ttl": "2h", "token_num_uses": 9, "token_bound_cidrs": "10.0.0.0/8"}`)
	secret, _ := v.secretID("web", `{"metadata": {"host": "web-1"}}`)

	resp, err := v.login(defaultAddr, roleID, " "+secret+"\n") // surrounding space is ignored, as in Vault
	if err != nil {
		t.Fatal(err)
	}
	wantAuth := &logical.Auth{
		Policies:      []string{"app-read", "app-write"},
		TokenPolicies: []string{"app-read", "app-write"},
		Metadata:      map[string]string{"role_name": "web", "host": "web-1"},
		LeaseDuration: 20 * time.Minute,
		Renewable:     true,
	}
	if !reflect.DeepEqual(resp.Auth, wantAuth) {
		t.Fatalf("Auth:\n got %#v\nwant %#v", resp.Auth, wantAuth)
	}
	wantData := map[string]any{"token_max_ttl": 7200, "token_num_uses": 9, "token_bound_cidrs": []string{"10.0.0.0/8"}}
	if !reflect.DeepEqual(resp.Data, wantData) {
		t.Fatalf("Data = %#v, want %#v", resp.Data, wantData)
	}
	p, err := approle.LoginTokenParams(resp)
	if err != nil {
		t.Fatal(err)
	}
	if p.TTL != 20*time.Minute || p.MaxTTL != 2*time.Hour || p.NumUses != 9 ||
		len(p.BoundCIDRs) != 1 || p.BoundCIDRs[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Fatalf("LoginTokenParams = %+v", p)
	}
	// Unlimited secret IDs keep working.
	if _, err := v.login(defaultAddr, roleID, secret); err != nil {
		t.Fatalf("second login: %v", err)
	}
	// A secret ID's own token_bound_cidrs replace the role's.
	narrow, _ := v.secretID("web", `{"token_bound_cidrs": "10.9.0.0/16"}`)
	resp, err = v.login(defaultAddr, roleID, narrow)
	if err != nil || !reflect.DeepEqual(resp.Data["token_bound_cidrs"], []string{"10.9.0.0/16"}) {
		t.Fatalf("login with narrowed token CIDRs: %v, %v", resp, err)
	}
}

func TestLoginTokenParamsRejectsBadResponses(t *testing.T) {
	for name, resp := range map[string]*logical.Response{
		"nil":          nil,
		"no auth":      {Data: map[string]any{}},
		"ttl type":     {Auth: &logical.Auth{}, Data: map[string]any{"token_max_ttl": "1h"}},
		"ttl negative": {Auth: &logical.Auth{}, Data: map[string]any{"token_max_ttl": -1}},
		"uses type":    {Auth: &logical.Auth{}, Data: map[string]any{"token_num_uses": 1.0}},
		"cidrs type":   {Auth: &logical.Auth{}, Data: map[string]any{"token_bound_cidrs": "10.0.0.0/8"}},
		"cidrs value":  {Auth: &logical.Auth{}, Data: map[string]any{"token_bound_cidrs": []string{"x"}}},
	} {
		if _, err := approle.LoginTokenParams(resp); err == nil {
			t.Errorf("%s: LoginTokenParams accepted %+v", name, resp)
		}
	}
}

func TestLoginFailures(t *testing.T) {
	other := netip.MustParseAddr("198.51.100.7")
	cases := map[string]struct {
		// setup returns the credentials to present and the address to
		// present them from.
		setup func(v *env) (roleID, secretID string, addr netip.Addr)
		// reason is a part of the LoginError's Reason, to prove each case
		// fails for its own reason.
		reason string
	}{
		"unknown role id": {func(v *env) (string, string, netip.Addr) {
			v.role("r", `{}`)
			s, _ := v.secretID("r", `{}`)
			return "no-such-role-id", s, defaultAddr
		}, "unknown role_id"},
		"wrong secret id": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			v.secretID("r", `{}`)
			return id, "not-the-secret-id", defaultAddr
		}, "secret_id not found"},
		"secret id of another role": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			v.role("o", `{}`)
			s, _ := v.secretID("o", `{}`)
			return id, s, defaultAddr
		}, "secret_id not found"},
		"expired secret id": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{"secret_id_ttl": "10m"}`)
			s, _ := v.secretID("r", `{}`)
			v.clk.Add(10 * time.Minute)
			return id, s, defaultAddr
		}, "expired"},
		"uses exhausted": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			s, _ := v.secretID("r", `{"num_uses": 2}`)
			for range 2 {
				if _, err := v.login(defaultAddr, id, s); err != nil {
					v.t.Fatalf("login within num_uses: %v", err)
				}
			}
			return id, s, defaultAddr
		}, "secret_id not found"},
		"secret id cidr mismatch": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			s, _ := v.secretID("r", `{"cidr_list": "192.0.2.0/24"}`)
			return id, s, other
		}, "cidr_list"},
		"role cidr mismatch": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{"secret_id_bound_cidrs": "192.0.2.0/24"}`)
			s, _ := v.secretID("r", `{}`)
			return id, s, other
		}, "secret_id_bound_cidrs"},
		"role narrowed after generation": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			s, _ := v.secretID("r", `{}`)
			v.must(logical.OpUpdate, "role/r", map[string]any{"secret_id_bound_cidrs": "203.0.113.0/24"})
			return id, s, defaultAddr
		}, "secret_id_bound_cidrs"},
		"no client address with secret id cidrs": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			s, _ := v.secretID("r", `{"cidr_list": "0.0.0.0/0"}`)
			return id, s, netip.Addr{}
		}, "(unknown)"},
		"no client address with role cidrs": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{"secret_id_bound_cidrs": "0.0.0.0/0, ::/0"}`)
			s, _ := v.secretID("r", `{}`)
			return id, s, netip.Addr{}
		}, "(unknown)"},
		"role deleted": {func(v *env) (string, string, netip.Addr) {
			id := v.role("r", `{}`)
			s, _ := v.secretID("r", `{}`)
			v.must(logical.OpDelete, "role/r", nil)
			return id, s, defaultAddr
		}, "unknown role_id"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t, approle.Config{})
			roleID, secret, addr := tc.setup(v)
			resp, err := v.login(addr, roleID, secret)
			if resp != nil || !errors.Is(err, logical.ErrPermissionDenied) {
				t.Fatalf("login = %v, %v; want ErrPermissionDenied", resp, err)
			}
			var le *approle.LoginError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LoginError", err)
			}
			if !strings.Contains(le.Reason, tc.reason) {
				t.Fatalf("reason %q, want it to mention %q", le.Reason, tc.reason)
			}
			// The message says nothing of which part was wrong, and holds no
			// secret.
			if msg := err.Error(); msg != genericLoginError || strings.Contains(msg, le.Reason) ||
				strings.Contains(msg, secret) || strings.Contains(msg, roleID) {
				t.Fatalf("error message %q leaks detail", msg)
			}
			if strings.Contains(le.Reason, secret) {
				t.Fatalf("reason %q holds the secret ID", le.Reason)
			}
		})
	}
}

// Secret IDs of a 4-in-6 mapped client address match IPv4 blocks.
func TestLoginMappedAddress(t *testing.T) {
	v := newEnv(t, approle.Config{})
	id := v.role("r", `{"secret_id_bound_cidrs": "192.0.2.0/24"}`)
	s, _ := v.secretID("r", `{"cidr_list": "192.0.2.10"}`)
	if _, err := v.login(netip.MustParseAddr("::ffff:192.0.2.10"), id, s); err != nil {
		t.Fatal(err)
	}
}

// With num_uses=N, exactly N of many concurrent logins succeed.
func TestLoginNumUsesConcurrent(t *testing.T) {
	for _, uses := range []int{1, 5, 19} {
		v := newEnv(t, approle.Config{FailuresPerMinute: -1})
		// Reads of secret IDs yield the processor, so that logins
		// interleave between reading the count and writing it back: without
		// the engine's lock, more than N would succeed.
		e, err := approle.New(yieldingStorage{v.be}, approle.Config{FailuresPerMinute: -1, Now: v.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		v.e = e
		id := v.role("r", `{}`)
		resp := v.must(logical.OpUpdate, "role/r/secret-id", map[string]any{"num_uses": uses})
		secret := resp.Data["secret_id"].(string)
		const workers = 20
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			ok     int
			denied int
		)
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				_, err := v.login(defaultAddr, id, secret)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, logical.ErrPermissionDenied):
					denied++
				default:
					t.Errorf("login: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if ok != uses || denied != workers-uses {
			t.Fatalf("num_uses=%d: %d logins succeeded, %d denied; want %d and %d", uses, ok, denied, uses, workers-uses)
		}
		if _, err := v.do(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": secret}); !errors.Is(err, logical.ErrNotFound) {
			t.Fatalf("used-up secret ID still stored: %v", err)
		}
	}
}

// yieldingStorage yields the processor around reads of secret IDs.
type yieldingStorage struct{ *inmem.Backend }

func (s yieldingStorage) Get(ctx context.Context, key string) ([]byte, error) {
	if !strings.HasPrefix(key, "secret_id/") {
		return s.Backend.Get(ctx, key)
	}
	for range 50 {
		runtime.Gosched()
	}
	b, err := s.Backend.Get(ctx, key)
	for range 50 {
		runtime.Gosched()
	}
	return b, err
}

// Each login decrements the stored count.
func TestLoginDecrementsUses(t *testing.T) {
	v := newEnv(t, approle.Config{})
	id := v.role("r", `{}`)
	s, _ := v.secretID("r", `{"num_uses": 3}`)
	for want := 2; want >= 1; want-- {
		v.clk.Add(time.Second)
		if _, err := v.login(defaultAddr, id, s); err != nil {
			t.Fatal(err)
		}
		got := v.must(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": s}).Data
		if got["secret_id_num_uses"] != want || got["last_updated_time"] != v.clk.Now().Format(time.RFC3339Nano) {
			t.Fatalf("after a login: uses %v, updated %v; want %d, %s", got["secret_id_num_uses"], got["last_updated_time"], want, v.clk.Now())
		}
	}
}

// A refused address does not use up a secret ID.
func TestCIDRRefusalDoesNotConsumeUse(t *testing.T) {
	v := newEnv(t, approle.Config{})
	id := v.role("r", `{}`)
	s, _ := v.secretID("r", `{"num_uses": 1, "cidr_list": "192.0.2.0/24"}`)
	if _, err := v.login(netip.MustParseAddr("198.51.100.1"), id, s); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatal(err)
	}
	if _, err := v.login(defaultAddr, id, s); err != nil {
		t.Fatalf("login from the allowed address after a refusal elsewhere: %v", err)
	}
}

func TestRateLimitPerSource(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 3})
	id := v.role("r", `{}`)
	secret, _ := v.secretID("r", `{"num_uses": 1}`)
	attacker := netip.MustParseAddr("203.0.113.9")

	// Three failures with role IDs unrelated to the role: only the source
	// is charged.
	for i := range 3 {
		if _, err := v.login(attacker, "guess-"+string(rune('a'+i)), "x"); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Now even the right credentials are refused from that source, before
	// they are checked: the single-use secret ID is not consumed.
	_, err := v.login(attacker, id, secret)
	var rl *approle.RateLimitError
	if !errors.Is(err, logical.ErrRateLimited) || !errors.As(err, &rl) || rl.Scope != "source" || rl.RetryAfter != 20*time.Second {
		t.Fatalf("right credentials from a limited source: %v (%+v)", err, rl)
	}
	if errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatal("a rate-limited login also matches ErrPermissionDenied")
	}
	// The same /64 is the same source for IPv6; here another IPv4 source
	// is not limited. Use it for a lookup only, keeping the secret ID.
	v.must(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": secret})

	v.clk.Add(19 * time.Second)
	if _, err := v.login(attacker, id, secret); !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("after 19s: %v, want still limited", err)
	}
	v.clk.Add(time.Second) // one failure per 20 s refills
	if _, err := v.login(attacker, id, secret); err != nil {
		t.Fatalf("after the limit recovered: %v", err)
	}
}

func TestRateLimitOtherSourceUnaffected(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 2})
	id := v.role("r", `{}`)
	secret, _ := v.secretID("r", `{}`)
	for _, addr := range []string{"203.0.113.9", "2001:db8:1:2::1"} {
		a := netip.MustParseAddr(addr)
		for i := range 2 { // distinct role IDs, so only the source is charged
			if _, err := v.login(a, addr+string(rune('a'+i)), "x"); !errors.Is(err, logical.ErrPermissionDenied) {
				t.Fatalf("%s failure %d: %v", addr, i, err)
			}
		}
		if _, err := v.login(a, id, secret); !errors.Is(err, logical.ErrRateLimited) {
			t.Fatalf("%s: %v, want limited", addr, err)
		}
	}
	// Another address of the same IPv6 /64 is the same source.
	if _, err := v.login(netip.MustParseAddr("2001:db8:1:2::ffff"), id, secret); !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("same /64: %v, want limited", err)
	}
	for _, addr := range []string{"203.0.113.10", "2001:db8:1:3::1"} {
		if _, err := v.login(netip.MustParseAddr(addr), id, secret); err != nil {
			t.Fatalf("unrelated source %s: %v", addr, err)
		}
	}
}

func TestRateLimitPerRole(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 3})
	id := v.role("r", `{}`)
	secret, _ := v.secretID("r", `{}`)
	otherID := v.role("o", `{}`)
	otherSecret, _ := v.secretID("o", `{}`)

	// Three failures on the role's ID, each from a different source.
	for i := range 3 {
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		if _, err := v.login(src, id, "wrong"); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	fresh := netip.MustParseAddr("192.0.2.200")
	_, err := v.login(fresh, id, secret)
	var rl *approle.RateLimitError
	if !errors.As(err, &rl) || rl.Scope != "role_id" || !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("right credentials for a limited role: %v", err)
	}
	// The refused attempt did not charge the fresh source: another role
	// logs in from it, repeatedly.
	for range 5 {
		if _, err := v.login(fresh, otherID, otherSecret); err != nil {
			t.Fatalf("other role from the same source: %v", err)
		}
	}
	v.clk.Add(time.Minute)
	if _, err := v.login(fresh, id, secret); err != nil {
		t.Fatalf("after the clock advanced: %v", err)
	}
}

// Successful logins are not charged, however many.
func TestRateLimitIgnoresSuccess(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 1})
	id := v.role("r", `{}`)
	secret, _ := v.secretID("r", `{}`)
	for i := range 50 {
		if _, err := v.login(defaultAddr, id, secret); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
}

// Storage failures are not the caller's fault and are not charged.
func TestRateLimitIgnoresStorageErrors(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 1})
	id := v.role("r", `{}`)
	secret, _ := v.secretID("r", `{}`)
	v.be.SetFault("get", errors.New("down"))
	for range 3 {
		if _, err := v.login(defaultAddr, id, secret); err == nil || errors.Is(err, logical.ErrRateLimited) {
			t.Fatalf("login with storage down: %v", err)
		}
	}
	v.be.ClearFaults()
	if _, err := v.login(defaultAddr, id, secret); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimitBurst(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 1, Burst: 4})
	for i := range 4 {
		if _, err := v.login(defaultAddr, "x", "y"); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("failure %d within burst: %v", i, err)
		}
	}
	if _, err := v.login(defaultAddr, "x", "y"); !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("beyond burst: %v", err)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: -1})
	for i := range 100 {
		if _, err := v.login(defaultAddr, "x", "y"); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
}

// The default allows 10 failures at once, then refuses.
func TestRateLimitDefault(t *testing.T) {
	v := newEnv(t, approle.Config{})
	for range approle.DefaultFailuresPerMinute {
		v.login(defaultAddr, "x", "y")
	}
	if _, err := v.login(defaultAddr, "x", "y"); !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("failure beyond the default: %v", err)
	}
}

// TestConcurrentSuccessfulLoginsAreNotLimited: a fleet logging in at once
// with the same role from one address (a NAT) is never rate limited, since
// only failures count.
func TestConcurrentSuccessfulLoginsAreNotLimited(t *testing.T) {
	v := newEnv(t, approle.Config{FailuresPerMinute: 3})
	roleID := v.role("fleet", `{"token_policies": ["app"]}`)
	secret, _ := v.secretID("fleet", `{}`)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.login(defaultAddr, roleID, secret); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a successful login was refused: %v", err)
	}
	// Failures still count: three wrong secret IDs exhaust the bucket,
	// and then even the right one waits.
	for range 3 {
		if _, err := v.login(defaultAddr, roleID, "wrong"); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("wrong secret id: %v", err)
		}
	}
	if _, err := v.login(defaultAddr, roleID, secret); !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("after 3 failures: %v, want ErrRateLimited", err)
	}
}
