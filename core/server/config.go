// Package server runs a SecretHub core as a network service: it reads the
// configuration, opens storage, serves the REST API (over TLS off
// loopback), and shuts down gracefully.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Storage types.
const (
	StoragePostgres = "postgres"
	StorageFile     = "file"
	StorageInmem    = "inmem"
)

// DefaultListenAddress is where the server listens unless told otherwise.
const DefaultListenAddress = "127.0.0.1:4000"

// Config is the server's configuration. It is read from a YAML or JSON
// file, then environment variables override it, then flags override both.
type Config struct {
	// ListenAddress is host:port. Default 127.0.0.1:4000. Off loopback,
	// TLSCertFile and TLSKeyFile are required.
	ListenAddress string `json:"listen_address,omitempty"`
	// TLSCertFile and TLSKeyFile are PEM files for the listener.
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
	// Storage chooses and configures the storage backend.
	Storage StorageConfig `json:"storage,omitempty"`
	// MaxRequestBytes limits request bodies. Default 1 MiB.
	MaxRequestBytes int64 `json:"max_request_bytes,omitempty"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"log_level,omitempty"`
	// Audit chooses where audit events go.
	Audit AuditConfig `json:"audit,omitempty"`
	// AgentListenAddress, when set, is where agents connect with mTLS:
	// the core serves there with a certificate from its agent CA and
	// requires agent client certificates (env
	// SECRETHUB_AGENT_LISTEN_ADDRESS).
	AgentListenAddress string `json:"agent_listen_address,omitempty"`
	// AgentServerNames are the DNS names and IPs agents use to reach the
	// agent listener, put in its certificate.
	AgentServerNames []string `json:"agent_server_names,omitempty"`
}

// AuditConfig chooses the audit sinks. Every request is audited; a
// request whose event cannot be written fails.
type AuditConfig struct {
	// FilePath, when set, adds a JSON-lines file sink (env
	// SECRETHUB_AUDIT_FILE). With file storage it defaults to the storage
	// path plus ".audit.jsonl".
	FilePath string `json:"file_path,omitempty"`
	// DisablePostgres turns off the table sink (schema audit) that
	// Postgres storage otherwise gets; a file sink must then be set.
	DisablePostgres bool `json:"disable_postgres,omitempty"`
}

// StorageConfig chooses the storage backend.
type StorageConfig struct {
	// Type is postgres, file or inmem. Default: postgres when a database
	// URL is set.
	Type string `json:"type,omitempty"`
	// DatabaseURL is the Postgres connection URL (env DATABASE_URL). It may
	// hold a password: it is never logged.
	DatabaseURL string `json:"database_url,omitempty"`
	// Path is the bbolt file for the file backend.
	Path string `json:"path,omitempty"`
	// CacheEntries sizes the read cache in front of postgres and file
	// storage (default 16384 entries; -1 turns it off). The cache assumes
	// this server is the only one writing to the storage.
	CacheEntries int `json:"cache_entries,omitempty"`
}

// Environment variables that override the configuration file.
const (
	EnvDatabaseURL     = "DATABASE_URL"
	EnvListenAddress   = "SECRETHUB_LISTEN_ADDRESS"
	EnvTLSCertFile     = "SECRETHUB_TLS_CERT_FILE"
	EnvTLSKeyFile      = "SECRETHUB_TLS_KEY_FILE"
	EnvStorageType     = "SECRETHUB_STORAGE_TYPE"
	EnvStoragePath     = "SECRETHUB_STORAGE_PATH"
	EnvLogLevel        = "SECRETHUB_LOG_LEVEL"
	EnvMaxRequestBytes = "SECRETHUB_MAX_REQUEST_BYTES"
	EnvAuditFile       = "SECRETHUB_AUDIT_FILE"
	EnvAgentListen     = "SECRETHUB_AGENT_LISTEN_ADDRESS"
)

// LoadFile reads a YAML or JSON configuration file. Unknown fields are an
// error naming the field, so a typo does not silently fall back to a
// default.
func LoadFile(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ApplyEnv overrides c with the environment variables that are set.
// lookup is os.LookupEnv in production.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok && v != "" {
			*dst = v
		}
	}
	str(EnvDatabaseURL, &c.Storage.DatabaseURL)
	str(EnvListenAddress, &c.ListenAddress)
	str(EnvTLSCertFile, &c.TLSCertFile)
	str(EnvTLSKeyFile, &c.TLSKeyFile)
	str(EnvStorageType, &c.Storage.Type)
	str(EnvStoragePath, &c.Storage.Path)
	str(EnvLogLevel, &c.LogLevel)
	str(EnvAuditFile, &c.Audit.FilePath)
	str(EnvAgentListen, &c.AgentListenAddress)
	if v, ok := lookup(EnvMaxRequestBytes); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a whole number of bytes", EnvMaxRequestBytes, v)
		}
		c.MaxRequestBytes = n
	}
	return nil
}

// FillDefaults sets what is unset to its default.
func (c *Config) FillDefaults() {
	if c.ListenAddress == "" {
		c.ListenAddress = DefaultListenAddress
	}
	if c.Storage.Type == "" && c.Storage.DatabaseURL != "" {
		c.Storage.Type = StoragePostgres
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Audit.FilePath == "" && c.Storage.Type == StorageFile && c.Storage.Path != "" {
		c.Audit.FilePath = c.Storage.Path + ".audit.jsonl"
	}
}

// Validate checks the configuration and names the first wrong field.
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen_address %q: want host:port", c.ListenAddress)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listen_address %q: port must be 0-65535", c.ListenAddress)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file: set both or neither")
	}
	if c.TLSCertFile == "" && !IsLoopback(host) {
		return fmt.Errorf("listen_address %q is off loopback: set tls_cert_file and tls_key_file (TLS is required off loopback)", c.ListenAddress)
	}
	if c.AgentListenAddress != "" {
		if _, _, err := net.SplitHostPort(c.AgentListenAddress); err != nil {
			return fmt.Errorf("agent_listen_address %q: want host:port", c.AgentListenAddress)
		}
	}
	if c.MaxRequestBytes < 0 {
		return errors.New("max_request_bytes: must not be negative")
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return err
	}
	switch c.Storage.Type {
	case StoragePostgres:
		if c.Storage.DatabaseURL == "" {
			return fmt.Errorf("storage.database_url: required for postgres storage (or set %s)", EnvDatabaseURL)
		}
		if c.Audit.DisablePostgres && c.Audit.FilePath == "" {
			return fmt.Errorf("audit: disable_postgres leaves no audit sink; set audit.file_path (or %s)", EnvAuditFile)
		}
	case StorageFile:
		if c.Storage.Path == "" {
			return fmt.Errorf("storage.path: required for file storage (or set %s)", EnvStoragePath)
		}
	case StorageInmem:
	case "":
		return fmt.Errorf("storage: none configured; set %s, or storage.type in the config file, or run with -dev", EnvDatabaseURL)
	default:
		return fmt.Errorf("storage.type %q: want postgres, file or inmem", c.Storage.Type)
	}
	return nil
}

// IsLoopback reports whether host (a name or an IP) is a loopback address.
// The empty host and unspecified addresses listen everywhere, so they are
// not loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseLogLevel maps a level name to its slog level.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
