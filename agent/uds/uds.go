// Package uds is the agent's API for local applications: HTTP over TLS
// over a Unix socket, with client certificates required (mTLS).
//
// Listen makes the socket (mode 0660, never any looser, see Listen) and
// Serve answers on it:
//
//	GET /v1/secrets/<path>  200 {"data": {...}, "stale": false}
//	GET /v1/health          200 {"ok": true}
//
// A secret at <path> is the core's secrets/<path>; the daemon's Source
// answers from its cache, or from the core on a miss. A stale answer (from
// the cache while the core cannot confirm it) says "stale": true and
// carries the header X-SecretHub-Stale: true. Errors are
// {"errors": ["..."]} with a fixed message per status, never a secret
// value or a Source's error text: 400 bad path, 403 the core denies, 404
// no such secret or endpoint, 405 another method, 503 neither the cache
// nor the core can answer (ErrUnavailable, or the core is sealed).
//
// Clients authenticate with a certificate that chains to the configured
// client CA; a client without one, or with another CA's, fails the TLS
// handshake. The server's certificate is the configured one, or an
// ephemeral self-signed one (SelfSigned) that clients do not verify: the
// socket's file mode, which only the agent's user and group can pass,
// authenticates the server.
package uds

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/client"
)

// SocketMode is the mode of the socket file: the agent's user and group
// may connect, nobody else.
const SocketMode fs.FileMode = 0o660

// MaxPathBytes bounds the core path secrets/<path> that /v1/secrets/<path>
// reads, as the core and the daemon bound it.
const MaxPathBytes = 1024

// StaleHeader is set to "true" on an answer served from the cache without
// the core confirming it.
const StaleHeader = "X-SecretHub-Stale"

// SecretsMount is the core mount /v1/secrets/<path> reads: Source gets
// SecretsMount + <path>.
const SecretsMount = "secrets/"

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
	maxHeaderBytes    = 16 << 10
	// selfSignedValidity is the ephemeral certificate's lifetime; it is
	// made anew at every start, and clients do not verify it.
	selfSignedValidity = 10 * 365 * 24 * time.Hour
)

var (
	// ErrUnavailable is what a Source returns (wrapped) when the secret is
	// not cached and the core cannot be reached: the client gets a 503.
	ErrUnavailable = errors.New("secret unavailable: the core is unreachable and the secret is not cached")
	// ErrInUse is returned by Listen when another process serves on the
	// socket path.
	ErrInUse = errors.New("socket in use by another process")
)

// Source answers secret reads. The daemon implements it with its cache,
// fetching from the core on a miss. path is a core API path such as
// "secrets/app/db". Errors that wrap client.ErrNotFound,
// client.ErrPermissionDenied, client.ErrSealed or ErrUnavailable map to
// 404, 403, 503 and 503; anything else is a 500 whose text is logged, never
// sent.
type Source interface {
	Secret(ctx context.Context, path string) (data map[string]any, stale bool, err error)
}

// Options configures Serve.
type Options struct {
	// ClientCAs verifies client certificates (listener.client_ca_file).
	// Required.
	ClientCAs *x509.CertPool
	// ServerCert is the server's certificate: the configured one, or
	// SelfSigned's. Required.
	ServerCert tls.Certificate
	// Source answers secret reads. Required.
	Source Source
	// Logger gets one debug line per request (path, status, client
	// certificate subject) and failures. nil discards.
	Logger *slog.Logger
}

