// Package client is the Go client for SecretHub's REST API, used by the CLI,
// the agent, the operator and tests. It depends only on the wire types.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/wire"
)

// DefaultAddress is the dev server's address.
const DefaultAddress = "http://127.0.0.1:4000"

var (
	// ErrUnreachable wraps errors that mean the server could not be reached
	// at all (refused, no route, DNS, TLS handshake).
	ErrUnreachable = errors.New("server unreachable")
	// ErrSealed is returned for a 503 answer: the server is sealed.
	ErrSealed = errors.New("SecretHub is sealed")
	// ErrPermissionDenied is returned for a 403 answer.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNotFound is returned for a 404 answer.
	ErrNotFound = errors.New("not found")
)

// ResponseError is a failed request's status and the server's messages.
type ResponseError struct {
	StatusCode int
	Errors     []string
}

func (e *ResponseError) Error() string {
	msg := strings.Join(e.Errors, "; ")
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("server answered %d: %s", e.StatusCode, msg)
}

// Is lets errors.Is match a ResponseError against the sentinel errors by
// status.
func (e *ResponseError) Is(target error) bool {
	switch target {
	case ErrSealed:
		return e.StatusCode == http.StatusServiceUnavailable
	case ErrPermissionDenied:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// Config configures a Client.
type Config struct {
	// Address is the server's base URL. Default DefaultAddress.
	Address string
	// Token is sent as X-SecretHub-Token.
	Token string
	// CACertFile, when set, is the PEM bundle that server certificates must
	// chain to, instead of the system roots.
	CACertFile string
	// CACertPEM, when set, is that PEM bundle itself (used when
	// CACertFile is empty).
	CACertPEM []byte
	// HTTPClient replaces the default client (timeout 60 s) when set.
	HTTPClient *http.Client
}

// Client talks to one SecretHub server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	addr := cfg.Address
	if addr == "" {
		addr = DefaultAddress
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("address %q: want http://host:port or https://host:port", addr)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		pem, source := cfg.CACertPEM, "CA certificate"
		if cfg.CACertFile != "" {
			var err error
			if pem, err = os.ReadFile(cfg.CACertFile); err != nil {
				return nil, fmt.Errorf("read CA certificate: %w", err)
			}
			source = "CA certificate " + cfg.CACertFile
		}
		if len(pem) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no PEM certificate found", source)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{
			Transport: tr, Timeout: 60 * time.Second,
			// Never follow redirects: the token header would go with them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Client{base: u, token: cfg.Token, http: hc}, nil
}

// Address returns the server's base URL.
func (c *Client) Address() string { return c.base.String() }

// Do sends a request with a JSON body (when in is not nil) and decodes a
// JSON answer into out (when out is not nil and the server sent a body).
// A status of 400 or more gives a *ResponseError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.do(ctx, method, path, nil, in, out)
	return err
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	u := c.base.JoinPath("v1", path)
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-SecretHub-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var netErr net.Error
		var urlErr *url.Error
		if errors.As(err, &netErr) || errors.As(err, &urlErr) {
			return 0, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.base.Host, err)
		}
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		re := &ResponseError{StatusCode: resp.StatusCode}
		var er wire.ErrorResponse
		if json.Unmarshal(raw, &er) == nil {
			re.Errors = er.Errors
		}
		return resp.StatusCode, re
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		// Numbers stay json.Number, so integers past 2^53 are not rounded.
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// InitStatus reports whether the server is initialized.
func (c *Client) InitStatus(ctx context.Context) (bool, error) {
	var out wire.InitStatusResponse
	err := c.Do(ctx, http.MethodGet, "sys/init", nil, &out)
	return out.Initialized, err
}

// Init initializes the server. Zero counts mean the server's defaults.
func (c *Client) Init(ctx context.Context, shares, threshold int) (*wire.InitResponse, error) {
	var out wire.InitResponse
	if err := c.Do(ctx, http.MethodPut, "sys/init", wire.InitRequest{SecretShares: shares, SecretThreshold: threshold}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SealStatus returns the seal status.
func (c *Client) SealStatus(ctx context.Context) (*wire.SealStatusResponse, error) {
	var out wire.SealStatusResponse
	if err := c.Do(ctx, http.MethodGet, "sys/seal-status", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Unseal submits one unseal key share (hex or base64).
func (c *Client) Unseal(ctx context.Context, share string) (*wire.SealStatusResponse, error) {
	var out wire.SealStatusResponse
	if err := c.Do(ctx, http.MethodPut, "sys/unseal", wire.UnsealRequest{Key: share}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResetUnseal discards the shares submitted so far.
func (c *Client) ResetUnseal(ctx context.Context) (*wire.SealStatusResponse, error) {
	var out wire.SealStatusResponse
	if err := c.Do(ctx, http.MethodPut, "sys/unseal", wire.UnsealRequest{Reset: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Seal seals the server. It needs a root token.
func (c *Client) Seal(ctx context.Context) error {
	return c.Do(ctx, http.MethodPut, "sys/seal", nil, nil)
}

// Rotate adds a new barrier key term. It needs a root token.
func (c *Client) Rotate(ctx context.Context) error {
	return c.Do(ctx, http.MethodPut, "sys/rotate", nil, nil)
}

// KeyStatus returns the barrier's active key term.
func (c *Client) KeyStatus(ctx context.Context) (*wire.KeyStatus, error) {
	var out struct {
		Data wire.KeyStatus `json:"data"`
	}
	if err := c.Do(ctx, http.MethodGet, "sys/key-status", nil, &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// Health returns the server's health. Unlike a plain GET, it asks the
// server to answer 200 in every state, so a sealed or uninitialized server
// is a result, not an error.
func (c *Client) Health(ctx context.Context) (*wire.HealthResponse, error) {
	q := url.Values{}
	for _, k := range []string{"uninitcode", "sealedcode", "standbycode", "drsecondarycode", "performancestandbycode"} {
		q.Set(k, "200")
	}
	var out wire.HealthResponse
	if _, err := c.do(ctx, http.MethodGet, "sys/health", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Read reads path (below /v1/) with optional query parameters. A 404 is
// ErrNotFound.
func (c *Client) Read(ctx context.Context, path string, query url.Values) (*wire.Response, error) {
	var out wire.Response
	if _, err := c.do(ctx, http.MethodGet, path, query, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Write sends data to path with PUT. A 204 gives an empty response.
func (c *Client) Write(ctx context.Context, path string, data any) (*wire.Response, error) {
	var out wire.Response
	if _, err := c.do(ctx, http.MethodPut, path, nil, data, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List lists path with Vault's LIST verb.
func (c *Client) List(ctx context.Context, path string) (*wire.Response, error) {
	var out wire.Response
	if _, err := c.do(ctx, "LIST", path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes path, with optional query parameters.
func (c *Client) Delete(ctx context.Context, path string, query url.Values) (*wire.Response, error) {
	var out wire.Response
	if _, err := c.do(ctx, http.MethodDelete, path, query, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReadRaw reads path and returns the body as it came, for endpoints that
// answer with something other than JSON (audit exports).
func (c *Client) ReadRaw(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u := c.base.JoinPath("v1", path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("X-SecretHub-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.base.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	if resp.StatusCode >= 400 {
		re := &ResponseError{StatusCode: resp.StatusCode}
		var er wire.ErrorResponse
		if json.Unmarshal(body, &er) == nil {
			re.Errors = er.Errors
		}
		return nil, re
	}
	return body, nil
}

// SetToken changes the token sent with each request.
func (c *Client) SetToken(t string) { c.token = t }
