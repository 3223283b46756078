package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/conn"
	"github.com/secrethub/secrethub/agent/uds"
)

// serveSocket starts the Unix-socket API.
func (d *daemon) serveSocket(ctx context.Context, wg *sync.WaitGroup) error {
	l := d.cfg.Listener
	pem, err := os.ReadFile(l.ClientCAFile)
	if err != nil {
		return fmt.Errorf("listener.client_ca_file: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(pem) {
		return fmt.Errorf("listener.client_ca_file: %q holds no PEM certificate", l.ClientCAFile)
	}
	var cert tls.Certificate
	if l.TLSCertFile != "" {
		cert, err = tls.LoadX509KeyPair(l.TLSCertFile, l.TLSKeyFile)
	} else {
		cert, err = uds.SelfSigned("secrethub-agent")
	}
	if err != nil {
		return fmt.Errorf("listener server certificate: %w", err)
	}
	ln, err := uds.Listen(l.UnixSocket)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := uds.Serve(ctx, ln, uds.Options{ClientCAs: cas, ServerCert: cert, Source: socketSource{d}, Logger: d.log})
		if err != nil && ctx.Err() == nil {
			d.log.Error("unix socket listener stopped", "error", err.Error())
		}
	}()
	d.log.Info("serving secrets on the unix socket", "path", l.UnixSocket)
	return nil
}

// socketSource answers the socket from the cache, and from the core on a
// miss. While connected the cache is current: the core pushes every change
// of a path the agent read. Otherwise an entry older than cache.ttl is
// reported stale.
type socketSource struct{ d *daemon }

func (s socketSource) Secret(ctx context.Context, path string) (map[string]any, bool, error) {
	d := s.d
	connected := d.conn.Connected()
	if data, _, fresh, ok := d.cache.Get(path); ok {
		return data, !connected && !fresh, nil
	}
	if !connected {
		return nil, false, fmt.Errorf("secret %q is not cached and the core is not connected: %w", path, uds.ErrUnavailable)
	}
	if err := config.CheckCorePath(path); err != nil {
		return nil, false, err
	}
	resp, err := d.conn.Read(ctx, path)
	if err != nil {
		if errors.Is(err, conn.ErrNotConnected) {
			return nil, false, fmt.Errorf("read %q: %w: %w", path, uds.ErrUnavailable, err)
		}
		return nil, false, err
	}
	data := resp.Data
	if data == nil {
		data = map[string]any{}
	}
	// The read watches the path: pushes keep this entry current, and a
	// reconnect reads it again (it is in cache.Paths).
	d.cache.Put(path, data)
	return data, false, nil
}