// Serve answers HTTPS requests on ln (from Listen) until ctx is done, then
// shuts down gracefully, waiting up to 5 seconds for requests in flight,
// and returns nil. It closes ln.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	if opts.ClientCAs == nil {
		return errors.New("uds: no client CA: clients must authenticate with a certificate")
	}
	if len(opts.ServerCert.Certificate) == 0 || opts.ServerCert.PrivateKey == nil {
		return errors.New("uds: no server certificate")
	}
	if opts.Source == nil {
		return errors.New("uds: no secret source")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{opts.ServerCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    opts.ClientCAs,
	}
	srv := &http.Server{
		Handler:           &handler{src: opts.Source, log: log},
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Handshake failures (no or foreign client certificate) are the
		// client's problem; they go to the log at debug level.
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		TLSConfig:   tlsCfg,
	}
	done := make(chan struct{})
	defer close(done)
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			err := srv.Shutdown(sctx)
			if err != nil {
				// Requests still running at the deadline are cut off.
				_ = srv.Close()
			}
			stopped <- err
		case <-done:
			stopped <- nil
		}
	}()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		if serr := <-stopped; serr != nil {
			return fmt.Errorf("uds: shut down: %w", serr)
		}
		return nil
	}
	return fmt.Errorf("uds: serve: %w", err)
}

// Listen listens on a Unix socket at path (absolute), whose file has mode
// SocketMode from the moment it appears there.
//
// The mode is set without a race: the socket is made in a new private
// directory (mode 0700) next to path, chmod-ed to SocketMode there, and
// renamed onto path, which replaces a stale socket atomically. Nobody can
// reach the socket before its mode is set, and the process umask (global,
// so not safe to change in a running program) plays no part.
//
// A socket already at path is stale when nothing answers on it, and is
// replaced; one that answers means another agent serves there: ErrInUse.
// Anything else at path (a file, a directory) is an error and left alone.
// Missing parent directories are made with mode 0755. Closing the listener
// removes the socket file if it is still this listener's.
func Listen(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return nil, fmt.Errorf("uds: socket path %q: want an absolute, clean path", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("uds: %s exists and is not a socket; not replacing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("uds: %s: %w", path, ErrInUse)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("uds: socket: %w", err)
	}
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("uds: socket directory: %w", err)
	}
	// MkdirTemp makes the directory with mode 0700.
	tmpDir, err := os.MkdirTemp(parent, ".sock")
	if err != nil {
		return nil, fmt.Errorf("uds: socket directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("uds: listen on %s: %w", path, err)
	}
	// The name it was bound to goes away with the rename: closing must
	// not unlink it, but the final path (see socketListener.Close).
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("uds: socket mode: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("uds: socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("uds: socket: %w", err)
	}
	return &socketListener{UnixListener: ln, path: path, file: fi}, nil
}

// socketListener removes its socket file at Close, unless another
// listener has replaced it since.
type socketListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
}

// Addr reports the socket's final path, not the temporary one it was
// bound to.
func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening and removes the socket file if it is still ours.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
		_ = os.Remove(l.path)
	}
	return err
}

