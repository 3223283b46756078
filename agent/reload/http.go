package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/secrethub/secrethub/agent/config"
)

// maxRedirects bounds the redirects an HTTP reload follows.
const maxRedirects = 5

// HTTP sends a request and wants a 2xx answer.
//
// By default it reaches loopback addresses only: the URL's host must be
// "localhost" or a loopback IP, every address it connects to (after name
// resolution, and after each redirect) must be loopback, and proxies from
// the environment are not used. AllowRemote lifts all of that.
type HTTP struct {
	// URL is http:// or https:// (verified against the system roots).
	URL string
	// Method is GET, POST, PUT or any other method; "" means POST. The
	// request has no body.
	Method string
	// Timeout bounds the whole exchange (DefaultTimeout when zero).
	Timeout time.Duration
	// AllowRemote lets the reload reach hosts that are not loopback.
	AllowRemote bool
}

// Run sends the request.
func (h HTTP) Run(ctx context.Context) error {
	u, err := url.Parse(h.URL)
	if err != nil {
		return errors.New("reload: http: the URL does not parse")
	}
	shown := u.Redacted()
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("reload: http %q: want http:// or https://", shown)
	}
	if !h.AllowRemote && !config.IsLoopback(u.Hostname()) {
		return fmt.Errorf("reload: http %q: %w (set allow_remote to reach it)", shown, ErrRemoteRefused)
	}
	method := h.Method
	if method == "" {
		method = config.DefaultHTTPMethod
	}
	timeout := timeoutOrDefault(h.Timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("reload: http %s %q: %w", method, shown, err)
	}
	req.Header.Set("User-Agent", "secrethub-agent")
	client, transport := h.client()
	defer transport.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return fmt.Errorf("reload: http %s %q: no answer within %s: %w", method, shown, timeout, ErrTimeout)
		}
		if errors.Is(err, ErrRemoteRefused) {
			return fmt.Errorf("reload: http %s %q: %w (set allow_remote to reach it)", method, shown, ErrRemoteRefused)
		}
		return fmt.Errorf("reload: http %s %q: %w", method, shown, err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; the body is never
	// shown.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("reload: http %s %q: answered %s, want 2xx", method, shown, resp.Status)
	}
	return nil
}

// client builds the client for one run.
func (h HTTP) client() (*http.Client, *http.Transport) {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	transport := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        1,
	}
	if h.AllowRemote {
		transport.Proxy = http.ProxyFromEnvironment
	} else {
		dialer.Control = loopbackOnly
	}
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if !h.AllowRemote && !config.IsLoopback(req.URL.Hostname()) {
				return fmt.Errorf("redirect to %q: %w", req.URL.Redacted(), ErrRemoteRefused)
			}
			return nil
		},
	}
	return client, transport
}

// loopbackOnly is a net.Dialer Control that refuses every address that is
// not a loopback IP. It runs after name resolution, on the address about
// to be connected.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrRemoteRefused)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, ErrRemoteRefused)
	}
	return nil
}
