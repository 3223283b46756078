package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Limits on request fields.
const (
	maxStringLen = 1024
	maxPEMLen    = 64 << 10
)

// connConfig is the stored connection to Redis. Password is the admin's
// password: it stays in the barrier and is never returned.
type connConfig struct {
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Username    string `json:"username,omitempty"`
	Password    string `json:"password,omitempty"`
	TLS         bool   `json:"tls,omitempty"`
	InsecureTLS bool   `json:"insecure_tls,omitempty"`
	CACert      string `json:"ca_cert,omitempty"`
}

// addr is host:port.
func (c *connConfig) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// configFields are the fields a write to config accepts: Vault's Redis
// database plugin's, plus address as a shorthand for host and port.
var configFields = []string{"host", "port", "address", "username", "password", "tls", "insecure_tls", "ca_cert", "verify_connection"}

// parseString reads a one-line string field of at most maxStringLen
// bytes (see field.Text).
func parseString(v any) (string, error) { return field.Text(v, maxStringLen) }

// parsePassword reads a password: any string without control characters.
// Its value never appears in an error.
func parsePassword(v any) (string, error) {
	s, ok := field.Single(v).(string)
	switch {
	case !ok:
		return "", fmt.Errorf("want a string, got %s", field.TypeName(v))
	case len(s) > maxStringLen:
		return "", fmt.Errorf("longer than %d bytes", maxStringLen)
	case field.HasControl(s):
		return "", fmt.Errorf("contains a control character")
	}
	return s, nil
}

func parsePort(v any) (int, error) {
	f, err := field.Whole(v)
	if err != nil {
		return 0, err
	}
	if f < 1 || f > 65535 {
		return 0, fmt.Errorf("must be from 1 to 65535")
	}
	return int(f), nil
}

func parsePEM(v any) (string, error) {
	s, ok := field.Single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a PEM string, got %s", field.TypeName(v))
	}
	if len(s) > maxPEMLen {
		return "", fmt.Errorf("longer than %d bytes", maxPEMLen)
	}
	return strings.TrimSpace(s), nil
}

// parseConfig checks a write to config. old is the stored config, or nil:
// a write that leaves out the password keeps the stored one, so changing
// another field does not need the admin password again.
func parseConfig(data map[string]any, old *connConfig) (*connConfig, bool, error) {
	if err := field.CheckFields(data, configFields...); err != nil {
		return nil, false, err
	}
	c := &connConfig{}
	var err error
	if c.Host, err = field.GetOr(data, "host", parseString, ""); err != nil {
		return nil, false, err
	}
	if c.Port, err = field.GetOr(data, "port", parsePort, 0); err != nil {
		return nil, false, err
	}
	address, err := field.GetOr(data, "address", parseString, "")
	if err != nil {
		return nil, false, err
	}
	if address != "" {
		if c.Host != "" || c.Port != 0 {
			return nil, false, logical.Invalid("address", "give either address or host and port, not both")
		}
		h, p, err := net.SplitHostPort(address)
		if err != nil {
			return nil, false, logical.Invalid("address", "want host:port, got %q", field.Truncate(address, 64))
		}
		if c.Port, err = parsePort(p); err != nil {
			return nil, false, logical.Invalid("address", "port %q: %v", field.Truncate(p, 16), err)
		}
		c.Host = h
	}
	if c.Host == "" {
		return nil, false, logical.Invalid("host", "required (or address)")
	}
	if strings.ContainsAny(c.Host, " /@") {
		return nil, false, logical.Invalid("host", "%q is not a host name or IP address", field.Truncate(c.Host, 64))
	}
	if c.Port == 0 {
		c.Port = 6379
	}
	if c.Username, err = field.GetOr(data, "username", parseString, ""); err != nil {
		return nil, false, err
	}
	password, ok, err := field.GetNonNull(data, "password", parsePassword)
	if err != nil {
		return nil, false, err
	}
	switch {
	case ok:
		c.Password = password
	case old != nil:
		c.Password = old.Password
	}
	if c.TLS, err = field.GetOr(data, "tls", field.Bool, false); err != nil {
		return nil, false, err
	}
	if c.InsecureTLS, err = field.GetOr(data, "insecure_tls", field.Bool, false); err != nil {
		return nil, false, err
	}
	if c.CACert, err = field.GetOr(data, "ca_cert", parsePEM, ""); err != nil {
		return nil, false, err
	}
	if c.CACert != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CACert)) {
			return nil, false, logical.Invalid("ca_cert", "holds no PEM certificate")
		}
		if !c.TLS {
			return nil, false, logical.Invalid("ca_cert", "set tls to use a CA certificate")
		}
	}
	verify, err := field.GetOr(data, "verify_connection", field.Bool, true)
	if err != nil {
		return nil, false, err
	}
	return c, verify, nil
}