// SelfSigned makes an ephemeral ECDSA P-256 server certificate for name,
// for a listener without listener.tls_cert_file. Clients cannot verify it
// and do not try (curl -k, InsecureSkipVerify): on a Unix socket the file
// mode authenticates the server.
func SelfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("uds: self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("uds: self-signed certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(selfSignedValidity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("uds: self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("uds: self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// handler routes the API.
type handler struct {
	src Source
	log *slog.Logger
}

const secretsPrefix = "/v1/secrets/"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	// RawPath keeps %2F apart from '/'; EscapedPath is what the client sent.
	p := r.URL.EscapedPath()
	status := h.route(w, r, p)
	h.log.Debug("unix socket request", "method", r.Method, "path", truncate(p, 200), "status", status, "client", clientName(r))
}

// route answers r and returns the status sent.
func (h *handler) route(w http.ResponseWriter, r *http.Request, escaped string) int {
	switch {
	case escaped == "/v1/health":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	case strings.HasPrefix(escaped, secretsPrefix):
		if r.Method != http.MethodGet {
			return methodNotAllowed(w, "GET")
		}
		p, err := SecretPath(escaped[len(secretsPrefix):])
		if err != nil {
			return writeError(w, http.StatusBadRequest, "bad secret path: "+err.Error())
		}
		return h.secret(w, r, SecretsMount+p)
	default:
		return writeError(w, http.StatusNotFound, "no such endpoint; want GET /v1/secrets/<path> or GET /v1/health")
	}
}

// secret answers one secret read.
func (h *handler) secret(w http.ResponseWriter, r *http.Request, path string) int {
	data, stale, err := h.src.Secret(r.Context(), path)
	switch {
	case err == nil:
		if data == nil {
			data = map[string]any{}
		}
		if stale {
			w.Header().Set(StaleHeader, "true")
		}
		return writeJSON(w, http.StatusOK, map[string]any{"data": data, "stale": stale})
	case errors.Is(err, client.ErrNotFound):
		return writeError(w, http.StatusNotFound, "secret not found")
	case errors.Is(err, client.ErrPermissionDenied):
		return writeError(w, http.StatusForbidden, "permission denied")
	case errors.Is(err, client.ErrSealed):
		return writeError(w, http.StatusServiceUnavailable, "the core is sealed and the secret is not cached")
	case errors.Is(err, ErrUnavailable), errors.Is(err, client.ErrUnreachable):
		return writeError(w, http.StatusServiceUnavailable, ErrUnavailable.Error())
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		return 499
	default:
		// The Source's text is for the operator, not the client.
		h.log.Warn("unix socket: reading a secret failed", "path", path, "error", err.Error())
		return writeError(w, http.StatusInternalServerError, "internal error; see the agent's log")
	}
}

// SecretPath checks the <path> of /v1/secrets/<path> as the client sent it
// (percent-encoded) and returns it decoded. It must be relative and clean:
// segments separated by single '/', none empty, "." or "..", no encoded
// '/', '?', '#' or '\', no control characters, valid UTF-8, and
// secrets/<path> at most MaxPathBytes bytes.
func SecretPath(escaped string) (string, error) {
	if escaped == "" {
		return "", errors.New("empty")
	}
	// Each byte of the path is at most three escaped ones.
	if len(escaped) > 3*MaxPathBytes {
		return "", fmt.Errorf("longer than %d bytes", MaxPathBytes)
	}
	segs := strings.Split(escaped, "/")
	for i, seg := range segs {
		s, err := unescape(seg)
		if err != nil {
			return "", err
		}
		switch s {
		case "":
			return "", errors.New("empty segment (a leading, trailing or doubled '/')")
		case ".", "..":
			return "", errors.New("'.' and '..' segments are not allowed")
		}
		segs[i] = s
	}
	p := strings.Join(segs, "/")
	if len(SecretsMount)+len(p) > MaxPathBytes {
		return "", fmt.Errorf("longer than %d bytes", MaxPathBytes)
	}
	return p, nil
}

// unescape decodes one path segment, refusing what has no place in a
// secret path.
func unescape(seg string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' {
			if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
				return "", errors.New("bad percent-encoding")
			}
			c = unhex(seg[i+1])<<4 | unhex(seg[i+2])
			i += 2
			if c == '/' {
				return "", errors.New("encoded '/' is not allowed")
			}
		}
		if c < 0x20 || c == 0x7f || c == '\\' || c == '?' || c == '#' {
			return "", errors.New("control characters, '\\', '?' and '#' are not allowed")
		}
		b.WriteByte(c)
	}
	s := b.String()
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8")
	}
	return s, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) int {
	w.Header().Set("Allow", allow)
	return writeError(w, http.StatusMethodNotAllowed, "method not allowed; want "+allow)
}

func writeError(w http.ResponseWriter, status int, msg string) int {
	return writeJSON(w, status, map[string]any{"errors": []string{msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		// Secret data that does not marshal (it came from JSON, so it
		// should): say so without the data.
		status = http.StatusInternalServerError
		b = []byte(`{"errors":["internal error: the secret could not be encoded"]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

// clientName is the client certificate's subject, for the log.
func clientName(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return truncate(r.TLS.PeerCertificates[0].Subject.String(), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
