package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secrethub/secrethub/core/logical"
)

// UserPrefix starts the name of every user this engine creates:
// secrethub-<role>-<random>.
const UserPrefix = "secrethub-"

const (
	alphanumeric   = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	lowerDigits    = "abcdefghijklmnopqrstuvwxyz0123456789"
	passwordLen    = 32 // about 190 bits
	userSuffixLen  = 16
	internalUserID = "username"
)

// randomString draws n characters of alphabet from r, without modulo bias.
func randomString(r io.Reader, alphabet string, n int) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("redis: random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// targetError is a failure to talk to the Redis server at addr. Its
// message names the address and Redis's reason; it never holds a
// password.
type targetError struct {
	addr, op string
	err      error
}

func (e *targetError) Error() string {
	return fmt.Sprintf("redis at %s: %s: %v", e.addr, e.op, e.err)
}

func (e *targetError) Unwrap() []error { return []error{ErrUnreachable, e.err} }

// scrub removes secret from err's message, should Redis ever echo it.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "***"))
}

// issue creates a user for role name.
func (e *Engine) issue(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.getRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.Invalid("role", "unknown role %q", name)
	}
	client, addr, err := e.admin(ctx)
	if err != nil {
		return nil, err
	}
	suffix, err := randomString(e.rand, lowerDigits, userSuffixLen)
	if err != nil {
		return nil, err
	}
	password, err := randomString(e.rand, alphanumeric, passwordLen)
	if err != nil {
		return nil, err
	}
	user := UserPrefix + name + "-" + suffix
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password}
	for _, rule := range r.rules() {
		args = append(args, rule)
	}
	if err := client.Do(ctx, args...).Err(); err != nil {
		err = scrub(err, password)
		// ACL SETUSER applies all its rules or none, but a reply lost
		// on the way back may hide a user that was made: delete it, on
		// a context of its own, as the request's may be done.
		if derr := e.deleteUser(context.WithoutCancel(ctx), client, user); derr != nil {
			err = errors.Join(err, fmt.Errorf("and deleting the half-made user failed: %w", derr))
		}
		var rerr goredis.Error
		if errors.As(err, &rerr) && strings.Contains(rerr.Error(), "ACL SETUSER") && ctx.Err() == nil {
			// Redis refused one of the role's rules (a command this
			// server does not know, ...): the role is bad input.
			return nil, logical.Invalid("role", "Redis at %s refused role %q: %v", addr, name, rerr)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("redis at %s: create user: %w", addr, ctx.Err())
		}
		return nil, &targetError{addr: addr, op: "create user", err: err}
	}
	ttl := r.DefaultTTL
	if ttl == 0 {
		ttl = e.defaultTTL
	}
	if r.MaxTTL > 0 && ttl > r.MaxTTL {
		ttl = r.MaxTTL
	}
	return &logical.Response{
		Data: map[string]any{"username": user, "password": password},
		Secret: &logical.Secret{
			TTL:          ttl,
			MaxTTL:       r.MaxTTL,
			Renewable:    true,
			InternalData: map[string]any{internalUserID: user, "role": name},
		},
	}, nil
}

// deleteUser deletes user, which also closes its connections. A user
// already gone is not an error.
func (e *Engine) deleteUser(ctx context.Context, client *goredis.Client, user string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*e.timeout)
	defer cancel()
	return client.Do(ctx, "ACL", "DELUSER", user).Err()
}

// userOf reads the user name of a lease.
func userOf(l *logical.SecretLease) (string, error) {
	if l == nil {
		return "", errors.New("redis: nil lease")
	}
	user, _ := l.InternalData[internalUserID].(string)
	if !strings.HasPrefix(user, UserPrefix) {
		return "", fmt.Errorf("redis: lease %s has no user name of this engine", l.LeaseID)
	}
	return user, nil
}

// RevokeSecret deletes the lease's user with ACL DELUSER, which closes
// every connection authenticated as it. A user already gone counts as
// revoked; an unreachable Redis is an error, to be retried.
func (e *Engine) RevokeSecret(ctx context.Context, l *logical.SecretLease) error {
	user, err := userOf(l)
	if err != nil {
		return err
	}
	client, addr, err := e.admin(ctx)
	if err != nil {
		return err
	}
	if err := e.deleteUser(ctx, client, user); err != nil {
		return &targetError{addr: addr, op: "delete user " + user, err: err}
	}
	return nil
}

// RenewSecret only checks the lease: Redis ACL users have no expiry, so
// extending the lease is all a renewal does, and the lease manager
// deletes the user when the lease ends.
func (e *Engine) RenewSecret(_ context.Context, l *logical.SecretLease) error {
	_, err := userOf(l)
	return err
}