// options are the go-redis options to connect as the admin.
func (e *Engine) options(c *connConfig) *goredis.Options {
	o := &goredis.Options{
		Addr:                  c.addr(),
		Username:              c.Username,
		Password:              c.Password,
		Protocol:              2,
		DialTimeout:           e.timeout,
		ReadTimeout:           e.timeout,
		WriteTimeout:          e.timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		DialerRetries:         1,
		PoolSize:              4,
		ConnMaxIdleTime:       5 * 60 * 1e9,
		DisableIdentity:       true,
	}
	if c.TLS {
		t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.Host, InsecureSkipVerify: c.InsecureTLS} //nolint:gosec // the operator's explicit choice
		if c.CACert != "" {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM([]byte(c.CACert))
			t.RootCAs = pool
		}
		o.TLSConfig = t
	}
	return o
}

// loadConfig reads the stored config; nil when there is none.
func (e *Engine) loadConfig(ctx context.Context) (*connConfig, error) {
	raw, err := logical.GetOptional(ctx, e.storage, configKey)
	if err != nil || raw == nil {
		return nil, err
	}
	var c connConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("redis: decode config: %w", err)
	}
	return &c, nil
}

// admin returns the client for the stored config and its address.
func (e *Engine) admin(ctx context.Context) (*goredis.Client, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client, e.conn.addr(), nil
	}
	c, err := e.loadConfig(ctx)
	if err != nil {
		return nil, "", err
	}
	if c == nil {
		return nil, "", ErrNotConfigured
	}
	e.client, e.conn = goredis.NewClient(e.options(c)), c
	return e.client, c.addr(), nil
}

// setClient replaces the admin client (nil: none), closing the old one.
func (e *Engine) setClient(c *connConfig, client *goredis.Client) {
	e.mu.Lock()
	old := e.client
	e.client, e.conn = client, c
	e.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

func (e *Engine) writeConfig(ctx context.Context, data map[string]any) (*logical.Response, error) {
	old, err := e.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	c, verify, err := parseConfig(data, old)
	if err != nil {
		return nil, err
	}
	client := goredis.NewClient(e.options(c))
	if verify {
		if err := client.Ping(ctx).Err(); err != nil {
			_ = client.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redis: verify connection to %s: %w", c.addr(), ctx.Err())
			}
			return nil, logical.Invalid("verify_connection", "cannot use Redis at %s: %v (fix the connection, or write with verify_connection=false)", c.addr(), err)
		}
	}
	raw, err := json.Marshal(c)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis: encode config: %w", err)
	}
	if err := e.storage.Put(ctx, configKey, raw); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis: write config: %w", err)
	}
	e.setClient(c, client)
	return nil, nil
}

func (e *Engine) readConfig(ctx context.Context) (*logical.Response, error) {
	c, err := e.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("redis: config: %w", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{
		"host":         c.Host,
		"port":         c.Port,
		"address":      c.addr(),
		"username":     c.Username,
		"tls":          c.TLS,
		"insecure_tls": c.InsecureTLS,
		"ca_cert":      c.CACert,
		"password_set": c.Password != "",
	}}, nil
}

func (e *Engine) deleteConfig(ctx context.Context) (*logical.Response, error) {
	if err := e.storage.Delete(ctx, configKey); err != nil {
		return nil, fmt.Errorf("redis: delete config: %w", err)
	}
	e.setClient(nil, nil)
	return nil, nil
}
