package server

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/audit/pgsink"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/cache"
	"github.com/secrethub/secrethub/core/storage/file"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/storage/postgres"
)

// ShutdownTimeout bounds how long in-flight requests may run after a stop
// signal.
const ShutdownTimeout = 15 * time.Second

// Options are what Run needs beyond the configuration.
type Options struct {
	Config Config
	// Dev runs an in-memory server, initialized and unsealed at start, and
	// prints its root token and unseal key to Stdout.
	Dev bool
	// DevRootToken, in dev mode, is the root token to create instead of a
	// random one.
	DevRootToken string
	// Stdout receives the dev banner. Default os.Stdout.
	Stdout io.Writer
	// Logger receives structured logs. Default: JSON on os.Stderr at
	// Config.LogLevel.
	Logger *slog.Logger
	// OnListen, when set, is called with the bound address once the server
	// accepts connections.
	OnListen func(net.Addr)
}

// Run serves until ctx is cancelled, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish (up to ShutdownTimeout), and
// closes storage.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	if opts.Dev {
		cfg.Storage = StorageConfig{Type: StorageInmem}
	}
	cfg.FillDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		level, _ := ParseLogLevel(cfg.LogLevel)
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	stdout := opts.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}

	backend, err := openStorage(ctx, cfg.Storage)
	if err != nil {
		return err
	}
	defer func() {
		if err := backend.Close(); err != nil {
			log.Error("closing storage", "error", err.Error())
		}
	}()
	sinks, err := openAuditSinks(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range sinks {
			if err := s.Sink.Close(); err != nil {
				log.Error("closing audit sink", "sink", s.Name, "error", err.Error())
			}
		}
	}()
	c, err := core.New(core.Config{
		Backend: backend, StorageType: cfg.Storage.Type, Logger: log, AuditSinks: sinks,
		AgentServerNames: cfg.AgentServerNames,
	})
	if err != nil {
		return err
	}
	// Runs before the sinks and storage close (defers run last first):
	// queued audit events are written and keys zeroed on every way out.
	defer c.Shutdown(context.WithoutCancel(ctx))

	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("tls_cert_file / tls_key_file: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen_address: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	addr := scheme + "://" + ln.Addr().String()

	if opts.Dev {
		if err := devInit(ctx, c, opts.DevRootToken, addr, stdout); err != nil {
			ln.Close()
			return err
		}
	}

	handler := corehttp.New(c, corehttp.Options{MaxRequestBytes: cfg.MaxRequestBytes, Logger: log})
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
	}
	srv := newServer()
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	var agentSrv *http.Server
	if cfg.AgentListenAddress != "" {
		aln, err := net.Listen("tcp", cfg.AgentListenAddress)
		if err != nil {
			srv.Close()
			return fmt.Errorf("agent_listen_address: %w", err)
		}
		agentSrv = newServer()
		go func() { serveErr <- agentSrv.Serve(tls.NewListener(aln, c.AgentTLSConfig())) }()
		log.Info("agent listener (mTLS, agent CA)", "address", "https://"+aln.Addr().String())
	}
	log.Info("secrethub server listening", "address", addr, "storage", cfg.Storage.Type, "dev", opts.Dev, "version", core.Version)
	if opts.OnListen != nil {
		opts.OnListen(ln.Addr())
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if agentSrv != nil {
		if err := agentSrv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("shutdown agent listener: %w", err)
		}
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

func openStorage(ctx context.Context, sc StorageConfig) (storage.Backend, error) {
	b, err := openBackend(ctx, sc)
	if err != nil || sc.Type == StorageInmem || sc.CacheEntries < 0 {
		return b, err
	}
	c, err := cache.New(b, cache.Options{Entries: sc.CacheEntries})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("storage cache: %w", err)
	}
	return c, nil
}

func openBackend(ctx context.Context, sc StorageConfig) (storage.Backend, error) {
	switch sc.Type {
	case StoragePostgres:
		b, err := postgres.Open(ctx, sc.DatabaseURL)
		if err != nil {
			// pgx errors may echo the URL; say which setting without it.
			return nil, fmt.Errorf("storage (postgres): %w", err)
		}
		return b, nil
	case StorageFile:
		b, err := file.Open(sc.Path, file.Options{})
		if err != nil {
			return nil, fmt.Errorf("storage (file %s): %w", sc.Path, err)
		}
		return b, nil
	case StorageInmem:
		return inmem.New(), nil
	}
	return nil, fmt.Errorf("storage.type %q: want postgres, file or inmem", sc.Type)
}

// openAuditSinks opens the configured audit sinks: the Postgres table
// first (the chain of record) when storage is Postgres, then the file.
// Dev and inmem servers without a file keep events in memory.
func openAuditSinks(ctx context.Context, cfg Config) ([]core.AuditSink, error) {
	var sinks []core.AuditSink
	closeAll := func() {
		for _, s := range sinks {
			s.Sink.Close()
		}
	}
	if cfg.Storage.Type == StoragePostgres && !cfg.Audit.DisablePostgres {
		s, err := pgsink.Open(ctx, cfg.Storage.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("audit (postgres): %w", err)
		}
		sinks = append(sinks, core.AuditSink{Name: "postgres", Sink: s})
	}
	if cfg.Audit.FilePath != "" {
		s, err := audit.OpenFile(cfg.Audit.FilePath)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("audit.file_path: %w", err)
		}
		sinks = append(sinks, core.AuditSink{Name: "file", Sink: s})
	}
	if len(sinks) == 0 && cfg.Storage.Type == StorageInmem {
		sinks = append(sinks, core.AuditSink{Name: "memory", Sink: audit.NewMemory()})
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("audit: no sink configured; set audit.file_path (or %s)", EnvAuditFile)
	}
	return sinks, nil
}

// devInit initializes the dev server with a single unseal key, unseals it,
// and prints what a developer needs to use it.
func devInit(ctx context.Context, c *core.Core, rootToken, addr string, out io.Writer) error {
	res, err := c.Init(ctx, core.InitRequest{SecretShares: 1, SecretThreshold: 1, RootTokenID: rootToken})
	if err != nil {
		return fmt.Errorf("dev init: %w", err)
	}
	share := res.Shares[0]
	defer clear(share)
	if _, err := c.Unseal(ctx, share); err != nil {
		return fmt.Errorf("dev unseal: %w", err)
	}
	bin, err := os.Executable()
	if err != nil {
		bin = "secrethub"
	}
	fmt.Fprintf(out, `SecretHub dev server: in-memory storage, initialized and unsealed.
Everything is lost when it stops. Never use dev mode in production.

    Address:     %s
    Unseal key:  %s
    Root token:  %s

Try it from another shell:

    %s
    %s

`, addr, hex.EncodeToString(share), res.RootToken,
		fmt.Sprintf("SECRETHUB_ADDR=%s %s sys status", addr, bin),
		fmt.Sprintf("SECRETHUB_ADDR=%s SECRETHUB_TOKEN=%s %s sys rotate", addr, res.RootToken, bin))
	return nil
}
